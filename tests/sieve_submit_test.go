package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/metrics"
)

// Sieve's redirect and vacation submitted by the front, end to end with
// privilege separation (root parent, front as nobody, sandboxed workers
// with no_new_privs): to a private Postfix over SMTP (submission_host),
// through Postfix's own sendmail and set-gid postdrop (sendmail_path, the
// front without no_new_privs), and to a closed port (the message kept).

// postfixSink starts a private Postfix whose virtual(8) delivers
// example.net and example.org into Maildirs beneath the returned
// directory (elsewhere@example.net → net/elsewhere/, s@example.org →
// org/s/), so what vlmtpd submitted can be read with the envelope
// virtual(8) wrote: Return-Path (sender) and Delivered-To (recipient).
func postfixSink(t *testing.T) (*postfixInstance, string) {
	t.Helper()
	dir := sharedTempDir(t)
	box := filepath.Join(dir, "pfmail")
	if err := os.MkdirAll(box, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(box, testUID, testGID)
	writeTestFile(t, filepath.Join(dir, "vmailbox"), "elsewhere@example.net net/elsewhere/\ns@example.org org/s/\n")
	for _, d := range []string{"net", "org"} {
		os.MkdirAll(filepath.Join(box, d), 0o755)
		os.Chown(filepath.Join(box, d), testUID, testGID)
	}
	pf := startPostfix(t, map[string]string{
		"virtual_mailbox_domains": "example.net, example.org",
		"virtual_mailbox_maps":    "texthash:" + filepath.Join(dir, "vmailbox"),
		"virtual_mailbox_base":    box,
		"virtual_uid_maps":        fmt.Sprintf("static:%d", testUID),
		"virtual_gid_maps":        fmt.Sprintf("static:%d", testGID),
		"virtual_minimum_uid":     "100",
		"virtual_transport":       "virtual",
	}, false)
	return pf, box
}

// arrived waits for n messages in a Maildir Postfix delivers to and
// returns their contents.
func arrived(t *testing.T, pf *postfixInstance, md string, n int) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = got[:0]
		ents, _ := os.ReadDir(filepath.Join(md, "new"))
		for _, e := range ents {
			got = append(got, readFile(t, filepath.Join(md, "new", e.Name())))
		}
		if len(got) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) != n {
		t.Fatalf("%s has %d messages, want %d; postfix log:\n%s", md, len(got), n, tailLines(readLogFile(pf.Log), 40))
	}
	return got
}

func wantHeaders(t *testing.T, what, msg string, lines ...string) {
	t.Helper()
	head, _, _ := strings.Cut(msg, "\n\n")
	for _, l := range lines {
		if !strings.Contains("\n"+head+"\n", "\n"+l+"\n") {
			t.Errorf("%s lacks %q:\n%s", what, l, msg)
		}
	}
}

// metricsListen is a metrics_listen setting on a free port, and the
// address to scrape.
func metricsListen(t *testing.T) (config, addr string) {
	addr = fmt.Sprintf("inet:127.0.0.1:%d", freePort(t))
	return "metrics_listen = \"" + addr + "\"\n", addr
}

// wantSubmissions checks vlmtpd_sieve_submissions_total: want maps
// "kind result" to its count, and every series not in want is 0.
func wantSubmissions(t *testing.T, addr string, want map[string]float64) {
	t.Helper()
	fams, err := metrics.Scrape(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range metrics.SubmissionKinds {
		for _, result := range metrics.SubmissionResults {
			got := sample(fams, "vlmtpd_sieve_submissions_total", map[string]string{"kind": kind, "result": result})
			if w := want[kind+" "+result]; got != w {
				t.Errorf("vlmtpd_sieve_submissions_total{kind=%q,result=%q} = %v, want %v", kind, result, got, w)
			}
		}
	}
}

const redirectVacationScript = `require ["copy", "vacation"];
redirect :copy "elsewhere@example.net";
vacation :days 1 :subject "Away" "I am away until Monday.";
`

// (1) submission_host: the redirected message and the vacation reply
// reach a private Postfix's smtpd, which delivers them. The redirect has
// the original envelope sender and the new recipient, the vacation reply
// the null sender and Auto-Submitted; the :copy keeps the message once.
func TestSieveSubmitSMTPToPostfix(t *testing.T) {
	pf, box := postfixSink(t)
	listen, metricsAddr := metricsListen(t)
	in := sieveInstance(t, sieveSetup{
		scripts:    map[string]string{"example.com/alice/.dovecot.sieve": redirectVacationScript},
		privileged: true,
		config:     "submission_host = \"inet:" + pf.Addr() + "\"\n" + listen,
	})
	dr := deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, msgFrom("s@example.org", "Alice <alice@example.com>", "question", "are you there?"))
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
		t.Fatalf("replies: %v", dr)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 1 {
		t.Errorf("alice has %d messages, want 1 (redirect :copy)", n)
	}
	red := arrived(t, pf, filepath.Join(box, "net/elsewhere"), 1)[0]
	wantHeaders(t, "redirected message", red, "Return-Path: <s@example.org>", "Delivered-To: elsewhere@example.net",
		"X-Sieve-Redirected-From: alice@example.com", "Delivered-To: alice@example.com", "Subject: question")
	if !strings.Contains(red, "\nare you there?\n") {
		t.Errorf("redirected body:\n%s", red)
	}
	vac := arrived(t, pf, filepath.Join(box, "org/s"), 1)[0]
	wantHeaders(t, "vacation reply", vac, "Return-Path: <>", "Delivered-To: s@example.org", "Subject: Away")
	if !strings.Contains(vac, "Auto-Submitted: auto-replied") || !strings.Contains(vac, "I am away until Monday.") {
		t.Errorf("vacation reply:\n%s", vac)
	}
	waitLog(t, in, "sieve: redirected")
	waitLog(t, in, "sieve: vacation reply sent")
	// Postfix queued both with their envelope senders.
	if log := readLogFile(pf.Log); !strings.Contains(log, "from=<s@example.org>") || !strings.Contains(log, "from=<>") {
		t.Errorf("postfix log lacks the envelopes:\n%s", tailLines(log, 40))
	}
	// The vacation reply goes once per :days: a second message is
	// redirected again but not answered.
	deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, msgFrom("s@example.org", "alice@example.com", "again", "x"))
	arrived(t, pf, filepath.Join(box, "net/elsewhere"), 2)
	time.Sleep(time.Second)
	if ents, _ := os.ReadDir(filepath.Join(box, "org/s/new")); len(ents) != 1 {
		t.Errorf("%d vacation replies, want 1", len(ents))
	}
	wantSubmissions(t, metricsAddr, map[string]float64{"redirect sent": 2, "vacation sent": 1})
}

// (2) sendmail_path: Postfix's real sendmail, run by the front (nobody,
// without no_new_privs: the parent is started without it here), hands the
// redirect to the set-gid postdrop, which queues it for the private
// instance. postdrop accepts a configuration directory other than the
// default only if the default main.cf lists it, so vlmtpd runs in a mount
// namespace where /etc/postfix is the private instance's.
func TestSieveRedirectPostfixSendmail(t *testing.T) {
	sendmail := toolOrSkip(t, "Postfix's sendmail", "/usr/sbin/sendmail")
	unshare := toolOrSkip(t, "unshare (util-linux)", "/usr/bin/unshare")
	pf, box := postfixSink(t)
	in := sieveInstance(t, sieveSetup{
		scripts:    map[string]string{"example.com/alice/.dovecot.sieve": `redirect "elsewhere@example.net";`},
		privileged: true,
		config:     "sendmail_path = \"" + sendmail + "\"\n",
		wrap: []string{unshare, "--mount", "--propagation", "private", "/bin/sh", "-c",
			`mount --bind "$0" /etc/postfix && exec "$@"`, pf.ConfDir},
	})
	dr := deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, msgFrom("s@example.org", "alice@example.com", "fwd me", "body line"))
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
		t.Fatalf("replies: %v", dr)
	}
	red := arrived(t, pf, filepath.Join(box, "net/elsewhere"), 1)[0]
	wantHeaders(t, "redirected message", red, "Return-Path: <s@example.org>", "Delivered-To: elsewhere@example.net",
		"X-Sieve-Redirected-From: alice@example.com", "Subject: fwd me")
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 0 {
		t.Errorf("redirected message also kept (%d)", n)
	}
	if log := readLogFile(pf.Log); !strings.Contains(log, "/pickup[") || !strings.Contains(log, "uid=65534 from=<s@example.org>") {
		t.Errorf("postfix did not pick the message up from nobody's postdrop:\n%s", tailLines(log, 40))
	}
}

// (3) A submission that fails (submission_host is a closed port) never
// loses the message: the redirected one is kept in INBOX with a 250, and
// the failure is logged; redirect :copy with keep is not kept twice; a
// failed vacation reply is only logged.
func TestSieveSubmitFailureKeeps(t *testing.T) {
	rootOrSkip(t, "privilege separation")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	listen, metricsAddr := metricsListen(t)
	in := sieveInstance(t, sieveSetup{
		scripts: map[string]string{
			"example.com/alice/.dovecot.sieve": `redirect "elsewhere@example.net";`,
			"example.com/carol/.dovecot.sieve": redirectVacationScript + "keep;\n",
		},
		table:      "alice@example.com example.com/alice/.dovecot.sieve\ncarol@example.com example.com/carol/.dovecot.sieve\n",
		privileged: true,
		config:     "submission_host = \"inet:" + closed + "\"\n" + listen,
	})
	dr := deliverTo(t, in, "s@example.org", []string{"alice@example.com", "carol@example.com"},
		msgFrom("s@example.org", "alice@example.com, carol@example.com", "fwd me", "x"))
	if len(dr) != 2 || !strings.HasPrefix(dr[0], "250") || !strings.HasPrefix(dr[1], "250") {
		t.Fatalf("replies: %v", dr)
	}
	for _, who := range []string{"alice", "carol"} {
		md := filepath.Join(in.Base, "example.com", who)
		got := maildirFiles(t, md)
		if len(got) != 1 {
			t.Errorf("%s has %d messages, want 1", who, len(got))
			continue
		}
		checkOwnerMode(t, got[0], 5001, 5001, 0o600)
		if b := readFile(t, got[0]); !strings.Contains(b, "Subject: fwd me") || strings.Contains(b, "X-Sieve-Redirected-From") {
			t.Errorf("%s's kept message:\n%s", who, b)
		}
	}
	waitLog(t, in, "sieve: redirect failed, message kept")
	waitLog(t, in, "sieve: vacation reply failed")
	waitLog(t, in, "connection refused")
	// alice's redirect and carol's (after alice's, not tried), and carol's
	// vacation reply.
	wantSubmissions(t, metricsAddr, map[string]float64{"redirect failed": 2, "vacation failed": 1})
}

// Under no_new_privs (as under the unit) with Postfix's sendmail and no
// submission_host, the front says so when it loads the configuration and
// fails the redirect at once (postdrop would retry until the timeout):
// the message is kept with a 250.
func TestSieveSendmailNoNewPrivsKept(t *testing.T) {
	sendmail := toolOrSkip(t, "Postfix's sendmail", "/usr/sbin/sendmail")
	setpriv := toolOrSkip(t, "setpriv (util-linux)", "/usr/bin/setpriv")
	in := sieveInstance(t, sieveSetup{
		scripts:    map[string]string{"example.com/alice/.dovecot.sieve": `redirect "elsewhere@example.net";`},
		privileged: true,
		config:     "sendmail_path = \"" + sendmail + "\"\n",
		wrap:       []string{setpriv, "--no-new-privs"},
	})
	waitLog(t, in, "cannot queue under no_new_privs (NoNewPrivileges=yes): set submission_host")
	start := time.Now()
	dr := deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, msgFrom("s@example.org", "alice@example.com", "fwd me", "x"))
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
		t.Fatalf("replies: %v", dr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("delivery took %v", d)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 1 {
		t.Errorf("alice has %d messages, want the kept one", n)
	}
	waitLog(t, in, "sieve: redirect failed, message kept")
}
