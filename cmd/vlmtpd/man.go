package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

func init() {
	// Hidden: `make man` writes docs/vlmtpd.8 with it.
	commands["man"] = command{"", runMan}
}

// runMan prints vlmtpd(8) in roff, from the same texts as -h: one
// section per command with its synopsis, description and flags, so the
// man page cannot drift from the program.
func runMan(args []string) int {
	w := os.Stdout
	fmt.Fprintf(w, ".TH VLMTPD 8 %q vlmtpd \"System Administration\"\n", time.Now().Format("2006-01"))
	fmt.Fprint(w, `.SH NAME
vlmtpd \- LMTP delivery agent for virtual mailboxes, with the rules of Postfix's virtual(8)
.SH SYNOPSIS
.B vlmtpd
.I command
.RI [ flags ]
.SH DESCRIPTION
vlmtpd takes mail over LMTP (RFC 2033) from an MTA and delivers it into Maildir or mbox
mailboxes, resolving each recipient through Postfix-style lookup tables. Started as root it
runs privilege-separated: a root parent that only starts workers, an unprivileged front
that speaks LMTP, and per-uid workers that write the mailboxes.
.SH COMMANDS
`)
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if c.summary != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, ".SS %s\n", roffLine(n))
		help := commandHelp(n)
		verbatim := false
		for _, line := range strings.Split(strings.TrimRight(help, "\n"), "\n") {
			if line == "flags:" {
				// Flag lists are laid out already: no filling.
				fmt.Fprintln(w, ".PP\nflags:\n.nf")
				verbatim = true
				continue
			}
			if verbatim && line == "" {
				continue
			}
			fmt.Fprintln(w, roffLine(line))
		}
		if verbatim {
			fmt.Fprintln(w, ".fi")
		}
	}
	fmt.Fprint(w, `.SH FILES
.TP
.I /etc/vlmtpd/vlmtpd.toml
the configuration (TOML; parameter names and defaults are Postfix's; see the README's
configuration table and config.example.toml)
.TP
.I /run/vlmtpd/lmtp.sock
the default LMTP socket
.SH SIGNALS
SIGTERM stops accepting, ends idle sessions with 421 4.3.2 and lets transactions finish for
shutdown_timeout; SIGHUP re-reads the configuration for new sessions.
.SH SEE ALSO
virtual(8), postconf(5), lmtp(8), systemd.socket(5)
`)
	return 0
}

// commandHelp is what `vlmtpd NAME -h` prints.
func commandHelp(name string) string {
	r, pw, err := os.Pipe()
	if err != nil {
		return usageText[name]
	}
	stdout := os.Stdout
	os.Stdout = pw
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	commands[name].run([]string{"-h"})
	os.Stdout = stdout
	pw.Close()
	return string(<-done)
}

// roffLine escapes a line of help text for roff: a leading dot or quote,
// backslashes, and dashes, which roff would print as hyphens (U+2010 on a
// UTF-8 terminal: a flag copied from the page would not work).
func roffLine(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	if strings.TrimSpace(s) == "" {
		return ".PP"
	}
	return string(bytes.TrimRight([]byte(s), " "))
}
