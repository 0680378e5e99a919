package stderrlog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

// JSON durations are seconds, nested groups included, not slog's bare
// nanoseconds.
func TestJSONDurationsAreSeconds(t *testing.T) {
	var b bytes.Buffer
	New(&b, "info", "json").Info("recipient", "delay", 1500*time.Millisecond, slog.Group("delays", "fsync", 2*time.Millisecond))
	var got struct {
		Delay  float64
		Delays struct{ Fsync float64 }
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, b.String())
	}
	if got.Delay != 1.5 || got.Delays.Fsync != 0.002 {
		t.Errorf("delay %v, delays.fsync %v; want 1.5 and 0.002: %s", got.Delay, got.Delays.Fsync, b.String())
	}
}

// The recipient line as Postfix's virtual(8) writes it, orig_to included,
// delays summing write and fsync; other records keep their fields, with
// Postfix's "warning: " for warnings; under the journal no syslog header.
func TestPostfixLines(t *testing.T) {
	old := Journal
	Journal = false
	defer func() { Journal = old }()
	var b bytes.Buffer
	log := New(&b, "info", "postfix").With("session", "4D50HaaFRHXQV")
	log.Info("recipient", "id", "4D50HaaFRHXQV.1", "rcpt", "alice@example.com", "orig_to", "a@example.com", "mailbox", "example.com/alice/",
		"relay", "maildir", "code", 250, "dsn", "2.0.0", "result", "sent", "status", "delivered",
		"delay", 50*time.Millisecond, slog.Group("delays", "lookup", 10*time.Millisecond, "spool", time.Millisecond,
			"worker_wait", 10*time.Millisecond, "write", 20*time.Millisecond, "fsync", 10*time.Millisecond))
	log.Warn("reading header for loop check", "id", "4D50HaaFRHXQV.1", "error", "read: i/o error, giving up")
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	header := `^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ vlmtpd\[\d+\]: `
	for i, want := range []string{
		header + regexp.QuoteMeta("4D50HaaFRHXQV.1: to=<alice@example.com>, orig_to=<a@example.com>, relay=maildir, delay=0.05, delays=0.01/0/0.01/0.03, dsn=2.0.0, status=sent (delivered to maildir)") + "$",
		header + regexp.QuoteMeta(`4D50HaaFRHXQV.1: warning: reading header for loop check: error="read: i/o error, giving up"`) + "$",
	} {
		if i >= len(lines) || !regexp.MustCompile(want).MatchString(lines[i]) {
			t.Errorf("line %d: %q\nwant %s", i, lines, want)
		}
	}

	b.Reset()
	Journal = true
	New(&b, "info", "postfix").Info("session start", "session", "S1", "client", "local", "lhlo", "mx.test")
	if got := b.String(); got != "connect from local: session=S1, lhlo=mx.test\n" {
		t.Errorf("under the journal: %q", got)
	}
}

// After stderr failed, syslog gets a postfix-format line without our
// header (syslog writes its own) and with its level.
func TestPostfixLineToSyslog(t *testing.T) {
	old := Journal
	Journal = false
	defer func() { Journal = old }()
	var b bytes.Buffer
	New(&b, "info", "postfix").Warn("worker failed; killing it", "id", "Q1.1")
	line := postfixHeader.ReplaceAll(b.Bytes(), nil)
	if string(line) != "Q1.1: warning: worker failed; killing it\n" || levelOf(line) != slog.LevelWarn {
		t.Errorf("for syslog: %q, level %v", line, levelOf(line))
	}
}
