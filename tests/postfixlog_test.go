package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Regular expressions of pflogsumm 1.1.5 (pflogsumm.pl, Jim Seymour's
// Postfix log summarizer, as shipped by Debian's pflogsumm package), the
// ones it matches the text after "QUEUEID: " with. Quoted verbatim.
var (
	// pflogsumm.pl: a received message's sender and size.
	pflogsummFrom = regexp.MustCompile(`from=<([^>]*)>, size=(\d+)`)
	// pflogsumm.pl: one recipient's delivery, deferral or bounce.
	pflogsummTo = regexp.MustCompile(`to=<([^>]*)>, (?:orig_to=<[^>]*>, )?relay=([^,]+), (?:conn_use=[^,]+, )?delay=([^,]+), (?:delays=[^,]+, )?(?:dsn=[^,]+, )?status=(\S+)(.*)$`)
	// pflogsumm.pl: the reason of a deferral, and of a bounce.
	pflogsummDeferred = regexp.MustCompile(`, status=deferred \(([^\)]+)`)
	pflogsummBounced  = regexp.MustCompile(`, status=bounced \((.+)\)`)
)

// ourHeader is the syslog header vlmtpd writes when stderr is not the
// journal, and the queue id after it.
var ourHeader = regexp.MustCompile(`^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ vlmtpd\[\d+\]: (?:(\S+): )?`)

// TestPostfixLogFormat runs a server with log_format = "postfix", sends
// the mix of outcomes of the metrics test and reads its log with
// pflogsumm's expressions: every outcome is found with the right status,
// the deferral's reason carries the id the line starts with, each message
// has its from/size line, and the refusal at RCPT carries the transaction.
func TestPostfixLogFormat(t *testing.T) {
	in := StartInstance(t, Options{
		Tables: map[string]string{"vmailbox": metricsMailboxes},
		Config: `log_format = "postfix"`,
	})
	deliverMetricsMix(t, in)
	in.Stop(t)
	logs := in.Logs()

	status := map[string]int{}
	var froms, connects, disconnects int
	var messageID bool
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		h := ourHeader.FindStringSubmatch(line)
		if h == nil {
			t.Errorf("line without the syslog header: %q", line)
			continue
		}
		qid, text := h[1], line[len(h[0]):]
		switch {
		case strings.HasPrefix(text, "connect from local: session="):
			connects++
		case strings.HasPrefix(text, "disconnect from local: session="):
			disconnects++
		case text == "message-id=<m1@remote.test>":
			messageID = true
		}
		if m := pflogsummFrom.FindStringSubmatch(text); m != nil {
			froms++
			if m[2] != strconv.Itoa(len(sampleBody)) && m[2] != strconv.Itoa(len(mixLooped)) && m[2] != strconv.Itoa(len(mixWithID)) {
				t.Errorf("size %s in %q", m[2], line)
			}
		}
		m := pflogsummTo.FindStringSubmatch(text)
		if m == nil {
			if strings.Contains(text, "to=<") && !strings.Contains(text, "reject: RCPT") {
				t.Errorf("pflogsumm would not read: %q", line)
			}
			continue
		}
		status[m[1]+" "+m[4]]++
		switch m[4] {
		case "sent":
			if m[5] != " (delivered to "+m[2]+")" {
				t.Errorf("sent line: %q", line)
			}
		case "deferred":
			r := pflogsummDeferred.FindStringSubmatch(text)
			if r == nil || !strings.HasSuffix(r[1], "("+qid) {
				t.Errorf("deferral reason %q does not carry the queue id %s: %q", r, qid, line)
			}
		case "bounced":
			if r := pflogsummBounced.FindStringSubmatch(text); r == nil || !strings.Contains(r[1], "mail forwarding loop") {
				t.Errorf("bounce reason %q: %q", r, line)
			}
		}
	}
	want := map[string]int{"alice@example.com sent": 2, "bob@example.com sent": 1, "dave@example.com deferred": 1, "alice@example.com bounced": 1}
	for k, n := range want {
		if status[k] != n {
			t.Errorf("%s: %d lines, want %d (all: %v)", k, status[k], n, status)
		}
	}
	if len(status) != len(want) || froms != 3 || connects != 2 || disconnects != 2 || !messageID {
		t.Errorf("outcomes %v, from lines %d, connect %d, disconnect %d, message-id line %v", status, froms, connects, disconnects, messageID)
	}
	// The refusal at RCPT: Postfix's reject line, under the transaction id.
	if !regexp.MustCompile(`(?m)vlmtpd\[\d+\]: (\S+)\.1: reject: RCPT from local: 550 5\.1\.1 <nobody@example\.com>: unknown user; from=<sender@remote\.test> to=<nobody@example\.com> proto=LMTP helo=<client\.test>$`).MatchString(logs) {
		t.Errorf("no reject line for nobody@example.com:\n%s", logs)
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs)
	}
}

// TestPflogsummReadsJournalLines is the oracle: Debian's pflogsumm
// summarises a log of vlmtpd's postfix-format lines. The server's stderr
// is marked as the journal (JOURNAL_STREAM names it, as systemd does), so
// it writes no header of its own; the test adds the one rsyslog writes for
// the journal with the unit's SyslogIdentifier=vlmtpd/virtual, the
// NAME/SERVICE form pflogsumm --syslog-name=vlmtpd selects lines by.
func TestPflogsummReadsJournalLines(t *testing.T) {
	pflogsumm := toolOrSkip(t, "pflogsumm (Debian package pflogsumm)", "/usr/sbin/pflogsumm", "pflogsumm")
	if pflogsumm == "" {
		return
	}
	stream, err := os.CreateTemp(t.TempDir(), "journal")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(stream.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	in := StartInstance(t, Options{
		Tables: map[string]string{"vmailbox": metricsMailboxes},
		Config: `log_format = "postfix"`,
		Stderr: stream,
		Env:    []string{fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino)},
	})
	deliverMetricsMix(t, in)
	in.Stop(t)
	written, err := os.ReadFile(stream.Name())
	if err != nil {
		t.Fatal(err)
	}
	var syslog strings.Builder
	header := time.Now().Format(time.Stamp) + " mx vlmtpd/virtual[4242]: "
	for _, line := range strings.Split(strings.TrimSpace(string(written)), "\n") {
		if ourHeader.MatchString(line) {
			t.Fatalf("a header on stderr marked as the journal: %q", line)
		}
		syslog.WriteString(header + line + "\n")
	}
	logFile := filepath.Join(t.TempDir(), "mail.log")
	writeTestFile(t, logFile, syslog.String())
	out, err := exec.Command(pflogsumm, "--syslog-name=vlmtpd", logFile).CombinedOutput()
	if err != nil {
		t.Fatalf("pflogsumm: %v\n%s", err, out)
	}
	// Delivered bytes: the two recipients of the first message and the
	// last message, by their from=, size= lines.
	delivered := strconv.Itoa(2*len(sampleBody) + len(mixWithID))
	for _, want := range []string{`(?m)^\s+3\s+delivered$`, `(?m)^\s+1\s+deferred\s+\(1\s+deferrals\)$`, `(?m)^\s+1\s+bounced$`,
		`(?m)^\s+` + delivered + `\s+bytes delivered$`} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("pflogsumm's summary lacks %s:\n%s\nlog:\n%s", want, out, syslog.String())
		}
	}
}
