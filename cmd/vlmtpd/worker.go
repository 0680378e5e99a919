// Runs in: a worker.

package main

import "github.com/vlmtpd/vlmtpd/worker"

// The worker subcommand is how vlmtpd starts its own delivery workers; it
// has no summary, so usage does not list it.
func init() {
	commands["worker"] = command{"", worker.Main}
}
