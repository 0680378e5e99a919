package store

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

var maildirNameRE = regexp.MustCompile(`^(\d+)\.M(\d+)P(\d+)Q(\d+)\.` + regexp.QuoteMeta(testHost) + `,S=(\d+)$`)

const testBody = "Subject: hello\nFrom: a@example.org\n\nFrom the start\n>From quoted\nbye\n"

// maildirFiles returns the paths of the messages in a Maildir's new/ and
// checks that tmp/ holds nothing.
func maildirFiles(t *testing.T, md string) []string {
	t.Helper()
	if left := listDir(t, filepath.Join(md, "tmp")); len(left) != 0 {
		t.Errorf("tmp/ not empty: %v", left)
	}
	var paths []string
	for _, n := range listDir(t, filepath.Join(md, "new")) {
		paths = append(paths, filepath.Join(md, "new", n))
	}
	return paths
}

func TestMaildirDelivery(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	msg := spool(t, "alice@example.org", testBody)
	r := rcpt("/example.com/user/Maildir/")
	if err := deliver(t, l, msg, r); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(base, "example.com/user/Maildir")
	for _, d := range []string{"example.com", "example.com/user", "example.com/user/Maildir",
		"example.com/user/Maildir/tmp", "example.com/user/Maildir/new", "example.com/user/Maildir/cur"} {
		checkFile(t, filepath.Join(base, d), os.ModeDir|0o700)
	}
	files := maildirFiles(t, md)
	if len(files) != 1 {
		t.Fatalf("new/ has %d files, want 1", len(files))
	}
	want := "Return-Path: <alice@example.org>\nX-Original-To: user+tag@example.com\nDelivered-To: User@example.com\n" + testBody
	if got := readFile(t, files[0]); got != want {
		t.Errorf("content:\n%q\nwant\n%q", got, want)
	}
	checkFile(t, files[0], 0o600)
	m := maildirNameRE.FindStringSubmatch(filepath.Base(files[0]))
	if m == nil {
		t.Fatalf("name %q does not match %v", filepath.Base(files[0]), maildirNameRE)
	}
	if size, _ := strconv.Atoi(m[5]); size != len(want) {
		t.Errorf("S=%d, file has %d bytes", size, len(want))
	}
	if pid, _ := strconv.Atoi(m[3]); pid != os.Getpid() {
		t.Errorf("P%d, want our pid %d", pid, os.Getpid())
	}
	if n := listDir(t, filepath.Join(md, "cur")); len(n) != 0 {
		t.Errorf("cur/ not empty: %v", n)
	}
}

func TestMaildirNullSenderNoOriginal(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	r := rcpt("u/")
	r.OriginalRecipient = ""
	if err := deliver(t, l, spool(t, "", "x"), r); err != nil {
		t.Fatal(err)
	}
	files := maildirFiles(t, filepath.Join(base, "u"))
	if len(files) != 1 {
		t.Fatalf("%d files", len(files))
	}
	// No trailing LF is added to a Maildir message, no quoting is done.
	if got, want := readFile(t, files[0]), "Return-Path: <>\nDelivered-To: User@example.com\nx"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMaildirExistingDirs(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	md := filepath.Join(base, "md")
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(md, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		if err := deliver(t, l, spool(t, "a@b", "body\n"), rcpt("md/")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(maildirFiles(t, md)); n != 3 {
		t.Errorf("%d files, want 3", n)
	}
	// Existing directories keep their mode.
	checkFile(t, filepath.Join(md, "new"), os.ModeDir|0o750)
}

func TestMaildirLimit(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	msg := spool(t, "a@b", testBody)
	hdr, _ := traceHeader(&Message{Sender: "a@b"}, rcpt("m/"))
	size := int64(len(hdr) + len(testBody))

	r := rcpt("m/")
	r.Limit = size - 1
	err := deliver(t, l, msg, r)
	wantStatus(t, err, OverLimit)
	if files := maildirFiles(t, filepath.Join(base, "m")); len(files) != 0 {
		t.Errorf("over-limit delivery left %v", files)
	}

	r.Limit = size // the limit is inclusive
	if err := deliver(t, l, msg, r); err != nil {
		t.Fatal(err)
	}
	if files := maildirFiles(t, filepath.Join(base, "m")); len(files) != 1 {
		t.Errorf("got %d files, want 1", len(files))
	}
}

func TestMaildirShortSpool(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	msg := spool(t, "a@b", "short")
	msg.Size = 100 // the spool claims more than it holds
	wantStatus(t, deliver(t, l, msg, rcpt("m/")), Temporary)
	if files := maildirFiles(t, filepath.Join(base, "m")); len(files) != 0 {
		t.Errorf("failed delivery left %v", files)
	}
}

// A symlink anywhere in a Maildir path must not be followed: not in a
// parent directory, not as the Maildir, not as tmp/ or new/.
func TestMaildirSymlinks(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		link       string // created relative to base, pointing to outside
	}{
		{"parent", "dom/user/", "dom"},
		{"maildir", "dom/user/", "dom/user"},
		{"tmp", "dom/user/", "dom/user/tmp"},
		{"new", "dom/user/", "dom/user/new"},
		{"cur", "dom/user/", "dom/user/cur"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, base := newTestWriter(t, WriterOptions{})
			outside := t.TempDir()
			for _, d := range []string{"tmp", "new", "cur"} {
				must(t, os.Mkdir(filepath.Join(outside, d), 0o700))
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(base, tc.link)), 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.link != "dom" && tc.link != "dom/user" {
				for _, d := range []string{"tmp", "new", "cur"} {
					must(t, os.Mkdir(filepath.Join(base, "dom/user", d), 0o700))
				}
				must(t, os.Remove(filepath.Join(base, tc.link)))
			}
			if err := os.Symlink(outside, filepath.Join(base, tc.link)); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, deliver(t, l, spool(t, "a@b", "x\n"), rcpt(tc.path)), BadMailbox)
			for _, d := range []string{"", "tmp", "new", "cur"} {
				ents := listDir(t, filepath.Join(outside, d))
				if d == "" && len(ents) != 3 || d != "" && len(ents) != 0 {
					t.Errorf("outside/%s was written to: %v", d, ents)
				}
			}
		})
	}
}

func TestMaildirNotOwned(t *testing.T) {
	requireRoot(t)
	for _, sub := range []string{"", "tmp", "new", "cur"} {
		t.Run("dir="+sub, func(t *testing.T) {
			l, base := newTestWriter(t, WriterOptions{})
			md := filepath.Join(base, "md")
			for _, d := range []string{"tmp", "new", "cur"} {
				if err := os.MkdirAll(filepath.Join(md, d), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chown(filepath.Join(md, sub), 12345, 12345); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, deliver(t, l, spool(t, "a@b", "x\n"), rcpt("md/")), BadMailbox)
			if n := listDir(t, filepath.Join(md, "new")); len(n) != 0 {
				t.Errorf("delivered into a Maildir of another uid: %v", n)
			}
		})
	}
}

func TestMaildirFileInTheWay(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	if err := os.WriteFile(filepath.Join(base, "dom"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, deliver(t, l, spool(t, "a@b", "x\n"), rcpt("dom/user/")), BadMailbox)
}

// Several recipients in one call, some sharing a Maildir: every one gets
// its own file, and the new/ fsync is shared.
func TestMaildirSharedNewDir(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	msg := spool(t, "a@b", testBody)
	rcpts := []Recipient{rcpt("a/"), rcpt("a/"), rcpt("b/"), rcpt("/a/"), rcpt("a/../x/")}
	errs := l.Deliver(context.Background(), msg, rcpts)
	for i, want := range []Status{OK, OK, OK, OK, BadMailbox} {
		wantStatus(t, errs[i], want)
	}
	if n := len(maildirFiles(t, filepath.Join(base, "a"))); n != 3 {
		t.Errorf("a/ has %d messages, want 3", n)
	}
	if n := len(maildirFiles(t, filepath.Join(base, "b"))); n != 1 {
		t.Errorf("b/ has %d messages, want 1", n)
	}
}

// 1000 deliveries from concurrent callers give 1000 distinct files.
func TestMaildirUniqueNames(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	msg := spool(t, "a@b", testBody)
	const callers, calls, perCall = 10, 10, 10
	var wg sync.WaitGroup
	errc := make(chan error, callers*calls*perCall)
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rcpts := make([]Recipient, perCall)
			for i := range rcpts {
				rcpts[i] = rcpt("shared/")
			}
			for c := 0; c < calls; c++ {
				for _, err := range l.Deliver(context.Background(), msg, rcpts) {
					if err != nil {
						errc <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	files := maildirFiles(t, filepath.Join(base, "shared"))
	if len(files) != callers*calls*perCall {
		t.Fatalf("%d files, want %d", len(files), callers*calls*perCall)
	}
	want := readFile(t, files[0])
	for _, f := range files {
		if !maildirNameRE.MatchString(filepath.Base(f)) {
			t.Errorf("bad name %q", f)
		}
		if got := readFile(t, f); got != want {
			t.Errorf("%s: content differs", f)
		}
	}
}

func TestMaildirHost(t *testing.T) {
	for in, want := range map[string]string{
		"mx.example.com": "mx.example.com",
		"a/b:c":          `a\057b\072c`,
		"x,y z\n":        "xyz",
		"":               "localhost",
	} {
		if got := maildirHost(in); got != want {
			t.Errorf("maildirHost(%q) = %q, want %q", in, got, want)
		}
	}
	l, base := newTestWriter(t, WriterOptions{Hostname: "h/1:2"})
	if err := deliver(t, l, spool(t, "a@b", "x"), rcpt("m/")); err != nil {
		t.Fatal(err)
	}
	files := maildirFiles(t, filepath.Join(base, "m"))
	if len(files) != 1 || !regexp.MustCompile(`\.h\\0571\\0722,S=\d+$`).MatchString(files[0]) {
		t.Errorf("files %v", files)
	}
}

// A Return-Path and Delivered-To the client already put on top (as
// OpenSMTPD's lmtp delivery does) are not written a second time; the
// X-Original-To still is, and the S= size counts what was written.
func TestTraceHeaderTheClientWroteIsNotRepeated(t *testing.T) {
	const clientTop = "Return-Path: <alice@example.org>\nDelivered-To: User@example.com\nReceived: from a by b\n"
	for _, tc := range []struct {
		returnPath, deliveredTo bool
		want                    string
	}{
		{false, false, "Return-Path: <alice@example.org>\nX-Original-To: user+tag@example.com\nDelivered-To: User@example.com\n"},
		{true, false, "X-Original-To: user+tag@example.com\nDelivered-To: User@example.com\n"},
		{false, true, "Return-Path: <alice@example.org>\nX-Original-To: user+tag@example.com\n"},
		{true, true, "X-Original-To: user+tag@example.com\n"},
	} {
		l, base := newTestWriter(t, WriterOptions{})
		msg := spool(t, "alice@example.org", clientTop+testBody)
		msg.HasReturnPath = tc.returnPath
		r := rcpt("md/")
		r.HasDeliveredTo = tc.deliveredTo
		if err := deliver(t, l, msg, r); err != nil {
			t.Fatal(err)
		}
		files := maildirFiles(t, filepath.Join(base, "md"))
		if len(files) != 1 {
			t.Fatalf("%d files", len(files))
		}
		want := tc.want + clientTop + testBody
		if got := readFile(t, files[0]); got != want {
			t.Errorf("Return-Path written by the client %v, Delivered-To %v:\n%q\nwant\n%q", tc.returnPath, tc.deliveredTo, got, want)
		}
		if m := maildirNameRE.FindStringSubmatch(filepath.Base(files[0])); m == nil || m[5] != strconv.Itoa(len(want)) {
			t.Errorf("name %s: S= is not %d", filepath.Base(files[0]), len(want))
		}
	}
}

// Files a killed delivery left in tmp/ are deleted once they are older
// than 36 hours, the first time a process opens the Maildir; nothing but
// regular files of ours directly in tmp/ is touched, and no link is
// followed.
func TestMaildirCleansStaleTmp(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	md := filepath.Join(base, "example.com/user/Maildir")
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(md, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(md, "tmp")
	write := func(path string) {
		t.Helper()
		if err := os.WriteFile(path, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(base, "precious")
	write(outside)
	write(filepath.Join(tmp, "1.M1P1Q1.host"))      // stale
	write(filepath.Join(tmp, "2.M2P2Q2.host"))      // stale
	write(filepath.Join(tmp, "recent"))             // touched 1 hour before "now"
	os.Symlink(outside, filepath.Join(tmp, "link")) // a symlink: never followed nor removed
	os.Mkdir(filepath.Join(tmp, "subdir"), 0o700)   // a directory: left alone
	write(filepath.Join(tmp, "subdir", "inside"))   // not directly in tmp/
	other := filepath.Join(tmp, "other-owner")
	write(other)
	if os.Getuid() == 0 {
		os.Chown(other, 12345, 12345) // not ours: left alone
	}

	// The clock moves 48 hours on: every file is older than 36 hours but
	// "recent", whose times are set 47 hours ahead.
	now := time.Now()
	tmpNow = func() time.Time { return now.Add(48 * time.Hour) }
	t.Cleanup(func() { tmpNow = time.Now })
	ahead := now.Add(47 * time.Hour)
	if err := os.Chtimes(filepath.Join(tmp, "recent"), ahead, ahead); err != nil {
		t.Fatal(err)
	}

	msg := spool(t, "alice@example.org", testBody)
	r := rcpt("/example.com/user/Maildir/")
	if err := deliver(t, l, msg, r); err != nil {
		t.Fatal(err)
	}
	want := []string{"link", "recent", "subdir"}
	if os.Getuid() == 0 {
		want = []string{"link", "other-owner", "recent", "subdir"}
	}
	if got := listDir(t, tmp); !slices.Equal(got, want) {
		t.Errorf("tmp/ after the cleanup: %v, want %v", got, want)
	}
	if got := readFile(t, outside); got != "partial" {
		t.Errorf("the symlink's target was touched: %q", got)
	}
	if _, err := os.Stat(filepath.Join(tmp, "subdir", "inside")); err != nil {
		t.Errorf("a file below tmp/subdir was touched: %v", err)
	}
	if n := len(listDir(t, filepath.Join(md, "new"))); n != 1 {
		t.Errorf("new/ holds %d messages, want 1", n)
	}

	// Once per process and Maildir: the next delivery does not look again.
	write(filepath.Join(tmp, "3.M3P3Q3.host"))
	if err := deliver(t, l, msg, r); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "3.M3P3Q3.host")); err != nil {
		t.Errorf("cleaned twice in one process: %v", err)
	}
	// A new process (worker) does.
	l2, err := NewWriter(base, WriterOptions{Hostname: testHost})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := deliver(t, l2, msg, r); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "3.M3P3Q3.host")); !os.IsNotExist(err) {
		t.Errorf("stale file left by a new process: %v", err)
	}
}
