package store

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSieveFolder(t *testing.T) {
	for _, c := range []struct {
		in     string
		folder string
		inbox  bool
		ok     bool
	}{
		{"INBOX", "", true, true},
		{"inbox", "", true, true},
		{"Work", "Work", false, true},
		{"Work/2026", "", false, false}, // "/" is no separator with Dovecot's Maildir++ default
		{"Work.2026", "Work.2026", false, true},
		{"../x", "", false, false},
		{"a/../../y", "", false, false},
		{"/abs", "", false, false},
		{"trailing/", "", false, false},
		{"", "", false, false},
		{"tab\there", "", false, false},
		{"Sent Items", "Sent Items", false, true},
		{"Caf\u00e9", "Caf&AOk-", false, true}, // modified UTF-7, as Dovecot stores it
		{"Entw\u00fcrfe.\u65e5\u672c", "Entw&APw-rfe.&ZeVnLA-", false, true},
		{"R&D", "R&-D", false, true},
		{"\U0001F4EC mail", "&2D3c7A- mail", false, true}, // outside the BMP: a surrogate pair
		{"bad\xffutf8", "", false, false},
		{"\u00e9/../x", "", false, false},
		{"\u00e9..x", "", false, false},
		{"a\\b", "", false, false},
	} {
		folder, inbox, ok := SieveFolder(c.in)
		if folder != c.folder || inbox != c.inbox || ok != c.ok {
			t.Errorf("SieveFolder(%q) = %q, %v, %v; want %q, %v, %v", c.in, folder, inbox, ok, c.folder, c.inbox, c.ok)
		}
	}
}

func TestMaildirFlags(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{`\Seen`}, "S"},
		{[]string{`\Seen`, `\Flagged`, `\Answered`, `\Draft`, `\Deleted`}, "DFRST"},
		{[]string{`\seen`, `\SEEN`}, "S"},
		{[]string{"$Junk", `\Recent`}, ""},
	} {
		if got := MaildirFlags(c.in); got != c.want {
			t.Errorf("MaildirFlags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// sieveWriter is a Writer with a Maildir for the test user and its script.
func sieveWriter(t *testing.T, opts WriterOptions, script string) (*Writer, string, Recipient) {
	t.Helper()
	l, base := newTestWriter(t, opts)
	r := rcpt("example.com/u/")
	if script != "" {
		r.Sieve = "example.com/u/.dovecot.sieve"
		os.MkdirAll(filepath.Join(base, "example.com/u"), 0o700)
		if err := os.WriteFile(filepath.Join(base, r.Sieve), []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return l, base, r
}

// The compiled script is cached by file version: a changed file is
// compiled again at the next message.
func TestSieveScriptCacheInvalidated(t *testing.T) {
	l, base, r := sieveWriter(t, WriterOptions{}, `require ["fileinto", "mailbox"]; fileinto :create "One";`)
	md := filepath.Join(base, "example.com/u")
	if err := deliver(t, l, spool(t, "s@x", "Subject: a\n\nx\n"), r); err != nil {
		t.Fatal(err)
	}
	// A different size and mtime: a new version.
	if err := os.WriteFile(filepath.Join(base, r.Sieve), []byte(`require ["fileinto", "mailbox"]; fileinto :create "Two2";`), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	os.Chtimes(filepath.Join(base, r.Sieve), future, future)
	if err := deliver(t, l, spool(t, "s@x", "Subject: b\n\nx\n"), r); err != nil {
		t.Fatal(err)
	}
	if n := len(listDir(t, filepath.Join(md, ".One/new"))); n != 1 {
		t.Errorf(".One has %d", n)
	}
	if n := len(listDir(t, filepath.Join(md, ".Two2/new"))); n != 1 {
		t.Errorf(".Two2 has %d: the cached script was used after the file changed", n)
	}
}

// A script that is a symlink pointing out of its directory is not read
// (the message is kept); one into sieve/ beside it is, as ManageSieve
// makes .dovecot.sieve.
func TestSieveScriptSymlinks(t *testing.T) {
	l, base, r := sieveWriter(t, WriterOptions{}, "")
	md := filepath.Join(base, "example.com/u")
	os.MkdirAll(filepath.Join(md, "sieve"), 0o700)
	os.WriteFile(filepath.Join(md, "sieve/main.sieve"), []byte(`discard;`), 0o600)
	outside := filepath.Join(base, "outside.sieve")
	os.WriteFile(outside, []byte(`discard;`), 0o600)
	r.Sieve = "example.com/u/.dovecot.sieve"

	os.Symlink(outside, filepath.Join(base, r.Sieve))
	if err := deliver(t, l, spool(t, "s@x", "Subject: a\n\nx\n"), r); err != nil {
		t.Fatal(err)
	}
	if n := len(listDir(t, filepath.Join(md, "new"))); n != 1 {
		t.Fatalf("absolute symlink: INBOX has %d, want the kept message", n)
	}
	os.Remove(filepath.Join(base, r.Sieve))
	os.Symlink("../../outside.sieve", filepath.Join(base, r.Sieve))
	if err := deliver(t, l, spool(t, "s@x", "Subject: b\n\nx\n"), r); err != nil {
		t.Fatal(err)
	}
	if n := len(listDir(t, filepath.Join(md, "new"))); n != 2 {
		t.Fatalf("symlink climbing out: INBOX has %d, want 2", n)
	}
	os.Remove(filepath.Join(base, r.Sieve))
	os.Symlink("sieve/main.sieve", filepath.Join(base, r.Sieve))
	if err := deliver(t, l, spool(t, "s@x", "Subject: c\n\nx\n"), r); err != nil {
		t.Fatal(err)
	}
	if n := len(listDir(t, filepath.Join(md, "new"))); n != 2 {
		t.Fatalf("symlink into sieve/: INBOX has %d, want 2 (the script discards)", n)
	}
}

// editheader: the stored message carries the edited header, the body
// unchanged, and the ,S= size of what was written.
func TestSieveEditHeader(t *testing.T) {
	l, base, r := sieveWriter(t, WriterOptions{}, `require "editheader"; addheader "X-Filtered" "yes"; deleteheader "X-Spam";`)
	body := "Subject: s\nX-Spam: bad\n\nline 1\nline 2\n"
	if err := deliver(t, l, spool(t, "s@x", body), r); err != nil {
		t.Fatal(err)
	}
	names := listDir(t, filepath.Join(base, "example.com/u/new"))
	if len(names) != 1 {
		t.Fatalf("INBOX: %v", names)
	}
	got := readFile(t, filepath.Join(base, "example.com/u/new", names[0]))
	if !strings.Contains(got, "X-Filtered: yes\n") || strings.Contains(got, "X-Spam") || !strings.HasSuffix(got, "\n\nline 1\nline 2\n") || strings.Contains(got, "\r") {
		t.Errorf("stored message:\n%q", got)
	}
	if !strings.HasSuffix(names[0], ",S="+itoa(int64(len(got)))) {
		t.Errorf("name %q, file of %d bytes", names[0], len(got))
	}
}

// The state beneath the Maildir: an entry is valid for its period, a
// non-restarting record keeps the first expiry, expired entries go.
func TestSieveState(t *testing.T) {
	l, base, r := sieveWriter(t, WriterOptions{}, "")
	os.MkdirAll(filepath.Join(base, "example.com/u"), 0o700)
	mp, _ := parsePath(r.Path)
	s := l.sieveState(mp, r)
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	if ok, err := s.Responded(t.Context(), "k"); ok || err != nil {
		t.Fatalf("empty state: %v %v", ok, err)
	}
	if err := s.record(vacationPrefix, "k", time.Hour, true); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Responded(t.Context(), "k"); !ok {
		t.Error("recorded key not found")
	}
	if ok, _ := s.Seen(t.Context(), "k"); ok {
		t.Error("vacation key found as a duplicate id")
	}
	s.record(duplicatePrefix, "d", time.Hour, false)
	now = now.Add(30 * time.Minute)
	s.record(duplicatePrefix, "d", time.Hour, false) // not :last: the first expiry stays
	now = now.Add(31 * time.Minute)
	if ok, _ := s.Seen(t.Context(), "d"); ok {
		t.Error("duplicate id still valid after its first period")
	}
	if ok, _ := s.Responded(t.Context(), "k"); ok {
		t.Error("vacation key valid after its period")
	}
	s.record(vacationPrefix, "other", time.Hour, true) // cleans up the expired ones
	ents := listDir(t, filepath.Join(base, "example.com/u", stateDirName))
	if len(ents) != 1 {
		t.Errorf("state after cleanup: %v", ents)
	}
}

// include :personal reads sieve/NAME.sieve beside the active script,
// :global reads GlobalDir/NAME.sieve; a missing one without :optional
// makes the script not run (kept), a name with "/" is refused.
func TestSieveIncludes(t *testing.T) {
	global := t.TempDir()
	os.WriteFile(filepath.Join(global, "spam.sieve"), []byte(`require ["fileinto", "mailbox"]; if header :is "x-spam" "yes" { fileinto :create "Junk"; }`), 0o644)
	l, base, r := sieveWriter(t, WriterOptions{Sieve: SieveOptions{GlobalDir: global}},
		`require ["include", "fileinto", "mailbox"]; include :global "spam"; include :personal "mine"; include :optional "absent";`)
	md := filepath.Join(base, "example.com/u")
	os.MkdirAll(filepath.Join(md, "sieve"), 0o700)
	os.WriteFile(filepath.Join(md, "sieve/mine.sieve"), []byte(`require ["fileinto", "mailbox"]; if header :is "subject" "work" { fileinto :create "Work"; }`), 0o600)
	for _, m := range []string{"X-Spam: yes\nSubject: a\n\nx\n", "Subject: work\n\nx\n", "Subject: other\n\nx\n"} {
		if err := deliver(t, l, spool(t, "s@x", m), r); err != nil {
			t.Fatal(err)
		}
	}
	for dir, want := range map[string]int{".Junk/new": 1, ".Work/new": 1, "new": 1} {
		if n := len(listDir(t, filepath.Join(md, dir))); n != want {
			t.Errorf("%s has %d, want %d", dir, n, want)
		}
	}
	os.WriteFile(filepath.Join(base, r.Sieve), []byte(`require "include"; include :personal "../../x";`), 0o600)
	future := time.Now().Add(time.Minute)
	os.Chtimes(filepath.Join(base, r.Sieve), future, future)
	if err := deliver(t, l, spool(t, "s@x", "Subject: b\n\nx\n"), r); err != nil {
		t.Fatal(err)
	}
	if n := len(listDir(t, filepath.Join(md, "new"))); n != 2 {
		t.Errorf("a script including a path: INBOX has %d, want 2 (kept)", n)
	}
	if b := readFile(t, filepath.Join(base, r.Sieve+".log")); !strings.Contains(b, `invalid script name "../../x"`) {
		t.Errorf(".log: %q", b)
	}
}

// The body test reads the body from the spool (not from the header), and
// the size test sees the spooled size.
func TestSieveBodyFromSpool(t *testing.T) {
	l, base, r := sieveWriter(t, WriterOptions{},
		`require ["body", "fileinto", "mailbox"]; if allof (body :contains "needle", size :over 2000) { fileinto :create "Found"; }`)
	md := filepath.Join(base, "example.com/u")
	small := "Subject: needle in the header only\n\nhay\n"
	large := "Subject: s\n\n" + strings.Repeat("hay\n", 600) + "the needle\n"
	for _, m := range []string{small, large} {
		if err := deliver(t, l, spool(t, "s@x", m), r); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(listDir(t, filepath.Join(md, ".Found/new"))); n != 1 {
		t.Errorf(".Found has %d, want 1", n)
	}
	if n := len(listDir(t, filepath.Join(md, "new"))); n != 1 {
		t.Errorf("INBOX has %d, want 1", n)
	}
}

// deliverOut delivers to r with DeliverTimed and returns the error and
// what the front is to submit.
func deliverOut(t *testing.T, l *Writer, msg *Message, r Recipient) (Outbound, error) {
	t.Helper()
	errs, _, outs := l.DeliverTimed(context.Background(), msg, []Recipient{r})
	if len(errs) != 1 || len(outs) != 1 {
		t.Fatalf("DeliverTimed returned %d errors and %d outbounds for 1 recipient", len(errs), len(outs))
	}
	return outs[0], errs[0]
}

// Combinations as the Result lists them: redirect :copy with fileinto and
// keep stores twice and asks for one submission; a plain redirect cancels
// the implicit keep; discard with redirect :copy submits and stores
// nothing. Kept says whether INBOX already holds the message (so that
// the front, when a redirect fails, adds no second copy).
func TestSieveActionCombinations(t *testing.T) {
	for _, c := range []struct {
		script       string
		inbox, work  int
		redirections int
		kept         bool
	}{
		{`require ["copy", "fileinto"]; redirect :copy "a@x.test"; fileinto "Work"; keep;`, 1, 1, 1, true},
		{`redirect "a@x.test";`, 0, 0, 1, false},
		{`require "copy"; redirect :copy "a@x.test"; discard;`, 0, 0, 1, false},
		{`require "fileinto"; fileinto "Work"; fileinto "Work";`, 0, 1, 0, false},
		{`redirect "a@x.test"; redirect "b@x.test"; keep;`, 1, 0, 2, true},
		{`require ["copy", "fileinto"]; redirect :copy "a@x.test"; fileinto "Work";`, 0, 1, 1, false},
	} {
		l, base, r := sieveWriter(t, WriterOptions{}, c.script)
		md := filepath.Join(base, "example.com/u")
		for _, d := range []string{"new", "cur", "tmp", ".Work/new", ".Work/cur", ".Work/tmp"} {
			os.MkdirAll(filepath.Join(md, d), 0o700)
		}
		body := "Subject: c\n\nx\n"
		out, err := deliverOut(t, l, spool(t, "s@x", body), r)
		if err != nil {
			t.Fatal(err)
		}
		got := [3]int{len(listDir(t, filepath.Join(md, "new"))), len(listDir(t, filepath.Join(md, ".Work/new"))), out.Redirects()}
		if want := [3]int{c.inbox, c.work, c.redirections}; got != want || out.Kept != c.kept {
			t.Errorf("%s: INBOX, Work, redirects = %v, kept %v; want %v, %v", c.script, got, out.Kept, want, c.kept)
		}
		for _, s := range out.Submissions {
			if !s.Redirect || s.Sender != "s@x" || s.BodyFrom != 0 ||
				string(s.Head) != "X-Sieve-Redirected-From: "+r.Address+"\nDelivered-To: "+r.Address+"\n" {
				t.Errorf("%s: submission %+v", c.script, s)
			}
		}
	}
}

// editheader changes what is redirected: the submission carries the new
// header and where the original body starts, so the front sends exactly
// what was stored.
func TestSieveRedirectEditedHeader(t *testing.T) {
	l, base, r := sieveWriter(t, WriterOptions{}, `require ["editheader", "copy"];
deleteheader "X-Spam"; addheader "X-Tag" "yes"; redirect :copy "a@x.test";`)
	os.MkdirAll(filepath.Join(base, "example.com/u"), 0o700)
	body := "X-Spam: 9\nSubject: e\n\nthe body\n"
	msg := spool(t, "s@x", body)
	out, err := deliverOut(t, l, msg, r)
	if err != nil || len(out.Submissions) != 1 {
		t.Fatalf("%v, %+v", err, out)
	}
	s := out.Submissions[0]
	if s.BodyFrom != int64(strings.Index(body, "the body")) {
		t.Errorf("body offset %d", s.BodyFrom)
	}
	head := string(s.Head)
	if !strings.HasPrefix(head, "X-Sieve-Redirected-From: "+r.Address+"\nDelivered-To: "+r.Address+"\n") ||
		!strings.Contains(head, "X-Tag: yes\n") || strings.Contains(head, "X-Spam") || !strings.HasSuffix(head, "Subject: e\n\n") {
		t.Errorf("head %q", head)
	}
	stored := listDir(t, filepath.Join(base, "example.com/u/new"))
	if len(stored) != 1 {
		t.Fatalf("stored %v", stored)
	}
	b, _ := os.ReadFile(filepath.Join(base, "example.com/u/new", stored[0]))
	if !strings.HasSuffix(string(b), head[strings.Index(head, "X-Tag"):]+"the body\n") {
		t.Errorf("stored message differs from the redirected one:\n%s\nhead:\n%s", b, head)
	}
}

// A vacation reply is composed in the worker (null sender, complete) and
// recorded as answered when handed over; a refused redirect (a loop) is
// kept in INBOX by the worker itself and not handed over.
func TestSieveVacationAndLoopSubmissions(t *testing.T) {
	l, base, r := sieveWriter(t, WriterOptions{Hostname: "mx.test"}, `require "vacation"; redirect "a@x.test"; vacation :subject "Away" "not here";`)
	os.MkdirAll(filepath.Join(base, "example.com/u/new"), 0o700)
	out, err := deliverOut(t, l, spool(t, "s@x", "From: s@x\nTo: "+r.Address+"\nSubject: q\n\nx\n"), r)
	if err != nil || len(out.Submissions) != 2 {
		t.Fatalf("%v, %+v", err, out)
	}
	v := out.Submissions[1]
	if v.Redirect || v.Sender != "" || v.Rcpt != "s@x" || v.BodyFrom != -1 ||
		!strings.Contains(string(v.Head), "Auto-Submitted: auto-replied") || !strings.Contains(string(v.Head), "not here") || strings.Contains(string(v.Head), "\r") {
		t.Errorf("vacation %+v\n%s", v, v.Head)
	}
	if st, _ := filepath.Glob(filepath.Join(base, "example.com/u/vlmtpd-sieve/vacation-*")); len(st) != 1 {
		t.Errorf("vacation state %v", st)
	}
	// The second time: no reply (answered), and a looping redirect is
	// kept here.
	out, err = deliverOut(t, l, spool(t, "s@x", "X-Sieve-Redirected-From: "+r.Address+"\nFrom: s@x\nTo: "+r.Address+"\nSubject: q\n\nx\n"), r)
	if err != nil || len(out.Submissions) != 0 || !out.Kept {
		t.Fatalf("%v, %+v", err, out)
	}
	if n := len(listDir(t, filepath.Join(base, "example.com/u/new"))); n != 1 {
		t.Errorf("INBOX has %d, want the looping message", n)
	}
}

// NoSieve is the implicit keep without running the script, and
// Deliver (which submits nothing) keeps a redirected message rather than
// lose it.
func TestSieveNoSieveAndDeliverKeeping(t *testing.T) {
	l, base, r := sieveWriter(t, WriterOptions{}, `redirect "a@x.test";`)
	os.MkdirAll(filepath.Join(base, "example.com/u/new"), 0o700)
	nr := r
	nr.NoSieve = true
	out, err := deliverOut(t, l, spool(t, "s@x", "Subject: n\n\nx\n"), nr)
	if err != nil || len(out.Submissions) != 0 {
		t.Fatalf("%v, %+v", err, out)
	}
	if err := deliver(t, l, spool(t, "s@x", "Subject: k\n\nx\n"), r); err != nil {
		t.Fatal(err)
	}
	if n := len(listDir(t, filepath.Join(base, "example.com/u/new"))); n != 2 {
		t.Errorf("INBOX has %d, want 2", n)
	}
}

// BenchmarkSieveDeliver: one Maildir delivery through a cached script
// (header tests and a fileinto), to compare with BenchmarkMaildir.
func BenchmarkSieveDeliver(b *testing.B) {
	l, base := newTestWriter(b, WriterOptions{Logger: slog.New(slog.DiscardHandler)})
	r := rcpt("example.com/u/")
	r.Sieve = "example.com/u/.dovecot.sieve"
	os.MkdirAll(filepath.Join(base, "example.com/u"), 0o700)
	script := `require ["fileinto", "mailbox"];
if header :contains "list-id" "lists.example" { fileinto :create "Lists"; stop; }
if address :domain "from" "example.org" { fileinto :create "Work"; }`
	if err := os.WriteFile(filepath.Join(base, r.Sieve), []byte(script), 0o600); err != nil {
		b.Fatal(err)
	}
	msg := spool(b, "a@example.org", benchBody)
	ctx := context.Background()
	for b.Loop() {
		if err := l.Deliver(ctx, msg, []Recipient{r})[0]; err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// A FIFO in the script's place does not hang the worker: the script is
// not run and the message is kept.
func TestSieveScriptFIFO(t *testing.T) {
	l, base, r := sieveWriter(t, WriterOptions{}, "")
	os.MkdirAll(filepath.Join(base, "example.com/u"), 0o700)
	r.Sieve = "example.com/u/.dovecot.sieve"
	if err := unix.Mkfifo(filepath.Join(base, r.Sieve), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- deliver(t, l, spool(t, "s@x", "Subject: f\n\nx\n"), r) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("delivery hangs on a FIFO script")
	}
	if n := len(listDir(t, filepath.Join(base, "example.com/u/new"))); n != 1 {
		t.Errorf("INBOX has %d, want the kept message", n)
	}
}
