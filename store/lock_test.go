package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const oldMbox = "From a@b  Thu Jan  1 00:00:00 1970\n\nold\n\n"

// holdKernelLock opens path separately (a file description of its own, as
// another program would) and locks it with method.
func holdKernelLock(t *testing.T, path, method string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	switch method {
	case LockFcntl:
		flk := unix.Flock_t{Type: unix.F_WRLCK}
		must(t, unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &flk))
	case LockFlock:
		must(t, unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB))
	}
	var once sync.Once
	release = func() { once.Do(func() { f.Close() }) }
	t.Cleanup(release)
	return release
}

func TestLockHeld(t *testing.T) {
	for _, method := range []string{LockFcntl, LockFlock, LockDotlock} {
		t.Run(method, func(t *testing.T) {
			const timeout = 300 * time.Millisecond
			l, base := newTestWriter(t, WriterOptions{LockMethods: []string{method}, LockTimeout: timeout})
			path := filepath.Join(base, "mbox")
			must(t, os.WriteFile(path, []byte(oldMbox), 0o600))
			if method == LockDotlock {
				must(t, os.WriteFile(path+".lock", nil, 0))
			} else {
				holdKernelLock(t, path, method)
			}
			start := time.Now()
			err := deliver(t, l, spool(t, "a@b", "x\n"), rcpt("mbox"))
			waited := time.Since(start)
			wantStatus(t, err, Locked)
			if waited < timeout {
				t.Errorf("gave up after %v, before the lock timeout %v", waited, timeout)
			}
			if waited > timeout+2*time.Second {
				t.Errorf("gave up only after %v", waited)
			}
			if got := readFile(t, path); got != oldMbox {
				t.Errorf("locked mbox changed: %q", got)
			}
			if method == LockDotlock {
				if _, err := os.Lstat(path + ".lock"); err != nil {
					t.Error("someone else's fresh dotlock was removed")
				}
			}
		})
	}
}

// The locks taken before a later one times out are released.
func TestLockPartialRelease(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{LockMethods: []string{LockDotlock, LockFcntl, LockFlock}, LockTimeout: 100 * time.Millisecond})
	path := filepath.Join(base, "mbox")
	must(t, os.WriteFile(path, []byte(oldMbox), 0o600))
	release := holdKernelLock(t, path, LockFlock)
	wantStatus(t, deliver(t, l, spool(t, "a@b", "x\n"), rcpt("mbox")), Locked)
	if _, err := os.Lstat(path + ".lock"); !os.IsNotExist(err) {
		t.Errorf("dotlock left behind: %v", err)
	}
	holdKernelLock(t, path, LockFcntl)() // must not conflict with a leftover lock
	release()
	if err := deliver(t, l, spool(t, "a@b", "x\n"), rcpt("mbox")); err != nil {
		t.Fatal(err)
	}
}

// A lock released while we wait is taken: the delivery goes through.
func TestLockWaits(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{LockMethods: []string{LockFcntl, LockDotlock}, LockTimeout: 5 * time.Second})
	path := filepath.Join(base, "mbox")
	must(t, os.WriteFile(path, []byte(oldMbox), 0o600))
	release := holdKernelLock(t, path, LockFcntl)
	must(t, os.WriteFile(path+".lock", nil, 0))
	time.AfterFunc(100*time.Millisecond, release)
	time.AfterFunc(200*time.Millisecond, func() { os.Remove(path + ".lock") })
	if err := deliver(t, l, spool(t, "a@b", "x\n"), rcpt("mbox")); err != nil {
		t.Fatal(err)
	}
	if n := len(parseMbox(t, readFile(t, path))); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

func TestStaleDotlock(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{LockMethods: []string{LockDotlock}, LockTimeout: 5 * time.Second, StaleLockTime: 50 * time.Millisecond})
	path := filepath.Join(base, "mbox")
	must(t, os.WriteFile(path+".lock", nil, 0))
	time.Sleep(100 * time.Millisecond) // ctime cannot be set back: let it age
	start := time.Now()
	if err := deliver(t, l, spool(t, "a@b", "x\n"), rcpt("mbox")); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("waited %v for a stale lock", waited)
	}
	if _, err := os.Lstat(path + ".lock"); !os.IsNotExist(err) {
		t.Errorf("dotlock still there after delivery: %v", err)
	}
	if n := len(parseMbox(t, readFile(t, path))); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestLockContextCancel(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{LockMethods: []string{LockFcntl}, LockTimeout: time.Minute})
	path := filepath.Join(base, "mbox")
	must(t, os.WriteFile(path, nil, 0o600))
	holdKernelLock(t, path, LockFcntl)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	errs := l.Deliver(ctx, spool(t, "a@b", "x\n"), []Recipient{rcpt("mbox")})
	wantStatus(t, errs[0], Locked)
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("the context's deadline was ignored: waited %v", waited)
	}
}

// 20 writers × 50 messages into one mbox, for each lock method on its
// own: exactly 1000 intact messages come back out. The three run in
// parallel (different mboxes) because each is bound by 1000 fsyncs.
func TestMboxConcurrentWriters(t *testing.T) {
	for _, method := range []string{LockFcntl, LockFlock, LockDotlock} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			l, base := newTestWriter(t, WriterOptions{LockMethods: []string{method}, LockTimeout: time.Minute})
			const writers, each = 20, 50
			var wg sync.WaitGroup
			errc := make(chan error, writers*each)
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < each; i++ {
						// Different sizes, quoting and a missing final LF.
						body := fmt.Sprintf("Subject: %d-%d\n\nFrom line\n%s\nend %d-%d", w, i, strings.Repeat("filler ", 50*i), w, i)
						if err := deliver(t, l, spool(t, fmt.Sprintf("w%d@example.org", w), body), rcpt("mbox")); err != nil {
							errc <- err
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			msgs := parseMbox(t, readFile(t, filepath.Join(base, "mbox")))
			if len(msgs) != writers*each {
				t.Fatalf("%d messages, want %d", len(msgs), writers*each)
			}
			seen := map[string]bool{}
			for _, m := range msgs {
				if !fromLineRE.MatchString(m.From) {
					t.Fatalf("bad From_ line %q", m.From)
				}
				var w, i int
				if _, err := fmt.Sscanf(m.Text[strings.Index(m.Text, "Subject: "):], "Subject: %d-%d", &w, &i); err != nil {
					t.Fatalf("message without its Subject: %q", m.Text)
				}
				want := fmt.Sprintf("Return-Path: <w%d@example.org>\nX-Original-To: user+tag@example.com\nDelivered-To: User@example.com\n"+
					"Subject: %d-%d\n\n>From line\n%s\nend %d-%d\n", w, w, i, strings.Repeat("filler ", 50*i), w, i)
				if m.Text != want {
					t.Fatalf("message %d-%d damaged:\n%q\nwant\n%q", w, i, m.Text, want)
				}
				id := fmt.Sprint(w, "-", i)
				if seen[id] {
					t.Fatalf("message %s twice", id)
				}
				seen[id] = true
			}
			if _, err := os.Lstat(filepath.Join(base, "mbox.lock")); !os.IsNotExist(err) {
				t.Errorf("dotlock left behind: %v", err)
			}
		})
	}
}
