// Runs in: every vlmtpd process: it dispatches to the role's command.

// Command vlmtpd is an LMTP server that delivers mail into virtual
// mailboxes. This file only dispatches subcommands; each lives in its own
// file and registers itself in init.
package main

import (
	"fmt"
	"os"
)

// command is one subcommand: run gets the arguments after its name and
// returns the process exit code.
type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{}

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

// dispatch runs the command named by args[0] and returns the exit code.
func dispatch(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	if isHelp(args[0]) {
		return runHelp(args[1:])
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "vlmtpd: unknown command %q\n", args[0])
		usage(os.Stderr)
		return 2
	}
	return cmd.run(args[1:])
}
