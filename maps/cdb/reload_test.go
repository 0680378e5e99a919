package cdb

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/maps/internal/churn"
)

// makeWith builds path.cdb from src with `postmap cdb:` (odd n) and with
// Make, what `vlmtpd makemap` runs (even n): both write a new file and
// rename it over the old one.
func makeWith(t *testing.T, run func(args ...string) (string, error), path string, n int, src string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if n%2 == 1 {
		if _, err := run("cdb:" + path); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := MakeFile(path, WriteOptions{Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
}

// TestReplacedWhileLookingUp rebuilds the file with postmap and with
// makemap, each of which renames a complete new file over the old one,
// while readers look keys up (churn.Run). Every answer must be what the
// version in service or the one it replaced says, exactly: a key in both
// is found with one of their values, a key only the replaced one held is
// deferred (maps.ErrReloading), never "not found", never a half-read
// value or another error.
func TestReplacedWhileLookingUp(t *testing.T) {
	shortCheck(t)
	pm := postmap(t, "smtputf8_enable = yes\n")
	before := liveMappings.Load()
	path := filepath.Join(t.TempDir(), "c")
	const keys = 200
	makeWith(t, pm, path, 0, churn.Source(0, keys))
	tb := openT(t, path)
	readers := churn.Start(keys, func(key string) (string, bool, error) { return tb.Lookup(ctx, key) })
	const versions = 10
	for n := 1; n <= versions; n++ {
		readers.Starting(n)
		makeWith(t, pm, path, n, churn.Source(n, keys))
		readers.Published(n)
		// The next version only once this one is in service, so that the
		// one in service is never older than the one before the published
		// one.
		waitFor(t, func() bool {
			v, _, _ := tb.Lookup(ctx, "version")
			return v == fmt.Sprint(n)
		})
	}
	for _, err := range readers.Stop() {
		t.Error(err)
	}
	// Replaced versions beyond the grace's two are unmapped while the
	// table is in use.
	unmapped(t, before, 3)
}

// TestReloadGrace: see churn.Grace; the file rebuilt by postmap.
func TestReloadGrace(t *testing.T) {
	shortCheck(t)
	old := reloadGrace
	reloadGrace = 3 * time.Second
	t.Cleanup(func() { reloadGrace = old })
	pm := postmap(t, "smtputf8_enable = yes\n")
	path := filepath.Join(t.TempDir(), "g")
	churn.Grace(t, reloadGrace, func(src string) { makeWith(t, pm, path, 1, src) }, func() churn.Lookup {
		tb := openT(t, path)
		return func(key string) (string, bool, error) { return tb.Lookup(ctx, key) }
	})
}
