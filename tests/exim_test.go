package tests

// A second MTA: Exim's lmtp transport delivers one message to several
// recipients through vlmtpd, some of which fail, and Exim's own log must
// show each recipient's outcome.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// eximBinary finds Exim: $VLMTPD_EXIM, the copy .ci/install-exim unpacks
// (Exim and Postfix cannot both be installed: both are the system MTA),
// or an installed exim4.
func eximBinary(t testing.TB) string {
	t.Helper()
	return toolOrSkip(t, "Exim (run .ci/install-exim)", os.Getenv("VLMTPD_EXIM"), "/opt/exim4/usr/sbin/exim4", "/usr/sbin/exim4")
}

const eximConf = `exim_path = %[1]s
primary_hostname = mta2.test
qualify_domain = client.test
spool_directory = %[2]s/spool
log_file_path = %[2]s/log/%%slog
keep_environment =
exim_user = Debian-exim
exim_group = Debian-exim

begin routers
to_vlmtpd:
  driver = accept
  domains = ex.test
  transport = vlmtpd_lmtp
# Bounces to the test's sender go nowhere.
senders:
  driver = redirect
  domains = client.test
  data = :blackhole:

begin transports
vlmtpd_lmtp:
  driver = lmtp
  socket = %[3]s
  batch_max = 50

begin retry
* * F,1h,15m
`

// eximOutcome is one delivery line of Exim's main log.
type eximOutcome struct{ Flag, Text string }

var eximLineRE = regexp.MustCompile(`^\S+ \S+ \S+ (=>|->|\*\*|==) (\S+)(?: <([^>]+)>)? (.*)$`)

func TestEximLMTPTransport(t *testing.T) {
	rootOrSkip(t, "Exim with a private configuration (-C)")
	exim := eximBinary(t)
	eximUser, err := user.Lookup("Debian-exim")
	if err != nil {
		skipOrFail(t, "Exim's user Debian-exim: %v (run .ci/install-exim)", err)
	}
	const limit = 1_000_000
	v := startVlmtpdFor(t, vlmtpdSetup{
		Privsep: true,
		Domains: []string{"ex.test"},
		Mailboxes: map[string]string{
			"md@ex.test":   "ex.test/md/",
			"mb@ex.test":   "ex.test/mb",
			"full@ex.test": "ex.test/full",
		},
		Limit:     limit,
		SizeLimit: limit / 2,
	})
	full, fullBefore := v.overLimitMbox(t, "ex.test/full", limit)

	dir := sharedTempDir(t)
	uid, _ := strconv.Atoi(eximUser.Uid)
	gid, _ := strconv.Atoi(eximUser.Gid)
	for _, d := range []string{"spool", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, d), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "exim.conf")
	writeTestFile(t, conf, fmt.Sprintf(eximConf, exim, dir, v.Socket))

	body := "One message, four recipients, two of them failing.\nFrom here on: quoted in an mbox.\nGrüße — UTF-8.\n"
	msg := "From: Sender <sender@client.test>\nTo: md@ex.test, mb@ex.test, nobody@ex.test, full@ex.test\nSubject: via Exim\nMessage-ID: <exim-lmtp@client.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + body
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// -odf: deliver in the foreground, so the outcome is logged on return.
	cmd := exec.CommandContext(ctx, exim, "-C", conf, "-odf", "-oi", "-f", "sender@client.test",
		"md@ex.test", "mb@ex.test", "nobody@ex.test", "full@ex.test")
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.CombinedOutput()
	mainlog := readLogFile(filepath.Join(dir, "log", "mainlog"))
	if err != nil {
		t.Fatalf("exim: %v\n%s\n%s\n%s", err, out, mainlog, readLogFile(filepath.Join(dir, "log", "paniclog")))
	}
	t.Logf("Exim main log:\n%s", mainlog)

	got := map[string]eximOutcome{}
	for _, line := range strings.Split(mainlog, "\n") {
		m := eximLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		addr := m[2]
		if m[3] != "" {
			addr = m[3]
		}
		if !strings.HasSuffix(addr, "@ex.test") {
			continue // the bounce to the sender
		}
		if _, dup := got[addr]; dup {
			t.Errorf("Exim logged %s twice", addr)
		}
		got[addr] = eximOutcome{m[1], m[4]}
	}
	want := map[string]struct {
		delivered bool
		text      *regexp.Regexp
	}{
		"md@ex.test":     {true, regexp.MustCompile(`T=vlmtpd_lmtp C="250 2\.0\.0 `)},
		"mb@ex.test":     {true, regexp.MustCompile(`T=vlmtpd_lmtp C="250 2\.0\.0 `)},
		"nobody@ex.test": {false, regexp.MustCompile(`T=vlmtpd_lmtp: LMTP error after RCPT TO:<nobody@ex\.test>: 550 5\.1\.1 `)},
		"full@ex.test":   {false, regexp.MustCompile(`T=vlmtpd_lmtp: LMTP error after (RCPT TO:<full@ex\.test>|end of data): 552 5\.2\.2 `)},
	}
	for addr, w := range want {
		o, ok := got[addr]
		switch {
		case !ok:
			t.Errorf("Exim logged no outcome for %s", addr)
		case w.delivered && o.Flag != "=>" && o.Flag != "->":
			t.Errorf("%s: Exim says %s %s, want delivered", addr, o.Flag, o.Text)
		case !w.delivered && o.Flag != "**":
			t.Errorf("%s: Exim says %s %s, want a permanent failure (**)", addr, o.Flag, o.Text)
		case !w.text.MatchString(o.Text):
			t.Errorf("%s: Exim logged %q, want it to match %q", addr, o.Text, w.text)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Exim logged outcomes for %d addresses, want %d", len(got), len(want))
	}

	for _, box := range []string{"md", "mb"} {
		b := storedBox{Path: v.mailbox("ex.test/" + box), Mbox: box == "mb", Want: []wantMessage{{
			MessageID: "exim-lmtp@client.test",
			Headers:   map[string]string{"Delivered-To": box + "@ex.test", "Return-Path": "<sender@client.test>", "Subject": "via Exim"},
			Body:      []byte(body),
		}}}
		checkReadBack(t, "the mailbox files", b, readStored(t, b))
	}
	if after, _ := os.ReadFile(full); !bytes.Equal(after, fullBefore) {
		t.Errorf("the mbox over its limit changed: %d bytes, was %d", len(after), len(fullBefore))
	}
}
