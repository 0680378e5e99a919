package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlmtpd/vlmtpd/maps"
)

func TestMakemap(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "vmailbox")
	if err := os.WriteFile(src, []byte("User@Example.com example.com/user/\nbad-line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lookup := func(name, key, want string) {
		t.Helper()
		m, err := maps.Open("cdb:"+name, maps.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer maps.Close(m)
		if v, ok, err := m.Lookup(t.Context(), key); v != want || !ok || err != nil {
			t.Fatalf("%s: %q %v %v, want %q", key, v, ok, err, want)
		}
	}
	if code := runMakemap([]string{"cdb:" + src}); code != 0 {
		t.Fatalf("from file: exit %d", code)
	}
	lookup(src, "user@example.com", "example.com/user/")

	// From stdin, with -N, in all three spellings.
	out := filepath.Join(dir, "conv")
	for _, args := range [][]string{{"-N", "-i", "cdb:" + out}, {"-N", "cdb:" + out, "-"}, {"-N", "cdb:" + out, "-i"}} {
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		old := os.Stdin
		os.Stdin = in
		code := runMakemap(args)
		os.Stdin = old
		in.Close()
		if code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		if raw, _ := os.ReadFile(out + ".cdb"); !bytes.Contains(raw, []byte("user@example.com\x00")) {
			t.Fatalf("%v: keys stored without NUL", args)
		}
		lookup(out, "user@example.com", "example.com/user/")
		os.Remove(out + ".cdb")
	}

	for _, c := range []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"hash:" + src}, 2},
		{[]string{"-x", "cdb:" + src}, 2},
		{[]string{"cdb:" + src, "extra"}, 2},
		{[]string{"cdb:" + filepath.Join(dir, "missing")}, 1},
		{[]string{"cdb:" + filepath.Join(dir, "nodir", "x"), "-"}, 1},
	} {
		if code := runMakemap(c.args); code != c.code {
			t.Errorf("makemap %v: exit %d, want %d", c.args, code, c.code)
		}
	}
}
