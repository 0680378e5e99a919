package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/server/lmtp"
	"github.com/vlmtpd/vlmtpd/store"
)

// fakeDeliverer answers by mailbox path: the test sets the error each
// path gets and the current size of each mbox.
type fakeDeliverer struct {
	errs      map[string]error
	sizes     map[string]int64
	sizeErr   error
	permitErr error
	short     bool // return one result fewer than asked
	delivered []store.Recipient
	bodies    []string
}

func (f *fakeDeliverer) Deliver(_ context.Context, msg *store.Message, rcpts []store.Recipient) []error {
	b, _ := io.ReadAll(io.NewSectionReader(msg.Body, 0, msg.Size))
	out := make([]error, len(rcpts))
	for i, r := range rcpts {
		out[i] = f.errs[r.Path]
		if out[i] == nil {
			f.delivered = append(f.delivered, r)
			f.bodies = append(f.bodies, string(b))
		}
	}
	if f.short {
		out = out[:len(out)-1]
	}
	return out
}

func (f *fakeDeliverer) MailboxSize(_ context.Context, r store.Recipient) (int64, error) {
	return f.sizes[r.Path], f.sizeErr
}

func (f *fakeDeliverer) Permits(uid, gid int) error { return f.permitErr }

func testServer(t *testing.T, d store.Deliverer, extra string) *Server {
	t.Helper()
	return testServerWith(t, d, extra, nil)
}

// testServerWith is testServer with more tables (file name → content).
func testServerWith(t *testing.T, d store.Deliverer, extra string, tables map[string]string) *Server {
	t.Helper()
	dir := t.TempDir()
	for name, content := range tables {
		os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "vmailbox"), []byte(`alice@example.com example.com/alice/
bob@example.com example.com/bob
carol@example.com example.com/carol/
baduid@example.com example.com/baduid/
escape@example.com example.com/../x/
`), 0o644)
	os.WriteFile(filepath.Join(dir, "uids"), []byte("baduid@example.com 7\n"), 0o644)
	cfg, err := config.Parse(filepath.Join(dir, "vlmtpd.toml"), []byte(fmt.Sprintf(`
hostname = "mx.test"
spool_directory = "spool"
virtual_mailbox_base = "mail"
virtual_mailbox_domains = "example.com"
virtual_mailbox_maps = "texthash:vmailbox"
virtual_uid_maps = ["texthash:uids", "static:5000"]
virtual_gid_maps = "static:5000"
virtual_minimum_uid = 100
virtual_mailbox_limit = 10000
message_size_limit = 10000
%s`, extra)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, d, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.state.Load().retire() })
	return s
}

func code(r *Reply) string {
	if r == nil {
		return "accepted"
	}
	return fmt.Sprintf("%d %d.%d.%d", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2])
}

func mailbox(s string) lmtp.Address {
	a, err := lmtp.ParseMailbox(s)
	if err != nil {
		panic(err)
	}
	return a
}

// Every RCPT-time row of the reply table.
func TestRcptReplies(t *testing.T) {
	for _, tc := range []struct {
		rcpt string
		size int64
		d    fakeDeliverer
		want string
	}{
		{"alice@example.com", 0, fakeDeliverer{}, "accepted"},
		{"nobody@example.com", 0, fakeDeliverer{}, "550 5.1.1"},
		{"alice@elsewhere.test", 0, fakeDeliverer{}, "550 5.1.2"},
		{"baduid@example.com", 0, fakeDeliverer{}, "451 4.3.5"},
		{"escape@example.com", 0, fakeDeliverer{}, "451 4.3.5"},
		{"alice@example.com", 0, fakeDeliverer{permitErr: &store.Error{Status: store.NotPermitted}}, "451 4.3.0"},
		// SIZE= counts CRLF: 19,998 bytes may be 9,999 once stored.
		{"alice@example.com", 19998, fakeDeliverer{}, "accepted"},
		{"alice@example.com", 20002, fakeDeliverer{}, "552 5.2.2"},
		{"bob@example.com", 4000, fakeDeliverer{sizes: map[string]int64{"example.com/bob": 7000}}, "accepted"},
		{"bob@example.com", 8000, fakeDeliverer{sizes: map[string]int64{"example.com/bob": 7000}}, "552 5.2.2"},
		{"bob@example.com", 10, fakeDeliverer{sizeErr: &store.Error{Status: store.WorkerFailed}}, "451 4.3.0"},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.rcpt, tc.size), func(t *testing.T) {
			s := testServer(t, &tc.d, "")
			ss := s.NewSession(lmtp.ConnInfo{Hello: "client.test"})
			ss.Mail(mailbox("s@remote.test"), lmtp.MailOptions{Size: tc.size})
			if got := code(ss.Rcpt(context.Background(), mailbox(tc.rcpt), lmtp.RcptOptions{})); got != tc.want {
				t.Fatalf("RCPT %s with SIZE=%d: %s, want %s", tc.rcpt, tc.size, got, tc.want)
			}
		})
	}
}

// Every branch of Data: spool failure, loop, duplicates, each delivery
// failure class, too few results.
func TestDataReplies(t *testing.T) {
	deliveryErr := func(st store.Status) error { return &store.Error{Status: st, Op: "write", Err: errors.New("cause")} }
	for _, tc := range []struct {
		name  string
		rcpts []string
		body  io.Reader
		d     fakeDeliverer
		want  []string
	}{
		{"delivered", []string{"alice@example.com", "bob@example.com"}, strings.NewReader("Subject: x\r\n\r\nx\r\n"),
			fakeDeliverer{}, []string{"250 2.0.0", "250 2.0.0"}},
		{"duplicate", []string{"alice@example.com", "ALICE@example.com"}, strings.NewReader("x\r\n"),
			fakeDeliverer{}, []string{"250 2.0.0", "250 2.0.0"}},
		{"loop", []string{"alice@example.com", "carol@example.com"}, strings.NewReader("Received: from mx.remote.test\r\nDelivered-To: alice@example.com\r\n\r\nx\r\n"),
			fakeDeliverer{}, []string{"554 5.4.6", "250 2.0.0"}},
		{"too big", []string{"alice@example.com"}, io.MultiReader(strings.NewReader("x"), errReader{lmtp.ErrMessageTooBig}),
			fakeDeliverer{}, []string{"552 5.3.4"}},
		{"line too long", []string{"alice@example.com"}, errReader{lmtp.ErrLineTooLong},
			fakeDeliverer{}, []string{"500 5.5.2"}},
		{"client gone", []string{"alice@example.com"}, errReader{io.ErrUnexpectedEOF},
			fakeDeliverer{}, []string{"451 4.3.0"}},
		{"spool full", []string{"alice@example.com"}, errReader{&os.PathError{Op: "write", Path: "spool", Err: syscall.ENOSPC}},
			fakeDeliverer{}, []string{"452 4.3.0"}},
		{"failures", []string{"alice@example.com", "bob@example.com", "carol@example.com"}, strings.NewReader("x\r\n"),
			fakeDeliverer{errs: map[string]error{"example.com/alice/": deliveryErr(store.Locked), "example.com/bob": deliveryErr(store.OverLimit), "example.com/carol/": deliveryErr(store.NoSpace)}},
			[]string{"451 4.2.0", "552 5.2.2", "452 4.3.0"}},
		{"more failures", []string{"alice@example.com", "bob@example.com", "carol@example.com"}, strings.NewReader("x\r\n"),
			fakeDeliverer{errs: map[string]error{"example.com/alice/": deliveryErr(store.BadMailbox), "example.com/bob": deliveryErr(store.WorkerFailed), "example.com/carol/": deliveryErr(store.NotPermitted)}},
			[]string{"451 4.3.5", "451 4.3.0", "451 4.3.0"}},
		{"unclassified", []string{"alice@example.com"}, strings.NewReader("x\r\n"),
			fakeDeliverer{errs: map[string]error{"example.com/alice/": errors.New("something odd")}}, []string{"451 4.3.0"}},
		{"too few results", []string{"alice@example.com", "bob@example.com"}, strings.NewReader("x\r\n"),
			fakeDeliverer{short: true}, []string{"250 2.0.0", "451 4.3.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testServer(t, &tc.d, "")
			ss := s.NewSession(lmtp.ConnInfo{Hello: "client.test"})
			ss.Mail(mailbox("s@remote.test"), lmtp.MailOptions{})
			for _, r := range tc.rcpts {
				if rep := ss.Rcpt(context.Background(), mailbox(r), lmtp.RcptOptions{}); rep != nil {
					t.Fatalf("RCPT %s: %v", r, rep)
				}
			}
			replies := ss.Data(context.Background(), tc.body)
			var got []string
			for _, r := range replies {
				got = append(got, code(r))
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("replies %v, want %v", got, tc.want)
			}
			for _, r := range replies {
				if r.Code/100 != 2 && strings.Contains(r.Text, "cause") {
					t.Errorf("internal detail reached the client: %q", r.Text)
				}
			}
			if tc.name == "duplicate" && len(tc.d.delivered) != 1 {
				t.Errorf("%d copies for a recipient given twice, want 1", len(tc.d.delivered))
			}
		})
	}
}

// ORCPT becomes X-Original-To as virtual(8) writes it; without one, the
// RCPT address.
func TestOriginalRecipient(t *testing.T) {
	d := &fakeDeliverer{}
	s := testServer(t, d, "")
	ss := s.NewSession(lmtp.ConnInfo{})
	ss.Mail(lmtp.Address{}, lmtp.MailOptions{})
	for _, tc := range []struct{ rcpt, orcpt string }{
		{"alice@example.com", `"alice"@plus.test`},
		{"bob@example.com", ""},
		{"carol@example.com", `"a b"@x.test`},
	} {
		if rep := ss.Rcpt(context.Background(), mailbox(tc.rcpt), lmtp.RcptOptions{OriginalRecipient: tc.orcpt}); rep != nil {
			t.Fatal(rep)
		}
	}
	ss.Data(context.Background(), strings.NewReader("x\r\n"))
	want := []string{"alice@plus.test", "bob@example.com", `"a b"@x.test`}
	for i, r := range d.delivered {
		if r.OriginalRecipient != want[i] {
			t.Errorf("X-Original-To %q, want %q", r.OriginalRecipient, want[i])
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
