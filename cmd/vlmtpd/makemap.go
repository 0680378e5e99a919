// Runs in: an administrator's command (one-shot process).

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/vlmtpd/vlmtpd/maps/cdb"
)

func init() {
	commands["makemap"] = command{"build a cdb: table from a postmap source file or stdin", runMakemap}
}

func runMakemap(args []string) int {
	fs := newFlagSet("makemap")
	keepCase := fs.Bool("f", false, "do not lowercase keys")
	nul := fs.Bool("N", false, "store keys and values with a trailing NUL byte")
	stdin := fs.Bool("i", false, "read the source from stdin")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	rest := fs.Args()
	if len(rest) == 2 && (rest[1] == "-" || rest[1] == "-i") {
		*stdin, rest = true, rest[:1]
	}
	if len(rest) != 1 {
		printUsage(os.Stderr, fs)
		return 2
	}
	name, err := cdb.SpecName(rest[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd makemap:", err)
		return 2
	}
	opts := cdb.WriteOptions{KeepCase: *keepCase, AppendNUL: *nul, Logger: slog.New(newCLIHandler("vlmtpd makemap"))}
	var res cdb.MakeResult
	if *stdin {
		res, err = cdb.Make(name, os.Stdin, "stdin", opts)
	} else {
		res, err = cdb.MakeFile(name, opts)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd makemap:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "vlmtpd makemap: %s: %d entries", res.File, res.Entries)
	if res.Duplicates > 0 {
		fmt.Fprintf(os.Stderr, ", %d duplicate(s) skipped", res.Duplicates)
	}
	fmt.Fprintln(os.Stderr)
	return 0
}

// cliHandler prints warnings as "PREFIX: warning: MSG (k=v …)", each
// distinct line once (a table named in two parameters is opened twice),
// and counts them.
type cliHandler struct {
	prefix string
	attrs  []slog.Attr
	state  *cliState
}

type cliState struct {
	mu   sync.Mutex
	seen map[string]bool
	n    int
}

func newCLIHandler(prefix string) cliHandler {
	return cliHandler{prefix: prefix, state: &cliState{seen: map[string]bool{}}}
}

// Count is the number of distinct lines printed.
func (h cliHandler) Count() int {
	h.state.mu.Lock()
	defer h.state.mu.Unlock()
	return h.state.n
}

func (cliHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h cliHandler) WithAttrs(as []slog.Attr) slog.Handler {
	h.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], as...)
	return h
}
func (h cliHandler) WithGroup(string) slog.Handler { return h }
func (h cliHandler) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	extra := ""
	add := func(a slog.Attr) bool {
		if a.Key == "at" {
			msg = a.Value.String() + ": " + msg
		} else if a.Key != "file" {
			extra += " " + a.String()
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	level := "warning"
	if r.Level >= slog.LevelError {
		level = "error"
	}
	line := fmt.Sprintf("%s: %s: %s%s\n", h.prefix, level, msg, extra)
	h.state.mu.Lock()
	defer h.state.mu.Unlock()
	if h.state.seen[line] {
		return nil
	}
	h.state.seen[line] = true
	h.state.n++
	_, err := os.Stderr.WriteString(line)
	return err
}
