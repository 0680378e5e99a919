// Runs in: an administrator's command (one-shot process).

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// usageText is each command's synopsis (what follows "vlmtpd NAME") and,
// after a blank line, what it does. `vlmtpd NAME -h` prints it above the
// command's flags; a command without an entry gets a generic line.
var usageText = map[string]string{
	"quota": `[-config FILE] [-size BYTES] [-recalc] ADDRESS...

Prints each address's quota (virtual_mailbox_limit_maps), its usage as the
mailbox owner's worker reads it from maildirsize (-recalc rebuilds that
first), and the reply RCPT would give a message of -size bytes. Needs root,
or to run as the mailbox's owner.`,
	"sieve-check": `[-global DIR] SCRIPT...

Compiles each Sieve script (RFC 5228 and the extensions in docs/sieve.md)
and prints "SCRIPT: OK" or each error with its line and column; exits 1 if
any script has an error.`,
	"sieve-test": `[-config FILE] [-r RCPT] [-f SENDER] [-a ORIG] [-s BEFORE]... [-global DIR] [-mailboxes A,B] [-cpu D] SCRIPT MESSAGE

Runs SCRIPT (after each -s script, as sieve_before) on MESSAGE and prints
the actions it would take, one per line, as Pigeonhole's sieve-test does,
without delivering anything. Exits 1 on a runtime error (the message would
be kept).`,
	"serve": `[-config FILE]

Runs the LMTP server in the foreground until SIGTERM or SIGINT. Started as
root it runs privilege-separated: a root parent keeps the listeners, the
front speaks LMTP as the configured user, and each mailbox is written by a
worker running as exactly its owner. Started as another user it delivers
only to mailboxes that user owns.`,
	"quickstart": `[-config FILE]

Serves a configuration (config.example.toml by default) with every mailbox
owned by the user running it, or by nobody when that is root: a try-out
mode that needs no users or table edits. Mail lands under the
configuration's virtual_mailbox_base.`,
	"lookup": `[-config FILE] ADDRESS...

Explains how each address resolves, as a delivery would: the tables and
keys that matched, the mailbox path and format, the owner, the limits and
the reply RCPT TO would get. Exits 1 if any address would not be delivered.`,
	"check-config": `[-config FILE]

Loads the configuration, opens every table and checks the directories it
names, the users it needs and the ids it would refuse, for the way
vlmtpd serve runs when started by the same user (as root: privilege
separation with the user setting; otherwise single-user mode). Prints
"FILE: OK", or one line per problem saying how to fix it and exits 1.`,
	"makemap": `[-f] [-N] [-i] cdb:FILE [-]

Builds FILE.cdb from FILE (postmap source syntax), or from stdin with -i or
a trailing "-", replacing the old file atomically; a running server picks
the new file up. Converts tables vlmtpd cannot read, e.g.
  postmap -s lmdb:FILE | vlmtpd makemap -i cdb:FILE`,
	"stats": `[-config FILE] [-raw]

Prints the counters of the server running with this configuration:
sessions, recipients sent, deferred and bounced by status code, refusals at
RCPT, workers, table lookups and the mean time of each delivery phase. It
reads them from the metrics endpoint, so metrics_listen must be set (and
was set when the server started). -raw prints the endpoint's text as is.`,
	"config": `[-config FILE] [-n] [NAME...]

Prints the effective configuration as TOML, one "name = value" line per
setting (or per NAME), with every default filled in and values as they
would be written: times as strings such as "300s", lists as arrays, paths
made absolute. With -n only the settings the file changes from their
defaults, like postconf -n. The output loads back to the same
configuration from the file's directory (relative table names are taken
from there). Every setting is described in vlmtpd.toml(5).`,
	"version": `

Prints the version.`,
}

// newFlagSet is a subcommand's flag set; parseFlags prints its usage.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses a subcommand's flags. With -h or -help it prints the
// usage to stdout and returns (0, false); on a bad flag flag has printed
// the error, the usage follows on stderr and it returns (2, false).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	fs.SetOutput(os.Stderr)
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		printUsage(os.Stdout, fs)
		return 0, false
	default:
		printUsage(os.Stderr, fs)
		return 2, false
	}
}

// printUsage prints a subcommand's synopsis, description and flags.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	synopsis, desc, _ := strings.Cut(usageText[fs.Name()], "\n\n")
	if _, known := usageText[fs.Name()]; !known {
		synopsis = "[flags]"
	}
	fmt.Fprintln(w, strings.TrimRight("usage: vlmtpd "+fs.Name()+" "+synopsis, " "))
	if desc != "" {
		fmt.Fprintf(w, "\n%s\n", desc)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(os.Stderr)
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "-help" || arg == "--help"
}

// runHelp is `vlmtpd help [COMMAND]`: the command list, or a command's
// own -h.
func runHelp(args []string) int {
	if len(args) == 0 {
		usage(os.Stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok || cmd.summary == "" {
		fmt.Fprintf(os.Stderr, "vlmtpd help: unknown command %q\n", args[0])
		usage(os.Stderr)
		return 2
	}
	return cmd.run([]string{"-h"})
}

// usage prints the command list.
func usage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "vlmtpd delivers mail over LMTP into virtual mailboxes, with the tables and")
	fmt.Fprintln(w, "rules of Postfix's virtual(8).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "usage: vlmtpd COMMAND [flags] [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, n := range names {
		if commands[n].summary == "" {
			continue // internal, like worker
		}
		fmt.Fprintf(w, "  %-13s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Run `vlmtpd COMMAND -h` (or `vlmtpd help COMMAND`) for a command's flags.\n")
	fmt.Fprintf(w, "The configuration is read from %s unless -config names another.\n", defaultConfig)
}
