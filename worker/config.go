// Runs in: the parent and the front (encode) and a worker (decodes).

package worker

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/vlmtpd/vlmtpd/internal/stderrlog"
	"github.com/vlmtpd/vlmtpd/store"
)

// Config is what a worker process is started with. It travels on the
// worker's command line (none of it is secret); the process that starts the
// worker decides it, never the request that asked for the worker.
type Config struct {
	// Base is virtual_mailbox_base: every mailbox lies beneath it.
	Base string
	// UID and GID are the only ids the worker runs and delivers as.
	UID, GID int
	// KeepGroups accepts inherited supplementary groups: set only in
	// single-user mode, where the worker runs as its unprivileged starter
	// and could not drop them anyway.
	KeepGroups bool
	// Writer is how the worker writes mailboxes and runs Sieve (its
	// Logger is unused: the worker logs as LogLevel and LogFormat say).
	Writer store.WriterOptions
	// LogLevel and LogFormat ("text", "json" or "postfix") match the
	// front's logs. LogJournal: stderr is the systemd journal, which a
	// worker, started with an empty environment, cannot tell itself.
	LogLevel   string
	LogFormat  string
	LogJournal bool
}

// Args is the command line after the "worker" subcommand.
func (c Config) Args() []string {
	a := []string{
		"-base", c.Base,
		"-uid", strconv.Itoa(c.UID),
		"-gid", strconv.Itoa(c.GID),
	}
	if c.KeepGroups {
		a = append(a, "-keep-groups")
	}
	if c.Writer.Hostname != "" {
		a = append(a, "-hostname", c.Writer.Hostname)
	}
	if len(c.Writer.LockMethods) > 0 {
		a = append(a, "-lock", strings.Join(c.Writer.LockMethods, ","))
	}
	if c.Writer.LockTimeout > 0 {
		a = append(a, "-lock-timeout", c.Writer.LockTimeout.String())
	}
	if c.Writer.StaleLockTime > 0 {
		a = append(a, "-stale-lock-time", c.Writer.StaleLockTime.String())
	}
	for _, p := range c.Writer.Sieve.Before {
		a = append(a, "-sieve-before", p)
	}
	for _, p := range c.Writer.Sieve.After {
		a = append(a, "-sieve-after", p)
	}
	if c.Writer.Sieve.GlobalDir != "" {
		a = append(a, "-sieve-global-dir", c.Writer.Sieve.GlobalDir)
	}
	if c.Writer.Sieve.Separator != "" {
		a = append(a, "-recipient-delimiter", c.Writer.Sieve.Separator)
	}
	if c.Writer.Sieve.MaxRedirects > 0 {
		a = append(a, "-sieve-max-redirects", strconv.Itoa(c.Writer.Sieve.MaxRedirects))
	}
	if c.Writer.Sieve.MaxActions > 0 {
		a = append(a, "-sieve-max-actions", strconv.Itoa(c.Writer.Sieve.MaxActions))
	}
	if c.Writer.Sieve.MaxScriptSize > 0 {
		a = append(a, "-sieve-max-script-size", strconv.Itoa(c.Writer.Sieve.MaxScriptSize))
	}
	if c.Writer.Sieve.MaxCPUTime > 0 {
		a = append(a, "-sieve-max-cpu-time", c.Writer.Sieve.MaxCPUTime.String())
	}
	if c.Writer.SingleInstance {
		a = append(a, "-single-instance-delivery")
	}
	if c.LogLevel != "" {
		a = append(a, "-log-level", c.LogLevel)
	}
	if c.LogFormat != "" {
		a = append(a, "-log-format", c.LogFormat)
	}
	if c.LogJournal {
		a = append(a, "-log-journal")
	}
	return a
}

// ParseArgs is the inverse of Args.
func ParseArgs(args []string) (Config, error) {
	var c Config
	var locks string
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Base, "base", "", "virtual_mailbox_base")
	fs.IntVar(&c.UID, "uid", -1, "uid to run and deliver as")
	fs.IntVar(&c.GID, "gid", -1, "gid to run and deliver as")
	fs.BoolVar(&c.KeepGroups, "keep-groups", false, "accept inherited supplementary groups (single-user mode)")
	fs.StringVar(&c.Writer.Hostname, "hostname", "", "host name for Maildir file names")
	fs.StringVar(&locks, "lock", "", "mbox lock methods, comma-separated")
	fs.DurationVar(&c.Writer.LockTimeout, "lock-timeout", 0, "mbox lock timeout")
	fs.DurationVar(&c.Writer.StaleLockTime, "stale-lock-time", 0, "age of a stale dotlock")
	fs.Var((*pathList)(&c.Writer.Sieve.Before), "sieve-before", "an administrator's Sieve script run before the user's (repeatable)")
	fs.Var((*pathList)(&c.Writer.Sieve.After), "sieve-after", "an administrator's Sieve script run after the user's (repeatable)")
	fs.StringVar(&c.Writer.Sieve.GlobalDir, "sieve-global-dir", "", "directory of include :global scripts")
	fs.StringVar(&c.Writer.Sieve.Separator, "recipient-delimiter", "", "recipient_delimiter (Sieve subaddress)")
	fs.IntVar(&c.Writer.Sieve.MaxRedirects, "sieve-max-redirects", 0, "sieve_max_redirects")
	fs.IntVar(&c.Writer.Sieve.MaxActions, "sieve-max-actions", 0, "sieve_max_actions")
	fs.IntVar(&c.Writer.Sieve.MaxScriptSize, "sieve-max-script-size", 0, "sieve_max_script_size")
	fs.DurationVar(&c.Writer.Sieve.MaxCPUTime, "sieve-max-cpu-time", 0, "sieve_max_cpu_time")
	fs.BoolVar(&c.Writer.SingleInstance, "single-instance-delivery", false, "hard-link one file into every Maildir recipient of a message")
	fs.StringVar(&c.LogLevel, "log-level", "", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "", "text, json or postfix")
	fs.BoolVar(&c.LogJournal, "log-journal", false, "stderr is the systemd journal")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if locks != "" {
		c.Writer.LockMethods = strings.Split(locks, ",")
	}
	switch {
	case c.Base == "" || c.Base[0] != '/':
		return c, errors.New("-base must be an absolute path")
	case c.UID <= 0 || c.GID <= 0:
		return c, errors.New("-uid and -gid must be set and not 0")
	}
	return c, nil
}

// logger writes the worker's log lines to stderr like the front's.
func (c Config) logger() *slog.Logger {
	stderrlog.Journal = c.LogJournal
	return stderrlog.Open(c.LogLevel, c.LogFormat)
}

// pathList is a repeatable flag: paths may hold commas.
type pathList []string

func (l *pathList) String() string { return strings.Join(*l, " ") }
func (l *pathList) Set(v string) error {
	if !strings.HasPrefix(v, "/") {
		return fmt.Errorf("%q is not an absolute path", v)
	}
	*l = append(*l, v)
	return nil
}
