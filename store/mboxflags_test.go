package store

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMboxFlagHeaders(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{`\Recent`, `bad(kw`}, ""},
		{[]string{`\Seen`}, "Status: R\n"},
		{[]string{`\Flagged`}, "Status: \nX-Status: F\n"},
		// Dovecot's order A F T D whatever the script's, once each.
		{[]string{`\Deleted`, `\draft`, `\Flagged`, `\ANSWERED`, `\Seen`, `\Flagged`}, "Status: R\nX-Status: AFTD\n"},
		{[]string{`$Label1`, `\Seen`, `Junk`, `$label1`}, "Status: R\nX-Keywords: $Label1 Junk\n"},
		{[]string{`NonJunk`}, "Status: \nX-Keywords: NonJunk\n"},
	} {
		if got := string(MboxFlagHeaders(c.in)); got != c.want {
			t.Errorf("MboxFlagHeaders(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// filterAll runs in through mboxFilter in pieces of every size from 1 up,
// checking that the split makes no difference.
func filterAll(t *testing.T, in, flags string) (string, int64) {
	t.Helper()
	var first string
	var dropped int64
	for size := 1; size <= len(in)+1; size++ {
		var b bytes.Buffer
		f := newMboxFilter(&b, []byte(flags))
		for p := in; len(p) > 0; {
			n := min(size, len(p))
			if _, err := f.Write([]byte(p[:n])); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if size == 1 {
			first, dropped = b.String(), f.dropped
		} else if b.String() != first || f.dropped != dropped {
			t.Fatalf("%q in pieces of %d: %q (%d dropped), in pieces of 1: %q (%d)", in, size, b.String(), f.dropped, first, dropped)
		}
		if size > 80 {
			break
		}
	}
	return first, dropped
}

func TestMboxFilter(t *testing.T) {
	long := "X-" + strings.Repeat("a", 100) + ": v\n"
	for _, c := range []struct{ name, in, flags, want string }{
		{"no own fields", "Subject: a\nFrom: b\n\nbody\nStatus: RO\n", "", "Subject: a\nFrom: b\n\nbody\nStatus: RO\n"},
		{"flags at the end of the header", "Subject: a\n\nbody\n", "Status: R\n", "Subject: a\nStatus: R\n\nbody\n"},
		{"forged flags dropped, any case, folded",
			"Status: RO\nSubject: a\nx-status: F\n\tA\nX-Keywords: $Label1\nX-UID: 99\nX-IMAPbase: 1 0000000009\nContent-Length: 3\nX-IMAP: 1 2\nX-Delivery-ID: q\nStatus : R\nX-Status-Not: kept\n\nX-Status: F\n",
			"Status: \n",
			"Subject: a\nX-Status-Not: kept\nStatus: \n\nX-Status: F\n"},
		{"a long name is not an own field", long + "Status: R\n\nb\n", "", long + "\nb\n"},
		{"all header, ends in a dropped field", "Subject: a\nStatus: RO", "X-Status: F\n", "Subject: a\nX-Status: F\n\n"},
		{"all header, no final LF", "Subject: a", "Status: R\n", "Subject: a\nStatus: R\n\n"},
		{"all header without flags stays as it is", "Subject: a", "", "Subject: a"},
		{"empty header", "\nbody\n", "Status: R\n", "Status: R\n\nbody\n"},
		{"empty message", "", "Status: R\n", "Status: R\n\n"},
		{"name without a colon", "Status\nSubject: a\n\n", "", "Subject: a\n\n"},
		{"From_ line in the header goes on to the quoter", "From x\nSubject: a\n\n", "", "From x\nSubject: a\n\n"},
	} {
		got, dropped := filterAll(t, c.in, c.flags)
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
		if want := int64(len(c.in) + len(c.flags) - len(c.want)); want >= 0 && !strings.HasPrefix(c.name, "all header") && dropped != want {
			t.Errorf("%s: %d bytes dropped, want %d", c.name, dropped, want)
		}
	}
}

// An mbox delivery keeps the sender's flag fields out and writes the
// flags a Sieve script set where Dovecot does; the limit counts what is
// written.
func TestMboxFlagsDelivered(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	body := "Subject: f\nStatus: RO\nX-Status: F\n\n>From body\nX-Status: F\n"
	must(t, os.Mkdir(filepath.Join(base, "example.com"), 0o700))
	sr := rcpt("example.com/u")
	sr.Sieve = "example.com/u.sieve"
	script := `require ["imap4flags", "fileinto"]; addflag ["\\Seen", "\\Answered", "$Label1", "Junk", "\\Recent"]; fileinto "Work";`
	must(t, os.WriteFile(filepath.Join(base, sr.Sieve), []byte(script), 0o600))
	path := filepath.Join(base, "example.com/u")
	first := "From x@y  Thu Jan  1 00:00:00 1970\nSubject: first\nX-IMAPbase: 1796175537 0000000007 $label1 NonJunk\nX-UID: 1\n\nx\n\n"
	must(t, os.WriteFile(path, []byte(first), 0o600))
	if err := deliver(t, l, spool(t, "a@b", body), sr); err != nil {
		t.Fatal(err)
	}
	r := rcpt("example.com/u")
	if err := deliver(t, l, spool(t, "a@b", body), r); err != nil {
		t.Fatal(err)
	}
	msgs := parseMbox(t, readFile(t, path))[1:]
	if len(msgs) != 2 {
		t.Fatalf("%d messages: %q", len(msgs), readFile(t, path))
	}
	// fileinto on an mbox is a store into the mbox, with its flags; of
	// the keywords only the one the mbox lists is kept, spelt its way.
	trace := "Return-Path: <a@b>\nX-Original-To: user+tag@example.com\nDelivered-To: User@example.com\n"
	if want := trace + "Subject: f\nStatus: R\nX-Status: A\nX-Keywords: $label1\n\n>From body\nX-Status: F\n"; msgs[0].Text != want {
		t.Errorf("with flags:\n%q\nwant\n%q", msgs[0].Text, want)
	}
	if want := trace + "Subject: f\n\n>From body\nX-Status: F\n"; msgs[1].Text != want {
		t.Errorf("without Sieve:\n%q\nwant\n%q", msgs[1].Text, want)
	}

	// A message that fits once its forged fields are gone is taken.
	size := int64(len(readFile(t, path)))
	r.Limit = size + int64(len(fromLine("a@b", time.Now()))+len(msgs[1].Text)+1)
	// One byte less does not fit: the limit is counted exactly, on what
	// is written.
	short := r
	short.Limit--
	wantStatus(t, deliver(t, l, spool(t, "a@b", body), short), OverLimit)
	if err := deliver(t, l, spool(t, "a@b", body), r); err != nil {
		t.Fatalf("limit %d: %v", r.Limit, err)
	}
	if fi, _ := os.Stat(path); fi.Size() != r.Limit {
		t.Errorf("size %d, want %d", fi.Size(), r.Limit)
	}
	r.Limit = 0
	wantStatus(t, deliver(t, l, spool(t, "a@b", body), Recipient{Address: r.Address, Path: r.Path, UID: r.UID, GID: r.GID, Limit: size}), OverLimit)
}

func TestImapBaseKeywords(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"Subject: not an mbox\nX-IMAPbase: 1 0000000001 a\n\n", ""},
		{"From a  Thu Jan  1 00:00:00 1970\nSubject: x\n\nx\n", ""},
		{"From a  Thu Jan  1 00:00:00 1970\nX-IMAPbase: 1 0000000002\n\n", ""},
		{"From a  Thu Jan  1 00:00:00 1970\nSubject: x\nx-imapbase : 1 0000000002 $Label1 Junk  \n\tNonJunk\nX-UID: 1\n\nX-IMAPbase: 1 2 body\n", "$Label1 Junk NonJunk"},
		{"From a  Thu Jan  1 00:00:00 1970\nX-IMAP: 1 0000000002 work\n\n", "work"},
		{"From a  Thu Jan  1 00:00:00 1970\nSubject: x\n\nbody\n\nFrom b  Thu Jan  1 00:00:00 1970\nX-IMAPbase: 1 2 later\n\n", ""},
		{"From a  Thu Jan  1 00:00:00 1970\nX-Long: " + strings.Repeat("x", 10000) + "\nX-IMAPbase: 1 0000000002 a\n\n", "a"},
	} {
		got, err := imapBaseKeywords(strings.NewReader(c.in))
		if err != nil || strings.Join(got, " ") != c.want {
			t.Errorf("imapBaseKeywords(%.60q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// BenchmarkMboxFilter: the header filter's cost on a typical message
// (a 1 KB header, a 4 KB body), beside the From quoter it feeds.
func BenchmarkMboxFilter(b *testing.B) {
	var m strings.Builder
	for i := 0; m.Len() < 1024; i++ {
		m.WriteString("Received: from host.example.org (host.example.org [192.0.2.1]) by mx\n\tfor <u@example.com>; id 1\n")
	}
	m.WriteString("Subject: s\n\n")
	for m.Len() < 5120 {
		m.WriteString("An ordinary line of text in the message body, about seventy bytes.\n")
	}
	msg := []byte(m.String())
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		f := newMboxFilter(newFromQuoter(io.Discard), nil)
		f.Write(msg)
		f.Close()
	}
}
