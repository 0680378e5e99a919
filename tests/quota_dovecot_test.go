package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDovecotQuotaAgrees: a private Dovecot 2.3 with quota = maildir:User
// quota reads the Maildir vlmtpd delivers into. After vlmtpd's
// deliveries, after Dovecot's expunge and after Dovecot's own save,
// `doveadm quota get` and `vlmtpd quota` report the same usage; Dovecot's
// recalculation writes the same maildirsize as `vlmtpd quota -recalc`;
// and vlmtpd refuses at RCPT what the usage Dovecot recorded leaves no
// room for.
func TestDovecotQuotaAgrees(t *testing.T) {
	owner := testMailOwner(t)
	const limit = "1024000S,10C" // Dovecot: storage=1000k, messages=10
	in := quotaInstance(t, "alice@example.com "+limit+"\n", "")
	md := filepath.Join(in.Base, "example.com/alice")
	body := qBody(50)
	for i := 0; i < 3; i++ {
		if rr, dr := deliverOnce(t, in, "alice@example.com", body, true); !strings.HasPrefix(dr, "250") {
			t.Fatalf("delivery %d: %q %q", i, rr, dr)
		}
	}
	f := fileSize(body, "alice@example.com")

	d := startDovecotForDoveadm(t, owner)
	index := filepath.Join(d.Dir, "home", "quota-index")
	if err := os.MkdirAll(index, 0o700); err != nil {
		t.Fatal(err)
	}
	chownTree(t, index, d.Owner)
	doveadm := func(stdin string, args ...string) string {
		t.Helper()
		full := append([]string{"-c", d.Conf,
			"-o", "mail_location=maildir:" + md + ":INDEX=" + index,
			"-o", "mail_plugins=quota",
			"-o", "plugin/quota=maildir:User quota",
			"-o", "plugin/quota_rule=*:storage=1000k",
			"-o", "plugin/quota_rule2=*:messages=10",
		}, args...)
		cmd := exec.Command(d.doveadm, full...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("doveadm %v: %v\n%s%s", args, err, out, stderr.String())
		}
		return string(out)
	}
	// Dovecot reports STORAGE in kilobytes, rounded up, and MESSAGE in
	// messages.
	kbOf := func(b int64) int64 { return (b + 1023) / 1024 }
	dovecotUsage := func() (kb, msgs int64) {
		t.Helper()
		out := doveadm("", "-f", "tab", "quota", "get", "-u", "alice@example.com")
		for _, l := range strings.Split(out, "\n") {
			fs := strings.Split(l, "\t")
			if len(fs) < 4 {
				continue
			}
			n, _ := strconv.ParseInt(fs[2], 10, 64)
			switch fs[1] {
			case "STORAGE":
				kb = n
			case "MESSAGE":
				msgs = n
			}
		}
		return kb, msgs
	}
	usageRE := regexp.MustCompile(`usage: +(\d+) bytes in (\d+) messages`)
	vlmtpdQuota := func(args ...string) (bytes, msgs int64, out string) {
		t.Helper()
		o, err := exec.Command(vlmtpdBinary(t), append(append([]string{"quota", "-config", in.Config}, args...), "alice@example.com")...).CombinedOutput()
		m := usageRE.FindStringSubmatch(string(o))
		if m == nil {
			t.Fatalf("vlmtpd quota: %v\n%s", err, o)
		}
		bytes, _ = strconv.ParseInt(m[1], 10, 64)
		msgs, _ = strconv.ParseInt(m[2], 10, 64)
		return bytes, msgs, string(o)
	}
	agree := func(stage string, wantBytes, wantMsgs int64) {
		t.Helper()
		vb, vm, _ := vlmtpdQuota()
		kb, dm := dovecotUsage()
		if vb != wantBytes || vm != wantMsgs {
			t.Errorf("%s: vlmtpd quota says %d bytes in %d messages, want %d in %d", stage, vb, vm, wantBytes, wantMsgs)
		}
		if dm != vm || kb != kbOf(vb) {
			t.Errorf("%s: doveadm quota get says %d kB in %d messages, vlmtpd %d bytes (%d kB) in %d", stage, kb, dm, vb, kbOf(vb), vm)
		}
	}
	agree("after 3 deliveries by vlmtpd", 3*f, 3)

	doveadm("", "expunge", "-u", "alice@example.com", "mailbox", "INBOX", "uid", "1")
	agree("after doveadm expunge", 2*f, 2)

	// Dovecot's recalculation and ours write the same file.
	doveadm("", "quota", "recalc", "-u", "alice@example.com")
	dovecots := readFile(t, filepath.Join(md, "maildirsize"))
	if want := fmt.Sprintf("%s\n%d 2\n", limit, 2*f); dovecots != want {
		t.Errorf("maildirsize after doveadm quota recalc = %q, want %q", dovecots, want)
	}
	if _, _, out := vlmtpdQuota("-recalc"); !strings.Contains(out, "maildirsize rebuilt") {
		t.Errorf("vlmtpd quota -recalc:\n%s", out)
	}
	if ours := readFile(t, filepath.Join(md, "maildirsize")); ours != dovecots {
		t.Errorf("maildirsize after vlmtpd quota -recalc = %q, Dovecot wrote %q", ours, dovecots)
	}

	// Dovecot saves a large message itself and records it; vlmtpd uses
	// that usage at RCPT.
	big := "Subject: saved by Dovecot\n\n" + strings.Repeat(strings.Repeat("d", 99)+"\n", 9000)
	doveadm(big, "save", "-u", "alice@example.com", "-m", "INBOX")
	kb, dm := dovecotUsage()
	vb, vm, _ := vlmtpdQuota()
	if vm != 3 || dm != 3 || kb != kbOf(vb) || vb < 2*f+int64(len(big)) {
		t.Errorf("after doveadm save: doveadm %d kB in %d, vlmtpd %d bytes in %d", kb, dm, vb, vm)
	}
	room := 1024000 - vb
	// SIZE= over twice the room cannot fit even with every CR gone:
	// refused at RCPT. Just over the room passes RCPT (it might fit as
	// LF) and is refused exactly after DATA.
	if rr, _ := deliverOnce(t, in, "alice@example.com", qBody(int(2*room/100)+30), true); !strings.HasPrefix(rr, "552 5.2.2 ") {
		t.Errorf("RCPT for over twice the room Dovecot's save left (%d bytes): %q", room, rr)
	}
	if rr, dr := deliverOnce(t, in, "alice@example.com", qBody(int(room/100)+30), true); !strings.HasPrefix(rr, "250") || !strings.HasPrefix(dr, "552 5.2.2 ") {
		t.Errorf("a message just over the room (%d bytes): RCPT %q DATA %q", room, rr, dr)
	}
	if rr, dr := deliverOnce(t, in, "alice@example.com", qBody(int(room/100)-5), true); !strings.HasPrefix(dr, "250") {
		t.Errorf("a message that fits the room left (%d bytes): %q %q", room, rr, dr)
	}
	agree("after filling the rest", vb+fileSize(qBody(int(room/100)-5), "alice@example.com"), 4)
}
