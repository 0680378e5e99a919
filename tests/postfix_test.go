package tests

// Postfix, unchanged, delivering through vlmtpd: a private Postfix with
// virtual_transport = lmtp:unix:<vlmtpd's socket> takes a few hundred
// messages over SMTP, and its own log must show every recipient's outcome
// with the expected DSN, its lmtp client reusing connections, and each
// mailbox holding exactly the expected messages.

import (
	"bytes"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// pfExpect is what Postfix must log for one recipient of one message.
type pfExpect struct{ Status, DSN string }

func TestPostfixDeliversThroughVlmtpd(t *testing.T) {
	t.Run("single-user", func(t *testing.T) { postfixThroughVlmtpd(t, false, false) })
	t.Run("privsep", func(t *testing.T) {
		rootOrSkip(t, "vlmtpd's privilege separation")
		postfixThroughVlmtpd(t, true, false)
	})
	// Debian's own master.cf: lmtp chrooted into the queue directory, so
	// vlmtpd listens on private/vlmtpd there (lmtp:unix:private/vlmtpd).
	t.Run("privsep-chrooted-lmtp", func(t *testing.T) {
		rootOrSkip(t, "vlmtpd's privilege separation")
		postfixThroughVlmtpd(t, true, true)
	})
}

// postfixThroughVlmtpd runs the whole exchange with vlmtpd in single-user
// mode or, as deployed, started as root with privilege separation; with
// chroot, Postfix's lmtp runs chrooted as Debian ships it.
func postfixThroughVlmtpd(t *testing.T, privsep, chroot bool) {
	const limit = 1_000_000
	main := map[string]string{"virtual_mailbox_domains": "pf.test, catch.test"}
	var pf *postfixInstance
	socket := ""
	if chroot {
		// Postfix first: it makes the queue's private/ that vlmtpd's
		// root parent puts the socket into.
		main["virtual_mailbox_maps"] = "static:checked-by-vlmtpd"
		main["virtual_transport"] = "lmtp:unix:private/vlmtpd"
		pf = startPostfix(t, main, true)
		socket = filepath.Join(pf.QueueDir, "private", "vlmtpd")
	}
	v := startVlmtpdFor(t, vlmtpdSetup{
		Privsep: privsep,
		Socket:  socket,
		Domains: []string{"pf.test", "catch.test"},
		Mailboxes: map[string]string{
			"md@pf.test":   "pf.test/md/",
			"mb@pf.test":   "pf.test/mb",
			"ext@pf.test":  "pf.test/ext/",
			"dup@pf.test":  "pf.test/dup/",
			"full@pf.test": "pf.test/full",
			"low@pf.test":  "pf.test/low/",
			"@catch.test":  "catch.test/all/",
		},
		UIDs:      map[string]int{"low@pf.test": 50},
		Limit:     limit,
		SizeLimit: limit / 2,
	})
	// An mbox already over virtual_mailbox_limit.
	full, fullBefore := v.overLimitMbox(t, "pf.test/full", limit)

	if !chroot {
		main["virtual_mailbox_maps"] = "texthash:" + filepath.Join(v.Dir, "vmailbox")
		main["virtual_transport"] = "lmtp:unix:" + v.Socket
		pf = startPostfix(t, main, false)
	}

	// Recipients per message: every kind of mailbox and outcome, some
	// messages with several recipients, one naming a recipient twice.
	const n = 300
	type message struct {
		id    string
		rcpts []string
		body  string
	}
	msgs := make([]message, n)
	for i := range msgs {
		var r []string
		switch i % 6 {
		case 0:
			r = []string{"md@pf.test"}
		case 1:
			r = []string{"mb@pf.test"}
		case 2:
			r = []string{fmt.Sprintf("ext+%c@pf.test", 'a'+i%3)}
		case 3:
			r = []string{fmt.Sprintf("u%d@catch.test", i)}
		case 4:
			r = []string{"md@pf.test", "mb@pf.test", "ext@pf.test", "nobody@pf.test"}
		case 5:
			r = []string{"dup@pf.test", "md@pf.test", "dup@pf.test"}
		}
		switch i % 50 {
		case 7:
			r = append(r, "full@pf.test")
		case 8:
			r = append(r, "low@pf.test")
		}
		msgs[i] = message{
			id:    fmt.Sprintf("pf%03d.%d@client.test", i, time.Now().UnixNano()),
			rcpts: r,
			body: fmt.Sprintf("Message %d for %s.\nFrom here on this line is quoted in an mbox.\n"+
				"Grüße aus Köln, 日本語, ✉ — 8-bit UTF-8.\n.\n..leading dots\n%s\n", i, strings.Join(r, ", "), strings.Repeat("filler ", i%40)),
		}
	}
	expect := func(rcpt string) pfExpect {
		switch rcpt {
		case "nobody@pf.test":
			return pfExpect{"bounced", "5.1.1"}
		case "full@pf.test":
			return pfExpect{"bounced", "5.2.2"}
		case "low@pf.test":
			return pfExpect{"deferred", "4.3.5"}
		}
		return pfExpect{"sent", "2.0.0"}
	}

	// Submit over SMTP on four connections at once, so Postfix has a
	// backlog and caches its LMTP connections.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c, err := smtp.Dial(pf.Addr())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.Hello("client.test"); err != nil {
				errs <- err
				return
			}
			for i := w; i < n; i += 4 {
				m := msgs[i]
				if err := c.Mail("sender@client.test", &smtp.MailOptions{Body: smtp.Body8BitMIME}); err != nil {
					errs <- fmt.Errorf("MAIL for %s: %w", m.id, err)
					return
				}
				for _, r := range m.rcpts {
					if err := c.Rcpt(r, nil); err != nil {
						errs <- fmt.Errorf("RCPT %s for %s: %w", r, m.id, err)
						return
					}
				}
				wc, err := c.Data()
				if err != nil {
					errs <- err
					return
				}
				text := fmt.Sprintf("From: Sender <sender@client.test>\nTo: %s\nSubject: interop %d\nMessage-ID: <%s>\nDate: %s\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n%s",
					strings.Join(m.rcpts, ", "), i, m.id, time.Now().Format(time.RFC1123Z), m.body)
				io.WriteString(wc, strings.ReplaceAll(text, "\n", "\r\n"))
				if err := wc.Close(); err != nil {
					errs <- fmt.Errorf("DATA for %s: %w", m.id, err)
					return
				}
			}
			c.Quit()
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("SMTP submission to Postfix: %v", err)
	}

	// What Postfix must log: one outcome per distinct recipient.
	want := map[string]map[string]pfExpect{} // message-id → rcpt → outcome
	total := 0
	for _, m := range msgs {
		want[m.id] = map[string]pfExpect{}
		for _, r := range m.rcpts {
			want[m.id][r] = expect(r)
		}
		total += len(want[m.id])
	}
	var got []postfixDelivery
	var ids map[string]string
	pollUntil(t, 120*time.Second, fmt.Sprintf("%d lmtp outcomes in Postfix's log", total), func() bool {
		got, ids = pf.deliveries()
		return len(got) >= total
	})
	time.Sleep(500 * time.Millisecond) // anything extra would show up now
	got, ids = pf.deliveries()

	seen := map[string]map[string]bool{}
	reused, counts := 0, map[string]int{}
	for _, d := range got {
		id, ok := ids[d.QueueID]
		if !ok {
			t.Errorf("lmtp outcome for unknown queue id %s", d.QueueID)
			continue
		}
		w, ok := want[id][d.To]
		if !ok {
			t.Errorf("unexpected delivery of %s to %s: %s %s (%s)", id, d.To, d.Status, d.DSN, d.Reply)
			continue
		}
		if seen[id] == nil {
			seen[id] = map[string]bool{}
		}
		if seen[id][d.To] {
			t.Errorf("%s to %s logged twice: %s %s (%s)", id, d.To, d.Status, d.DSN, d.Reply)
		}
		seen[id][d.To] = true
		if d.Status != w.Status || d.DSN != w.DSN {
			t.Errorf("%s to %s: status=%s dsn=%s (%s), want status=%s dsn=%s", id, d.To, d.Status, d.DSN, d.Reply, w.Status, w.DSN)
		}
		counts[d.Status+" "+d.DSN]++
		if d.ConnUse > 1 {
			reused++
		}
	}
	if len(got) != total {
		t.Errorf("Postfix logged %d lmtp outcomes, want %d", len(got), total)
	}
	t.Logf("Postfix outcomes: %v; %d on reused connections (after an RSET probe)", counts, reused)
	if reused == 0 {
		t.Errorf("Postfix never reused an LMTP connection: no conn_use>1 in its log, so no RSET probe was answered")
	}
	problems, notes := pf.problems()
	if len(notes) > 0 {
		t.Logf("Postfix warnings:\n%s", strings.Join(notes, "\n"))
	}
	if len(problems) > 0 {
		t.Errorf("Postfix logged problems:\n%s", strings.Join(problems, "\n"))
	}

	// The mailboxes: exactly the expected messages, each once.
	type boxKey struct {
		path string
		mbox bool
	}
	boxes := map[boxKey][]wantMessage{}
	for i, m := range msgs {
		for _, r := range uniq(m.rcpts) {
			if expect(r).Status != "sent" {
				continue
			}
			var k boxKey
			switch {
			case strings.HasPrefix(r, "ext"):
				k = boxKey{"pf.test/ext", false}
			case strings.HasSuffix(r, "@catch.test"):
				k = boxKey{"catch.test/all", false}
			case r == "mb@pf.test":
				k = boxKey{"pf.test/mb", true}
			default:
				k = boxKey{"pf.test/" + strings.TrimSuffix(r, "@pf.test"), false}
			}
			boxes[k] = append(boxes[k], wantMessage{
				MessageID: m.id,
				Headers: map[string]string{
					"Delivered-To": r,
					"Return-Path":  "<sender@client.test>",
					"Subject":      fmt.Sprintf("interop %d", i),
				},
				Body: []byte(m.body),
			})
		}
	}
	var stored []storedBox
	keys := make([]boxKey, 0, len(boxes))
	for k := range boxes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].path < keys[j].path })
	for _, k := range keys {
		b := storedBox{Path: v.mailbox(k.path), Mbox: k.mbox, Want: boxes[k]}
		checkReadBack(t, "the mailbox files", b, readStored(t, b))
		checkOwnedBy(t, b.Path, v.Owner)
		stored = append(stored, b)
	}
	if _, err := os.Stat(v.mailbox("pf.test/low")); !os.IsNotExist(err) {
		t.Errorf("the mailbox of the uid below the minimum exists: %v", err)
	}
	if after, _ := os.ReadFile(full); !bytes.Equal(after, fullBefore) {
		t.Errorf("the mbox over its limit changed: %d bytes, was %d", len(after), len(fullBefore))
	}
	if t.Failed() {
		return
	}
	checkWithReaders(t, v.Owner, stored)
}

// checkOwnedBy fails unless path and everything beneath it belong to o and
// no one else may read it (Maildir files 0600, directories 0700, mboxes
// 0600).
func checkOwnedBy(t testing.TB, path string, o mailOwner) {
	t.Helper()
	err := filepath.Walk(path, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != o.UID || int(st.Gid) != o.GID {
			t.Errorf("%s is owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, o.UID, o.GID)
			return filepath.SkipAll
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: others may read it", p, fi.Mode())
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// readStored reads a mailbox's files directly: every file in a Maildir's
// new/ and cur/ (tmp/ must be empty), or every message of an mbox.
func readStored(t testing.TB, box storedBox) []readMessage {
	t.Helper()
	var raws [][]byte
	if box.Mbox {
		content, err := os.ReadFile(box.Path)
		if err != nil {
			t.Fatal(err)
		}
		// Each message without its From_ line and the empty line that
		// ends it in the mbox.
		for _, m := range mboxMessages(t, string(content)) {
			_, msg, _ := strings.Cut(m, "\n")
			raws = append(raws, []byte(strings.TrimSuffix(msg, "\n")))
		}
	} else {
		if tmp, _ := os.ReadDir(filepath.Join(box.Path, "tmp")); len(tmp) > 0 {
			t.Errorf("%s/tmp holds %d files", box.Path, len(tmp))
		}
		for _, sub := range []string{"new", "cur"} {
			ents, err := os.ReadDir(filepath.Join(box.Path, sub))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			for _, e := range ents {
				b, err := os.ReadFile(filepath.Join(box.Path, sub, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				raws = append(raws, b)
			}
		}
	}
	out := make([]readMessage, 0, len(raws))
	for _, raw := range raws {
		if bytes.Contains(raw, []byte("\r\n")) {
			t.Errorf("%s: a message holds CRLF line endings", box.Path)
		}
		m, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Errorf("%s: unparsable message: %v", box.Path, err)
			continue
		}
		var rm readMessage
		for name, values := range m.Header {
			for _, v := range values {
				rm.Headers = append(rm.Headers, [2]string{name, v})
			}
		}
		rm.Body, _ = io.ReadAll(m.Body)
		out = append(out, rm)
	}
	return out
}
