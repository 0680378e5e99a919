package tests

// The third MTA: OpenSMTPD's lmtp action delivers through vlmtpd. OpenSMTPD
// puts Return-Path: and Delivered-To: above the message before it speaks
// LMTP, so this is also the test that vlmtpd takes that Delivered-To for
// the client's own, not for a loop, and writes no second one.

import (
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
)

// openSMTPDRoot is where .ci/install-opensmtpd unpacks Debian's package
// (it conflicts with Postfix: both are the system MTA): $VLMTPD_OPENSMTPD,
// else /opt/opensmtpd.
func openSMTPDRoot(t testing.TB) string {
	t.Helper()
	root := os.Getenv("VLMTPD_OPENSMTPD")
	if root == "" {
		root = "/opt/opensmtpd"
	}
	toolOrSkip(t, "OpenSMTPD (run .ci/install-opensmtpd)", filepath.Join(root, "usr/sbin/smtpd"))
	for _, u := range []string{"opensmtpd", "opensmtpq"} {
		if _, err := user.Lookup(u); err != nil {
			skipOrFail(t, "OpenSMTPD's user %s: %v (run .ci/install-opensmtpd)", u, err)
		}
	}
	// The mount points of startOpenSMTPD's private directories.
	for _, d := range []string{"/var/spool/smtpd", "/usr/libexec/opensmtpd", "/var/lib/opensmtpd/empty"} {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			skipOrFail(t, "OpenSMTPD's directory %s is missing (run .ci/install-opensmtpd)", d)
		}
	}
	return root
}

type openSMTPDInstance struct {
	Port int
	log  *testutil.SyncBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

// startOpenSMTPD runs smtpd in the foreground with config (a format with
// %[1]d for its SMTP port) in a mount namespace of its own: its
// compiled-in queue (/var/spool/smtpd) and control socket (/run) are
// private temp dirs there, and /usr/libexec/opensmtpd, where it runs its
// mail.lmtp from, is the unpacked package's.
func startOpenSMTPD(t testing.TB, config string) *openSMTPDInstance {
	t.Helper()
	rootOrSkip(t, "a private OpenSMTPD (mount namespace, privilege drop)")
	root := openSMTPDRoot(t)
	unshare := toolOrSkip(t, "unshare (util-linux)", "unshare")
	dir := sharedTempDir(t)
	o := &openSMTPDInstance{Port: freePort(t), log: &testutil.SyncBuffer{}, done: make(chan struct{})}
	// smtpd insists on the queue's mode, 0711, and makes the rest itself.
	for d, mode := range map[string]os.FileMode{"spool": 0o711, "run": 0o755} {
		if err := os.Mkdir(filepath.Join(dir, d), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, d), mode); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "smtpd.conf")
	writeTestFile(t, conf, fmt.Sprintf(config, o.Port))
	// -d: foreground, log to stderr; the mounts vanish with the namespace.
	script := `set -e
mount --bind "$1/spool" /var/spool/smtpd
mount --bind "$1/run" /run
mount --bind "$2/usr/libexec/opensmtpd" /usr/libexec/opensmtpd
exec "$2/usr/sbin/smtpd" -d -f "$1/smtpd.conf"`
	o.cmd = exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", dir, root)
	o.cmd.Stdout, o.cmd.Stderr = o.log, o.log
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { o.cmd.Wait(); close(o.done) }()
	t.Cleanup(func() {
		syscall.Kill(-o.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-o.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-o.cmd.Process.Pid, syscall.SIGKILL)
			<-o.done
		}
		if t.Failed() {
			t.Logf("OpenSMTPD log:\n%s", o.log.String())
		}
	})
	pollUntil(t, 15*time.Second, "OpenSMTPD to listen", func() bool {
		select {
		case <-o.done:
			t.Fatalf("OpenSMTPD exited at startup:\n%s", o.log.String())
		default:
		}
		c, err := smtp.Dial(o.Addr())
		if err != nil {
			return false
		}
		c.Quit()
		return true
	})
	return o
}

func (o *openSMTPDInstance) Addr() string { return fmt.Sprintf("127.0.0.1:%d", o.Port) }

// send injects one message over SMTP.
func (o *openSMTPDInstance) send(t testing.TB, from string, to []string, msg string) {
	t.Helper()
	if err := smtp.SendMail(o.Addr(), nil, from, to, []byte(strings.ReplaceAll(msg, "\n", "\r\n"))); err != nil {
		t.Fatalf("SMTP to OpenSMTPD: %v", err)
	}
}

// openSMTPDResult is one "delivery" log line: the outcome for one
// recipient (OpenSMTPD delivers each recipient on its own).
type openSMTPDResult struct{ Evpid, Result, Stat string }

var openSMTPDDeliveryRE = regexp.MustCompile(`\bdelivery evpid=(\S+) from=<[^>]*> to=<([^>]*)> .*\bresult="?(\w+)"? stat="?(.*?)"?$`)

// results parses the delivery outcomes logged so far, by recipient.
func (o *openSMTPDInstance) results() map[string][]openSMTPDResult {
	out := map[string][]openSMTPDResult{}
	for _, line := range strings.Split(o.log.String(), "\n") {
		if m := openSMTPDDeliveryRE.FindStringSubmatch(line); m != nil {
			out[m[2]] = append(out[m[2]], openSMTPDResult{m[1], m[3], m[4]})
		}
	}
	return out
}

// openSMTPDLMTPConf is docs/mta.md's lmtp action: every address of
// os.test is delivered as the system user nobody (mail.lmtp runs as that
// user; vlmtpd's socket is 0666 here), rcpt-to sends the original
// recipient in RCPT TO. %[1]s is vlmtpd's socket.
const openSMTPDLMTPConf = `listen on 127.0.0.1 port %%[1]d
table vusers { "@os.test" = "nobody" }
action "vl" lmtp "%[1]s" rcpt-to virtual <vusers>
match from any for domain "os.test" action "vl"
`

// openSMTPDReceived is the Received: header OpenSMTPD's smtpd puts on a
// message it takes over SMTP from the test.
const openSMTPDReceived = `Received: from localhost \(localhost \[127\.0\.0\.1\]\)\n\tby [^\n]+ \(OpenSMTPD\) with ESMTP id [0-9a-f]+(?:\n\tfor <[^>\n]+>)?;\n\t[^\n]+\n`

// checkOpenSMTPDMessage matches one stored message: exactly top, then
// OpenSMTPD's Received:, then exactly msg.
func checkOpenSMTPDMessage(t *testing.T, where, got, top, msg string) {
	t.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(top) + openSMTPDReceived + regexp.QuoteMeta(msg) + `$`)
	if !re.MatchString(got) {
		t.Errorf("%s:\n%s\nwant\n%s<OpenSMTPD's Received:>\n%s", where, got, top, msg)
	}
	for _, h := range []string{"Delivered-To", "Return-Path"} {
		head, _, _ := strings.Cut(got, "\n\n")
		if n := strings.Count("\n"+head, "\n"+h+":"); n != 1 {
			t.Errorf("%s: %d %s: headers, want exactly one", where, n, h)
		}
	}
}

func TestOpenSMTPDLMTPAction(t *testing.T) {
	rootOrSkip(t, "a private OpenSMTPD")
	openSMTPDRoot(t)
	const limit = 1_000_000
	v := startVlmtpdFor(t, vlmtpdSetup{
		Privsep: true,
		Domains: []string{"os.test"},
		Mailboxes: map[string]string{
			"md@os.test":   "os.test/md/",
			"mb@os.test":   "os.test/mb",
			"full@os.test": "os.test/full",
		},
		Limit:     limit,
		SizeLimit: limit / 2,
	})
	full, fullBefore := v.overLimitMbox(t, "os.test/full", limit)
	o := startOpenSMTPD(t, fmt.Sprintf(openSMTPDLMTPConf, v.Socket))

	const body = "One message, four recipients, two of them failing.\nFrom here on: quoted in an mbox.\n"
	const msg = "From: Sender <sender@client.test>\nTo: md@os.test, mb@os.test, nobody@os.test, full@os.test\n" +
		"Subject: via OpenSMTPD\nMessage-ID: <osd-lmtp@client.test>\nDate: Tue, 01 Dec 2026 21:00:00 +0000\n\n" + body
	o.send(t, "sender@client.test", []string{"md@os.test", "mb@os.test", "nobody@os.test", "full@os.test"}, msg)
	// A bounce: OpenSMTPD writes no Return-Path then, vlmtpd does.
	const bounce = "From: MAILER-DAEMON@client.test\nTo: md@os.test\nSubject: a bounce\nMessage-ID: <osd-bounce@client.test>\n" +
		"Date: Tue, 01 Dec 2026 21:00:01 +0000\n\nreturned\n"
	o.send(t, "", []string{"md@os.test"}, bounce)

	pollUntil(t, 60*time.Second, "OpenSMTPD to log five outcomes", func() bool {
		n := 0
		for _, rs := range o.results() {
			n += len(rs)
		}
		return n >= 5
	})
	got := o.results()
	t.Logf("OpenSMTPD's outcomes: %v", got)
	// OpenSMTPD 6.8's mail.lmtp makes every refusal a temporary failure:
	// the reply is vlmtpd's, the retrying (every few seconds at first)
	// OpenSMTPD's own (docs/mta.md). So a refused recipient may have been
	// tried more than once by now; a delivered one must be there once.
	want := map[string]struct {
		delivered int
		outcome   *regexp.Regexp
	}{
		"md@os.test":     {2, regexp.MustCompile(`^Ok Delivered$`)},
		"mb@os.test":     {1, regexp.MustCompile(`^Ok Delivered$`)},
		"nobody@os.test": {0, regexp.MustCompile(`^TempFail .*LMTP server error: 550 5\.1\.1 <nobody@os\.test> unknown user`)},
		"full@os.test":   {0, regexp.MustCompile(`^TempFail .*LMTP server error: 552 5\.2\.2 <full@os\.test> `)},
	}
	for addr, w := range want {
		rs := got[addr]
		if len(rs) == 0 || (w.delivered > 0 && len(rs) != w.delivered) {
			t.Errorf("%s: OpenSMTPD logged %d outcomes %v, want %d", addr, len(rs), rs, max(w.delivered, 1))
		}
		for _, r := range rs {
			if s := r.Result + " " + r.Stat; !w.outcome.MatchString(s) {
				t.Errorf("%s: OpenSMTPD logged %q, want it to match %q", addr, s, w.outcome)
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("OpenSMTPD logged outcomes for %v, want %d addresses", got, len(want))
	}

	// Exactly what the mailboxes hold: vlmtpd's X-Original-To above
	// OpenSMTPD's Return-Path and Delivered-To, no second of either.
	files := maildirFiles(t, v.mailbox("os.test/md"))
	if len(files) != 2 {
		t.Fatalf("os.test/md holds %d messages, want 2", len(files))
	}
	var mdMsg, mdBounce string
	for _, f := range files {
		if c := readFile(t, f); strings.Contains(c, "\nSubject: a bounce\n") {
			mdBounce = c
		} else {
			mdMsg = c
		}
		checkOwnerMode(t, f, v.Owner.UID, v.Owner.GID, 0o600)
	}
	checkOpenSMTPDMessage(t, "os.test/md", mdMsg,
		"X-Original-To: md@os.test\nReturn-Path: <sender@client.test>\nDelivered-To: md@os.test\n", msg)
	checkOpenSMTPDMessage(t, "os.test/md, the bounce", mdBounce,
		"Return-Path: <>\nX-Original-To: md@os.test\nDelivered-To: md@os.test\n", bounce)

	mbox := readFile(t, v.mailbox("os.test/mb"))
	msgs := mboxMessages(t, mbox)
	if len(msgs) != 1 {
		t.Fatalf("os.test/mb holds %d messages, want 1", len(msgs))
	}
	fromLine, stored, _ := strings.Cut(msgs[0], "\n")
	if !regexp.MustCompile(`^From sender@client\.test  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$`).MatchString(fromLine) {
		t.Errorf("os.test/mb: From_ line %q", fromLine)
	}
	checkOpenSMTPDMessage(t, "os.test/mb", strings.TrimSuffix(stored, "\n"),
		"X-Original-To: mb@os.test\nReturn-Path: <sender@client.test>\nDelivered-To: mb@os.test\n",
		strings.Replace(msg, "\nFrom here on", "\n>From here on", 1))
	checkOwnerMode(t, v.mailbox("os.test/mb"), v.Owner.UID, v.Owner.GID, 0o600)

	if after, _ := os.ReadFile(full); string(after) != string(fullBefore) {
		t.Errorf("the mbox over its limit changed: %d bytes, was %d", len(after), len(fullBefore))
	}
}

// openSMTPDRelayConf is docs/mta.md's relay form: OpenSMTPD's SMTP client
// speaking LMTP to vlmtpd's TCP listener (%[1]s).
const openSMTPDRelayConf = `listen on 127.0.0.1 port %%[1]d
action "vl" relay host "lmtp://%[1]s"
match from any for domain "os.test" action "vl"
`

// TestOpenSMTPDRelayLMTP: OpenSMTPD's relay host "lmtp://" form. With one
// recipient per message it delivers exactly once and takes vlmtpd's 5xx
// as permanent. With several, OpenSMTPD 6.8 handles one reply per read
// from the socket and takes more as "Remote host sent too much data": it
// defers the recipients whose replies came together although vlmtpd has
// delivered them, and delivers them again on the retry (docs/mta.md
// warns). The test holds OpenSMTPD's log to that account: every copy in a
// mailbox is one of OpenSMTPD's attempts that vlmtpd answered, no more.
func TestOpenSMTPDRelayLMTP(t *testing.T) {
	rootOrSkip(t, "a private OpenSMTPD")
	root := openSMTPDRoot(t)
	nsenter := toolOrSkip(t, "nsenter (util-linux)", "nsenter")
	v := startVlmtpdFor(t, vlmtpdSetup{
		Privsep:   true,
		Domains:   []string{"os.test"},
		Mailboxes: map[string]string{"a@os.test": "os.test/a/", "b@os.test": "os.test/b/"},
	})
	o := startOpenSMTPD(t, fmt.Sprintf(openSMTPDRelayConf, strings.TrimPrefix(v.Addr, "inet:")))
	for i := 0; i < 3; i++ {
		o.send(t, "sender@client.test", []string{"a@os.test"}, fmt.Sprintf("Subject: one %d\nMessage-ID: <one%d@client.test>\n\nbody\n", i, i))
	}
	o.send(t, "sender@client.test", []string{"nobody@os.test"}, "Subject: unknown\nMessage-ID: <unknown@client.test>\n\nbody\n")
	const multi = 6
	for i := 0; i < multi; i++ {
		o.send(t, "sender@client.test", []string{"a@os.test", "b@os.test"}, fmt.Sprintf("Subject: two %d\nMessage-ID: <two%d@client.test>\n\nbody\n", i, i))
	}

	// Until every envelope is final, have OpenSMTPD retry at once rather
	// than after its back-off.
	final := func() (map[string]openSMTPDResult, bool) {
		last := map[string]openSMTPDResult{}
		for _, rs := range o.results() {
			for _, r := range rs {
				last[r.Evpid] = r
			}
		}
		for _, r := range last {
			if r.Result == "TempFail" {
				return last, false
			}
		}
		return last, len(last) == 3+1+2*multi
	}
	pollUntil(t, 90*time.Second, "OpenSMTPD to finish every envelope", func() bool {
		if _, done := final(); done {
			return true
		}
		exec.Command(nsenter, "-t", strconv.Itoa(o.cmd.Process.Pid), "-m", "--", filepath.Join(root, "usr/sbin/smtpctl"), "schedule", "all").Run()
		time.Sleep(time.Second)
		return false
	})
	last, _ := final()
	// attempts[box][msgid]: OpenSMTPD's attempts that vlmtpd answered 250,
	// or whose 250 OpenSMTPD took for too much data.
	attempts := map[string]map[string]int{"a@os.test": {}, "b@os.test": {}}
	deferred := 0
	for to, rs := range o.results() {
		for _, r := range rs {
			switch {
			case to == "nobody@os.test":
				if r.Result != "PermFail" || !strings.HasPrefix(r.Stat, "550 5.1.1 <nobody@os.test> ") {
					t.Errorf("nobody@os.test: OpenSMTPD logged %s %q, want PermFail 550 5.1.1", r.Result, r.Stat)
				}
			case r.Result == "Ok" && strings.HasPrefix(r.Stat, "250 2.0.0 <"+to+"> delivered "):
				attempts[to][r.Evpid[:8]]++
			case r.Result == "TempFail" && r.Stat == "Remote host sent too much data":
				attempts[to][r.Evpid[:8]]++
				deferred++
			default:
				t.Errorf("%s: OpenSMTPD logged %s %q", to, r.Result, r.Stat)
			}
		}
	}
	for evpid, r := range last {
		if r.Result != "Ok" && r.Result != "PermFail" {
			t.Errorf("envelope %s ended %s %q", evpid, r.Result, r.Stat)
		}
	}
	t.Logf("OpenSMTPD deferred %d delivered recipients as \"too much data\" (and delivered them again)", deferred)

	idRE := regexp.MustCompile(`\(OpenSMTPD\) with ESMTP id ([0-9a-f]+)`)
	for _, box := range []string{"a", "b"} {
		stored := map[string]int{}
		for _, f := range maildirFiles(t, v.mailbox("os.test/"+box)) {
			m := idRE.FindStringSubmatch(readFile(t, f))
			if m == nil {
				t.Fatalf("%s: no OpenSMTPD Received: header", f)
			}
			stored[m[1]]++
		}
		want := attempts[box+"@os.test"]
		if len(stored) != len(want) {
			t.Errorf("os.test/%s holds copies of %d messages, OpenSMTPD delivered %d", box, len(stored), len(want))
		}
		for id, n := range want {
			if stored[id] != n {
				t.Errorf("os.test/%s: %d copies of OpenSMTPD's message %s, OpenSMTPD's log accounts for %d", box, stored[id], id, n)
			}
		}
	}
	if n := len(attempts["b@os.test"]); n != multi {
		t.Errorf("b@os.test got %d of the %d messages", n, multi)
	}
	if n := len(attempts["a@os.test"]); n != 3+multi {
		t.Errorf("a@os.test got %d of the %d messages", n, 3+multi)
	}
}
