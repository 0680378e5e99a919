package maps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func lookup(t *testing.T, m Map, key string) string {
	t.Helper()
	v, ok, err := m.Lookup(context.Background(), key)
	if err != nil {
		t.Fatalf("lookup %q: %v", key, err)
	}
	if !ok {
		return "(not found)"
	}
	return v
}

// reload makes the table look at its file now instead of within the next
// second, and waits until it has. The file's modification time is first
// set back past settleTime, as if its writer had finished a while ago.
func reload(m Map) {
	switch m := m.(type) {
	case *textHash:
		settle(m.file.path)
		m.file.checkNow()
	case *ruleMap:
		settle(m.file.path)
		m.file.checkNow()
	}
}

func settle(path string) {
	old := time.Now().Add(-2 * settleTime)
	os.Chtimes(path, old, old) // a missing file stays missing
}

// A file modified less than settleTime ago may still be being written in
// place: it is not loaded yet, so a half-written version can't bounce mail.
func TestTextHashWaitsForAChangeToSettle(t *testing.T) {
	opts, _ := testOptions(t)
	writeFile(t, opts.Dir, "vmailbox", "a@x.test a/\n")
	m, err := Open("texthash:vmailbox", opts)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, opts.Dir, "vmailbox", "") // truncated, the new text not yet written
	m.(*textHash).file.checkNow()
	if got := lookup(t, m, "a@x.test"); got != "a/" {
		t.Fatalf("a fresh, possibly half-written file was loaded: a = %q", got)
	}
	writeFile(t, opts.Dir, "vmailbox", "a@x.test a2/\n")
	reload(m)
	if got := lookup(t, m, "a@x.test"); got != "a2/" {
		t.Fatalf("the settled change was not loaded: a = %q", got)
	}
}

func TestTextHashReload(t *testing.T) {
	opts, rec := testOptions(t)
	path := writeFile(t, opts.Dir, "vmailbox", "a@x.test a/\n")
	m, err := Open("texthash:vmailbox", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, m, "a@x.test"); got != "a/" {
		t.Fatalf("a = %q", got)
	}

	// rewritten in place: seen at the next check
	writeFile(t, opts.Dir, "vmailbox", "a@x.test a2/\nb@x.test b/\n")
	reload(m)
	if got := lookup(t, m, "b@x.test"); got != "b/" {
		t.Fatalf("after rewrite: b = %q", got)
	}

	// replaced by rename (a new inode), as deploy tools and editors do
	tmp := writeFile(t, opts.Dir, "vmailbox.tmp", "c@x.test c/\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	reload(m)
	if got := lookup(t, m, "c@x.test"); got != "c/" {
		t.Fatalf("after rename: c = %q", got)
	}
	// a is gone, but the version that held it was replaced just now
	if _, _, err := m.Lookup(context.Background(), "a@x.test"); !errors.Is(err, ErrReloading) {
		t.Fatalf("after rename: a: %v, want ErrReloading within the grace", err)
	}

	// without a forced check, a change is not looked at before a second has passed
	writeFile(t, opts.Dir, "vmailbox", "d@x.test d/\n")
	if got := lookup(t, m, "d@x.test"); got != "(not found)" {
		t.Fatalf("change seen before the check interval: %q", got)
	}

	// removed: the old contents stay in use, with one warning
	reload(m) // loads d/
	rec.mu.Lock()
	rec.msgs = nil
	rec.mu.Unlock()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		reload(m)
		if got := lookup(t, m, "d@x.test"); got != "d/" {
			t.Fatalf("after removal: d = %q", got)
		}
	}
	if w := rec.warnings(); len(w) != 1 || !strings.Contains(w[0], "still using the previous contents") {
		t.Fatalf("warnings after removal: %q", w)
	}

	// back again: loaded
	writeFile(t, opts.Dir, "vmailbox", "e@x.test e/\n")
	reload(m)
	if got := lookup(t, m, "e@x.test"); got != "e/" {
		t.Fatalf("after restore: e = %q", got)
	}

	// a real wait, no forced check: the change shows within about a second
	writeFile(t, opts.Dir, "vmailbox", "f@x.test f/\n")
	deadline := time.Now().Add(5 * time.Second)
	for lookup(t, m, "f@x.test") != "f/" {
		if time.Now().After(deadline) {
			t.Fatal("change not seen after 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRegexpReloadKeepsOldOnError(t *testing.T) {
	opts, rec := testOptions(t)
	writeFile(t, opts.Dir, "re", "/^a@/ a/\n")
	m, err := Open("regexp:re", opts)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, opts.Dir, "re", "/^b@/ b/\n/^(x)\\1@/ backref\n")
	reload(m)
	if got := lookup(t, m, "a@x"); got != "a/" {
		t.Fatalf("a = %q after a broken edit", got)
	}
	w := rec.warnings()
	if len(w) != 1 || !strings.Contains(w[0], "still using the previous contents") {
		t.Fatalf("warnings %q", w)
	}
	writeFile(t, opts.Dir, "re", "/^b@/ b/\n")
	reload(m)
	if got := lookup(t, m, "b@x"); got != "b/" {
		t.Fatalf("b = %q after the fix", got)
	}
}

// TestTextHashConcurrentReload runs lookups while the file is replaced;
// run with -race to check the swap.
func TestTextHashConcurrentReload(t *testing.T) {
	opts, _ := testOptions(t)
	path := writeFile(t, opts.Dir, "t", "k v0\n")
	m, err := Open("texthash:"+path, opts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				v, ok, err := m.Lookup(context.Background(), "k")
				if err != nil || !ok || !strings.HasPrefix(v, "v") {
					t.Errorf("lookup during reload: %q %v %v", v, ok, err)
					return
				}
				reload(m)
			}
		})
	}
	for i := range 20 {
		tmp := writeFile(t, opts.Dir, "t.tmp", fmt.Sprintf("k v%d\n", i+1))
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	reload(m)
	if got := lookup(t, m, "k"); got != "v20" {
		t.Fatalf("final value %q", got)
	}
}

func TestTextHashOpen(t *testing.T) {
	opts, _ := testOptions(t)
	if _, err := Open("texthash:", opts); err == nil {
		t.Error("texthash: without a file name opened")
	}
	if _, err := Open("texthash:"+opts.Dir, opts); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("a directory: %v", err)
	}
	// proxy: is stripped, as virtual(8) does
	p := writeFile(t, opts.Dir, "t", "K v\n")
	m, err := Open("proxy:texthash:"+p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if m.Spec() != "texthash:"+p || m.Pattern() {
		t.Errorf("spec %q pattern %v", m.Spec(), m.Pattern())
	}
	if got := lookup(t, m, "K"); got != "v" {
		t.Errorf("query folding: %q", got)
	}
	if got := lookup(t, m, filepath.Base(p)); got != "(not found)" {
		t.Errorf("got %q", got)
	}
}

// TestTextHashLookupAllocs: Lookup is on the RCPT path; a folded key must
// not allocate.
func TestTextHashLookupAllocs(t *testing.T) {
	opts, _ := testOptions(t)
	p := writeFile(t, opts.Dir, "t", "user@example.com user/\n")
	m, err := Open("texthash:"+p, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok, _ := m.Lookup(ctx, "user@example.com"); !ok {
			t.Fatal("not found")
		}
		if _, ok, _ := m.Lookup(ctx, "other@example.com"); ok {
			t.Fatal("found")
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per lookup pair, want 0", allocs)
	}
}

// A table rewritten in place may be loaded half-written (a writer that
// pauses longer than settleTime). For ReloadGrace after a reload, a key
// that a replaced version held is a temporary error, never "not found";
// after the grace, a key really removed is not found.
func TestReloadGraceDefersKeysOfReplacedVersions(t *testing.T) {
	opts, _ := testOptions(t)
	writeFile(t, opts.Dir, "vmailbox", "a@x.test a/\nb@x.test b/\nc@x.test c/\n")
	writeFile(t, opts.Dir, "rules", "/^a@/ a/\n/^b@/ b/\n")
	th, err := Open("texthash:vmailbox", opts)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := Open("regexp:rules", opts)
	if err != nil {
		t.Fatal(err)
	}
	state := func(m Map, key string) string {
		t.Helper()
		v, ok, err := m.Lookup(context.Background(), key)
		switch {
		case errors.Is(err, ErrReloading):
			return "deferred"
		case err != nil:
			t.Fatalf("%s: %v", key, err)
		case !ok:
			return "not found"
		}
		return v
	}
	expect := func(m Map, want map[string]string) {
		t.Helper()
		for k, w := range want {
			if got := state(m, k); got != w {
				t.Errorf("%s %s: %s, want %s", m.Spec(), k, got, w)
			}
		}
	}
	// A burst: truncated, then half written, each version loaded.
	writeFile(t, opts.Dir, "vmailbox", "")
	writeFile(t, opts.Dir, "rules", "")
	reload(th)
	reload(rx)
	writeFile(t, opts.Dir, "vmailbox", "a@x.test a/\n")
	writeFile(t, opts.Dir, "rules", "/^a@/ a/\n")
	reload(th)
	reload(rx)
	expect(th, map[string]string{"a@x.test": "a/", "b@x.test": "deferred", "c@x.test": "deferred", "z@x.test": "not found"})
	expect(rx, map[string]string{"a@x.test": "a/", "b@x.test": "deferred", "z@x.test": "not found"})
	// Completed, without c: c was held by a version replaced within the
	// grace, so it is still deferred; b is back.
	writeFile(t, opts.Dir, "vmailbox", "a@x.test a/\nb@x.test b2/\n")
	reload(th)
	expect(th, map[string]string{"a@x.test": "a/", "b@x.test": "b2/", "c@x.test": "deferred"})
	// Once the grace has ended, c is not found, and the old versions are
	// dropped at the next check.
	f := th.(*textHash).file
	snap := f.cur.Load()
	for i := range snap.prev {
		snap.prev[i].until = time.Now().Add(-time.Second)
	}
	expect(th, map[string]string{"c@x.test": "not found"})
	f.checkNow()
	if n := len(f.cur.Load().prev); n != 0 {
		t.Errorf("%d expired versions still held", n)
	}
}
