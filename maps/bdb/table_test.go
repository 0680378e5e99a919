package bdb

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/maps/internal/churn"
)

func fastChecks(t *testing.T) {
	oldCheck, oldSettle := checkInterval, settleTime
	checkInterval, settleTime = 5*time.Millisecond, 0
	t.Cleanup(func() { checkInterval, settleTime = oldCheck, oldSettle })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// versionSource is table version n: k0..k(keys-1) map to "v<n>-<i>" and
// "version" to n; every 10th value is long enough for overflow pages.
func versionSource(n, keys int) string {
	var b strings.Builder
	for i := range keys {
		v := fmt.Sprintf("v%d-%d", n, i)
		if i%10 == 0 {
			v += "-" + strings.Repeat("o", 5000)
		}
		fmt.Fprintf(&b, "k%d %s\n", i, v)
	}
	fmt.Fprintf(&b, "version %d\n", n)
	return b.String()
}

// TestRebuildInPlaceWhileLookingUp rebuilds the file with postmap over
// and over, which Debian's postmap does in place (same inode, truncated
// under an exclusive flock), while readers look keys up. Every answer must
// come from one complete version, no lookup may fail, and the last version
// must be seen.
func TestRebuildInPlaceWhileLookingUp(t *testing.T) {
	fastChecks(t)
	run := postmap(t)
	for _, kind := range []Kind{Hash, Btree} {
		t.Run(kind.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r")
			const keys = 300
			version := func(n int) {
				if err := os.WriteFile(path, []byte(versionSource(n, keys)), 0o644); err != nil {
					t.Fatal(err)
				}
				if _, err := run(kind.String() + ":" + path); err != nil {
					t.Fatal(err)
				}
			}
			version(0)
			st0, _ := os.Stat(path + ".db")
			tb := openT(t, kind, path)
			stop := churn.LookingUp(func(i int) error {
				k := i % keys
				v, ok, err := tb.Lookup(ctx, fmt.Sprintf("k%d", k))
				var n int
				if err == nil && ok {
					_, err = fmt.Sscanf(v, "v%d-", &n)
				}
				wantV := fmt.Sprintf("v%d-%d", n, k)
				if k%10 == 0 {
					wantV += "-" + strings.Repeat("o", 5000)
				}
				if err != nil || !ok || v != wantV {
					return fmt.Errorf("k%d: %.30q %v %v", k, v, ok, err)
				}
				return nil
			})
			const versions = 8
			for n := 1; n <= versions; n++ {
				version(n)
				time.Sleep(10 * time.Millisecond)
			}
			waitFor(t, "last version", func() bool { v, _, _ := tb.Lookup(ctx, "version"); return v == fmt.Sprint(versions) })
			for _, err := range stop() {
				t.Fatal(err)
			}
			if st, _ := os.Stat(path + ".db"); !os.SameFile(st0, st) {
				t.Log("postmap replaced the file instead of rewriting it in place; the in-place path was not exercised")
			}
			tb.Close()
			if _, _, err := tb.Lookup(ctx, "k1"); !errors.Is(err, ErrClosed) {
				t.Fatalf("lookup after Close: %v", err)
			}
		})
	}
}

// TestLockedByWriter: while a writer holds the exclusive lock (postmap in
// the middle of a rebuild), the old version is served and the new one is
// read once the lock is gone; Open waits for the lock.
func TestLockedByWriter(t *testing.T) {
	fastChecks(t)
	run := postmap(t)
	path := filepath.Join(t.TempDir(), "l")
	build := func(n int) {
		if err := os.WriteFile(path, []byte(versionSource(n, 10)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := run("hash:" + path); err != nil {
			t.Fatal(err)
		}
	}
	build(1)
	tb := openT(t, Hash, path)
	unlock := lockEx(t, path+".db")
	build2 := make(chan struct{})
	go func() { build(2); close(build2) }() // postmap waits for our lock
	time.Sleep(100 * time.Millisecond)
	want(t, tb, "version", "1", true)
	unlock()
	<-build2
	waitFor(t, "version 2", func() bool { v, _, _ := tb.Lookup(ctx, "version"); return v == "2" })

	// Open waits for the lock, up to openLockWait.
	unlock = lockEx(t, path+".db")
	time.AfterFunc(100*time.Millisecond, unlock)
	start := time.Now()
	tb2 := openT(t, Hash, path)
	if time.Since(start) < 90*time.Millisecond {
		t.Fatal("Open did not wait for the writer's lock")
	}
	want(t, tb2, "version", "2", true)
	old := openLockWait
	openLockWait = 50 * time.Millisecond
	defer func() { openLockWait = old }()
	unlock = lockEx(t, path+".db")
	defer unlock()
	if _, err := Open(Hash, path, quietOpts("")); !errors.Is(err, maps.ErrFileLocked) {
		t.Fatalf("Open under a held lock: %v", err)
	}
}

func flockEx(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX) }

// lockEx takes the exclusive flock postmap takes while it rebuilds.
func lockEx(t *testing.T, path string) (unlock func()) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := flockEx(f); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }
}

// TestReplacedAndUnreadable: a file renamed over the table is picked up; a
// corrupt replacement or a removed file keeps the previous version in
// service and is logged once.
func TestReplacedAndUnreadable(t *testing.T) {
	fastChecks(t)
	run := postmap(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "u")
	other := filepath.Join(dir, "new")
	buildAt := func(p string, n int) {
		if err := os.WriteFile(p, []byte(versionSource(n, 20)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := run("btree:" + p); err != nil {
			t.Fatal(err)
		}
	}
	buildAt(path, 1)
	var logs testutil.SyncBuffer
	tb, err := Open(Btree, path, maps.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()

	buildAt(other, 2)
	if err := os.Rename(other+".db", path+".db"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "renamed version", func() bool { v, _, _ := tb.Lookup(ctx, "version"); return v == "2" })

	// Corrupt: a truncated copy of a good file, renamed into place.
	good, _ := os.ReadFile(path + ".db")
	if err := os.WriteFile(other, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path+".db"); err != nil {
		t.Fatal(err)
	}
	// Checks happen on lookups: look up while waiting.
	logged := func(s string) func() bool {
		return func() bool { tb.Lookup(ctx, "version"); return strings.Contains(logs.String(), s) }
	}
	waitFor(t, "log of the corrupt file", logged("could not be loaded again"))
	want(t, tb, "version", "2", true)
	for range 6 {
		time.Sleep(5 * time.Millisecond)
		want(t, tb, "version", "2", true)
	}
	if n := strings.Count(logs.String(), "could not be loaded again"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, logs.String())
	}

	if err := os.Remove(path + ".db"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "log of the missing file", logged("no such file or directory"))
	want(t, tb, "version", "2", true)

	buildAt(path, 3)
	waitFor(t, "repaired version", func() bool { v, _, _ := tb.Lookup(ctx, "version"); return v == "3" })
	if !strings.Contains(logs.String(), "reloaded") {
		t.Fatalf("no reload logged:\n%s", logs.String())
	}
}

// TestSettleTime: a file written without a lock (cp) is read only once it
// has not changed for settleTime.
func TestSettleTime(t *testing.T) {
	fastChecks(t)
	settleTime = time.Hour
	run := postmap(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "s")
	if err := os.WriteFile(path, []byte(versionSource(1, 5)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run("hash:" + path); err != nil {
		t.Fatal(err)
	}
	tb := openT(t, Hash, path)
	if err := os.WriteFile(path, []byte(versionSource(2, 5)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run("hash:" + path); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		time.Sleep(10 * time.Millisecond)
		want(t, tb, "version", "1", true) // modified just now: not read yet
	}
}

// TestFirstLookupAfterQuietSpell: the first lookup after the file was
// rebuilt during a quiet spell already gets the new version (a new
// mailbox's first message must not meet the old table's 5.1.1).
func TestFirstLookupAfterQuietSpell(t *testing.T) {
	fastChecks(t)
	run := postmap(t)
	path := filepath.Join(t.TempDir(), "q")
	build := func(n int) {
		if err := os.WriteFile(path, []byte(versionSource(n, 5)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := run("hash:" + path); err != nil {
			t.Fatal(err)
		}
	}
	build(1)
	tb := openT(t, Hash, path)
	want(t, tb, "version", "1", true)
	build(2)
	time.Sleep(20 * time.Millisecond) // past checkInterval and settleTime
	want(t, tb, "version", "2", true) // this very lookup, not a later one
}

// TestReplacedWhileLookingUp replaces the file with postmap's two ways,
// rebuilt in place and a new file renamed over it, while readers look
// keys up. Every answer must be what the version in service or the one
// it replaced says, exactly: a key in both is found with one of their
// values, a key only the replaced one held is deferred (ErrReloading),
// never "not found" and never a half-read value or another error.
func TestReplacedWhileLookingUp(t *testing.T) {
	fastChecks(t)
	run := postmap(t)
	for _, kind := range []Kind{Hash, Btree} {
		t.Run(kind.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c")
			const keys = 200
			build := func(at string, n int) {
				if err := os.WriteFile(at, []byte(churn.Source(n, keys)), 0o644); err != nil {
					t.Fatal(err)
				}
				if _, err := run(kind.String() + ":" + at); err != nil {
					t.Fatal(err)
				}
			}
			build(path, 0)
			tb := openT(t, kind, path)
			readers := churn.Start(keys, func(key string) (string, bool, error) { return tb.Lookup(ctx, key) })
			const versions = 10
			for n := 1; n <= versions; n++ {
				readers.Starting(n)
				if n%2 == 0 {
					build(path, n) // postmap rewrites path.db in place
				} else {
					other := filepath.Join(dir, "next")
					build(other, n)
					if err := os.Rename(other+".db", path+".db"); err != nil {
						t.Fatal(err)
					}
				}
				readers.Published(n)
				// The next version only once this one is in service, so
				// that the one in service is never older than the one
				// before the published one.
				waitFor(t, fmt.Sprintf("version %d", n), func() bool {
					v, _, _ := tb.Lookup(ctx, "version")
					return v == fmt.Sprint(n)
				})
			}
			for _, err := range readers.Stop() {
				t.Error(err)
			}
		})
	}
}

// TestReloadGrace: see churn.Grace.
func TestReloadGrace(t *testing.T) {
	fastChecks(t)
	old := reloadGrace
	reloadGrace = 3 * time.Second
	t.Cleanup(func() { reloadGrace = old })
	run := postmap(t)
	path := filepath.Join(t.TempDir(), "g")
	churn.Grace(t, reloadGrace, func(src string) {
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := run("hash:" + path); err != nil {
			t.Fatal(err)
		}
	}, func() churn.Lookup {
		tb := openT(t, Hash, path)
		return func(key string) (string, bool, error) { return tb.Lookup(ctx, key) }
	})
}
