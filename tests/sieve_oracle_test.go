package tests

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
)

// Pigeonhole at delivery as the oracle: the same script and the same
// messages go over LMTP into a private Dovecot LMTP with the sieve plugin
// and into vlmtpd; doveadm then reads both Maildirs, and for every message
// the mailbox it landed in and its flags must be the same. (The language
// itself is compared action by action with sieve-test in package sieve;
// this compares what ends up on disk.)

// oracleScript exercises the delivery side: existing and created folders,
// a missing folder (Pigeonhole: the implicit keep), INBOX by name, flags
// on keep and fileinto, a non-ASCII folder, a hostile name, discard.
const oracleScript = `require ["fileinto", "mailbox", "imap4flags"];
if header :contains "subject" "to-work" { fileinto "Work"; stop; }
if header :contains "subject" "to-created" { fileinto :create "Created"; stop; }
if header :contains "subject" "to-missing" { fileinto "Missing"; stop; }
if header :contains "subject" "to-inbox" { fileinto "INBOX"; stop; }
if header :contains "subject" "flag-keep" { addflag ["\\Seen", "\\Flagged"]; keep; stop; }
if header :contains "subject" "flag-into" { fileinto :create :flags "\\Answered" "Replied"; stop; }
if header :contains "subject" "to-umlaut" { fileinto :create "Entwürfe"; stop; }
if header :contains "subject" "to-hostile" { fileinto :create "../escape"; stop; }
if header :contains "subject" "to-dotted" { fileinto :create "Lists.Go"; stop; }
if header :contains "subject" "to-slash" { fileinto :create "Projects/2026"; stop; }
if header :contains "subject" "to-amp" { fileinto :create "R&D"; stop; }
if header :contains "subject" "to-space" { fileinto :create "Sent Items"; stop; }
if header :contains "subject" "keyword" { addflag ["$Label1", "\\Seen", "Junk"]; keep; stop; }
if header :contains "subject" "kw-folder" { fileinto :create :flags ["Junk", "$Label2"] "Spam"; stop; }
if header :contains "subject" "both" { fileinto "Work"; keep; stop; }
if header :contains "subject" "drop" { discard; stop; }
`

var oracleSubjects = []string{"to-work", "to-created", "to-missing", "to-inbox", "flag-keep", "flag-into",
	"to-umlaut", "to-hostile", "to-dotted", "to-slash", "to-amp", "to-space", "keyword", "kw-folder", "both", "drop", "plain"}

// oracleDifferences are the deliberate differences, with their reasons;
// for these the mailbox and the system flags must still agree.
var oracleDifferences = map[string]string{}

// systemFlagsOnly drops the keywords from "mailbox flags…".
func systemFlagsOnly(s string) string {
	f := strings.Fields(s)
	out := f[:0]
	for i, w := range f {
		if i == 0 || strings.HasPrefix(w, `\`) || w == "+" {
			out = append(out, w)
		}
	}
	return strings.Join(out, " ")
}

type dovecotLMTP struct {
	conf, dir, socket string
	doveadm           string
}

// startDovecotLMTP starts a private Dovecot serving LMTP on a unix socket,
// with Pigeonhole: every user's home is dir/home/USER, the Maildir
// ~/Maildir, the active script ~/.dovecot.sieve.
func startDovecotLMTP(t *testing.T, owner mailOwner) *dovecotLMTP {
	t.Helper()
	rootOrSkip(t, "a private Dovecot LMTP")
	if _, err := os.Stat("/usr/lib/dovecot/modules/lib90_sieve_plugin.so"); err != nil {
		testutil.SkipOrFail(t, "Pigeonhole (dovecot-sieve) is not installed: %v", err)
	}
	if _, err := os.Stat("/usr/lib/dovecot/lmtp"); err != nil {
		testutil.SkipOrFail(t, "Dovecot's LMTP (dovecot-lmtpd) is not installed: %v", err)
	}
	dir, conf, doveadm := startPrivateDovecot(t, "sieve", owner, "lmtp", "home=%[1]s/home/%%n allow_all_users=yes", `mail_location = maildir:~/Maildir
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
protocol lmtp {
  mail_plugins = $mail_plugins sieve
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
`)
	d := &dovecotLMTP{conf: conf, dir: dir, socket: filepath.Join(dir, "run", "lmtp"), doveadm: doveadm}
	waitAccept(t, "unix", d.socket, 15*time.Second)
	return d
}

// dovecotRead lists subject → "mailbox flags" for a Maildir, as doveadm
// reads it (\Recent, Dovecot's own, left out).
func dovecotRead(t *testing.T, doveadm, conf, maildir, side string, owner mailOwner) map[string]string {
	t.Helper()
	for _, s := range []string{"index", "control"} {
		if err := os.MkdirAll(filepath.Join(side, s), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	chownTree(t, side, owner)
	// The control files stay in the Maildir: dovecot-keywords, which
	// names the keywords, is one of them.
	location := fmt.Sprintf("maildir:%s:INDEX=%s/index", maildir, side)
	cmd := exec.Command(doveadm, "-f", "tab", "-c", conf, "-o", "mail_location="+location,
		"fetch", "-u", "reader", "mailbox flags hdr.subject", "all")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("doveadm fetch %s: %v\n%s", maildir, err, stderr.String())
	}
	got := map[string]string{}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, line := range lines[1:] {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			continue
		}
		flags := strings.Fields(strings.ReplaceAll(f[1], `\Recent`, ""))
		sort.Strings(flags)
		v := strings.TrimSpace(f[0] + " " + strings.Join(flags, " "))
		if prev, ok := got[f[2]]; ok {
			v = prev + " + " + v
		}
		got[f[2]] = v
	}
	return got
}

func TestSieveDeliveryAgainstPigeonhole(t *testing.T) {
	owner := testMailOwner(t)
	dc := startDovecotLMTP(t, owner)
	home := filepath.Join(dc.dir, "home", "alice")
	for _, d := range []string{"Maildir/cur", "Maildir/new", "Maildir/tmp", "Maildir/.Work/cur", "Maildir/.Work/new", "Maildir/.Work/tmp"} {
		os.MkdirAll(filepath.Join(home, d), 0o700)
	}
	writeTestFile(t, filepath.Join(home, ".dovecot.sieve"), oracleScript)
	chownTree(t, home, owner)

	in := sieveInstance(t, sieveSetup{
		scripts: map[string]string{"example.com/alice/.dovecot.sieve": oracleScript},
		folders: []string{"Work"},
	})

	dovecotConn := func() *Raw {
		c, err := net.Dial("unix", dc.socket)
		if err != nil {
			t.Fatal(err)
		}
		return newRaw(t, c)
	}
	for _, subj := range oracleSubjects {
		body := msgFrom("s@example.org", "alice@example.com", subj, "text of "+subj)
		dr := deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, body)
		if len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
			t.Fatalf("vlmtpd %s: %v", subj, dr)
		}
		r := dovecotConn()
		r.lhlo()
		_, ddr := r.txn("<s@example.org>", []string{"<alice@example.com>"}, body)
		r.Close()
		if len(ddr) != 1 || !strings.HasPrefix(ddr[0], "250") {
			t.Fatalf("Dovecot %s: %v", subj, ddr)
		}
	}
	ours := dovecotRead(t, dc.doveadm, dc.conf, filepath.Join(in.Base, "example.com/alice"), filepath.Join(dc.dir, "home", "read-ours"), owner)
	theirs := dovecotRead(t, dc.doveadm, dc.conf, filepath.Join(home, "Maildir"), filepath.Join(dc.dir, "home", "read-theirs"), owner)
	for _, subj := range oracleSubjects {
		o, p := ours[subj], theirs[subj]
		if _, ok := oracleDifferences[subj]; ok {
			o, p = systemFlagsOnly(o), systemFlagsOnly(p)
		}
		if o != p {
			t.Errorf("%s: vlmtpd stored %q, Pigeonhole %q", subj, ours[subj], theirs[subj])
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("vlmtpd: %v\nPigeonhole: %v", ours, theirs)
	}
}

// mboxOracleScript sets flags by subject; every message stays in INBOX
// (fileinto would be a folder of its own under Dovecot's mbox storage).
const mboxOracleScript = `require ["imap4flags"];
if header :is "subject" "seen" { addflag "\\Seen"; }
if header :is "subject" "answered-flagged" { addflag ["\\Flagged", "\\Answered"]; }
if header :is "subject" "all" { addflag ["\\Deleted", "\\Draft", "\\Flagged", "\\Answered", "\\Seen", "\\Recent"]; }
if header :is "subject" "draft" { addflag "\\Draft"; }
if header :is "subject" "keyword" { addflag ["$Label1", "\\Seen", "Junk"]; }
if header :is "subject" "keep-flags" { keep :flags "\\Flagged"; }
`

var mboxOracleSubjects = []string{"seen", "answered-flagged", "all", "draft", "keyword", "keep-flags", "plain", "forged"}

// mboxOracleDifferences: deliberate differences in the flag fields.
var mboxOracleDifferences = map[string]string{
	"keyword": "keywords are only written when the mbox's X-IMAPbase lists them: Dovecot drops an X-Keywords " +
		"field naming a keyword its index does not know, and vlmtpd cannot see Dovecot's index. The system flags agree.",
}

// TestSieveMboxFlagsAgainstPigeonhole: the same script and messages go
// through Dovecot's LMTP with Pigeonhole into an mbox INBOX and through
// vlmtpd into bob's mbox; the flag fields (Status, X-Status, X-Keywords)
// must be the same, at the end of the header in both, and a sender's
// forged flag fields are gone from both. Dovecot's own bookkeeping
// (X-UID, X-IMAPbase, Content-Length, padding, an empty X-Keywords or
// Status) is left out of the comparison: vlmtpd does not write it.
func TestSieveMboxFlagsAgainstPigeonhole(t *testing.T) {
	owner := testMailOwner(t)
	rootOrSkip(t, "a private Dovecot LMTP")
	if _, err := os.Stat("/usr/lib/dovecot/modules/lib90_sieve_plugin.so"); err != nil {
		testutil.SkipOrFail(t, "Pigeonhole (dovecot-sieve) is not installed: %v", err)
	}
	if _, err := os.Stat("/usr/lib/dovecot/lmtp"); err != nil {
		testutil.SkipOrFail(t, "Dovecot's LMTP (dovecot-lmtpd) is not installed: %v", err)
	}
	dir, _, _ := startPrivateDovecot(t, "sievembox", owner, "lmtp", "home=%[1]s/home/%%n allow_all_users=yes", `mail_location = mbox:~/mail:INBOX=~/inbox
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
protocol lmtp {
  mail_plugins = $mail_plugins sieve
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
`)
	socket := filepath.Join(dir, "run", "lmtp")
	waitAccept(t, "unix", socket, 15*time.Second)
	home := filepath.Join(dir, "home", "bob")
	os.MkdirAll(filepath.Join(home, "mail"), 0o700)
	writeTestFile(t, filepath.Join(home, ".dovecot.sieve"), mboxOracleScript)
	chownTree(t, home, owner)

	in := sieveInstance(t, sieveSetup{
		scripts: map[string]string{"example.com/bob.sieve": mboxOracleScript},
		table:   "bob@example.com example.com/bob.sieve\n",
	})
	for _, subj := range mboxOracleSubjects {
		body := msgFrom("s@example.org", "bob@example.com", subj, "text of "+subj)
		if subj == "forged" {
			body = "From: s@example.org\nTo: bob@example.com\nSubject: forged\nStatus: RO\nX-Status: AF\n" +
				"X-Keywords: $Label1\nX-UID: 77\nContent-Length: 2\nX-IMAPbase: 1 0000000100 Evil\n\nx\n"
		}
		if dr := deliverTo(t, in, "s@example.org", []string{"bob@example.com"}, body); len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
			t.Fatalf("vlmtpd %s: %v", subj, dr)
		}
		c, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		r := newRaw(t, c)
		r.lhlo()
		_, ddr := r.txn("<s@example.org>", []string{"<bob@example.com>"}, body)
		r.Close()
		if len(ddr) != 1 || !strings.HasPrefix(ddr[0], "250") {
			t.Fatalf("Dovecot %s: %v", subj, ddr)
		}
	}
	ours := mboxFlagFields(t, readFile(t, filepath.Join(in.Base, "example.com/bob")))
	theirs := mboxFlagFields(t, readFile(t, filepath.Join(home, "inbox")))
	for _, subj := range mboxOracleSubjects {
		o, p := ours[subj], theirs[subj]
		if _, ok := mboxOracleDifferences[subj]; ok {
			o, p = withoutField(o, "X-Keywords:"), withoutField(p, "X-Keywords:")
		}
		if o != p {
			t.Errorf("%s: vlmtpd wrote %q, Dovecot %q", subj, ours[subj], theirs[subj])
		}
	}
	if theirs["forged"] != "" || !strings.Contains(theirs["keyword"], "X-Keywords: $Label1 Junk") {
		t.Errorf("Dovecot's own result is not what this test assumes: %q", theirs)
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("vlmtpd: %q\nDovecot: %q", ours, theirs)
	}
}

// mboxFlagFields maps each message's subject to its flag fields, one per
// line, as "Name: value" with trailing blanks cut; empty Status and
// X-Keywords fields and Dovecot's X-UID, X-IMAPbase and Content-Length
// are left out. A flag field followed by another field of the message is
// reported as "not at the end of the header".
func mboxFlagFields(t *testing.T, mbox string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range mboxMessages(t, mbox) {
		head, _, _ := strings.Cut(m, "\n\n")
		var subj string
		var flags []string
		misplaced := false
		for _, line := range strings.Split(head, "\n")[1:] {
			name, value, _ := strings.Cut(line, ":")
			value = strings.TrimRight(value, " ")
			switch strings.ToLower(name) {
			case "subject":
				subj = strings.TrimSpace(value)
			case "x-uid", "x-imapbase", "content-length":
				continue
			case "status", "x-status", "x-keywords":
				if value != "" {
					flags = append(flags, name+":"+value)
				}
				continue
			}
			if len(flags) > 0 {
				misplaced = true
			}
		}
		v := strings.Join(flags, "\n")
		if misplaced {
			v += "\n(not at the end of the header)"
		}
		out[subj] = v
	}
	return out
}

func withoutField(s, prefix string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, prefix) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
