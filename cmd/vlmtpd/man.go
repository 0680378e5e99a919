// Runs in: an administrator's command (one-shot process).

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/vlmtpd/vlmtpd/server/config"
)

func init() {
	// Hidden: `make man` writes docs/vlmtpd.8 and docs/vlmtpd.toml.5 with it.
	commands["man"] = command{"", runMan}
}

// runMan prints vlmtpd(8), or with -section 5 vlmtpd.toml(5), in roff.
func runMan(args []string) int {
	fs := newFlagSet("man")
	section := fs.Int("section", 8, "8: the commands, vlmtpd(8); 5: the configuration file, vlmtpd.toml(5)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	switch *section {
	case 8:
		manCommands(os.Stdout)
	case 5:
		manConfig(os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "vlmtpd man: no section %d (8 or 5)\n", *section)
		return 2
	}
	return 0
}

// manCommands prints vlmtpd(8) from the same texts as -h: one section
// per command with its synopsis, description and flags, so the man page
// cannot drift from the program.
func manCommands(w io.Writer) {
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
the configuration (TOML; parameter names and defaults are Postfix's): vlmtpd.toml(5)
.TP
.I /run/vlmtpd/lmtp.sock
the default LMTP socket
.SH SIGNALS
SIGTERM stops accepting, ends idle sessions with 421 4.3.2 and lets transactions finish for
shutdown_timeout; SIGHUP re-reads the configuration for new sessions.
.SH SEE ALSO
vlmtpd.toml(5), virtual(8), postconf(5), lmtp(8), systemd.socket(5)
`)
}

// manConfig prints vlmtpd.toml(5): every setting of server/config's
// table with its type, default and description.
func manConfig(w io.Writer) {
	fmt.Fprintf(w, ".TH VLMTPD.TOML 5 %q vlmtpd \"File Formats\"\n", time.Now().Format("2006-01"))
	fmt.Fprint(w, `.SH NAME
vlmtpd.toml \- configuration of the vlmtpd LMTP delivery agent
.SH DESCRIPTION
vlmtpd reads one TOML file, /etc/vlmtpd/vlmtpd.toml unless
.B \-config
names another, of top-level
.I name
=
.I value
lines. Parameter names and defaults are Postfix's where Postfix has them. A list is a TOML
array of strings or one main.cf-style string ("a, b c"); a time is a number of seconds or a
number with a unit s, m, h, d or w ("30s", "5m"); relative paths and table names are taken
from the file's directory. An unknown name or a bad value is an error that names the file,
the line and the setting: vlmtpd does not start, and a reload keeps the old configuration.
.PP
.B vlmtpd config
prints the effective configuration,
.B vlmtpd config \-n
only what differs from the defaults, and
.B vlmtpd check-config
checks the tables, users and directories a file names.
`)
	fmt.Fprintln(w, ".SH SETTINGS")
	section := ""
	for _, d := range config.Reference() {
		if d.Section != section {
			section = d.Section
			fmt.Fprintf(w, ".SS %s\n", roffText(section))
		}
		fmt.Fprintf(w, ".TP\n.B %s\n(%s; default: %s)\n%s\n", d.Name, d.Type, roffText(d.Default), roffText(d.Text))
	}
	fmt.Fprint(w, `.SH FILES
.TP
.I /etc/vlmtpd/vlmtpd.toml
the configuration
.TP
.I /etc/vlmtpd/vlmtpd.toml.example
the example configuration that make install puts beside it
.SH SEE ALSO
vlmtpd(8), postconf(5), virtual(8)
`)
}

var (
	mdCode = regexp.MustCompile("`([^`]*)`")
	mdLink = regexp.MustCompile(`\[([^]]*)\]\(([^)]*)\)`)
)

// roffText turns a line of the table's Markdown into roff: code in bold,
// a link's text with its target if that is a file, escapes.
func roffText(s string) string {
	s = mdLink.ReplaceAllStringFunc(s, func(l string) string {
		m := mdLink.FindStringSubmatch(l)
		if strings.HasPrefix(m[2], "#") {
			return m[1] + " (in the README)"
		}
		if target, _, _ := strings.Cut(m[2], "#"); target != m[1] {
			return m[1] + " (" + target + ")"
		}
		return m[1]
	})
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = mdCode.ReplaceAllString(s, `\fB$1\fR`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
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
