// Runs in: every process.

package stderrlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The postfix format writes the lines an administrator knows from
// Postfix's mail log, so that their greps, pflogsumm-style parsers and
// fail2ban-style filters read vlmtpd's too:
//
//	QUEUEID: to=<rcpt>, orig_to=<orcpt>, relay=maildir, delay=0.05, delays=a/b/c/d, dsn=2.0.0, status=sent (delivered to maildir)
//
// The server's records are recognised by their message (the vocabulary
// below, logged by server/session.go); any other record becomes
// "[ID: ][warning: |error: ]message: key=value, ...". Each line starts
// with a syslog header ("Dec  1 22:00:00 host vlmtpd[1234]: "), except when
// stderr is the systemd journal, which adds its own.
const (
	eventRecipient = "recipient"         // one recipient's outcome after DATA
	eventRefused   = "recipient refused" // one recipient refused at RCPT
	eventMessage   = "message"           // a message received: from, size, nrcpt, message_id
	eventStart     = "session start"
	eventEnd       = "session end"
)

// Journal says stderr is the systemd journal (JOURNAL_STREAM names it),
// so the postfix format leaves the syslog header to journald. A worker,
// which starts with an empty environment, is told by its front.
var Journal = journalStream()

// journalStream reports whether fd 2 is the stream JOURNAL_STREAM
// ("device:inode") names, as systemd.exec(5) says to check.
func journalStream() bool {
	v := os.Getenv("JOURNAL_STREAM")
	if v == "" {
		return false
	}
	var st unix.Stat_t
	if unix.Fstat(2, &st) != nil {
		return false
	}
	return v == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// postfixHeader matches the syslog header of a postfix-format line.
var postfixHeader = regexp.MustCompile(`^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ vlmtpd\[\d+\]: `)

type postfixHandler struct {
	w      io.Writer
	level  slog.Leveler
	header func(time.Time) string
	attrs  []slog.Attr // from WithAttrs, keys qualified by their groups
	group  string      // "a.b." from WithGroup
	mu     *sync.Mutex
}

// newPostfixHandler writes to w, each line in one Write.
func newPostfixHandler(w io.Writer, level slog.Leveler) *postfixHandler {
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	pid := os.Getpid()
	journal := Journal
	header := func(t time.Time) string {
		if journal {
			return ""
		}
		return fmt.Sprintf("%s %s vlmtpd[%d]: ", t.Format(time.Stamp), host, pid)
	}
	return &postfixHandler{w: w, level: level, header: header, mu: &sync.Mutex{}}
}

func (h *postfixHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *postfixHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		c.attrs = appendFlat(c.attrs, h.group, a)
	}
	return &c
}

func (h *postfixHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group = h.group + name + "."
	return &c
}

// appendFlat adds a, groups flattened into dotted keys.
func appendFlat(out []slog.Attr, prefix string, a slog.Attr) []slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			out = appendFlat(out, p, g)
		}
		return out
	}
	if a.Key == "" {
		return out
	}
	a.Key = prefix + a.Key
	return append(out, a)
}

// record is one record's attributes by key, in order.
type record struct {
	attrs []slog.Attr
	used  map[string]bool
}

func (r *record) get(key string) (slog.Value, bool) {
	for i := len(r.attrs) - 1; i >= 0; i-- {
		if r.attrs[i].Key == key {
			r.used[key] = true
			return r.attrs[i].Value, true
		}
	}
	return slog.Value{}, false
}

func (r *record) str(key string) string {
	v, ok := r.get(key)
	if !ok {
		return ""
	}
	return v.String()
}

func (r *record) seconds(key string) string {
	v, ok := r.get(key)
	if !ok || v.Kind() != slog.KindDuration {
		return "0"
	}
	return delayString(v.Duration())
}

// delayString is a delay as Postfix logs it: seconds, at most two decimals,
// trailing zeros dropped ("0.05", "0", "12.3").
func delayString(d time.Duration) string {
	s := strconv.FormatFloat(d.Seconds(), 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func (h *postfixHandler) Handle(_ context.Context, r slog.Record) error {
	rec := &record{attrs: append([]slog.Attr(nil), h.attrs...), used: map[string]bool{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs = appendFlat(rec.attrs, h.group, a)
		return true
	})
	id := rec.str("id")
	session := rec.str("session")
	if id == "" {
		id = session
	}
	var lines []string
	switch r.Message {
	case eventRecipient:
		var b strings.Builder
		fmt.Fprintf(&b, "%s: to=<%s>, ", id, rec.str("rcpt"))
		if o := rec.str("orig_to"); o != "" {
			fmt.Fprintf(&b, "orig_to=<%s>, ", o)
		}
		relay := rec.str("relay")
		if relay == "" {
			relay = "none"
		}
		status, text := rec.str("result"), rec.str("status")
		if status == "sent" {
			text = "delivered to " + relay
		}
		fmt.Fprintf(&b, "relay=%s, delay=%s, delays=%s/%s/%s/%s, dsn=%s, status=%s (%s)", relay, rec.seconds("delay"),
			rec.seconds("delays.lookup"), rec.seconds("delays.spool"), rec.seconds("delays.worker_wait"),
			delayString(durationOf(rec, "delays.write")+durationOf(rec, "delays.fsync")),
			rec.str("dsn"), status, oneLine(text))
		lines = append(lines, b.String())
	case eventRefused:
		lines = append(lines, fmt.Sprintf("%s: reject: RCPT from %s: %s %s <%s>: %s; from=<%s> to=<%s> proto=LMTP helo=<%s>",
			id, rec.str("client"), rec.str("code"), rec.str("dsn"), rec.str("rcpt"), oneLine(rec.str("status")),
			rec.str("from"), rec.str("rcpt"), rec.str("lhlo")))
	case eventMessage:
		lines = append(lines, fmt.Sprintf("%s: client=%s", id, rec.str("client")))
		if m := rec.str("message_id"); m != "" {
			lines = append(lines, fmt.Sprintf("%s: message-id=%s", id, m))
		}
		lines = append(lines, fmt.Sprintf("%s: from=<%s>, size=%s, nrcpt=%s (queue active)", id, rec.str("from"), rec.str("size"), rec.str("nrcpt")))
	case eventStart:
		lines = append(lines, fmt.Sprintf("connect from %s: session=%s%s", rec.str("client"), session, rest(rec, "client")))
	case eventEnd:
		lines = append(lines, fmt.Sprintf("disconnect from %s: session=%s%s", rec.str("client"), session, rest(rec, "client")))
	default:
		var b strings.Builder
		if id != "" {
			b.WriteString(id + ": ")
		}
		switch {
		case r.Level >= slog.LevelError:
			b.WriteString("error: ")
		case r.Level >= slog.LevelWarn:
			b.WriteString("warning: ")
		}
		b.WriteString(oneLine(r.Message))
		if more := rest(rec); more != "" {
			b.WriteString(":" + strings.TrimPrefix(more, ","))
		}
		lines = append(lines, b.String())
	}
	header := h.header(r.Time)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range lines {
		if _, err := io.WriteString(h.w, header+l+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func durationOf(rec *record, key string) time.Duration {
	if v, ok := rec.get(key); ok && v.Kind() == slog.KindDuration {
		return v.Duration()
	}
	return 0
}

// rest renders the attributes not used yet (skipping the keys given, and
// the ids already in the line) as ", key=value" pairs.
func rest(rec *record, skip ...string) string {
	for _, k := range append(skip, "id", "session") {
		rec.used[k] = true
	}
	var b bytes.Buffer
	for _, a := range rec.attrs {
		if rec.used[a.Key] {
			continue
		}
		fmt.Fprintf(&b, ", %s=%s", a.Key, quoteValue(a.Value))
	}
	return b.String()
}

// quoteValue quotes a value that would otherwise run into the next field.
func quoteValue(v slog.Value) string {
	var s string
	if v.Kind() == slog.KindDuration {
		s = delayString(v.Duration()) + "s"
	} else {
		s = v.String()
	}
	if s == "" || strings.ContainsAny(s, " ,;\"\\") || strings.IndexFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// oneLine keeps free text on its line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
