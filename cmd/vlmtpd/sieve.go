// Runs in: an administrator's command (one-shot process).

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/sieve"
)

func init() {
	commands["sieve-check"] = command{"compile Sieve scripts and report errors with line and column", runSieveCheck}
	commands["sieve-test"] = command{"print the actions a Sieve script takes on a message, without delivering", runSieveTest}
}

// scriptLoader resolves include: personal scripts beside the main one,
// global scripts in globalDir, both as NAME.sieve (Pigeonhole's layout).
func scriptLoader(script, globalDir string) sieve.IncludeLoader {
	return func(loc sieve.IncludeLocation, name string) ([]byte, error) {
		dir := filepath.Dir(script)
		if loc == sieve.Global {
			if globalDir == "" {
				return nil, fmt.Errorf("no global script directory (-global): %w", fs.ErrNotExist)
			}
			dir = globalDir
		}
		return os.ReadFile(filepath.Join(dir, name+".sieve"))
	}
}

func compileFile(path, globalDir string) (*sieve.Script, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return sieve.Compile(src, &sieve.Options{Name: path, Include: scriptLoader(path, globalDir)})
}

func runSieveCheck(args []string) int { return sieveCheck(args, os.Stdout, os.Stderr) }
func runSieveTest(args []string) int  { return sieveTest(args, os.Stdout, os.Stderr) }

func sieveCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("sieve-check")
	global := fs.String("global", "", "directory of global scripts for include :global")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	code := 0
	for _, path := range fs.Args() {
		if _, err := compileFile(path, *global); err != nil {
			fmt.Fprintln(stderr, err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s: OK\n", path)
	}
	return code
}

// mailboxList answers mailboxexists from a fixed list (sieve-test has no
// mailbox store); INBOX always exists.
type mailboxList []string

func (l mailboxList) MailboxExists(_ context.Context, name string) (bool, error) {
	if strings.EqualFold(name, "INBOX") {
		return true, nil
	}
	for _, m := range l {
		if m == name {
			return true, nil
		}
	}
	return false, nil
}

func sieveTest(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("sieve-test")
	cfgPath := fs.String("config", "", "configuration file (for recipient_delimiter)")
	rcpt := fs.String("r", "recipient@example.com", "envelope recipient")
	orig := fs.String("a", "", "original envelope recipient (default: -r)")
	sender := fs.String("f", "sender@example.com", `envelope sender ("" for the null sender)`)
	global := fs.String("global", "", "directory of global scripts for include :global")
	mboxes := fs.String("mailboxes", "", "comma-separated mailboxes that exist, for mailboxexists")
	cpu := fs.Duration("cpu", 5*time.Second, "CPU time limit of the run")
	var before listFlag
	fs.Var(&before, "s", "a script to run before SCRIPT, as sieve_before (repeatable)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	sep := "+"
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, "vlmtpd sieve-test:", err)
			return 1
		}
		if cfg.RecipientDelimiter != "" {
			sep = cfg.RecipientDelimiter[:1]
		}
	}
	var scripts []*sieve.Script
	for _, path := range append(before, fs.Arg(0)) {
		script, err := compileFile(path, *global)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		scripts = append(scripts, script)
	}
	f, err := os.Open(fs.Arg(1))
	if err != nil {
		fmt.Fprintln(stderr, "vlmtpd sieve-test:", err)
		return 1
	}
	msg, err := sieve.ReadMessage(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(stderr, "vlmtpd sieve-test:", err)
		return 1
	}
	var list mailboxList
	if *mboxes != "" {
		list = strings.Split(*mboxes, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *cpu)
	defer cancel()
	env := &sieve.Env{
		Envelope:  sieve.Envelope{From: *sender, To: *rcpt, OrigTo: *orig},
		Message:   msg,
		Mailboxes: list,
		Separator: sep,
	}
	res, err := sieve.RunSequence(ctx, env, scripts...)
	for _, l := range res.Lines() {
		fmt.Fprintln(stdout, l)
	}
	if err != nil {
		var re *sieve.RuntimeError
		if errors.As(err, &re) {
			fmt.Fprintln(stderr, "runtime error (the message is kept):", err)
		}
		return 1
	}
	return 0
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
