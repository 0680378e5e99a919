// Runs in: tests only.

// Package churn holds the tests of a table file replaced under running
// lookups, shared by the file table packages (maps/bdb, maps/cdb): Run,
// readers while the file is replaced again and again (every answer must be
// what the version in service or the one it replaced says, exactly), and
// Grace, maps.ReloadGrace's deferral of the keys a replaced version held.
package churn

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/maps"
)

// Source is version n of the churn table in postmap's source syntax:
// k0..k(keys-1) in every version, r0..r(keys-1) only in even versions,
// "version" n. Every value names its version; every 7th is long enough
// for a bdb overflow page.
func Source(n, keys int) string {
	var b strings.Builder
	for i := range keys {
		fmt.Fprintf(&b, "k%d %s\n", i, Value(n, "k", i))
		if n%2 == 0 {
			fmt.Fprintf(&b, "r%d %s\n", i, Value(n, "r", i))
		}
	}
	fmt.Fprintf(&b, "version %d\n", n)
	return b.String()
}

// Value is the value of key prefix+i in version n.
func Value(n int, prefix string, i int) string {
	v := fmt.Sprintf("%s%d-v%d", prefix, i, n)
	if i%7 == 0 {
		v += "-" + strings.Repeat("o", 3000)
	}
	return v
}

// LookingUp runs lookup(i) for i = 0, 1, 2... in 4 goroutines (each its
// own i's) until stop is called; a goroutine stops at its first error,
// which stop returns.
func LookingUp(lookup func(i int) error) (stop func() []error) {
	const readers = 4
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for g := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; !done.Load(); i += readers {
				if err := lookup(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	return func() []error {
		done.Store(true)
		wg.Wait()
		close(errs)
		var all []error
		for err := range errs {
			all = append(all, err)
		}
		return all
	}
}

// Run is readers looking up the keys of a churn table of Keys keys. The
// test calls Starting(n) before it writes version n and Published(n) once
// the file is complete in place; a lookup may then see from the version
// before the one published when it starts to the one started when it
// ends.
type Run struct {
	keys                      int
	started, published        atomic.Int64
	lookups, deferred, foundR atomic.Int64
	stop                      func() []error
}

// Start starts the readers of a table of keys keys (version 0 in
// service), looking up with lookup.
func Start(keys int, lookup func(key string) (string, bool, error)) *Run {
	r := &Run{keys: keys}
	r.stop = LookingUp(func(i int) error {
		prefix := []string{"k", "r"}[i%2]
		k := (i / 2) % keys
		lo := int(r.published.Load())
		v, ok, err := lookup(fmt.Sprintf("%s%d", prefix, k))
		hi := int(r.started.Load())
		r.lookups.Add(1)
		if errors.Is(err, maps.ErrReloading) && prefix == "r" {
			if hi == 0 {
				return fmt.Errorf("%s%d deferred before any version was replaced", prefix, k)
			}
			r.deferred.Add(1)
			return nil
		}
		if prefix == "r" && err == nil && ok {
			r.foundR.Add(1)
		}
		var n int
		if err == nil && ok {
			_, err = fmt.Sscanf(v[strings.Index(v, "-v")+2:], "%d", &n)
		}
		switch {
		case err != nil:
			return fmt.Errorf("%s%d (versions %d..%d): %v", prefix, k, lo, hi, err)
		case !ok:
			return fmt.Errorf("%s%d (versions %d..%d): not found", prefix, k, lo, hi)
		case n < lo-1 || n > hi || v != Value(n, prefix, k) || (prefix == "r" && n%2 != 0):
			return fmt.Errorf("%s%d (versions %d..%d): %.40q, not what version %d says", prefix, k, lo, hi, v, n)
		}
		return nil
	})
	return r
}

// Starting says version n is about to be written.
func (r *Run) Starting(n int) { r.started.Store(int64(n)) }

// Published says version n is complete in place.
func (r *Run) Published(n int) { r.published.Store(int64(n)) }

// Stop stops the readers and returns what went wrong: their errors, and
// that no lookup of a key only the replaced version held was deferred
// (maps.ErrReloading), if none was.
func (r *Run) Stop() []error {
	errs := r.stop()
	if r.foundR.Load() == 0 {
		errs = append(errs, fmt.Errorf("%d lookups, none found a key only the even versions hold", r.lookups.Load()))
	}
	if r.deferred.Load() == 0 {
		errs = append(errs, fmt.Errorf("%d lookups, none of a key only the replaced version held was deferred", r.lookups.Load()))
	}
	return errs
}

// Lookup is a table's lookup of one key.
type Lookup func(key string) (string, bool, error)

// Grace tests maps.ReloadGrace: after a rebuild, a key that the replaced
// version held and the new one lacks is deferred (maps.ErrReloading) for
// grace, then not found; a key neither held is not found at once. build
// writes the table file from postmap source in place of the old one,
// open opens it once version 1 is built; the table checks its file often
// (the test makes its check interval short) and keeps grace as its
// ReloadGrace.
func Grace(t testing.TB, grace time.Duration, build func(src string), open func() Lookup) {
	t.Helper()
	want := func(lookup Lookup, key, value string, found bool) {
		t.Helper()
		if v, ok, err := lookup(key); v != value || ok != found || err != nil {
			t.Fatalf("%s: %q, %v, %v; want %q, %v", key, v, ok, err, value, found)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
		}
	}
	build("a a/\nb b/\nversion 1\n")
	lookup := open()
	want(lookup, "b", "b/", true)
	build("a a2/\nversion 2\n")
	start := time.Now() // the grace ends no sooner than grace after this
	waitFor("version 2", func() bool { v, _, _ := lookup("version"); return v == "2" })
	want(lookup, "a", "a2/", true)
	want(lookup, "z", "", false)
	_, found, err := lookup("b")
	if elapsed := time.Since(start); !errors.Is(err, maps.ErrReloading) {
		if elapsed < grace {
			t.Fatalf("b, %v after the rebuild: found %v, %v; want maps.ErrReloading", elapsed, found, err)
		}
		t.Fatalf("the machine took %v, longer than the grace, to see the rebuild", elapsed)
	}
	waitFor("the end of the grace", func() bool {
		_, found, err := lookup("b")
		return !found && err == nil
	})
	if elapsed := time.Since(start); elapsed < grace {
		t.Fatalf("b not found %v after the rebuild, before the grace of %v ended", elapsed, grace)
	}
}
