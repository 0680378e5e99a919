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

// sieveLocal is a Local with a Maildir for the test user and its script.
func sieveLocal(t *testing.T, opts LocalOptions, script string) (*Local, string, Recipient) {
	t.Helper()
	l, base := newTestLocal(t, opts)
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
	l, base, r := sieveLocal(t, LocalOptions{}, `require ["fileinto", "mailbox"]; fileinto :create "One";`)
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
	l, base, r := sieveLocal(t, LocalOptions{}, "")
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
	l, base, r := sieveLocal(t, LocalOptions{}, `require "editheader"; addheader "X-Filtered" "yes"; deleteheader "X-Spam";`)
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
	l, base, r := sieveLocal(t, LocalOptions{}, "")
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
	l, base, r := sieveLocal(t, LocalOptions{Sieve: SieveOptions{GlobalDir: global}},
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
	l, base, r := sieveLocal(t, LocalOptions{},
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

// fakeSendmail writes a sendmail that appends its argv and stdin to log.
func fakeSendmail(t testing.TB, log string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sendmail")
	script := "#!/bin/sh\n{ echo \"ARGS $*\"; cat; echo END; } >> " + log + "\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// Combinations as the Result lists them: redirect :copy with fileinto and
// keep stores twice and submits once; a plain redirect cancels the
// implicit keep; discard with redirect :copy submits and stores nothing.
func TestSieveActionCombinations(t *testing.T) {
	for _, c := range []struct {
		script       string
		inbox, work  int
		redirections int
	}{
		{`require ["copy", "fileinto"]; redirect :copy "a@x.test"; fileinto "Work"; keep;`, 1, 1, 1},
		{`redirect "a@x.test";`, 0, 0, 1},
		{`require "copy"; redirect :copy "a@x.test"; discard;`, 0, 0, 1},
		{`require "fileinto"; fileinto "Work"; fileinto "Work";`, 0, 1, 0},
		{`redirect "a@x.test"; redirect "b@x.test"; keep;`, 1, 0, 2},
	} {
		log := filepath.Join(t.TempDir(), "sent")
		l, base, r := sieveLocal(t, LocalOptions{Sieve: SieveOptions{Sendmail: fakeSendmail(t, log)}}, c.script)
		md := filepath.Join(base, "example.com/u")
		for _, d := range []string{"new", "cur", "tmp", ".Work/new", ".Work/cur", ".Work/tmp"} {
			os.MkdirAll(filepath.Join(md, d), 0o700)
		}
		if err := deliver(t, l, spool(t, "s@x", "Subject: c\n\nx\n"), r); err != nil {
			t.Fatal(err)
		}
		sent, _ := os.ReadFile(log)
		got := [3]int{len(listDir(t, filepath.Join(md, "new"))), len(listDir(t, filepath.Join(md, ".Work/new"))), strings.Count(string(sent), "ARGS -i -f s@x -- ")}
		if want := [3]int{c.inbox, c.work, c.redirections}; got != want {
			t.Errorf("%s: INBOX, Work, redirects = %v, want %v\n%s", c.script, got, want, sent)
		}
	}
}

// BenchmarkSieveDeliver: one Maildir delivery through a cached script
// (header tests and a fileinto), to compare with BenchmarkMaildir.
func BenchmarkSieveDeliver(b *testing.B) {
	l, base := newTestLocal(b, LocalOptions{Logger: slog.New(slog.DiscardHandler)})
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
	l, base, r := sieveLocal(t, LocalOptions{}, "")
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
