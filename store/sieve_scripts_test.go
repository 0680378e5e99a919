package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A changed included script is compiled anew at the next message, as a
// changed active script is, and so is one that appears after it was
// missing: a worker lives for many deliveries, so the cache must not hide
// an edit until it restarts.
func TestSieveIncludeChangeSeen(t *testing.T) {
	global := t.TempDir()
	l, base, r := sieveWriter(t, WriterOptions{Sieve: SieveOptions{GlobalDir: global}},
		`require ["include"]; include :personal "mine"; include :global "admin";`)
	md := filepath.Join(base, "example.com/u")
	os.MkdirAll(filepath.Join(md, "sieve"), 0o700)
	write := func(path, script string, age time.Duration) {
		t.Helper()
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		// Another mtime even on a coarse clock: a new version.
		at := time.Now().Add(age)
		os.Chtimes(path, at, at)
	}
	folder := func(name string) string {
		return `require ["fileinto", "mailbox"]; fileinto :create "` + name + `";`
	}
	mine, admin := filepath.Join(md, "sieve/mine.sieve"), filepath.Join(global, "admin.sieve")
	write(mine, folder("One"), -time.Hour)
	// admin.sieve is missing: the script does not compile and the
	// message is kept.
	steps := []struct {
		change func()
		want   map[string]int // folder → messages after this step
	}{
		{func() {}, map[string]int{"new": 1}},
		{func() { write(admin, `keep;`, -time.Hour) }, map[string]int{"new": 2, ".One/new": 1}},
		{func() { write(mine, folder("Two"), time.Minute) }, map[string]int{"new": 3, ".One/new": 1, ".Two/new": 1}},
		{func() { write(admin, folder("Three"), time.Minute) }, map[string]int{"new": 3, ".One/new": 1, ".Two/new": 2, ".Three/new": 1}},
	}
	for i, s := range steps {
		s.change()
		if err := deliver(t, l, spool(t, "s@x", "Subject: m\n\nx\n"), r); err != nil {
			t.Fatal(err)
		}
		for dir, want := range s.want {
			if n := len(listDir(t, filepath.Join(md, dir))); n != want {
				t.Errorf("step %d: %s has %d, want %d", i, dir, n, want)
			}
		}
	}
}
