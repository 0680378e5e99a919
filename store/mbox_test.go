package store

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

var fromLineRE = regexp.MustCompile(`^From (\S+)  (Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 1-3]\d \d\d:\d\d:\d\d \d{4}$`)

func TestMboxFormat(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	body := "Subject: hi\nFrom: x@y\n\nFrom the start\n>From quoted\n>>From twice\nFrom\nFromage\n From indented\nfrom lower\n\nlast line without LF"
	must(t, os.Mkdir(filepath.Join(base, "dom"), 0o755))
	before := time.Now().UTC().Truncate(time.Second)
	if err := deliver(t, l, spool(t, "alice@example.org", body), rcpt("/dom/user")); err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()
	path := filepath.Join(base, "dom/user")
	checkFile(t, path, 0o600)
	data := readFile(t, path)
	fl, rest, _ := strings.Cut(data, "\n")
	m := fromLineRE.FindStringSubmatch(fl)
	if m == nil || m[1] != "alice@example.org" {
		t.Fatalf("From_ line %q does not match %v", fl, fromLineRE)
	}
	when, err := time.Parse(fromLineTime, fl[len("From alice@example.org  "):])
	if err != nil || when.Before(before) || when.After(after) {
		t.Errorf("From_ date %v (%v) not the delivery time in UTC (%v..%v)", when, err, before, after)
	}
	want := "Return-Path: <alice@example.org>\n" +
		"X-Original-To: user+tag@example.com\n" +
		"Delivered-To: User@example.com\n" +
		"Subject: hi\nFrom: x@y\n\n>From the start\n>From quoted\n>>From twice\nFrom\nFromage\n From indented\nfrom lower\n\n" +
		"last line without LF\n" + // the missing LF is added
		"\n" // and the separating empty line
	if rest != want {
		t.Errorf("mbox after the From_ line:\n%q\nwant\n%q", rest, want)
	}
	if strings.Contains(data, "\r") {
		t.Error("CR in mbox")
	}
}

func TestMboxAppendAndNullSender(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	path := filepath.Join(base, "mbox")
	if err := os.WriteFile(path, []byte("From old@x  Thu Jan  1 00:00:00 1970\nSubject: old\n\nold\n\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	// A message ending in an empty line still gets its own separator.
	if err := deliver(t, l, spool(t, "", "Subject: bounce\n\nsorry\n\n"), rcpt("mbox")); err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, l, spool(t, "b@x", ""), rcpt("mbox")); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, 0o640) // an existing mbox keeps its mode
	msgs := parseMbox(t, readFile(t, path))
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3: %q", len(msgs), readFile(t, path))
	}
	if msgs[0].Text != "Subject: old\n\nold\n" {
		t.Errorf("old message changed: %q", msgs[0].Text)
	}
	if !strings.HasPrefix(msgs[1].From, "From MAILER-DAEMON  ") || !fromLineRE.MatchString(msgs[1].From) {
		t.Errorf("null sender From_ line %q", msgs[1].From)
	}
	if want := "Return-Path: <>\nX-Original-To: user+tag@example.com\nDelivered-To: User@example.com\nSubject: bounce\n\nsorry\n\n"; msgs[1].Text != want {
		t.Errorf("bounce:\n%q\nwant\n%q", msgs[1].Text, want)
	}
	if want := "Return-Path: <b@x>\nX-Original-To: user+tag@example.com\nDelivered-To: User@example.com\n"; msgs[2].Text != want {
		t.Errorf("empty body:\n%q\nwant\n%q", msgs[2].Text, want)
	}
}

func TestMboxMissingParent(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	wantStatus(t, deliver(t, l, spool(t, "a@b", "x\n"), rcpt("nodir/mbox")), Temporary)
	if _, err := os.Lstat(filepath.Join(base, "nodir")); !os.IsNotExist(err) {
		t.Errorf("the mbox's parent directory was created (%v)", err)
	}
}

func TestMboxLimit(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	path := filepath.Join(base, "mbox")
	old := oldMbox
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	r := rcpt("mbox")
	hdr, _ := traceHeader(&Message{Sender: "a@b"}, r)
	appendSize := int64(len(fromLine("a@b", time.Now())) + len(hdr) + len(testBody) + 1)
	// testBody has one line to quote: the append is one byte bigger than
	// the least it could be.
	grown := int64(len(old)) + appendSize + 1

	for _, limit := range []int64{grown - 100, grown - 1} { // refused before writing, refused while writing
		r.Limit = limit
		wantStatus(t, deliver(t, l, spool(t, "a@b", testBody), r), OverLimit)
		if got := readFile(t, path); got != old {
			t.Fatalf("limit %d: mbox not truncated back:\n%q", limit, got)
		}
	}
	r.Limit = grown
	if err := deliver(t, l, spool(t, "a@b", testBody), r); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != grown {
		t.Errorf("size %d, want %d", fi.Size(), grown)
	}
	// Now at the limit: everything more is refused.
	wantStatus(t, deliver(t, l, spool(t, "a@b", ""), r), OverLimit)
}

func TestMboxShortSpoolTruncates(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	path := filepath.Join(base, "mbox")
	old := oldMbox
	must(t, os.WriteFile(path, []byte(old), 0o600))
	msg := spool(t, "a@b", strings.Repeat("x", 200<<10))
	msg.Size += 10
	wantStatus(t, deliver(t, l, msg, rcpt("mbox")), Temporary)
	if got := readFile(t, path); got != old {
		t.Fatalf("mbox not truncated back: %d bytes", len(got))
	}
}

// Whatever is at the mbox path that is not a plain file of ours with one
// link is refused, and left untouched.
func TestMboxUnsafeTargets(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, base, outside string) (rpath string)
	}{
		{"symlink", func(t *testing.T, base, outside string) string {
			must(t, os.Symlink(filepath.Join(outside, "target"), filepath.Join(base, "mbox")))
			return "mbox"
		}},
		{"dangling symlink", func(t *testing.T, base, outside string) string {
			must(t, os.Symlink(filepath.Join(outside, "new"), filepath.Join(base, "mbox")))
			return "mbox"
		}},
		{"symlinked parent", func(t *testing.T, base, outside string) string {
			must(t, os.Symlink(outside, filepath.Join(base, "dom")))
			return "dom/target"
		}},
		{"hard link", func(t *testing.T, base, outside string) string {
			must(t, os.Link(filepath.Join(outside, "target"), filepath.Join(base, "mbox")))
			return "mbox"
		}},
		{"fifo", func(t *testing.T, base, outside string) string {
			must(t, syscall.Mkfifo(filepath.Join(base, "mbox"), 0o600))
			return "mbox"
		}},
		{"directory", func(t *testing.T, base, outside string) string {
			must(t, os.Mkdir(filepath.Join(base, "mbox"), 0o700))
			return "mbox"
		}},
		{"dotdot", func(t *testing.T, base, outside string) string {
			rel, err := filepath.Rel(base, filepath.Join(outside, "target"))
			must(t, err)
			return rel
		}},
		{"dotdot inside", func(t *testing.T, base, outside string) string {
			return "x/../mbox"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, base := newTestWriter(t, WriterOptions{LockTimeout: time.Second})
			outside := t.TempDir()
			target := filepath.Join(outside, "target")
			must(t, os.WriteFile(target, []byte("precious\n"), 0o600))
			rpath := tc.setup(t, base, outside)
			done := make(chan error, 1)
			go func() { done <- deliver(t, l, spool(t, "a@b", "x\n"), rcpt(rpath)) }()
			select {
			case err := <-done:
				wantStatus(t, err, BadMailbox)
			case <-time.After(5 * time.Second):
				t.Fatal("delivery hangs")
			}
			if got := readFile(t, target); got != "precious\n" {
				t.Errorf("target changed: %q", got)
			}
			if ents := listDir(t, outside); len(ents) != 1 {
				t.Errorf("files created outside the base: %v", ents)
			}
			if _, err := os.Lstat(filepath.Join(base, "mbox.lock")); err == nil {
				t.Error("dotlock left behind")
			}
		})
	}
}

func TestMboxNotOwned(t *testing.T) {
	requireRoot(t)
	l, base := newTestWriter(t, WriterOptions{})
	path := filepath.Join(base, "mbox")
	must(t, os.WriteFile(path, nil, 0o600))
	must(t, os.Chown(path, 12345, 12345))
	wantStatus(t, deliver(t, l, spool(t, "a@b", "x\n"), rcpt("mbox")), BadMailbox)
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Error("wrote into an mbox of another uid")
	}
}

func TestMailboxSize(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	ctx := t.Context()
	size := func(path string) (int64, error) { return l.MailboxSize(ctx, rcpt(path)) }
	if n, err := size("missing"); n != 0 || err != nil {
		t.Errorf("missing mbox: %d, %v", n, err)
	}
	if n, err := size("nodir/missing"); n != 0 || err != nil {
		t.Errorf("missing parent: %d, %v", n, err)
	}
	must(t, os.WriteFile(filepath.Join(base, "mbox"), make([]byte, 1234), 0o600))
	if n, err := size("/mbox"); n != 1234 || err != nil {
		t.Errorf("mbox: %d, %v", n, err)
	}
	if n, err := size("md/"); n != 0 || err != nil {
		t.Errorf("maildir: %d, %v", n, err)
	}
	must(t, os.Symlink("mbox", filepath.Join(base, "link")))
	_, err := size("link")
	wantStatus(t, err, BadMailbox)
	_, err = size("../x")
	wantStatus(t, err, BadMailbox)
	r := rcpt("mbox")
	r.UID++
	_, err = l.MailboxSize(ctx, r)
	wantStatus(t, err, NotPermitted)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A big message whose quoting pushes it over the limit part way through:
// the bytes already written are cut off again.
func TestMboxLimitWhileWriting(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	path := filepath.Join(base, "mbox")
	old := oldMbox
	must(t, os.WriteFile(path, []byte(old), 0o600))
	body := strings.Repeat("From x\n", 40000) // 280 kB, 40000 bytes of quoting
	r := rcpt("mbox")
	hdr, _ := traceHeader(&Message{Sender: "a@b"}, r)
	r.Limit = int64(len(old)+len(fromLine("a@b", time.Now()))+len(hdr)+len(body)+1) + 20000
	wantStatus(t, deliver(t, l, spool(t, "a@b", body), r), OverLimit)
	if got := readFile(t, path); got != old {
		t.Fatalf("mbox not truncated back: %d bytes", len(got))
	}
}

// Memory does not grow with the message: a 16 MB message is streamed
// through fixed buffers, for mbox (quoting) and Maildir (kernel copy).
func TestDeliverMemoryFlat(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	const line = "From a line that needs quoting\nand a line that does not\n"
	msg := spool(t, "a@b", strings.Repeat(line, 16<<20/len(line)))
	for _, path := range []string{"mbox", "md/"} {
		if err := deliver(t, l, msg, rcpt(path)); err != nil { // warms the buffer pools
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := deliver(t, l, msg, rcpt(path)); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("%s: delivering %d bytes allocated %d bytes", path, msg.Size, alloc)
		}
	}
	if fi, err := os.Stat(filepath.Join(base, "mbox")); err != nil || fi.Size() < 2*msg.Size {
		t.Errorf("mbox: %v, %v", fi, err)
	}
}

func TestMboxTraceHeaderTheClientWroteIsNotRepeated(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	const clientTop = "Return-Path: <b@x>\nDelivered-To: User@example.com\nReceived: from a by b\n"
	msg := spool(t, "b@x", clientTop+"Subject: s\n\nFrom me\n")
	msg.HasReturnPath = true
	r := rcpt("mbox")
	r.HasDeliveredTo = true
	if err := deliver(t, l, msg, r); err != nil {
		t.Fatal(err)
	}
	msgs := parseMbox(t, readFile(t, filepath.Join(base, "mbox")))
	if want := "X-Original-To: user+tag@example.com\n" + clientTop + "Subject: s\n\n>From me\n"; len(msgs) != 1 || msgs[0].Text != want {
		t.Errorf("mbox holds %q, want one message %q", msgs, want)
	}
}
