package store

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/store/maildirpp"
)

func quotaRcpt(path string, l maildirpp.Limits) Recipient {
	r := rcpt(path)
	r.Quota = Quota{Set: true, Limits: l, Extended: true, Create: true}
	return r
}

// msgFileSize is what one message of body takes in a Maildir for rcpt(…):
// the trace header plus the body.
func msgFileSize(t *testing.T, msg *Message, r Recipient) int64 {
	hdr, err := traceHeader(msg, r)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(hdr)) + msg.Size
}

// TestMaildirQuotaExact: the quota is decided at the link from
// maildirsize: an exact fit is delivered, one byte more is OverLimit and
// leaves nothing behind (not even in tmp/), and maildirsize gets one line
// per delivery.
func TestMaildirQuotaExact(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	msg := spool(t, "s@example.org", "Subject: q\n\nbody\n")
	size := msgFileSize(t, msg, rcpt("q/"))
	r := quotaRcpt("q/", maildirpp.Limits{Bytes: 2 * size})
	wantStatus(t, deliver(t, l, msg, r), OK)
	wantStatus(t, deliver(t, l, msg, r), OK) // exactly full now
	err := deliver(t, l, msg, r)
	wantStatus(t, err, OverLimit)
	if n := len(listDir(t, filepath.Join(base, "q/new"))); n != 2 {
		t.Errorf("%d messages in new/, want 2", n)
	}
	if n := len(listDir(t, filepath.Join(base, "q/tmp"))); n != 0 {
		t.Errorf("%d files left in tmp/", n)
	}
	want := maildirpp.Limits{Bytes: 2 * size}.Line() + "\n" + // created by a recalculation: empty
		"0 0\n" + itoa(size) + " 1\n" + itoa(size) + " 1\n"
	if got := readFile(t, filepath.Join(base, "q/maildirsize")); got != want {
		t.Errorf("maildirsize = %q, want %q", got, want)
	}
	checkFile(t, filepath.Join(base, "q/maildirsize"), 0o600)
	u, err := l.Quota(context.Background(), r, false)
	if err != nil || u.Usage != (maildirpp.Usage{Bytes: 2 * size, Count: 2}) {
		t.Errorf("Quota = %+v, %v", u, err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func openTestDir(t *testing.T, path string) int {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestMaildirQuotaCount: the message count limit, with messages in a
// folder counted too.
func TestMaildirQuotaCount(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	msg := spool(t, "", "x\n")
	os.MkdirAll(filepath.Join(base, "c/.Sent/cur"), 0o700)
	os.WriteFile(filepath.Join(base, "c/.Sent/cur/1.M1.h,S=10:2,S"), []byte("0123456789"), 0o600)
	r := quotaRcpt("c/", maildirpp.Limits{Count: 3})
	wantStatus(t, deliver(t, l, msg, r), OK)
	wantStatus(t, deliver(t, l, msg, r), OK)
	wantStatus(t, deliver(t, l, msg, r), OverLimit)
	if n := len(listDir(t, filepath.Join(base, "c/new"))); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

// TestMaildirQuotaConcurrent: 20 deliveries at once into room for 5 store
// exactly 5, with quota queries and rebuilds running beside them, and
// maildirsize agrees with a recalculation.
func TestMaildirQuotaConcurrent(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	msg := spool(t, "s@example.org", strings.Repeat("line\n", 200))
	size := msgFileSize(t, msg, rcpt("cc/"))
	r := quotaRcpt("cc/", maildirpp.Limits{Bytes: 5*size + size/2})
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(2)
		go func() { defer wg.Done(); errs[i] = deliver(t, l, msg, r) }()
		// RCPT-time queries meanwhile, some of them rebuilding the file:
		// a rebuild must never drop a delivery's line.
		go func() { defer wg.Done(); l.Quota(context.Background(), r, i%4 == 0) }()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch StatusOf(err) {
		case OK:
			ok++
		case OverLimit:
		default:
			t.Errorf("unexpected %v", err)
		}
	}
	if n := len(listDir(t, filepath.Join(base, "cc/new"))); ok != 5 || n != 5 {
		t.Errorf("%d delivered, %d in new/; want 5", ok, n)
	}
	fd := openTestDir(t, filepath.Join(base, "cc"))
	f, _, why, err := maildirpp.Read(fd)
	re, _, _ := maildirpp.Recalculate(fd)
	if err != nil || why != maildirpp.Fine || f.Usage != re {
		t.Errorf("maildirsize %+v (%q, %v), recalculation %+v", f.Usage, why, err, re)
	}
}

// TestMaildirQuotaRespectsForeignUsage: usage another program (Dovecot,
// Courier) wrote into maildirsize is what the decision uses.
func TestMaildirQuotaRespectsForeignUsage(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	os.MkdirAll(filepath.Join(base, "f"), 0o700)
	os.WriteFile(filepath.Join(base, "f/maildirsize"), []byte("10000S\n9990 3\n"), 0o600)
	msg := spool(t, "", "0123456789abcdef\n")
	wantStatus(t, deliver(t, l, msg, quotaRcpt("f/", maildirpp.Limits{Bytes: 10000})), OverLimit)
	// Without virtual_maildir_extended the tree is what counts.
	r := quotaRcpt("f/", maildirpp.Limits{Bytes: 10000})
	r.Quota.Extended = false
	wantStatus(t, deliver(t, l, msg, r), OK)
	if got := readFile(t, filepath.Join(base, "f/maildirsize")); got != "10000S\n9990 3\n" {
		t.Errorf("maildirsize touched without virtual_maildir_extended: %q", got)
	}
}

func TestDetailFolder(t *testing.T) {
	for in, want := range map[string]string{
		"work": "work", "Lists.go": "Lists.go", "a&b": "a&-b", "x-y_z": "x-y_z",
	} {
		if got, ok := DetailFolder(in); !ok || got != want {
			t.Errorf("DetailFolder(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "../x", ".x", "a/b", "x.", "a..b", "a\x01b", "a b", "a\tb", "a\\b",
		"INBOX", "inbox", "\xc3\xa9", strings.Repeat("a", 101), "a\x7f"} {
		if got, ok := DetailFolder(bad); ok {
			t.Errorf("DetailFolder(%q) = %q, want none", bad, got)
		}
	}
}

// TestDetailDelivery: an existing folder gets the message; a missing one
// means INBOX, or is created (with maildirfolder) when allowed; hostile
// details and a symlink where the folder would be mean INBOX, and nothing
// is written outside the Maildir.
func TestDetailDelivery(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	msg := spool(t, "", "x\n")
	os.MkdirAll(filepath.Join(base, "d/.work/cur"), 0o700)
	os.MkdirAll(filepath.Join(base, "outside/new"), 0o700)
	os.Symlink("../outside", filepath.Join(base, "d/.evil"))
	r := rcpt("d/")
	for _, c := range []struct {
		detail, where string
		create        bool
	}{
		{"work", "d/.work/new", false},
		{"missing", "d/new", false},
		{"new1", "d/.new1/new", true},
		{"../outside", "d/new", true},
		{".x", "d/new", true},
		{"a/b", "d/new", true},
		{"evil", "d/new", true},
		{"c\x01", "d/new", true},
	} {
		before := len(listDir(t, filepath.Join(base, c.where)))
		r.Folder, r.CreateFolder = c.detail, c.create
		wantStatus(t, deliver(t, l, msg, r), OK)
		if after := len(listDir(t, filepath.Join(base, c.where))); after != before+1 {
			t.Errorf("+%q: %d messages in %s, want %d", c.detail, after, c.where, before+1)
		}
	}
	checkFile(t, filepath.Join(base, "d/.new1/maildirfolder"), 0o600)
	for _, sub := range []string{"tmp", "cur"} {
		if fi, err := os.Lstat(filepath.Join(base, "d/.new1", sub)); err != nil || !fi.IsDir() {
			t.Errorf("created folder lacks %s/: %v", sub, err)
		}
	}
	if n := len(listDir(t, filepath.Join(base, "outside/new"))); n != 0 {
		t.Errorf("%d messages written through the symlink", n)
	}
	if _, err := os.Lstat(filepath.Join(base, "d/.missing")); !os.IsNotExist(err) {
		t.Error("folder created without CreateFolder")
	}
}

// TestDetailCountsInQuota: a message in a folder counts against the
// Maildir's quota and is recorded in the root's maildirsize.
func TestDetailCountsInQuota(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	msg := spool(t, "", "x\n")
	r := quotaRcpt("e/", maildirpp.Limits{Count: 1})
	r.Folder, r.CreateFolder = "f", true
	wantStatus(t, deliver(t, l, msg, r), OK)
	wantStatus(t, deliver(t, l, msg, r), OverLimit)
	if _, err := os.Stat(filepath.Join(base, "e/.f/maildirsize")); !os.IsNotExist(err) {
		t.Error("maildirsize written in the folder")
	}
	if got := readFile(t, filepath.Join(base, "e/maildirsize")); !strings.HasPrefix(got, "1C\n") || !strings.Contains(got, " 1\n") {
		t.Errorf("maildirsize = %q", got)
	}
}

// A maildirsize line recorded for a link that new/'s failed fsync took
// back is taken back too, so the client's retry does not count twice.
func TestQuotaUndoTakesTheLineBack(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, maildirpp.FileName), []byte("1000S\n300 3\n120 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	quotaUndo{root: root, size: 120}.apply()
	f, _, why, err := maildirpp.Read(mustOpenDir(t, dir))
	if err != nil || why != maildirpp.Fine || f.Usage != (maildirpp.Usage{Bytes: 300, Count: 3}) {
		t.Fatalf("after the undo: %+v %v %v", f, why, err)
	}
}

func mustOpenDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestMaildirQuotaBatch: one DeliverBatch of 8 messages into one Maildir
// with room for 5 stores exactly 5, promptly: the quota lock of each link
// is released at once, not held until the batch's fsync of new/ (which
// made the others wait out their lock timeout), and maildirsize agrees.
func TestMaildirQuotaBatch(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{LockTimeout: 2 * time.Second})
	var ds []Delivery
	var size int64
	for i := range 8 {
		msg := spool(t, "s@example.org", "Subject: "+strconv.Itoa(i)+"\n\n"+strings.Repeat("line\n", 200))
		size = msgFileSize(t, msg, rcpt("qb/"))
		ds = append(ds, Delivery{Msg: msg})
	}
	r := quotaRcpt("qb/", maildirpp.Limits{Bytes: 5*size + size/2})
	for i := range ds {
		ds[i].Rcpts = []Recipient{r}
	}
	start := time.Now()
	res := l.DeliverBatch(context.Background(), ds)
	if d := time.Since(start); d > time.Second {
		t.Errorf("the batch took %v", d)
	}
	ok := 0
	for _, d := range res {
		switch StatusOf(d.Errs[0]) {
		case OK:
			ok++
		case OverLimit:
		default:
			t.Errorf("unexpected %v", d.Errs[0])
		}
	}
	if n := len(listDir(t, filepath.Join(base, "qb/new"))); ok != 5 || n != 5 {
		t.Errorf("%d delivered, %d in new/; want 5", ok, n)
	}
	fd := openTestDir(t, filepath.Join(base, "qb"))
	f, _, why, err := maildirpp.Read(fd)
	re, _, _ := maildirpp.Recalculate(fd)
	if err != nil || why != maildirpp.Fine || f.Usage != re {
		t.Errorf("maildirsize %+v (%q, %v), recalculation %+v", f.Usage, why, err, re)
	}
}
