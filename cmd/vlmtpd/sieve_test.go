package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSieveCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.sieve")
	bad := filepath.Join(dir, "bad.sieve")
	os.WriteFile(good, []byte("require \"fileinto\";\nfileinto \"Work\";\n"), 0o644)
	os.WriteFile(bad, []byte("require \"fileinto\";\nif header :is \"subject\" \"x\"\n  fileinto \"Work\";\n"), 0o644)
	var out, errb bytes.Buffer
	if code := sieveCheck([]string{good}, &out, &errb); code != 0 || !strings.Contains(out.String(), "good.sieve: OK") {
		t.Fatalf("good: exit %d, %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := sieveCheck([]string{bad}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "bad.sieve:3:3: unexpected \"fileinto\" after the arguments of header (missing ';' or '{'?)") {
		t.Fatalf("bad: exit %d, stderr %q", code, errb.String())
	}
}

func TestSieveTestCommand(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.sieve")
	msg := filepath.Join(dir, "m.eml")
	os.WriteFile(script, []byte(`require ["fileinto", "envelope", "variables", "include"];
if envelope :matches "to" "*+*@*" { fileinto "${2}"; }
include "inc";
`), 0o644)
	os.WriteFile(filepath.Join(dir, "inc.sieve"), []byte(`redirect "copy@example.org";`), 0o644)
	os.WriteFile(msg, []byte("From: a@example.com\nTo: me@example.net\nSubject: hi\n\nbody\n"), 0o644)
	var out, errb bytes.Buffer
	code := sieveTest([]string{"-r", "me+lists@example.net", "-f", "a@example.com", script, msg}, &out, &errb)
	if want := "fileinto \"lists\"\nredirect \"copy@example.org\"\n"; code != 0 || out.String() != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, out.String(), errb.String(), want)
	}
	// -s runs a script before, as sieve_before: its fileinto ends the run.
	before := filepath.Join(dir, "before.sieve")
	os.WriteFile(before, []byte(`require "fileinto"; if header :is "subject" "hi" { fileinto "Admin"; }`), 0o644)
	out.Reset()
	if code := sieveTest([]string{"-s", before, script, msg}, &out, &errb); code != 0 || out.String() != "fileinto \"Admin\"\n" {
		t.Fatalf("-s: exit %d, %q %q", code, out.String(), errb.String())
	}
	// A runtime error keeps the message and exits 1.
	os.WriteFile(script, []byte(`require "reject"; keep; reject "no";`), 0o644)
	out.Reset()
	errb.Reset()
	if code := sieveTest([]string{script, msg}, &out, &errb); code != 1 || out.String() != "implicit keep\n" || !strings.Contains(errb.String(), "conflicts") {
		t.Fatalf("runtime error: exit %d, %q %q", code, out.String(), errb.String())
	}
}
