package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// capture runs fn with os.Stdout and os.Stderr sent to files and returns
// what each received.
func capture(t *testing.T, fn func() int) (code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(filepath.Join(dir, "err"))
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = out, errf
	code = fn()
	os.Stdout, os.Stderr = oldOut, oldErr
	out.Close()
	errf.Close()
	o, _ := os.ReadFile(out.Name())
	e, _ := os.ReadFile(errf.Name())
	return code, string(o), string(e)
}

func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"-help"}} {
		code, out, errOut := capture(t, func() int { return dispatch(args) })
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
		for name, c := range commands {
			listed := strings.Contains(out, "\n  "+name+" ")
			if listed != (c.summary != "") {
				t.Errorf("%v: command %s listed=%v:\n%s", args, name, listed, out)
			}
		}
	}
	// No command, an unknown one, or help for an unknown one: the list on
	// stderr and exit 2.
	for _, args := range [][]string{nil, {"nosuch"}, {"help", "nosuch"}, {"help", "worker"}} {
		code, out, errOut := capture(t, func() int { return dispatch(args) })
		if code != 2 || out != "" || !strings.Contains(errOut, "commands:") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// TestSubcommandHelp: every listed command's -h (and `help NAME`) prints
// its synopsis, what it does and each of its flags on stdout, exits 0 and
// does nothing else (serve -h must not start a server).
func TestSubcommandHelp(t *testing.T) {
	flags := map[string][]string{
		"serve":        {"-config"},
		"quickstart":   {"-config"},
		"lookup":       {"-config"},
		"check-config": {"-config"},
		"makemap":      {"-f", "-N", "-i"},
		"stats":        {"-config", "-raw"},
		"config":       {"-config", "-n"},
		"version":      nil,
		"sieve-check":  {"-global"},
		"quota":        {"-config", "-size", "-recalc"},
		"sieve-test":   {"-config", "-r", "-f", "-a", "-s", "-global", "-mailboxes", "-cpu"},
	}
	for name, c := range commands {
		if c.summary == "" {
			continue
		}
		want, known := flags[name]
		if !known {
			t.Errorf("command %s: add it to this test with its flags", name)
		}
		if _, ok := usageText[name]; !ok {
			t.Errorf("command %s has no usageText", name)
		}
		for _, args := range [][]string{{name, "-h"}, {name, "--help"}, {"help", name}} {
			code, out, errOut := capture(t, func() int { return dispatch(args) })
			if code != 0 || errOut != "" {
				t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
			}
			if !strings.HasPrefix(out, "usage: vlmtpd "+name) || strings.Count(out, "\n") < 3 {
				t.Fatalf("%v: usage %q", args, out)
			}
			for _, f := range want {
				if !strings.Contains(out, "  "+f) {
					t.Errorf("%v: flag %s undocumented:\n%s", args, f, out)
				}
			}
		}
		// A bad flag: the error and the usage on stderr, exit 2.
		code, out, errOut := capture(t, func() int { return dispatch([]string{name, "-no-such-flag"}) })
		if code != 2 || out != "" || !strings.Contains(errOut, "-no-such-flag") || !strings.Contains(errOut, "usage: vlmtpd "+name) {
			t.Errorf("%s -no-such-flag: exit %d, stdout %q, stderr %q", name, code, out, errOut)
		}
	}
}
