package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// quotaTables: the default mailboxes plus quota entries in a texthash
// table, found like virtual_uid_maps (full address, no extension, @domain).
func quotaInstance(t *testing.T, quota, extra string) *Instance {
	t.Helper()
	return StartInstance(t, Options{
		Tables: map[string]string{
			"vmailbox": defaultMailboxes + "dave@example.com example.com/dave/\nerin@example.com example.com/erin/\n",
			"quota":    quota,
		},
		Config: "virtual_mailbox_limit_maps = [\"texthash:quota\"]\n" + extra,
	})
}

const qSender = "s@example.org"

// qBody is a message of exactly lines*100 bytes with LF endings: 99
// characters and an LF per line (and the header/body blank line).
func qBody(lines int) string {
	var b strings.Builder
	b.WriteString("Subject: quota test message padded to 100 bytes per line" + strings.Repeat("x", 99-57) + "\n")
	for i := 1; i < lines; i++ {
		b.WriteString(strings.Repeat("q", 99) + "\n")
	}
	return b.String()
}

// fileSize is what the message takes in the Maildir for rcpt: the trace
// header vlmtpd adds and the LF body.
func fileSize(body, rcpt string) int64 {
	hdr := "Return-Path: <" + qSender + ">\nX-Original-To: " + rcpt + "\nDelivered-To: " + rcpt + "\n"
	return int64(len(hdr) + len(body))
}

// wireSize is SIZE= for the body: CRLF line ends.
func wireSize(body string) int64 { return int64(len(wire(body))) }

// deliverOnce sends one message and returns the RCPT reply and the DATA
// reply ("" when RCPT was refused).
func deliverOnce(t *testing.T, in *Instance, rcpt, body string, withSize bool) (string, string) {
	t.Helper()
	r := in.Dial(t)
	defer r.Close()
	r.lhlo()
	mail := "<" + qSender + ">"
	if withSize {
		mail += " SIZE=" + strconv.FormatInt(wireSize(body), 10)
	}
	rr, dr := r.txn(mail, []string{"<" + rcpt + ">"}, body)
	data := ""
	if len(dr) > 0 && strings.HasPrefix(rr[0], "250") {
		data = dr[0]
	}
	return rr[0], data
}

// TestQuotaAtRCPTAndExactFit: limits from a texthash map; a message whose
// SIZE= cannot fit (even at half, for CRLF) is refused at RCPT with
// 552 5.2.2 and virtual_maildir_limit_message; an exact fit is accepted
// and stored; then the mailbox is exactly full and the next message is
// refused at RCPT, with SIZE= or without; maildirsize records every
// delivery in Maildir++ form. (Refusals after DATA: TestQuotaBounceOff,
// TestQuotaConcurrentNeverOvershoots, TestDovecotQuotaAgrees.)
func TestQuotaAtRCPTAndExactFit(t *testing.T) {
	body := qBody(50)
	f := fileSize(body, "alice@example.com")
	in := quotaInstance(t, fmt.Sprintf("alice@example.com %d\n@example.com 1000S\n", 2*f),
		`virtual_maildir_limit_message = "Sorry, the user's maildir has overdrawn his diskspace quota"`)
	md := filepath.Join(in.Base, "example.com/alice")

	// Far too large for the whole quota: refused before the body.
	r := in.Dial(t)
	r.lhlo()
	r.Send(fmt.Sprintf("MAIL FROM:<%s> SIZE=%d\r\nRCPT TO:<alice@example.com>\r\n", qSender, 4*f+2))
	r.Expect("250")
	if got := r.Reply(); got != "552 5.2.2 <alice@example.com> Sorry, the user's maildir has overdrawn his diskspace quota" {
		t.Errorf("RCPT far over quota: %q", got)
	}
	r.Close()

	for i := 1; i <= 2; i++ {
		rr, dr := deliverOnce(t, in, "alice@example.com", body, true)
		if !strings.HasPrefix(rr, "250") || !strings.HasPrefix(dr, "250") {
			t.Fatalf("message %d of an exact fit: RCPT %q DATA %q", i, rr, dr)
		}
	}
	if n := len(maildirFiles(t, md)); n != 2 {
		t.Fatalf("%d messages stored, want 2", n)
	}
	if rr, _ := deliverOnce(t, in, "alice@example.com", body, true); !strings.HasPrefix(rr, "552 5.2.2 ") {
		t.Errorf("RCPT into a full mailbox with SIZE=: %q", rr)
	}
	// Exactly full: even a message without SIZE= cannot fit.
	if rr, _ := deliverOnce(t, in, "alice@example.com", "Subject: tiny\n\nx\n", false); rr != "552 5.2.2 <alice@example.com> Sorry, the user's maildir has overdrawn his diskspace quota" {
		t.Errorf("without SIZE= into an exactly full mailbox: RCPT %q", rr)
	}
	if n := len(maildirFiles(t, md)); n != 2 {
		t.Errorf("%d messages stored after the refusals, want 2", n)
	}
	want := fmt.Sprintf("%dS\n0 0\n%d 1\n%d 1\n", 2*f, f, f)
	if got := readFile(t, filepath.Join(md, "maildirsize")); got != want {
		t.Errorf("maildirsize = %q, want %q", got, want)
	}
	checkOwnerMode(t, filepath.Join(md, "maildirsize"), in.UID, in.GID, 0o600)

	// The @domain entry: carol has 1000 bytes.
	if rr, _ := deliverOnce(t, in, "carol@example.com", qBody(21), true); !strings.HasPrefix(rr, "552 5.2.2 ") {
		t.Errorf("carol (@example.com 1000S) with a 2100-byte message: %q", rr)
	}

	// vlmtpd quota agrees and says what RCPT would answer.
	out, err := exec.Command(vlmtpdBinary(t), "quota", "-config", in.Config, "-size", "10", "alice@example.com", "bob@example.com").CombinedOutput()
	if err != nil {
		t.Fatalf("vlmtpd quota: %v\n%s", err, out)
	}
	for _, w := range []string{
		fmt.Sprintf("usage:           %d bytes in 2 messages, 100.0%% of bytes", 2*f),
		"RCPT SIZE=10:    552 5.2.2 <alice@example.com> Sorry",
		"(table texthash:quota, key \"alice@example.com\")",
		"(table texthash:quota, key \"@example.com\")",
		"quota:           1000 bytes (mbox size after the append)",
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("vlmtpd quota output lacks %q:\n%s", w, out)
		}
	}
}

// TestQuotaBounceOff: with virtual_overquota_bounce = false the same
// refusals are 452 4.2.2, so the client keeps the message and retries.
func TestQuotaBounceOff(t *testing.T) {
	in := quotaInstance(t, "alice@example.com 1000\n", "virtual_overquota_bounce = false\n")
	// A 4xx ends with the transaction id, so the client's deferral leads
	// to our log.
	full := regexp.MustCompile(`^452 4\.2\.2 <alice@example\.com> mailbox is full \(\S+\.1\)$`)
	if rr, _ := deliverOnce(t, in, "alice@example.com", qBody(21), true); !full.MatchString(rr) {
		t.Errorf("RCPT over quota, bounce off: %q", rr)
	}
	if rr, dr := deliverOnce(t, in, "alice@example.com", qBody(11), false); !strings.HasPrefix(rr, "250") || !full.MatchString(dr) {
		t.Errorf("DATA over quota, bounce off: RCPT %q DATA %q", rr, dr)
	}
}

// TestQuotaMessageCount: "3C" allows three messages whatever their size:
// the third is accepted and stored, the fourth refused at RCPT with 552
// 5.2.2, and maildirsize counts three.
func TestQuotaMessageCount(t *testing.T) {
	in := quotaInstance(t, "alice@example.com 3C\n", "")
	md := filepath.Join(in.Base, "example.com/alice")
	msg := func(n int) string { return fmt.Sprintf("Subject: count %d\n\nmessage %d\n", n, n) }
	// 3 messages are accepted (with SIZE= and without), each stored.
	for n := 1; n <= 3; n++ {
		rr, dr := deliverOnce(t, in, "alice@example.com", msg(n), n%2 == 0)
		if !strings.HasPrefix(rr, "250 ") || !strings.HasPrefix(dr, "250 2.0.0 <alice@example.com> ") {
			t.Fatalf("message %d of 3C: %q %q", n, rr, dr)
		}
		if got := len(maildirFiles(t, md)); got != n {
			t.Fatalf("after message %d: %d files in new/", n, got)
		}
	}
	// The 4th is refused at RCPT as over quota (a decision: 552 5.2.2),
	// with SIZE= and without, however small.
	for _, withSize := range []bool{true, false} {
		rr, dr := deliverOnce(t, in, "alice@example.com", "Subject: s\n\nx\n", withSize)
		if !strings.HasPrefix(rr, "552 5.2.2 <alice@example.com> ") || dr != "" {
			t.Errorf("4th message with 3C (SIZE= %v): %q %q, want 552 5.2.2 at RCPT", withSize, rr, dr)
		}
	}
	files := maildirFiles(t, md)
	if len(files) != 3 {
		t.Fatalf("%d files in new/, want the 3 accepted", len(files))
	}
	var subjects []string
	for _, f := range files {
		if m := regexp.MustCompile(`(?m)^Subject: (count \d)$`).FindStringSubmatch(readFile(t, f)); m != nil {
			subjects = append(subjects, m[1])
		}
	}
	sort.Strings(subjects)
	if strings.Join(subjects, ",") != "count 1,count 2,count 3" {
		t.Errorf("stored subjects %q, want count 1..3", subjects)
	}
	// maildirsize: the limits line, the first recalculation's "0 0",
	// then one line per delivery, one message of its file's size each.
	got := readFile(t, filepath.Join(md, "maildirsize"))
	want := "3C\n0 0\n"
	for n := 1; n <= 3; n++ {
		want += fmt.Sprintf("%d 1\n", fileSize(msg(n), "alice@example.com"))
	}
	if got != want {
		t.Errorf("maildirsize %q, want %q", got, want)
	}
}

// TestQuotaConcurrentNeverOvershoots: 20 simultaneous messages into room
// for 5 store exactly 5, whether RCPT decides (SIZE= reservations: the
// rest get 452 4.2.2 at RCPT, or 552 5.2.2 if the five were already
// stored when they asked) or, without SIZE=, the worker decides at
// delivery (the rest get 552 5.2.2 after DATA).
func TestQuotaConcurrentNeverOvershoots(t *testing.T) {
	body := qBody(1000)
	f := fileSize(body, "dave@example.com")
	in := quotaInstance(t, fmt.Sprintf("dave@example.com %d\nerin@example.com %d\n", 5*f+f/2, 5*f+f/2), "recipient_concurrency_limit = 0\n")
	for _, c := range []struct {
		rcpt     string
		withSize bool
		refusals []string
	}{{"dave@example.com", true, []string{"452 4.2.2 ", "552 5.2.2 "}}, {"erin@example.com", false, []string{"552 5.2.2 "}}} {
		var wg sync.WaitGroup
		var mu sync.Mutex
		replies := map[string]int{}
		start := make(chan struct{})
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := in.Dial(t)
				defer r.Close()
				r.lhlo()
				<-start
				mail := "<" + qSender + ">"
				if c.withSize {
					mail += " SIZE=" + strconv.FormatInt(wireSize(body), 10)
				}
				rr, dr := r.txn(mail, []string{"<" + c.rcpt + ">"}, body)
				rep := rr[0]
				if strings.HasPrefix(rep, "250") && len(dr) > 0 {
					rep = dr[0]
				}
				mu.Lock()
				replies[rep[:10]]++
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		md := filepath.Join(in.Base, "example.com", strings.TrimSuffix(c.rcpt, "@example.com"))
		stored := len(maildirFiles(t, md))
		refused := 0
		for _, r := range c.refusals {
			refused += replies[r]
		}
		if stored != 5 || replies["250 2.0.0 "] != 5 || refused != 15 {
			t.Errorf("%s (SIZE= %v): %d stored, replies %v; want 5 stored, 5 × 250 and 15 × %v", c.rcpt, c.withSize, stored, replies, c.refusals)
		}
		t.Logf("%s (SIZE= %v): replies %v", c.rcpt, c.withSize, replies)
		got := readFile(t, filepath.Join(md, "maildirsize"))
		lines := strings.Split(strings.TrimSpace(got), "\n")
		var sum int64
		for _, l := range lines[1:] {
			n, _ := strconv.ParseInt(strings.Fields(l)[0], 10, 64)
			sum += n
		}
		if sum != 5*f {
			t.Errorf("%s: maildirsize sums to %d bytes, want %d:\n%s", c.rcpt, sum, 5*f, got)
		}
	}
}

// TestQuotaReservationReleasedWhenWorkerCrashes: a delivery in flight
// reserves its SIZE=, so a second message that would fit only without it
// gets 452 4.2.2; when the worker writing the first message is killed,
// its client gets 451 4.3.0 and the reservation is gone: the second
// message is accepted at once.
func TestQuotaReservationReleasedWhenWorkerCrashes(t *testing.T) {
	body := qBody(1000) // 100,000 bytes, SIZE= 101,000
	in := quotaInstance(t, "alice@example.com 120000\n", "")
	size := wireSize(body)

	a := in.Dial(t)
	a.lhlo()
	a.Send(fmt.Sprintf("MAIL FROM:<%s> SIZE=%d\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n", qSender, size))
	a.Expect("250")
	a.Expect("250")
	a.Expect("354")
	second := func() string {
		r := in.Dial(t)
		defer r.Close()
		r.lhlo()
		r.Send(fmt.Sprintf("MAIL FROM:<%s> SIZE=%d\r\nRCPT TO:<alice@example.com>\r\n", qSender, size))
		r.Expect("250")
		rep := r.Reply()
		r.Send("QUIT\r\n")
		return rep
	}
	if got := second(); !strings.HasPrefix(got, "452 4.2.2 <alice@example.com> mailbox is full (deliveries in progress)") {
		t.Fatalf("second message while the first is in flight: %q", got)
	}
	// Freeze the mailbox owner's worker, let the front hand it the
	// message, then kill it: a crash in the middle of the delivery.
	pid := workerFor(t, in, in.UID)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	a.Send(wire(body) + ".\r\n")
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if got := a.Reply(); !strings.HasPrefix(got, "451 4.3.0 <alice@example.com>") {
		t.Fatalf("reply after the worker was killed: %q", got)
	}
	if got := second(); !strings.HasPrefix(got, "250") {
		t.Fatalf("second message after the crash: %q (the reservation was not released)", got)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 0 {
		t.Errorf("%d messages stored by the killed worker", n)
	}
}

// TestRecipientConcurrencyLimit: with the default limit of 10, the 11th
// simultaneous delivery to one mailbox gets 451 4.2.1 at RCPT; another
// mailbox is unaffected; a transaction that ends (RSET) frees its slot.
func TestRecipientConcurrencyLimit(t *testing.T) {
	in := StartInstance(t, Options{})
	var conns []*Raw
	for i := 0; i < 10; i++ {
		r := in.Dial(t)
		r.lhlo()
		r.Send("MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.com>\r\n")
		r.Expect("250")
		r.Expect("250")
		conns = append(conns, r)
	}
	r := in.Dial(t)
	r.lhlo()
	r.Send("MAIL FROM:<s@example.org>\r\nRCPT TO:<alice+x@example.com>\r\nRCPT TO:<carol@example.com>\r\n")
	r.Expect("250")
	if got := r.Reply(); !strings.HasPrefix(got, "451 4.2.1 <alice+x@example.com> ") {
		t.Errorf("11th delivery to alice: %q", got)
	}
	r.Expect("250") // carol is another mailbox
	conns[0].Send("RSET\r\n")
	conns[0].Expect("250")
	r.Send("RCPT TO:<alice@example.com>\r\n")
	r.Expect("250")
	// The deliveries in flight still go through.
	conns[1].Send("DATA\r\n")
	conns[1].Expect("354")
	conns[1].Send(wire("Subject: one of ten\n\nx\n") + ".\r\n")
	conns[1].Expect("250")
}

// TestDetailFolders: +detail into an existing Maildir++ folder, a missing
// one (INBOX), hostile details (INBOX, nothing outside the Maildir), and
// with detail_mailbox_create a new folder with maildirfolder.
func TestDetailFolders(t *testing.T) {
	prepare := func(dir string) {
		md := filepath.Join(dir, "mail/example.com/alice")
		for _, d := range []string{"new", "cur", "tmp", ".work/new", ".work/cur", ".work/tmp"} {
			os.MkdirAll(filepath.Join(md, d), 0o700)
		}
		os.MkdirAll(filepath.Join(dir, "mail/example.com/outside/new"), 0o700)
		os.Symlink("../outside", filepath.Join(md, ".evil"))
		if os.Getuid() == 0 {
			o := testMailOwner(t)
			chownTree(t, filepath.Join(dir, "mail/example.com"), o)
		}
	}
	for _, create := range []bool{false, true} {
		in := StartInstance(t, Options{Prepare: prepare,
			Config: fmt.Sprintf("save_to_detail_mailbox = true\ndetail_mailbox_create = %v\n", create)})
		md := filepath.Join(in.Base, "example.com/alice")
		count := func(sub string) int { return len(maildirFiles(t, filepath.Join(md, sub))) }
		cases := []struct{ rcpt, folder string }{
			{"<alice+work@example.com>", ".work"},
			{"<alice+evil@example.com>", ""},
			{"<alice+a/b@example.com>", ""},
			{"<alice+.x@example.com>", ""},
			{`<"alice+../x"@example.com>`, ""},
			{"<alice+INBOX@example.com>", ""},
			{"<alice+new1@example.com>", map[bool]string{false: "", true: ".new1"}[create]},
		}
		for _, c := range cases {
			before := count(c.folder)
			r := in.Dial(t)
			r.lhlo()
			rr, dr := r.txn("<s@example.org>", []string{c.rcpt}, "Subject: detail\n\nx\n")
			r.Close()
			if !strings.HasPrefix(rr[0], "250") || len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
				t.Errorf("create=%v %s: RCPT %q DATA %q", create, c.rcpt, rr, dr)
				continue
			}
			if got := count(c.folder); got != before+1 {
				t.Errorf("create=%v %s: %d messages in %q, want %d", create, c.rcpt, got, c.folder, before+1)
			}
		}
		if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/outside"))); n != 0 {
			t.Errorf("%d messages written through the .evil symlink", n)
		}
		_, err := os.Lstat(filepath.Join(md, ".new1/maildirfolder"))
		if create && err != nil {
			t.Errorf("created folder has no maildirfolder: %v", err)
		}
		if !create && err == nil {
			t.Error("folder created with detail_mailbox_create = false")
		}
		if create {
			checkOwnerMode(t, filepath.Join(md, ".new1"), in.UID, in.GID, 0o700)
		}
		// Nothing named after a hostile detail exists anywhere.
		filepath.Walk(in.Base, func(p string, fi os.FileInfo, err error) error {
			if err == nil && (strings.Contains(fi.Name(), "..") || fi.Name() == ".x" || fi.Name() == ".a") {
				t.Errorf("create=%v: %s exists", create, p)
			}
			return nil
		})
	}
}

// TestQuotaMbox: for an mbox the quota is the file's size after the
// append, decided under the lock; SIZE= that cannot fit is refused at
// RCPT; the file never grows past the quota.
func TestQuotaMbox(t *testing.T) {
	in := quotaInstance(t, "bob@example.com 3000\n", "")
	mbox := filepath.Join(in.Base, "example.com/bob")
	body := qBody(9) // 900 bytes; about 1,000 in the mbox
	delivered := 0
	for i := 0; i < 5; i++ {
		rr, dr := deliverOnce(t, in, "bob@example.com", body, false)
		if strings.HasPrefix(dr, "250") {
			delivered++
			continue
		}
		if !strings.HasPrefix(rr, "250") || dr != "552 5.2.2 <bob@example.com> mailbox is full" {
			t.Fatalf("message %d: RCPT %q DATA %q", i, rr, dr)
		}
	}
	fi, err := os.Stat(mbox)
	if err != nil {
		t.Fatal(err)
	}
	if delivered != 2 || fi.Size() > 3000 || len(mboxMessages(t, readFile(t, mbox))) != 2 {
		t.Errorf("%d delivered, mbox %d bytes; want 2 messages within 3000", delivered, fi.Size())
	}
	if rr, _ := deliverOnce(t, in, "bob@example.com", qBody(25), true); rr != "552 5.2.2 <bob@example.com> mailbox is full" {
		t.Errorf("RCPT with SIZE= over the room: %q", rr)
	}
}

// TestQuotaHoldReleasedWhenClientGoes: a client that disconnects after
// RCPT frees its slot and its reservation.
func TestQuotaHoldReleasedWhenClientGoes(t *testing.T) {
	in := quotaInstance(t, "alice@example.com 150000\n", "recipient_concurrency_limit = 1\n")
	size := wireSize(qBody(1000))
	a := in.Dial(t)
	a.lhlo()
	a.Send(fmt.Sprintf("MAIL FROM:<%s> SIZE=%d\r\nRCPT TO:<alice@example.com>\r\n", qSender, size))
	a.Expect("250")
	a.Expect("250")
	b := in.Dial(t)
	b.lhlo()
	b.Send(fmt.Sprintf("MAIL FROM:<%s> SIZE=%d\r\nRCPT TO:<alice@example.com>\r\n", qSender, size))
	b.Expect("250")
	b.Expect("451 4.2.1 ")
	a.Close()
	pollUntil(t, 10*time.Second, "the gone client's hold to be released", func() bool {
		b.Send("RCPT TO:<alice@example.com>\r\n")
		return strings.HasPrefix(b.Reply(), "250")
	})
}

// TestLookupShowsQuota: vlmtpd lookup names the quota entry and the
// +detail folder.
func TestLookupShowsQuota(t *testing.T) {
	in := quotaInstance(t, "alice@example.com 1000S,5C\n", "save_to_detail_mailbox = true\n")
	out, err := exec.Command(vlmtpdBinary(t), "lookup", "-config", in.Config, "alice+work@example.com", "alice+../x@example.com", "carol@example.com").CombinedOutput()
	if err != nil {
		t.Fatalf("vlmtpd lookup: %v\n%s", err, out)
	}
	for _, w := range []string{
		`quota entry:     "1000S,5C"  (table texthash:quota, key "alice@example.com")`,
		"quota:           1000 bytes, 5 messages for the whole Maildir++ tree (maildirsize kept, created when missing)",
		"detail folder:   .work/ (if it exists, else INBOX)",
		`detail folder:   none: "../x" is not a safe folder name, INBOX`,
		"quota:           none (no virtual_mailbox_limit_maps entry)",
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("lookup output lacks %q:\n%s", w, out)
		}
	}
}

// TestQuotaPrivsep: with the root parent, the worker running as the
// mailbox's uid reports the usage and writes maildirsize, owned by it.
func TestQuotaPrivsep(t *testing.T) {
	rootOrSkip(t, "privilege separation")
	in := StartInstance(t, Options{
		Privileged: true,
		Tables: map[string]string{
			"vmailbox": "u1@example.com example.com/u1/Maildir/\n",
			"quota":    "u1@example.com 1000\n",
		},
		Config: `user = "nobody"
virtual_uid_maps = ["static:5001"]
virtual_gid_maps = ["static:5001"]
virtual_minimum_uid = 1000
virtual_mailbox_limit_maps = ["texthash:quota"]`,
		Prepare: func(dir string) {
			home := filepath.Join(dir, "mail/example.com/u1")
			if err := os.Mkdir(home, 0o700); err != nil {
				t.Fatal(err)
			}
			os.Chown(home, 5001, 5001)
			os.Chown(filepath.Join(dir, "spool"), 65534, 65534)
		},
	})
	if rr, dr := deliverOnce(t, in, "u1@example.com", qBody(5), true); !strings.HasPrefix(dr, "250") {
		t.Fatalf("first: %q %q", rr, dr)
	}
	if rr, _ := deliverOnce(t, in, "u1@example.com", qBody(11), true); !strings.HasPrefix(rr, "552 5.2.2 ") {
		t.Errorf("RCPT over the room: %q", rr)
	}
	checkOwnerMode(t, filepath.Join(in.Base, "example.com/u1/Maildir/maildirsize"), 5001, 5001, 0o600)
}

// vlmtpd quota shows what the running server's deliveries in flight
// reserve, asked through its metrics listener.
func TestQuotaShowsServerReservations(t *testing.T) {
	in := quotaInstance(t, "alice@example.com 150000\n", fmt.Sprintf("metrics_listen = \"inet:127.0.0.1:%d\"\n", freePort(t)))
	a := in.Dial(t)
	a.lhlo()
	a.Send(fmt.Sprintf("MAIL FROM:<%s> SIZE=5000\r\nRCPT TO:<alice@example.com>\r\n", qSender))
	a.Expect("250")
	a.Expect("250")
	out, err := exec.Command(vlmtpdBinary(t), "quota", "-config", in.Config, "alice@example.com").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "reservations:    1 deliveries in flight in the running server, holding 5000 bytes and 1 messages") {
		t.Fatalf("vlmtpd quota: %v\n%s", err, out)
	}
	a.Send("RSET\r\n")
	a.Expect("250")
	out, _ = exec.Command(vlmtpdBinary(t), "quota", "-config", in.Config, "alice@example.com").CombinedOutput()
	if !strings.Contains(string(out), "reservations:    none (no delivery in flight") {
		t.Fatalf("after RSET:\n%s", out)
	}
}
