package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
	"github.com/vlmtpd/vlmtpd/store/maildirpp"
)

// inode is a file's identity and link count.
func inode(t *testing.T, path string) (ino uint64, nlink uint64) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Ino, uint64(st.Nlink)
}

// oneFile is the only message in a Maildir's new/ (tmp/ empty).
func oneFile(t *testing.T, md string) string {
	t.Helper()
	files := maildirFiles(t, md)
	if len(files) != 1 {
		t.Fatalf("%s: %d messages in new/, want 1", md, len(files))
	}
	return files[0]
}

// With single_instance_delivery, the Maildir recipients of one message
// share one file: one inode with a link per recipient, the trace headers
// reduced to Return-Path, mode and owner as a copy's. An mbox recipient and
// a filtered one still get their own copy with their headers.
func TestSingleInstanceHardLinks(t *testing.T) {
	l, base, filtered := sieveWriter(t, WriterOptions{SingleInstance: true}, "keep;")
	msg := spool(t, "alice@example.org", testBody)
	var rcpts []Recipient
	for _, p := range []string{"a/", "b/", "c/Maildir/"} {
		r := rcpt(p)
		r.Address = "user-" + strings.TrimSuffix(p, "/") + "@example.com"
		rcpts = append(rcpts, r)
	}
	rcpts = append(rcpts, rcpt("mbox"), filtered)
	for i, err := range l.Deliver(context.Background(), msg, rcpts) {
		if err != nil {
			t.Fatalf("recipient %d: %v", i, err)
		}
	}
	want := "Return-Path: <alice@example.org>\n" + testBody
	var first uint64
	for _, md := range []string{"a", "b", "c/Maildir"} {
		f := oneFile(t, filepath.Join(base, md))
		if got := readFile(t, f); got != want {
			t.Errorf("%s: content %q, want %q", md, got, want)
		}
		checkFile(t, f, 0o600)
		if !strings.Contains(filepath.Base(f), ",S="+itoa(int64(len(want)))) {
			t.Errorf("%s: name %q lacks S=%d", md, filepath.Base(f), len(want))
		}
		ino, nlink := inode(t, f)
		if nlink != 3 {
			t.Errorf("%s: %d links, want 3 (one per Maildir, none left in tmp/)", md, nlink)
		}
		if first == 0 {
			first = ino
		} else if ino != first {
			t.Errorf("%s: inode %d, want the shared %d", md, ino, first)
		}
	}
	// The filtered recipient's copy is its own, with its headers.
	f := oneFile(t, filepath.Join(base, "example.com/u"))
	if ino, nlink := inode(t, f); ino == first || nlink != 1 {
		t.Errorf("filtered recipient: inode %d (shared %d), %d links", ino, first, nlink)
	}
	if got := readFile(t, f); !strings.Contains(got, "Delivered-To: User@example.com\n") {
		t.Errorf("filtered recipient lost its Delivered-To: %q", got)
	}
	if got := readFile(t, filepath.Join(base, "mbox")); !strings.Contains(got, "Delivered-To: User@example.com\n") {
		t.Errorf("mbox recipient lost its Delivered-To: %q", got)
	}
}

// Off (the default), every recipient gets its own file with its headers.
func TestSingleInstanceOffByDefault(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	msg := spool(t, "alice@example.org", testBody)
	for i, err := range l.Deliver(context.Background(), msg, []Recipient{rcpt("a/"), rcpt("b/")}) {
		if err != nil {
			t.Fatalf("recipient %d: %v", i, err)
		}
	}
	a, b := oneFile(t, filepath.Join(base, "a")), oneFile(t, filepath.Join(base, "b"))
	ia, na := inode(t, a)
	ib, nb := inode(t, b)
	if ia == ib || na != 1 || nb != 1 {
		t.Errorf("inodes %d/%d with %d/%d links, want two files of one link", ia, ib, na, nb)
	}
	if got := readFile(t, a); !strings.Contains(got, "Delivered-To: User@example.com\n") {
		t.Errorf("content %q lacks Delivered-To", got)
	}
}

// The quota stays per recipient: one over its quota gets OverLimit and no
// link, the others their link and their maildirsize line.
func TestSingleInstanceQuotaPerRecipient(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{SingleInstance: true})
	msg := spool(t, "s@example.org", "Subject: q\n\nbody\n")
	hdr, _ := traceHeader(msg, Recipient{HasDeliveredTo: true})
	size := int64(len(hdr)) + msg.Size
	full := quotaRcpt("full/", maildirpp.Limits{Bytes: size - 1})
	roomy := quotaRcpt("roomy/", maildirpp.Limits{Bytes: size})
	errs := l.Deliver(context.Background(), msg, []Recipient{full, roomy, rcpt("plain/")})
	wantStatus(t, errs[0], OverLimit)
	wantStatus(t, errs[1], OK)
	wantStatus(t, errs[2], OK)
	if n := len(maildirFiles(t, filepath.Join(base, "full"))); n != 0 {
		t.Errorf("%d messages for the recipient over quota", n)
	}
	if _, nlink := inode(t, oneFile(t, filepath.Join(base, "roomy"))); nlink != 2 {
		t.Errorf("%d links, want 2 (roomy and plain)", nlink)
	}
	want := maildirpp.Limits{Bytes: size}.Line() + "\n0 0\n" + itoa(size) + " 1\n"
	if got := readFile(t, filepath.Join(base, "roomy/maildirsize")); got != want {
		t.Errorf("maildirsize = %q, want %q", got, want)
	}
}

// A Maildir on another filesystem than the shared file gets a copy of its
// own (with its trace headers); the others still share.
func TestSingleInstanceOtherFilesystemCopies(t *testing.T) {
	testutil.RequireRoot(t, "mounting a tmpfs beneath the base")
	l, base := newTestWriter(t, WriterOptions{SingleInstance: true})
	other := filepath.Join(base, "other")
	must(t, os.Mkdir(other, 0o755))
	if err := unix.Mount("none", other, "tmpfs", 0, "mode=0755"); err != nil {
		testutil.SkipOrFail(t, "cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(other, unix.MNT_DETACH) })
	msg := spool(t, "s@example.org", testBody)
	for i, err := range l.Deliver(context.Background(), msg, []Recipient{rcpt("a/"), rcpt("other/x/"), rcpt("b/")}) {
		if err != nil {
			t.Fatalf("recipient %d: %v", i, err)
		}
	}
	if _, nlink := inode(t, oneFile(t, filepath.Join(base, "a"))); nlink != 2 {
		t.Errorf("a: %d links, want 2 (a and b)", nlink)
	}
	f := oneFile(t, filepath.Join(other, "x"))
	if _, nlink := inode(t, f); nlink != 1 {
		t.Errorf("the other filesystem's copy has %d links", nlink)
	}
	if got := readFile(t, f); !strings.Contains(got, "Delivered-To: User@example.com\n") {
		t.Errorf("the copy lacks its Delivered-To: %q", got)
	}
	checkFile(t, f, 0o600)
}

// A recipient whose Maildir cannot take the file (here: not ours) fails
// alone; the next one writes the shared file instead.
func TestSingleInstanceWriterFails(t *testing.T) {
	testutil.RequireRoot(t, "creating a Maildir owned by another uid")
	l, base := newTestWriter(t, WriterOptions{SingleInstance: true})
	must(t, os.MkdirAll(filepath.Join(base, "theirs/tmp"), 0o700))
	must(t, os.Chown(filepath.Join(base, "theirs"), 4242, 4242))
	msg := spool(t, "s@example.org", testBody)
	errs := l.Deliver(context.Background(), msg, []Recipient{rcpt("theirs/"), rcpt("a/"), rcpt("b/")})
	wantStatus(t, errs[0], BadMailbox)
	wantStatus(t, errs[1], OK)
	wantStatus(t, errs[2], OK)
	if _, nlink := inode(t, oneFile(t, filepath.Join(base, "a"))); nlink != 2 {
		t.Errorf("%d links, want 2", nlink)
	}
}
