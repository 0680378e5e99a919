package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
	"github.com/vlmtpd/vlmtpd/server/lmtp"
	"github.com/vlmtpd/vlmtpd/store"
)

// fakeSMTP is a line-level SMTP server: it records each transaction's
// commands and data, and answers a command with a scripted reply where
// one is set (by the command's first word).
type fakeSMTP struct {
	ln      net.Listener
	replies map[string]string // "RCPT" → "550 5.1.1 no"
	silent  bool              // never greet
	noUTF8  bool              // EHLO does not offer SMTPUTF8

	mu    sync.Mutex
	conns int
	cmds  []string
	data  []string
}

func startFakeSMTP(t *testing.T, network, addr string, f *fakeSMTP) *fakeSMTP {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeSMTP) serve(c net.Conn) {
	defer c.Close()
	f.mu.Lock()
	f.conns++
	f.mu.Unlock()
	if f.silent {
		io.Copy(io.Discard, c)
		return
	}
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "220 fake ESMTP\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		f.mu.Lock()
		f.cmds = append(f.cmds, line)
		rep, scripted := f.replies[verb]
		f.mu.Unlock()
		if scripted {
			fmt.Fprintf(c, "%s\r\n", rep)
			continue
		}
		switch verb {
		case "EHLO":
			if f.noUTF8 {
				fmt.Fprintf(c, "250-fake\r\n250-8BITMIME\r\n250 SIZE 100000\r\n")
			} else {
				fmt.Fprintf(c, "250-fake\r\n250-8BITMIME\r\n250-SIZE 100000\r\n250 SMTPUTF8\r\n")
			}
		case "DATA":
			fmt.Fprintf(c, "354 go on\r\n")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			f.mu.Lock()
			f.data = append(f.data, b.String())
			f.mu.Unlock()
			fmt.Fprintf(c, "250 2.0.0 queued\r\n")
		case "QUIT":
			fmt.Fprintf(c, "221 bye\r\n")
			return
		default:
			fmt.Fprintf(c, "250 ok\r\n")
		}
	}
}

func (f *fakeSMTP) got() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...), append([]string(nil), f.data...)
}

// spoolMsg is a message in a file, as the spool holds it (LF line ends).
func spoolMsg(t *testing.T, sender, body string) *store.Message {
	t.Helper()
	p := filepath.Join(t.TempDir(), "spool")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &store.Message{Sender: sender, Body: f, Size: int64(len(body)), ID: "T1"}
}

const redirectHead = "X-Sieve-Redirected-From: alice@example.com\nDelivered-To: alice@example.com\n"

// A redirect goes out over SMTP as the worker composed it: its head, then
// the spool from the offset, CRLF line ends, dots stuffed, the original
// envelope sender, BODY=8BITMIME and SIZE= as offered; a vacation reply
// with MAIL FROM:<>. Over a UNIX-domain socket too.
func TestSubmitSMTP(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr, host := "127.0.0.1:0", ""
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "smtpd.sock")
			}
			f := startFakeSMTP(t, network, addr, &fakeSMTP{})
			if network == "unix" {
				host = "unix:" + addr
			} else {
				host = "inet:" + f.ln.Addr().String()
			}
			sb := &submitter{host: host, helo: "mx.test", timeout: 10 * time.Second}
			body := "Subject: hi\n\n.leading dot\nline two\n"
			msg := spoolMsg(t, "s@example.org", body)
			red := store.Submission{Redirect: true, Sender: "s@example.org", Rcpt: "elsewhere@example.net", Head: []byte(redirectHead)}
			vac := store.Submission{Rcpt: "s@example.org", Head: []byte("Subject: Auto: hi\nAuto-Submitted: auto-replied\n\naway\n"), BodyFrom: -1}
			for _, s := range []store.Submission{red, vac} {
				if err := checkSubmission(s, msg); err != nil {
					t.Fatal(err)
				}
				if err := sb.submit(context.Background(), s, msg); err != nil {
					t.Fatal(err)
				}
			}
			cmds, data := f.got()
			want := []string{"EHLO mx.test", fmt.Sprintf("MAIL FROM:<s@example.org> BODY=8BITMIME SIZE=%d", len(redirectHead)+len(body)),
				"RCPT TO:<elsewhere@example.net>", "DATA", "QUIT",
				"EHLO mx.test", fmt.Sprintf("MAIL FROM:<> BODY=8BITMIME SIZE=%d", len(vac.Head)), "RCPT TO:<s@example.org>", "DATA", "QUIT"}
			if strings.Join(cmds, "|") != strings.Join(want, "|") {
				t.Errorf("commands:\n%q\nwant\n%q", cmds, want)
			}
			wantData := []string{strings.ReplaceAll(redirectHead+strings.Replace(body, "\n.", "\n..", 1), "\n", "\r\n"),
				"Subject: Auto: hi\r\nAuto-Submitted: auto-replied\r\n\r\naway\r\n"}
			if len(data) != 2 || data[0] != wantData[0] || data[1] != wantData[1] {
				t.Errorf("data:\n%q\nwant\n%q", data, wantData)
			}
		})
	}
}

// With editheader the head replaces the original header: only the spool
// from the body's offset follows it.
func TestSubmitEditedHeader(t *testing.T) {
	f := startFakeSMTP(t, "tcp", "127.0.0.1:0", &fakeSMTP{})
	sb := &submitter{host: "inet:" + f.ln.Addr().String(), helo: "mx.test", timeout: 10 * time.Second}
	body := "X-Spam: yes\nSubject: hi\n\nthe body\n"
	msg := spoolMsg(t, "", body)
	s := store.Submission{Redirect: true, Rcpt: "a@example.net", Head: []byte(redirectHead + "Subject: hi\n\n"), BodyFrom: int64(strings.Index(body, "the body"))}
	if err := sb.submit(context.Background(), s, msg); err != nil {
		t.Fatal(err)
	}
	cmds, data := f.got()
	if len(cmds) < 2 || !strings.HasPrefix(cmds[1], "MAIL FROM:<> ") {
		t.Errorf("commands %q", cmds)
	}
	if want := strings.ReplaceAll(redirectHead+"Subject: hi\n\nthe body\n", "\n", "\r\n"); len(data) != 1 || data[0] != want {
		t.Errorf("data %q, want %q", data, want)
	}
}

// Every failure is an error, bounded in time: a refusal at any step, a
// closed port, a server that never greets, an SMTPUTF8 address the
// server cannot take.
func TestSubmitSMTPFailures(t *testing.T) {
	msg := spoolMsg(t, "s@example.org", "Subject: x\n\nx\n")
	red := store.Submission{Redirect: true, Sender: "s@example.org", Rcpt: "a@example.net", Head: []byte(redirectHead)}
	for _, tc := range []struct {
		name string
		f    *fakeSMTP
		s    store.Submission
		want string
	}{
		{"rcpt refused", &fakeSMTP{replies: map[string]string{"RCPT": "550 5.1.1 no such user"}}, red, "RCPT TO: server said 550 5.1.1 no such user"},
		{"mail deferred", &fakeSMTP{replies: map[string]string{"MAIL": "451 4.3.0 try later"}}, red, "MAIL FROM: server said 451 4.3.0 try later"},
		{"data refused", &fakeSMTP{replies: map[string]string{"DATA": "554 5.6.0 no"}}, red, "DATA: server said 554 5.6.0 no"},
		{"ehlo and helo refused", &fakeSMTP{replies: map[string]string{"EHLO": "500 no", "HELO": "500 no"}}, red, "EHLO"},
		{"never greets", &fakeSMTP{silent: true}, red, "EHLO: "},
		{"SMTPUTF8 not offered", &fakeSMTP{noUTF8: true},
			store.Submission{Redirect: true, Sender: "s@example.org", Rcpt: "jos\u00e9@example.net", Head: []byte(redirectHead)}, "MAIL FROM: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeSMTP(t, "tcp", "127.0.0.1:0", tc.f)
			sb := &submitter{host: "inet:" + f.ln.Addr().String(), helo: "mx.test", timeout: time.Second}
			start := time.Now()
			err := sb.submit(context.Background(), tc.s, msg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "submission_host inet:") {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	sb := &submitter{host: "inet:" + closed, helo: "mx.test", timeout: time.Second}
	if err := sb.submit(context.Background(), red, msg); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("closed port: %v", err)
	}
}

// sendmail_path is run as -i -f SENDER -- RCPT with the composed message
// on stdin, <> for the null sender; a failing one is an error with its
// output.
func TestSubmitSendmail(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	sm := filepath.Join(dir, "sendmail")
	os.WriteFile(sm, []byte("#!/bin/sh\n{ echo \"ARGS $*\"; cat; echo END; } >> "+log+"\n"), 0o755)
	sb := &submitter{sendmail: sm, timeout: 10 * time.Second}
	body := "Subject: hi\n\nbody\n"
	msg := spoolMsg(t, "s@example.org", body)
	red := store.Submission{Redirect: true, Sender: "s@example.org", Rcpt: "a@example.net", Head: []byte(redirectHead)}
	vac := store.Submission{Rcpt: "s@example.org", Head: []byte("Subject: Auto\n\naway\n"), BodyFrom: -1}
	for _, s := range []store.Submission{red, vac} {
		if err := sb.submit(context.Background(), s, msg); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(log)
	want := "ARGS -i -f s@example.org -- a@example.net\n" + redirectHead + body + "END\nARGS -i -f <> -- s@example.org\nSubject: Auto\n\naway\nEND\n"
	if string(b) != want {
		t.Errorf("sendmail got:\n%s\nwant:\n%s", b, want)
	}
	os.WriteFile(sm, []byte("#!/bin/sh\necho 'postdrop: queue unavailable' >&2\nexit 75\n"), 0o755)
	if err := sb.submit(context.Background(), red, msg); err == nil || !strings.Contains(err.Error(), "queue unavailable") {
		t.Errorf("failing sendmail: %v", err)
	}
}

// The front does not take a worker's word for the envelope.
func TestCheckSubmission(t *testing.T) {
	msg := spoolMsg(t, "s@example.org", "x\n")
	for _, s := range []store.Submission{
		{Redirect: true, Sender: "other@example.org", Rcpt: "a@example.net"},
		{Redirect: true, Sender: "s@example.org", Rcpt: "-oi@example.net"},
		{Redirect: true, Sender: "s@example.org", Rcpt: "a@example.net\r\nRCPT TO:<b@x>"},
		{Redirect: true, Sender: "s@example.org", Rcpt: "a@example.net", BodyFrom: 3},
		{Redirect: true, Sender: "s@example.org", Rcpt: ""},
		{Sender: "s@example.org", Rcpt: "s@example.org", Head: []byte("x"), BodyFrom: -1},
		{Rcpt: "s@example.org", Head: []byte("x"), BodyFrom: 0},
	} {
		if err := checkSubmission(s, msg); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}

// outboundDeliverer is a TimedDeliverer whose deliveries ask for
// submissions; it records each call's recipients.
type outboundDeliverer struct {
	fakeDeliverer
	out     store.Outbound
	keepErr error // for NoSieve deliveries
	calls   [][]store.Recipient
}

func (d *outboundDeliverer) DeliverTimed(ctx context.Context, msg *store.Message, rcpts []store.Recipient) ([]error, []store.Timing, []store.Outbound) {
	d.calls = append(d.calls, rcpts)
	errs := d.Deliver(ctx, msg, rcpts)
	outs := make([]store.Outbound, len(rcpts))
	for i, r := range rcpts {
		if r.NoSieve {
			errs[i] = d.keepErr
		} else {
			outs[i] = d.out
		}
	}
	return errs, make([]store.Timing, len(rcpts)), outs
}

// The front submits after the delivery; a redirect that fails is kept by
// delivering the recipient again with NoSieve, unless the worker kept the
// message already (redirect :copy + keep: no second copy); a failed
// vacation reply is only logged; a keep that fails is a 4xx. More
// redirects than sieve_max_redirects are refused and count as failed.
func TestSubmitAllKeepsFailedRedirects(t *testing.T) {
	f := startFakeSMTP(t, "tcp", "127.0.0.1:0", &fakeSMTP{replies: map[string]string{"RCPT": "451 4.3.0 later"}})
	ok := startFakeSMTP(t, "tcp", "127.0.0.1:0", &fakeSMTP{})
	red := func(to string) store.Submission {
		return store.Submission{Redirect: true, Sender: "s@remote.test", Rcpt: to, Head: []byte(redirectHead)}
	}
	vac := store.Submission{Rcpt: "s@remote.test", Head: []byte("Subject: a\n\nb\n"), BodyFrom: -1}
	for _, tc := range []struct {
		name      string
		host      string
		out       store.Outbound
		keepErr   error
		wantCalls int
		want      string
	}{
		{"redirect fails", f.ln.Addr().String(), store.Outbound{Submissions: []store.Submission{red("a@x.test")}}, nil, 2, "250 2.0.0"},
		{"redirect fails, already kept", f.ln.Addr().String(), store.Outbound{Kept: true, Submissions: []store.Submission{red("a@x.test")}}, nil, 1, "250 2.0.0"},
		{"vacation fails", f.ln.Addr().String(), store.Outbound{Submissions: []store.Submission{vac}}, nil, 1, "250 2.0.0"},
		{"keep fails", f.ln.Addr().String(), store.Outbound{Submissions: []store.Submission{red("a@x.test")}},
			&store.Error{Status: store.Locked, Op: "lock"}, 2, "451 4.2.0"},
		{"redirect sent", ok.ln.Addr().String(), store.Outbound{Submissions: []store.Submission{red("a@x.test"), vac}}, nil, 1, "250 2.0.0"},
		{"too many redirects", ok.ln.Addr().String(), store.Outbound{Submissions: []store.Submission{red("a@x.test"), red("b@x.test")}}, nil, 2, "250 2.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &outboundDeliverer{out: tc.out, keepErr: tc.keepErr}
			s := testServer(t, d, "submission_host = \"inet:"+tc.host+"\"\nsieve_max_redirects = 1\n")
			ss := s.NewSession(lmtp.ConnInfo{Hello: "client.test"})
			ss.Mail(mailbox("s@remote.test"), lmtp.MailOptions{})
			if rep := ss.Rcpt(context.Background(), mailbox("alice@example.com"), lmtp.RcptOptions{}); rep != nil {
				t.Fatal(rep)
			}
			reps := ss.Data(context.Background(), strings.NewReader("Subject: x\r\n\r\nx\r\n"))
			if len(reps) != 1 || code(reps[0]) != tc.want {
				t.Fatalf("replies %v, want %s", reps, tc.want)
			}
			if len(d.calls) != tc.wantCalls {
				t.Fatalf("%d deliveries, want %d", len(d.calls), tc.wantCalls)
			}
			if tc.wantCalls == 2 && (!d.calls[1][0].NoSieve || d.calls[1][0].Path != "example.com/alice/") {
				t.Errorf("second delivery %+v, want the implicit keep (NoSieve)", d.calls[1])
			}
		})
	}
	if _, data := ok.got(); len(data) != 3 { // "redirect sent": 2, "too many": 1
		t.Errorf("%d messages submitted, want 3", len(data))
	}
}

// Postfix's sendmail is recognised through links; a script is not.
func TestPostfixSendmail(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "sendmail")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec /usr/lib/sendmail \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if PostfixSendmail(script) || PostfixSendmail(filepath.Join(dir, "missing")) {
		t.Error("a script or a missing file taken for Postfix's sendmail")
	}
	const real = "/usr/sbin/sendmail"
	if b, err := os.ReadFile(real); err != nil || !strings.Contains(string(b), "Postfix") {
		testutil.SkipOrFail(t, "no Postfix sendmail at %s (Debian package postfix)", real)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if !PostfixSendmail(real) || !PostfixSendmail(link) {
		t.Errorf("%s not recognised", real)
	}
}

// Once the transport cannot be reached (here: a server that never
// greets), the message's other submissions fail at once rather than each
// waiting as long; both recipients' messages are kept.
func TestSubmitAllTransportDown(t *testing.T) {
	f := startFakeSMTP(t, "tcp", "127.0.0.1:0", &fakeSMTP{silent: true})
	red := store.Submission{Redirect: true, Sender: "s@remote.test", Rcpt: "a@x.test", Head: []byte(redirectHead)}
	d := &outboundDeliverer{out: store.Outbound{Submissions: []store.Submission{red, red}}}
	s := testServer(t, d, "submission_host = \"inet:"+f.ln.Addr().String()+"\"\n")
	s.state.Load().submit.timeout = 300 * time.Millisecond
	ss := s.NewSession(lmtp.ConnInfo{Hello: "client.test"})
	ss.Mail(mailbox("s@remote.test"), lmtp.MailOptions{})
	for _, r := range []string{"alice@example.com", "carol@example.com"} {
		if rep := ss.Rcpt(context.Background(), mailbox(r), lmtp.RcptOptions{}); rep != nil {
			t.Fatal(rep)
		}
	}
	start := time.Now()
	reps := ss.Data(context.Background(), strings.NewReader("Subject: x\r\n\r\nx\r\n"))
	if len(reps) != 2 || code(reps[0]) != "250 2.0.0" || code(reps[1]) != "250 2.0.0" {
		t.Fatalf("replies %v", reps)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v: every submission waited", d)
	}
	f.mu.Lock()
	n := f.conns
	f.mu.Unlock()
	if n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	if len(d.calls) != 2 || len(d.calls[1]) != 2 || !d.calls[1][0].NoSieve || !d.calls[1][1].NoSieve {
		t.Errorf("deliveries %+v, want the keep for both recipients in one call", d.calls)
	}
}

// submissionCounts is an Observer that counts submissions by kind and
// result ("redirect sent").
type submissionCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *submissionCounts) ObservePhase(string, time.Duration)          {}
func (c *submissionCounts) ObserveLookup(string, string, time.Duration) {}
func (c *submissionCounts) ObserveSubmission(kind, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[kind+" "+result]++
}

// Every submission a script asked for is counted once, by kind and
// result: sent when the MTA accepted it (a real SMTP exchange), failed
// when the port is closed (the redirect, then the vacation reply not
// tried), refused here (beyond sieve_max_redirects) or not accepted.
func TestSubmissionObserved(t *testing.T) {
	ok := startFakeSMTP(t, "tcp", "127.0.0.1:0", &fakeSMTP{})
	refusing := startFakeSMTP(t, "tcp", "127.0.0.1:0", &fakeSMTP{replies: map[string]string{"RCPT": "550 5.1.1 no"}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	red := store.Submission{Redirect: true, Sender: "s@remote.test", Rcpt: "a@x.test", Head: []byte(redirectHead)}
	vac := store.Submission{Rcpt: "s@remote.test", Head: []byte("Subject: a\n\nb\n"), BodyFrom: -1}
	for _, tc := range []struct {
		name string
		host string
		subs []store.Submission
		want map[string]int
	}{
		{"sent", ok.ln.Addr().String(), []store.Submission{red, vac}, map[string]int{"redirect sent": 1, "vacation sent": 1}},
		{"closed port", closed, []store.Submission{red, vac}, map[string]int{"redirect failed": 1, "vacation failed": 1}},
		{"not accepted", refusing.ln.Addr().String(), []store.Submission{vac}, map[string]int{"vacation failed": 1}},
		{"beyond sieve_max_redirects", ok.ln.Addr().String(), []store.Submission{red, red}, map[string]int{"redirect sent": 1, "redirect failed": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &outboundDeliverer{out: store.Outbound{Submissions: tc.subs}}
			s := testServer(t, d, "submission_host = \"inet:"+tc.host+"\"\nsieve_max_redirects = 1\n")
			obs := &submissionCounts{n: map[string]int{}}
			s.SetObserver(obs)
			ss := s.NewSession(lmtp.ConnInfo{Hello: "client.test"})
			ss.Mail(mailbox("s@remote.test"), lmtp.MailOptions{})
			if rep := ss.Rcpt(context.Background(), mailbox("alice@example.com"), lmtp.RcptOptions{}); rep != nil {
				t.Fatal(rep)
			}
			if reps := ss.Data(context.Background(), strings.NewReader("Subject: x\r\n\r\nx\r\n")); len(reps) != 1 || code(reps[0]) != "250 2.0.0" {
				t.Fatalf("replies %v", reps)
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if fmt.Sprint(obs.n) != fmt.Sprint(tc.want) {
				t.Errorf("counted %v, want %v", obs.n, tc.want)
			}
		})
	}
	// What counted as sent reached the server: "sent" 2, "beyond" 1.
	if _, data := ok.got(); len(data) != 3 {
		t.Errorf("%d messages submitted, want 3", len(data))
	}
}

// A non-ASCII address goes with SMTPUTF8 on MAIL when the server offers it.
func TestSubmitSMTPUTF8(t *testing.T) {
	msg := spoolMsg(t, "s@example.org", "Subject: x\n\nx\n")
	f := startFakeSMTP(t, "tcp", "127.0.0.1:0", &fakeSMTP{})
	sb := &submitter{host: "inet:" + f.ln.Addr().String(), helo: "mx.test", timeout: 5 * time.Second}
	s := store.Submission{Redirect: true, Sender: "s@example.org", Rcpt: "jos\u00e9@example.net", Head: []byte(redirectHead)}
	if err := sb.submit(context.Background(), s, msg); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var mail string
	for _, c := range f.cmds {
		if strings.HasPrefix(c, "MAIL FROM:") {
			mail = c
		}
	}
	if !strings.Contains(mail, "SMTPUTF8") {
		t.Errorf("MAIL %q lacks SMTPUTF8; commands %q", mail, f.cmds)
	}
}
