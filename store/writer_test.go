package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParsePath(t *testing.T) {
	for in, want := range map[string]string{ // want: rel, or "!" for an error
		"a":              "a",
		"/a/b/":          "a/b",
		"//a//./b":       "a/b",
		"dom/user/Mail/": "dom/user/Mail",
		"a..b/c..":       "a..b/c..",
		"":               "!",
		"/":              "!",
		"./":             "!",
		"..":             "!",
		"../x":           "!",
		"a/../b":         "!",
		"a/..":           "!",
		"a/../":          "!",
		"a\x00b":         "!",
		"a\nb":           "!",
		"a\rb":           "!",
		"a\tb":           "!",
		"a\x7fb":         "!",
	} {
		mp, err := parsePath(in)
		if (err != nil) != (want == "!") || err == nil && mp.rel != want {
			t.Errorf("parsePath(%q) = %q, %v; want %q", in, mp.rel, err, want)
		}
	}
	mp, _ := parsePath("/x/y/z")
	if mp.dir != "x/y" || mp.name != "z" {
		t.Errorf("dir %q name %q", mp.dir, mp.name)
	}
	mp, _ = parsePath("z")
	if mp.dir != "." || mp.name != "z" {
		t.Errorf("dir %q name %q", mp.dir, mp.name)
	}
}

func TestNewWriterErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		base string
		opts WriterOptions
	}{
		{"relative/base", WriterOptions{}},
		{filepath.Join(dir, "missing"), WriterOptions{}},
		{dir, WriterOptions{LockMethods: []string{"fcntl", "lockf"}}},
		{dir, WriterOptions{LockMethods: []string{"dotlock", "dotlock"}}},
	} {
		if l, err := NewWriter(tc.base, tc.opts); err == nil {
			l.Close()
			t.Errorf("NewWriter(%q, %v) succeeded", tc.base, tc.opts.LockMethods)
		}
	}
	l, err := NewWriter(dir, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := strings.Join(l.opts.LockMethods, ","); got != "fcntl,dotlock" {
		t.Errorf("default lock methods %s", got)
	}
	if l.opts.LockTimeout != DefaultLockTimeout || l.opts.StaleLockTime != 0 || l.host == "" {
		t.Errorf("defaults not applied: %+v", l.opts)
	}
}

func TestNotPermitted(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	for _, path := range []string{"mbox", "md/"} {
		r := rcpt(path)
		r.UID = os.Getuid() + 1
		err := deliver(t, l, spool(t, "a@b", "x\n"), r)
		wantStatus(t, err, NotPermitted)
		if !strings.Contains(err.Error(), "lacks privileges") {
			t.Errorf("error %q does not say why", err)
		}
	}
	if ents := listDir(t, base); len(ents) != 0 {
		t.Errorf("files created for another uid: %v", ents)
	}
}

// One Deliver call, recipients that fail in different ways: each gets its
// own answer, in order, and the others are delivered.
func TestDeliverIndependentRecipients(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	must(t, os.Symlink("/etc", filepath.Join(base, "evil")))
	other := rcpt("md/")
	other.UID++
	ctrl := rcpt("md/")
	ctrl.Address = "a\nFrom evil@x"
	limited := rcpt("small/")
	limited.Limit = 10
	rcpts := []Recipient{rcpt("md/"), rcpt("../escape"), rcpt("mbox"), other, rcpt("evil/passwd"), ctrl, limited, rcpt("nodir/mbox"), rcpt("md/")}
	want := []Status{OK, BadMailbox, OK, NotPermitted, BadMailbox, Temporary, OverLimit, Temporary, OK}
	errs := l.Deliver(context.Background(), spool(t, "a@b", testBody), rcpts)
	if len(errs) != len(want) {
		t.Fatalf("%d errors for %d recipients", len(errs), len(want))
	}
	for i := range want {
		if got := StatusOf(errs[i]); got != want[i] {
			t.Errorf("recipient %d (%s): %v (%v), want %v", i, rcpts[i].Path, got, errs[i], want[i])
		}
	}
	if n := len(maildirFiles(t, filepath.Join(base, "md"))); n != 2 {
		t.Errorf("md/ has %d messages, want 2", n)
	}
	if n := len(parseMbox(t, readFile(t, filepath.Join(base, "mbox")))); n != 1 {
		t.Errorf("mbox has %d messages, want 1", n)
	}
}

func TestDeliverAfterClose(t *testing.T) {
	l, _ := newTestWriter(t, WriterOptions{})
	must(t, l.Close())
	must(t, l.Close())
	wantStatus(t, deliver(t, l, spool(t, "a@b", "x"), rcpt("md/")), Temporary)
}

func TestDeliverCancelled(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errs := l.Deliver(ctx, spool(t, "a@b", "x"), []Recipient{rcpt("md/")})
	wantStatus(t, errs[0], Temporary)
	if !errors.Is(errs[0], context.Canceled) {
		t.Errorf("error %v does not wrap the context's", errs[0])
	}
	if ents := listDir(t, base); len(ents) != 0 {
		t.Errorf("cancelled delivery wrote %v", ents)
	}
}

// Without openat2 (kernels before 5.6, some seccomp filters) the walk
// one component at a time must be just as strict.
func TestOpenWalkFallback(t *testing.T) {
	haveOpenat2.Store(false)
	t.Cleanup(func() { haveOpenat2.Store(true) })
	l, base := newTestWriter(t, WriterOptions{})
	outside := t.TempDir()
	must(t, os.Symlink(outside, filepath.Join(base, "link")))
	must(t, os.WriteFile(filepath.Join(outside, "mbox"), []byte("x"), 0o600))
	must(t, os.Symlink(filepath.Join(outside, "mbox"), filepath.Join(base, "mboxlink")))
	msg := spool(t, "a@b", "x\n")
	wantStatus(t, deliver(t, l, msg, rcpt("link/md/")), BadMailbox)
	wantStatus(t, deliver(t, l, msg, rcpt("link/mbox")), BadMailbox)
	wantStatus(t, deliver(t, l, msg, rcpt("mboxlink")), BadMailbox)
	if err := deliver(t, l, msg, rcpt("d/e/md/")); err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, l, msg, rcpt("mbox")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(outside, "mbox")); got != "x" {
		t.Errorf("outside mbox changed: %q", got)
	}
	if ents := listDir(t, outside); len(ents) != 1 {
		t.Errorf("written outside: %v", ents)
	}
	if n := len(maildirFiles(t, filepath.Join(base, "d/e/md"))); n != 1 {
		t.Errorf("%d messages", n)
	}
}

func TestOpenWalkDotDot(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	must(t, os.Mkdir(filepath.Join(base, "d"), 0o700))
	for _, p := range []string{"..", "d/..", "d/../d"} {
		if fd, err := openWalk(l.base, p, unix.O_PATH|unix.O_DIRECTORY, 0); err != unix.EXDEV {
			unix.Close(fd)
			t.Errorf("openWalk(%q) = %v, want EXDEV", p, err)
		}
	}
}

// FuzzParsePath: whatever a map returns, an accepted path is relative,
// has no "..", empty or "." component and no control character, and
// names the same components as the input.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"a/b/", "/x", "../a", "a/./b//c", "a\x00", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		mp, err := parsePath(p)
		var want []string
		bad := false
		for _, c := range strings.Split(p, "/") {
			switch c {
			case "", ".":
			case "..":
				bad = true
			default:
				want = append(want, c)
			}
		}
		if strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			bad = true
		}
		if bad || len(want) == 0 {
			if err == nil {
				t.Fatalf("parsePath(%q) accepted as %q", p, mp.rel)
			}
			return
		}
		if err != nil {
			t.Fatalf("parsePath(%q): %v", p, err)
		}
		if mp.rel != strings.Join(want, "/") || strings.HasPrefix(mp.rel, "/") {
			t.Fatalf("parsePath(%q) = %q", p, mp.rel)
		}
		if mp.name != want[len(want)-1] || (len(want) == 1) != (mp.dir == ".") {
			t.Fatalf("parsePath(%q): dir %q name %q", p, mp.dir, mp.name)
		}
	})
}
