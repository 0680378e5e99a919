package tests

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

const sampleBody = "From: Sender <sender@remote.test>\nSubject: test\n\nFirst line\nFrom the start of a line\n>From already quoted\n.leading dot\nlast line\n"

func TestDeliveryContentOwnerMode(t *testing.T) {
	in := StartInstance(t, Options{})
	c := in.Dial(t)
	c.lhlo()
	rr, dr := c.txn("<sender@remote.test> BODY=8BITMIME",
		[]string{"<Alice@Example.com>", "<bob@example.com>"}, sampleBody)
	if len(rr) != 2 || len(dr) != 2 {
		t.Fatalf("replies %v %v, want 2 and 2", rr, dr)
	}
	for i, rcpt := range []string{"Alice@Example.com", "bob@example.com"} {
		if !strings.HasPrefix(rr[i], "250 2.1.5 ") || !strings.Contains(rr[i], "<"+rcpt+">") {
			t.Errorf("RCPT reply %d: %q", i, rr[i])
		}
		if !regexp.MustCompile(`^250 2\.0\.0 <` + regexp.QuoteMeta(rcpt) + `> delivered \(\S+\)$`).MatchString(dr[i]) {
			t.Errorf("delivery reply %d: %q", i, dr[i])
		}
	}

	// Maildir: exact content, LF endings, mode, owner, ,S= size, no tmp file.
	md := filepath.Join(in.Base, "example.com/alice")
	files := maildirFiles(t, md)
	if len(files) != 1 {
		t.Fatalf("alice has %d messages, want 1", len(files))
	}
	want := "Return-Path: <sender@remote.test>\nX-Original-To: Alice@Example.com\nDelivered-To: Alice@Example.com\n" + sampleBody
	got := readFile(t, files[0])
	if got != want {
		t.Errorf("maildir message:\n%q\nwant\n%q", got, want)
	}
	if m := regexp.MustCompile(`,S=(\d+)$`).FindStringSubmatch(files[0]); m == nil || m[1] != strconv.Itoa(len(want)) {
		t.Errorf("file name %s lacks ,S=%d", filepath.Base(files[0]), len(want))
	}
	checkOwnerMode(t, files[0], in.UID, in.GID, 0o600)
	for _, d := range []string{md, md + "/new", md + "/cur", md + "/tmp"} {
		checkOwnerMode(t, d, in.UID, in.GID, 0o700)
	}

	// mbox: From_ line, trace headers in Postfix's order, mboxo quoting,
	// a blank line at the end.
	mbox := filepath.Join(in.Base, "example.com/bob")
	content := readFile(t, mbox)
	checkOwnerMode(t, mbox, in.UID, in.GID, 0o600)
	fromLine := regexp.MustCompile(`^From sender@remote\.test  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n`)
	if !fromLine.MatchString(content) {
		t.Fatalf("mbox From_ line wrong: %.80q", content)
	}
	rest := fromLine.ReplaceAllString(content, "")
	wantMbox := "Return-Path: <sender@remote.test>\nX-Original-To: bob@example.com\nDelivered-To: bob@example.com\n" +
		strings.Replace(sampleBody, "\nFrom the start", "\n>From the start", 1) + "\n"
	if rest != wantMbox {
		t.Errorf("mbox content:\n%q\nwant\n%q", rest, wantMbox)
	}
	if strings.Contains(content, "\r") {
		t.Error("mbox holds CR characters")
	}
}

func TestNullSenderAndOriginalRecipient(t *testing.T) {
	in := StartInstance(t, Options{})
	c := in.Dial(t)
	c.lhlo()
	_, dr := c.txn("<>", []string{"<bob@example.com> ORCPT=rfc822;Bob+2Borig@example.com NOTIFY=FAILURE"}, "Subject: bounce\n\nbody\n")
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250 2.0.0 <bob@example.com> ") {
		t.Fatalf("replies %v", dr)
	}
	content := readFile(t, filepath.Join(in.Base, "example.com/bob"))
	if !strings.HasPrefix(content, "From MAILER-DAEMON  ") {
		t.Errorf("null sender From_ line: %.60q", content)
	}
	for _, h := range []string{"\nReturn-Path: <>\n", "\nX-Original-To: Bob+orig@example.com\n", "\nDelivered-To: bob@example.com\n"} {
		if !strings.Contains(content, h) {
			t.Errorf("mbox lacks %q:\n%s", h, content)
		}
	}
}

// TestReplyTable walks the rows of DESIGN.md's reply table that a single
// configuration can produce.
func TestReplyTable(t *testing.T) {
	in := StartInstance(t, Options{
		Tables: map[string]string{
			"vmailbox": defaultMailboxes + `
baduid@example.com     example.com/baduid/
junkuid@example.com    example.com/junkuid/
gidzero@example.com    example.com/gidzero/
escape@example.com     example.com/../../escape/
ctrl@example.com       example.com/a` + "\x01" + `b/
nodir@example.com      nodir/sub/mbox
locked@example.com     example.com/locked
small@example.com      example.com/small
`,
			"uids": "baduid@example.com 10\njunkuid@example.com 5000x\n",
			"gids": "gidzero@example.com 0\n",
		},
		Config: fmt.Sprintf(`
virtual_uid_maps = ["texthash:uids", "static:%[1]d"]
virtual_gid_maps = ["texthash:gids", "static:%[2]d"]
message_size_limit = 100000
virtual_mailbox_limit = 100000
deliver_lock_attempts = 1
deliver_lock_delay = "1s"
max_recipients = 20
`, testMailOwner(t).UID, testMailOwner(t).GID),
		Prepare: func(dir string) {
			base := filepath.Join(dir, "mail", "example.com")
			os.MkdirAll(base, 0o755)
			// A held dotlock: the lock attempt times out.
			os.WriteFile(filepath.Join(base, "locked"), nil, 0o600)
			os.WriteFile(filepath.Join(base, "locked.lock"), nil, 0o600)
			// An mbox already near virtual_mailbox_limit.
			os.WriteFile(filepath.Join(base, "small"), []byte("From x  Thu Jan  1 00:00:00 1970\n"+strings.Repeat("x", 99000)+"\n\n"), 0o600)
			chownTree(t, filepath.Join(dir, "mail"), testMailOwner(t))
		},
	})
	c := in.Dial(t)
	c.lhlo()

	rcptRows := []struct{ rcpt, want string }{
		{"<nobody@example.com>", "550 5.1.1 <nobody@example.com> "},
		{"<alice@elsewhere.test>", "550 5.1.2 <alice@elsewhere.test> "},
		{"<baduid@example.com>", "451 4.3.5 <baduid@example.com> "},
		{"<junkuid@example.com>", "451 4.3.5 <junkuid@example.com> "},
		{"<gidzero@example.com>", "451 4.3.5 <gidzero@example.com> "},
		{"<escape@example.com>", "451 4.3.5 <escape@example.com> "},
		{"<ctrl@example.com>", "451 4.3.5 <ctrl@example.com> "},
		{"<alice@example.com>", "250 2.1.5 "},
	}
	var rcpts []string
	for _, r := range rcptRows {
		rcpts = append(rcpts, r.rcpt)
	}
	rr, dr := c.txn("<sender@remote.test>", rcpts, "Subject: rows\n\nbody\n")
	for i, r := range rcptRows {
		if !strings.HasPrefix(rr[i], r.want) {
			t.Errorf("RCPT %s: got %q, want %q…", r.rcpt, rr[i], r.want)
		}
	}
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250 2.0.0 <alice@example.com>") {
		t.Errorf("DATA replies %v", dr)
	}

	// Failures found while delivering: each recipient gets its own reply,
	// and the others still get their mail.
	c.Send("RSET\r\n")
	c.Expect("250")
	rr, dr = c.txn("<sender@remote.test>", []string{"<locked@example.com>", "<nodir@example.com>", "<carol@example.com>", "<small@example.com>"},
		"Subject: data-time\n\n"+strings.Repeat("y", 2000)+"\n")
	for _, r := range rr {
		if !strings.HasPrefix(r, "250") {
			t.Fatalf("RCPT replies %v", rr)
		}
	}
	wantData := []string{"451 4.2.0 <locked@example.com>", "451 4.2.0 <nodir@example.com>", "250 2.0.0 <carol@example.com>", "552 5.2.2 <small@example.com>"}
	for i, w := range wantData {
		if i >= len(dr) || !strings.HasPrefix(dr[i], w) {
			t.Errorf("DATA reply %d: got %v, want %q…", i, dr, w)
		}
	}
	if fi, _ := os.Stat(filepath.Join(in.Base, "example.com/small")); fi == nil || fi.Size() != int64(len("From x  Thu Jan  1 00:00:00 1970\n")+99000+2) {
		t.Errorf("over-limit mbox was changed")
	}
	if fi, _ := os.Stat(filepath.Join(in.Base, "example.com/locked")); fi == nil || fi.Size() != 0 {
		t.Errorf("locked mbox was written")
	}
	if len(maildirFiles(t, filepath.Join(in.Base, "example.com/carol"))) != 1 {
		t.Errorf("carol did not get her message")
	}

	// SIZE= decides at MAIL (message limit) and at RCPT (mailbox limit).
	c.Send("RSET\r\nMAIL FROM:<s@remote.test> SIZE=200000\r\n")
	c.Expect("250")
	c.Expect("552 5.3.4")
	c.Send("MAIL FROM:<s@remote.test> SIZE=5000\r\nRCPT TO:<small@example.com>\r\nRCPT TO:<carol@example.com>\r\nRSET\r\n")
	c.Expect("250")
	c.Expect("552 5.2.2 <small@example.com>")
	c.Expect("250")
	c.Expect("250")

	// A body over message_size_limit without SIZE=: 552 5.3.4 per
	// recipient, nothing written, and the session stays in sync.
	before := len(maildirFiles(t, filepath.Join(in.Base, "example.com/carol")))
	_, dr = c.txn("<s@remote.test>", []string{"<carol@example.com>", "<alice@example.com>"}, strings.Repeat("z", 150000)+"\n")
	if len(dr) != 2 {
		t.Errorf("oversized DATA replies %v, want one per recipient", dr)
	}
	for _, r := range dr {
		if !strings.HasPrefix(r, "552 5.3.4") {
			t.Errorf("oversized DATA reply %q", r)
		}
	}
	if after := len(maildirFiles(t, filepath.Join(in.Base, "example.com/carol"))); after != before {
		t.Errorf("oversized message was delivered")
	}
	c.Send("NOOP\r\n")
	c.Expect("250")

	// Forwarding loop: a Delivered-To below a Received names the recipient.
	_, dr = c.txn("<s@remote.test>", []string{"<alice@example.com>", "<carol@example.com>"},
		"Received: by mx.test\nDelivered-To: Alice@example.com\nSubject: loop\n\nbody\n")
	if len(dr) != 2 || !strings.HasPrefix(dr[0], "554 5.4.6 <alice@example.com>") || !strings.HasPrefix(dr[1], "250 2.0.0 <carol@example.com>") {
		t.Errorf("loop replies %v", dr)
	}

	// Too many recipients.
	var many []string
	for i := 0; i < 21; i++ {
		many = append(many, "<alice@example.com>")
	}
	rr, dr = c.txn("<s@remote.test>", many, "Subject: many\n\nbody\n")
	if !strings.HasPrefix(rr[19], "250") || !strings.HasPrefix(rr[20], "452 4.5.3") || len(dr) != 20 {
		t.Errorf("20th and 21st recipient: %q, %q; %d DATA replies, want 20", rr[19], rr[20], len(dr))
	}

	// Control characters in addresses never reach a table or a header.
	c.Send("RSET\r\nMAIL FROM:<a\x01b@remote.test>\r\n")
	c.Expect("250")
	if r := c.Reply(); !strings.HasPrefix(r, "501 5.1.7 ") {
		t.Errorf("MAIL with a control character: %q, want 501 5.1.7", r)
	}
}

func TestLookupErrorDefers(t *testing.T) {
	in := StartInstance(t, Options{Config: `virtual_mailbox_maps = ["texthash:vmailbox", "socketmap:unix:/nonexistent/vlmtpd-test.sock:vmailbox"]`})
	c := in.Dial(t)
	c.lhlo()
	// alice is found in the first table; nobody reaches the broken one.
	c.Send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<nobody@example.com>\r\n")
	c.Expect("250")
	c.Expect("250")
	if r := c.Expect("451 4.3.5 <nobody@example.com>"); strings.Contains(r, "nonexistent") {
		t.Errorf("reply leaks the internal error: %q", r)
	}
}

func TestPipeliningDuplicatesAndRset(t *testing.T) {
	in := StartInstance(t, Options{})
	c := in.Dial(t)
	// Everything in one write, including the body and the next
	// transaction after RSET.
	c.Send("LHLO client.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<ALICE@example.com>\r\n" +
		"RCPT TO:<nobody@example.com>\r\nRCPT TO:<carol@example.com>\r\nDATA\r\n")
	c.Expect("250")
	c.Expect("250")
	c.Expect("250")
	c.Expect("250")
	c.Expect("550 5.1.1")
	c.Expect("250")
	c.Expect("354")
	c.Send(wire("Subject: one\n\nbody one\n") + ".\r\nRSET\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<carol@example.com>\r\nDATA\r\n")
	// One reply per accepted RCPT, duplicates included, in RCPT order.
	c.Expect("250 2.0.0 <alice@example.com>")
	c.Expect("250 2.0.0 <ALICE@example.com>")
	c.Expect("250 2.0.0 <carol@example.com>")
	c.Expect("250") // RSET
	c.Expect("250")
	c.Expect("250")
	c.Expect("354")
	c.Send(wire("Subject: two\n\nbody two\n") + ".\r\nQUIT\r\n")
	c.Expect("250 2.0.0 <carol@example.com>")
	c.Expect("221")

	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 1 {
		t.Errorf("duplicate recipient got %d copies, want 1", n)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/carol"))); n != 2 {
		t.Errorf("carol has %d messages, want 2", n)
	}
}

func TestBDATAndLongLines(t *testing.T) {
	in := StartInstance(t, Options{})
	c := in.Dial(t)
	c.lhlo()
	long := strings.Repeat("L", 2048)
	huge := strings.Repeat("H", 200000)
	part1 := "Subject: chunked\r\n\r\n" + long + "\r\n"
	part2 := huge + "\r\nend\r\n"
	c.Send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n")
	c.Expect("250")
	c.Expect("250")
	c.Expect("250")
	c.Send(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1))
	c.Expect("250")
	c.Send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(part2), part2))
	c.Expect("250 2.0.0 <alice@example.com>")
	c.Expect("250 2.0.0 <bob@example.com>")

	files := maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))
	if len(files) != 1 {
		t.Fatalf("alice has %d messages", len(files))
	}
	want := "Subject: chunked\n\n" + long + "\n" + huge + "\nend\n"
	if got := readFile(t, files[0]); !strings.HasSuffix(got, want) {
		t.Errorf("BDAT message body differs (len %d)", len(got))
	}

	// A 2 KB line through DATA is delivered, not bounced.
	_, dr := c.txn("<s@remote.test>", []string{"<carol@example.com>"}, "Subject: long\n\n"+long+"\n")
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
		t.Fatalf("long line: %v", dr)
	}
	got := readFile(t, maildirFiles(t, filepath.Join(in.Base, "example.com/carol"))[0])
	if !strings.Contains(got, "\n"+long+"\n") {
		t.Error("long line was altered")
	}
}

func TestGoSMTPClientOverTCP(t *testing.T) {
	in := StartInstance(t, Options{})
	conn, err := net.Dial("tcp", in.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := smtp.NewClientLMTP(conn)
	defer cl.Close()
	if err := cl.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8", "DSN"} {
		if ok, _ := cl.Extension(ext); !ok {
			t.Errorf("extension %s not advertised", ext)
		}
	}
	if err := cl.Mail("sender@remote.test", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"alice@example.com", "any+thing@example.org", "bob+ext@example.com"} {
		if err := cl.Rcpt(r, nil); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\n\nGrüße aus Köln — 8-bit body\n")
	resp, err := w.CloseWithLMTPResponse()
	if err != nil {
		var le smtp.LMTPDataError
		if errors.As(err, &le) {
			t.Fatalf("per-recipient errors: %v", le)
		}
		t.Fatal(err)
	}
	if len(resp) != 3 {
		t.Errorf("got %d responses, want 3", len(resp))
	}
	for rcpt, r := range resp {
		if !strings.Contains(r.StatusText, "<"+rcpt+"> delivered") {
			t.Errorf("response for %s: %q", rcpt, r.StatusText)
		}
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 1 {
		t.Errorf("alice got %d messages", n)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.org/catchall"))); n != 1 {
		t.Errorf("catch-all got %d messages", n)
	}
	if !strings.Contains(readFile(t, filepath.Join(in.Base, "example.com/bob")), "Grüße aus Köln") {
		t.Error("8-bit body not kept in bob's mbox (user+ext)")
	}
}

func TestAllowedNetworksRefusesTCP(t *testing.T) {
	in := StartInstance(t, Options{Config: `allowed_networks = ["192.0.2.0/24"]`})
	conn, err := net.Dial("tcp", in.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 200)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "554 5.7.1") {
		t.Errorf("greeting to a client outside allowed_networks: %q", buf[:n])
	}
	// The unix socket is not subject to allowed_networks.
	c := in.Dial(t)
	c.lhlo()
}

// TestConcurrentMbox: 20 clients × 50 messages into one mbox, once per
// lock method, parse back into exactly 1000 intact messages.
func TestConcurrentMbox(t *testing.T) {
	for _, method := range []string{"fcntl", "flock", "dotlock"} {
		t.Run(method, func(t *testing.T) {
			// 20 clients at once into one mbox is the point here, so no
			// recipient_concurrency_limit.
			in := StartInstance(t, Options{Config: fmt.Sprintf("virtual_mailbox_lock = [%q]\nrecipient_concurrency_limit = 0", method)})
			const clients, perClient = 20, 50
			runClients(t, in, clients, perClient, "bob@example.com")
			msgs := mboxMessages(t, readFile(t, filepath.Join(in.Base, "example.com/bob")))
			if len(msgs) != clients*perClient {
				t.Fatalf("mbox holds %d messages, want %d", len(msgs), clients*perClient)
			}
			seen := map[string]bool{}
			for _, m := range msgs {
				id := regexp.MustCompile(`(?m)^Subject: msg (\d+-\d+)\n`).FindStringSubmatch(m)
				if id == nil {
					t.Fatalf("message without id: %.300q", m)
				}
				quoted := strings.ReplaceAll(bodyFor(id[1]), "\nFrom ", "\n>From ")
				if !strings.HasSuffix(m, "\n"+quoted+"\n") {
					t.Fatalf("damaged message: %.300q", m)
				}
				if seen[id[1]] {
					t.Fatalf("message %s twice", id[1])
				}
				seen[id[1]] = true
			}
		})
	}
}

// TestManyMaildirDeliveries: 1000 deliveries give 1000 unique files.
func TestManyMaildirDeliveries(t *testing.T) {
	in := StartInstance(t, Options{})
	runClients(t, in, 10, 100, "alice@example.com")
	files := maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))
	if len(files) != 1000 {
		t.Fatalf("%d files, want 1000", len(files))
	}
	seen := map[string]bool{}
	for _, f := range files {
		id := regexp.MustCompile(`(?m)^Subject: msg (\d+-\d+)$`).FindStringSubmatch(readFile(t, f))
		if id == nil || seen[id[1]] {
			t.Fatalf("%s: missing or repeated message id", f)
		}
		seen[id[1]] = true
	}
}

func bodyFor(id string) string {
	return "body of " + id + "\nFrom here on\n" + strings.Repeat("line "+id+"\n", 20)
}

// runClients sends perClient messages to rcpt on each of clients
// concurrent sessions. The sessions use go-smtp's client, which returns
// errors, so that no goroutine but the test's calls t.Fatal.
func runClients(t *testing.T, in *Instance, clients, perClient int, rcpt string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for cl := 0; cl < clients; cl++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sendMessages(in.Socket, cl, perClient, rcpt); err != nil {
				errs <- fmt.Errorf("client %d: %w", cl, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func sendMessages(socket string, cl, n int, rcpt string) error {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return err
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	for m := 0; m < n; m++ {
		id := fmt.Sprintf("%d-%d", cl, m)
		if err := c.Mail("s@remote.test", nil); err != nil {
			return fmt.Errorf("message %s: MAIL: %w", id, err)
		}
		if err := c.Rcpt(rcpt, nil); err != nil {
			return fmt.Errorf("message %s: RCPT: %w", id, err)
		}
		w, err := c.Data()
		if err != nil {
			return fmt.Errorf("message %s: DATA: %w", id, err)
		}
		if _, err := io.WriteString(w, "Subject: msg "+id+"\n\n"+bodyFor(id)); err != nil {
			return err
		}
		resp, err := w.CloseWithLMTPResponse()
		if err != nil {
			return fmt.Errorf("message %s: %w", id, err)
		}
		if r := resp[rcpt]; r == nil || !strings.Contains(r.StatusText, "<"+rcpt+"> delivered") {
			return fmt.Errorf("message %s: replies %v", id, resp)
		}
	}
	return c.Quit()
}

func TestCommands(t *testing.T) {
	in := StartInstance(t, Options{})
	bin := vlmtpdBinary(t)
	out, err := exec.Command(bin, "lookup", "-config", in.Config, "Bob+news@Example.com", "nobody@example.com").CombinedOutput()
	if err == nil {
		t.Error("lookup with an unknown address exited 0")
	}
	for _, want := range []string{`mailbox:         "example.com/bob"  (table texthash:vmailbox, key "bob@example.com")`,
		"format:          mbox", "550 5.1.1 <nobody@example.com>"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lookup output lacks %q:\n%s", want, out)
		}
	}
	// As the instance's user: check-config checks for the mode serve
	// runs in when started by the same user.
	checkConfig := func(in *Instance) ([]byte, error) {
		check := exec.Command(bin, "check-config", "-config", in.Config)
		if os.Getuid() == 0 {
			check.SysProcAttr = credAttr(uint32(in.UID), uint32(in.GID))
		}
		return check.CombinedOutput()
	}
	if out, err := checkConfig(in); err != nil {
		t.Errorf("check-config: %v\n%s", err, out)
	}
	// A key with upper case can never match (Postfix folds the address,
	// not the keys): check-config says so, once, though two parameters
	// open the table.
	mixed := StartInstance(t, Options{Tables: map[string]string{"vmailbox": "Mixed@example.com example.com/mixed/\n"},
		Config: `virtual_mailbox_domains = ["texthash:vmailbox", "example.com"]`})
	out, err = checkConfig(mixed)
	if err != nil || strings.Count(string(out), `key "Mixed@example.com" is not case-folded`) != 1 || !strings.Contains(string(out), "OK, with 1 warning(s)") {
		t.Errorf("check-config with a mixed-case key: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("virtual_mailbox_base = \"/x\"\n\nvirtual_mailbox_mapz = \"texthash:x\"\n"), 0o644)
	out, err = exec.Command(bin, "check-config", "-config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "bad.toml:3: virtual_mailbox_mapz: unknown parameter") {
		t.Errorf("check-config on a bad file: %v\n%s", err, out)
	}
}
