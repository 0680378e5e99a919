package tests

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
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
