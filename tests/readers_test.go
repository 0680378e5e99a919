package tests

// Independent readers: the Maildirs and mboxes vlmtpd writes are read back
// by Python's mailbox module and Dovecot's doveadm, programs nobody on the
// team wrote, and every message must come back intact.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// wantMessage is a message as a reader must return it.
type wantMessage struct {
	MessageID string
	Headers   map[string]string // header name → value (first occurrence)
	Body      []byte            // LF line endings, as sent (unquoted)
}

// storedBox is a mailbox on disk and the messages it must hold, in any
// order, each exactly once.
type storedBox struct {
	Path string
	Mbox bool
	Want []wantMessage
}

// readMessage is what a reader returned for one message.
type readMessage struct {
	Headers [][2]string
	Body    []byte
}

func (m readMessage) header(name string) (string, bool) {
	for _, h := range m.Headers {
		if strings.EqualFold(h[0], name) {
			return h[1], true
		}
	}
	return "", false
}

// pythonReader prints every message of a Maildir or mbox as JSON, header
// values and body as base64 of the raw bytes (so 8-bit content survives).
const pythonReader = `
import base64, email, email.policy, json, mailbox, sys
fmt, path = sys.argv[1], sys.argv[2]
box = mailbox.Maildir(path, factory=None, create=False) if fmt == "maildir" else mailbox.mbox(path, factory=None, create=False)
out = []
for key in box.keys():
    raw = box.get_bytes(key)
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    hdrs = [[k, base64.b64encode(v.encode("utf-8", "surrogateescape")).decode()] for k, v in msg.raw_items()]
    body = msg.get_payload(decode=True) or b""
    out.append({"headers": hdrs, "body": base64.b64encode(body).decode()})
json.dump(out, sys.stdout)
`

func readWithPython(t testing.TB, box storedBox) []readMessage {
	t.Helper()
	py := toolOrSkip(t, "Python", "python3", "/usr/bin/python3")
	format := "maildir"
	if box.Mbox {
		format = "mbox"
	}
	cmd := exec.Command(py, "-c", pythonReader, format, box.Path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python mailbox on %s: %v\n%s", box.Path, err, stderr.String())
	}
	var raw []struct {
		Headers [][2]string
		Body    string
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("python output: %v", err)
	}
	msgs := make([]readMessage, len(raw))
	for i, r := range raw {
		for _, h := range r.Headers {
			v, err := base64.StdEncoding.DecodeString(h[1])
			if err != nil {
				t.Fatal(err)
			}
			msgs[i].Headers = append(msgs[i].Headers, [2]string{h[0], string(v)})
		}
		b, err := base64.StdEncoding.DecodeString(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i].Body = b
	}
	return msgs
}

// readWithDoveadm fetches every message with doveadm. Dovecot's indexes
// and control files go to its own temp dir, not into the mailbox.
func readWithDoveadm(t testing.TB, d *dovecotInstance, box storedBox, n int) []readMessage {
	t.Helper()
	side := filepath.Join(d.Dir, "home", fmt.Sprintf("box%d", n))
	for _, s := range []string{"index", "control", "root"} {
		if err := os.MkdirAll(filepath.Join(side, s), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	chownTree(t, side, d.Owner)
	var location string
	if box.Mbox {
		location = fmt.Sprintf("mbox:%s/root:INBOX=%s:INDEX=%s/index", side, box.Path, side)
	} else {
		location = fmt.Sprintf("maildir:%s:INDEX=%s/index:CONTROL=%s/control", box.Path, side, side)
	}
	fetch := func(format, fields string, query ...string) []byte {
		args := append([]string{"-f", format, "-c", d.Conf, "-o", "mail_location=" + location,
			"fetch", "-u", "reader@readers.test", fields}, query...)
		cmd := exec.Command(d.doveadm, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("doveadm fetch %s: %v\n%s", box.Path, err, stderr.String())
		}
		return out
	}
	var raw []struct{ UID, Hdr, Body string }
	if out := fetch("json", "uid hdr body", "all"); json.Unmarshal(out, &raw) != nil {
		t.Fatalf("doveadm output is not JSON: %.500s", out)
	}
	msgs := make([]readMessage, len(raw))
	for i, r := range raw {
		msgs[i].Headers = parseHeaderBlock(r.Hdr)
		msgs[i].Body = []byte(r.Body)
		if strings.ContainsRune(r.Body, utf8.RuneError) {
			// doveadm's JSON replaces bytes that are not UTF-8; its
			// pager format prints the body as stored, after "body:\n".
			out := fetch("pager", "body", "uid", r.UID)
			msgs[i].Body = bytes.TrimPrefix(out, []byte("body:\n"))
		}
	}
	return msgs
}

// parseHeaderBlock splits a header block into fields, unfolding nothing:
// continuation lines stay in the value with their line break.
func parseHeaderBlock(s string) [][2]string {
	var out [][2]string
	for _, line := range strings.SplitAfter(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimRight(line, "\n")
		if trimmed == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1][1] += "\n" + trimmed
			continue
		}
		name, value, ok := strings.Cut(trimmed, ":")
		if !ok {
			continue
		}
		out = append(out, [2]string{name, strings.TrimLeft(value, " \t")})
	}
	return out
}

// mboxQuoted is body as an mbox holds it: lines starting "From " get a
// ">" (the mboxo convention Postfix and vlmtpd write; readers do not undo it).
func mboxQuoted(body []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.SplitAfter(body, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("From ")) {
			b.WriteByte('>')
		}
		b.Write(line)
	}
	return b.Bytes()
}

// checkReadBack compares what a reader returned with what the box must hold.
func checkReadBack(t testing.TB, reader string, box storedBox, got []readMessage) {
	t.Helper()
	if len(got) != len(box.Want) {
		t.Errorf("%s read %d messages from %s, want %d", reader, len(got), box.Path, len(box.Want))
	}
	byID := map[string]readMessage{}
	for _, m := range got {
		id, _ := m.header("Message-ID")
		id = strings.Trim(strings.TrimSpace(id), "<>")
		if _, dup := byID[id]; dup {
			t.Errorf("%s: %s holds message-id %q twice", reader, box.Path, id)
		}
		byID[id] = m
	}
	bad := 0
	for _, w := range box.Want {
		m, ok := byID[w.MessageID]
		if !ok {
			t.Errorf("%s: %s lacks message %q", reader, box.Path, w.MessageID)
			bad++
			continue
		}
		for name, want := range w.Headers {
			if v, _ := m.header(name); v != want {
				t.Errorf("%s: %s message %q header %s = %q, want %q", reader, box.Path, w.MessageID, name, v, want)
				bad++
			}
		}
		want := w.Body
		if box.Mbox {
			want = mboxQuoted(want)
		}
		if !bytes.Equal(m.Body, want) {
			t.Errorf("%s: %s message %q body differs:\n got %q\nwant %q", reader, box.Path, w.MessageID, clipBytes(m.Body), clipBytes(want))
			bad++
		}
		if bad > 10 {
			t.Fatalf("%s: too many differences, giving up", reader)
		}
	}
}

func clipBytes(b []byte) []byte {
	if len(b) > 400 {
		return append(append([]byte{}, b[:400]...), "…"...)
	}
	return b
}

// checkWithReaders reads every box with Python's mailbox module and with
// doveadm, and checks that each returns exactly the wanted messages.
func checkWithReaders(t *testing.T, owner mailOwner, boxes []storedBox) {
	t.Helper()
	t.Run("python-mailbox", func(t *testing.T) {
		for _, b := range boxes {
			checkReadBack(t, "python mailbox", b, readWithPython(t, b))
		}
	})
	t.Run("doveadm", func(t *testing.T) {
		d := startDovecotForDoveadm(t, owner)
		for i, b := range boxes {
			checkReadBack(t, "doveadm", b, readWithDoveadm(t, d, b, i))
		}
	})
}

// readerMessages are the hard cases for a mailbox reader: From_ lines in
// the body, 8-bit UTF-8 and Latin-1 bodies, a raw UTF-8 subject
// (SMTPUTF8) and an encoded one, dot lines, a long line, an empty body.
func readerMessages() []struct {
	ID, Subject string
	Extra       string
	Body        string
} {
	long := strings.Repeat("0123456789", 99)
	return []struct {
		ID, Subject string
		Extra       string
		Body        string
	}{
		{"from-lines@readers.test", "From_ lines", "",
			"From the start of a line\nnot From here\nFrom\n>From already quoted once\n>>From twice\nFrom: looks like a header\n\nFrom after a blank line\nlast line\n"},
		{"utf8-body@readers.test", "8-bit UTF-8", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n",
			"Grüße aus Köln — 日本語のテキスト ✉\nZażółć gęślą jaźń\nFrom Zürich\n"},
		{"utf8-subject@readers.test", "Grüße aus Köln 📬", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n",
			"ünïcödé in the subject and here\n"},
		{"encoded-subject@readers.test", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "", "an RFC 2047 subject\n"},
		{"latin1@readers.test", "8-bit Latin-1", "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n",
			"caf\xe9 cr\xe8me br\xfbl\xe9e\n"},
		{"dots@readers.test", "dot lines", "", ".\n..\n. leading dot\n...\nend\n"},
		{"long-line@readers.test", "a 990-byte line", "", long + "\nshort\n"},
		{"empty-body@readers.test", "empty body", "", ""},
	}
}

// TestReadersReadWhatVlmtpdWrote delivers the hard cases over LMTP into a
// Maildir and an mbox and has Python's mailbox module and doveadm read them.
func TestReadersReadWhatVlmtpdWrote(t *testing.T) {
	v := startVlmtpdFor(t, vlmtpdSetup{
		Domains:   []string{"readers.test"},
		Mailboxes: map[string]string{"md@readers.test": "readers.test/md/", "mb@readers.test": "readers.test/mb"},
	})
	conn, err := net.Dial("unix", v.Socket)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"8BITMIME", "SMTPUTF8"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Fatalf("%s not advertised: the 8-bit messages cannot be sent", ext)
		}
	}
	var want []wantMessage
	for _, m := range readerMessages() {
		if err := c.Mail("sender@client.test", &smtp.MailOptions{Body: smtp.Body8BitMIME, UTF8: true}); err != nil {
			t.Fatalf("MAIL: %v", err)
		}
		for _, r := range []string{"md@readers.test", "mb@readers.test"} {
			if err := c.Rcpt(r, nil); err != nil {
				t.Fatalf("RCPT %s: %v", r, err)
			}
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("From: Sender <sender@client.test>\nTo: md@readers.test, mb@readers.test\nSubject: %s\nMessage-ID: <%s>\nDate: %s\nMIME-Version: 1.0\n%s\n%s",
			m.Subject, m.ID, time.Now().Format(time.RFC1123Z), m.Extra, m.Body)
		if _, err := w.Write([]byte(strings.ReplaceAll(msg, "\n", "\r\n"))); err != nil {
			t.Fatal(err)
		}
		resp, err := w.CloseWithLMTPResponse()
		if err != nil {
			t.Fatalf("message %s: %v (%v)", m.ID, err, resp)
		}
		want = append(want, wantMessage{
			MessageID: m.ID,
			Headers:   map[string]string{"Subject": m.Subject, "From": "Sender <sender@client.test>", "Return-Path": "<sender@client.test>"},
			Body:      []byte(m.Body),
		})
	}
	if err := c.Quit(); err != nil {
		t.Logf("QUIT: %v", err)
	}
	withRcpt := func(rcpt string) []wantMessage {
		out := make([]wantMessage, len(want))
		for i, w := range want {
			h := map[string]string{"Delivered-To": rcpt}
			for k, v := range w.Headers {
				h[k] = v
			}
			out[i] = wantMessage{MessageID: w.MessageID, Headers: h, Body: w.Body}
		}
		return out
	}
	checkWithReaders(t, v.Owner, []storedBox{
		{Path: v.mailbox("readers.test/md"), Want: withRcpt("md@readers.test")},
		{Path: v.mailbox("readers.test/mb"), Mbox: true, Want: withRcpt("mb@readers.test")},
	})
}
