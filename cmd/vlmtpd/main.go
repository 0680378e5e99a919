// Command vlmtpd is an LMTP server that delivers mail into virtual
// mailboxes. This file only dispatches subcommands; each lives in its own
// file and registers itself in init.
package main

import (
	"fmt"
	"os"
	"sort"
)

// command is one subcommand: run gets the arguments after its name and
// returns the process exit code.
type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "vlmtpd: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	os.Exit(cmd.run(os.Args[2:]))
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: vlmtpd COMMAND [flags]")
	for _, n := range names {
		if commands[n].summary == "" {
			continue // internal, like worker
		}
		fmt.Fprintf(os.Stderr, "  %-13s %s\n", n, commands[n].summary)
	}
}
