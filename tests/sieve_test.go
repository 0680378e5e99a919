package tests

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// Sieve at delivery, end to end: LMTP on the built binary, scripts read by
// the worker as the mailbox owner, results checked in the Maildir files,
// the replies, the log and what a fake sendmail (run by the front) was
// given.

// sieveSetup describes one instance: the scripts (paths beneath the
// mailbox base), the sieve_script_maps table, and more configuration.
type sieveSetup struct {
	scripts    map[string]string
	table      string
	config     string
	folders    []string // Maildir++ folders of alice made beforehand
	privileged bool
	sendmail   string // the fake sendmail's body ("" = record and succeed)
	prepare    func(dir string)
	wrap       []string // Options.Wrap
}

// sieveInstance starts vlmtpd with the setup. The fake sendmail (a shell
// script in the test directory, run by the front as its user) records
// each call in outbox/ beneath the mailbox base: N.args holds argv one
// per line, N.msg the message from stdin. s.config may name another
// sendmail_path.
func sieveInstance(t *testing.T, s sieveSetup) *Instance {
	t.Helper()
	owner := testMailOwner(t)
	if s.privileged {
		rootOrSkip(t, "privilege separation")
		owner = mailOwner{5001, 5001}
	}
	var cfg strings.Builder
	cfg.WriteString("sieve_script_maps = [\"texthash:sieve\"]\n")
	if !strings.Contains(s.config, "sendmail_path") {
		cfg.WriteString("sendmail_path = \"SENDMAIL\"\n")
	}
	if s.privileged {
		cfg.WriteString("user = \"nobody\"\nvirtual_uid_maps = [\"static:5001\"]\nvirtual_gid_maps = [\"static:5001\"]\nvirtual_minimum_uid = 1000\n")
	}
	cfg.WriteString(s.config)
	table := s.table
	if table == "" {
		table = "alice@example.com example.com/alice/.dovecot.sieve\n"
	}
	var sendmailPath string
	prepare := func(dir string) {
		base := filepath.Join(dir, "mail")
		outbox := filepath.Join(base, "outbox")
		body := s.sendmail
		if body == "" {
			body = `n=$(date +%s%N).$$
printf '%s\n' "$@" > "` + outbox + `/$n.args.tmp"
cat > "` + outbox + `/$n.msg"
mv "` + outbox + `/$n.args.tmp" "` + outbox + `/$n.args"
`
		}
		if err := os.WriteFile(sendmailPath, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		mkdirs := []string{outbox, filepath.Join(base, "example.com/alice/cur"), filepath.Join(base, "example.com/alice/new"), filepath.Join(base, "example.com/alice/tmp")}
		for _, f := range s.folders {
			for _, sub := range []string{"cur", "new", "tmp"} {
				mkdirs = append(mkdirs, filepath.Join(base, "example.com/alice/."+f, sub))
			}
		}
		for _, d := range mkdirs {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		for rel, src := range s.scripts {
			p := filepath.Join(base, rel)
			os.MkdirAll(filepath.Dir(p), 0o700)
			if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		chownTree(t, base, owner)
		if s.privileged {
			os.Chown(filepath.Join(dir, "spool"), 65534, 65534)
			os.Chown(outbox, 65534, 65534) // the front, as nobody, runs sendmail
		}
		if s.prepare != nil {
			s.prepare(dir)
		}
	}
	// The test directory is only known once StartInstance made it: the
	// configuration names sendmail by a path relative to nothing, so it
	// is patched in Prepare.
	return startWithSendmail(t, Options{
		Privileged: s.privileged,
		Wrap:       s.wrap,
		Tables:     map[string]string{"sieve": table},
		Config:     cfg.String(),
	}, &sendmailPath, prepare)
}

// startWithSendmail fills in the fake sendmail's path (in the test
// directory) before the instance starts.
func startWithSendmail(t *testing.T, o Options, path *string, prepare func(dir string)) *Instance {
	o.Prepare = func(dir string) {
		*path = filepath.Join(dir, "fake-sendmail")
		cfgPath := filepath.Join(dir, "vlmtpd.toml")
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(string(b), "SENDMAIL", *path)), 0o644); err != nil {
			t.Fatal(err)
		}
		prepare(dir)
	}
	return StartInstance(t, o)
}

// sent is one recorded sendmail call.
type sent struct {
	args []string
	msg  string
}

func outbox(t *testing.T, in *Instance) []sent {
	t.Helper()
	dir := filepath.Join(in.Base, "outbox")
	names, _ := filepath.Glob(filepath.Join(dir, "*.args"))
	sort.Strings(names)
	var out []sent
	for _, n := range names {
		args := strings.Split(strings.TrimSuffix(readFile(t, n), "\n"), "\n")
		out = append(out, sent{args: args, msg: readFile(t, strings.TrimSuffix(n, ".args")+".msg")})
	}
	return out
}

// deliverTo sends one message to the recipients and returns the
// per-recipient replies after DATA (RCPT must be accepted).
func deliverTo(t *testing.T, in *Instance, sender string, rcpts []string, body string) []string {
	t.Helper()
	r := in.Dial(t)
	defer r.Close()
	r.lhlo()
	var rc []string
	for _, a := range rcpts {
		rc = append(rc, "<"+a+">")
	}
	rr, dr := r.txn("<"+sender+">", rc, body)
	for i, rep := range rr {
		if !strings.HasPrefix(rep, "250") {
			t.Fatalf("RCPT %s refused: %s", rcpts[i], rep)
		}
	}
	return dr
}

func msgFrom(from, to, subject, body string) string {
	return "From: " + from + "\nTo: " + to + "\nSubject: " + subject + "\nMessage-ID: <" +
		fmt.Sprint(time.Now().UnixNano()) + "@client.test>\n\n" + body + "\n"
}

// files lists the names in a Maildir subdirectory.
func files(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

const fileIntoScript = `require ["fileinto", "mailbox", "imap4flags"];
if header :contains "subject" "work" { fileinto "Work"; stop; }
if header :contains "subject" "create" { fileinto :create "Projects.2026"; stop; }
if header :contains "subject" "missing" { fileinto "Nope"; stop; }
if header :contains "subject" "hostile" { fileinto :create "../x"; fileinto :create "a/../../y"; stop; }
if header :contains "subject" "flagged" { fileinto :create :flags ["\\Seen", "\\Flagged"] "Starred"; stop; }
if header :contains "subject" "inboxflags" { addflag "\\Answered"; }
if header :contains "subject" "drafts" { fileinto :create "Entwürfe.Sent Items"; stop; }
`

// TestSieveFileInto: fileinto an existing folder, fileinto :create (the
// folder made with maildirfolder, "." as the hierarchy separator), a
// missing folder without :create (Pigeonhole: the implicit keep into
// INBOX, logged), hostile names that never leave the Maildir, and
// imap4flags: a flagged message lies in cur/ with its Maildir info.
func TestSieveFileInto(t *testing.T) {
	forModes(t, func(t *testing.T, privsep bool) {
		in := sieveInstance(t, sieveSetup{
			scripts:    map[string]string{"example.com/alice/.dovecot.sieve": fileIntoScript},
			folders:    []string{"Work"},
			privileged: privsep,
		})
		md := filepath.Join(in.Base, "example.com/alice")
		for _, subj := range []string{"work", "create", "missing", "hostile", "flagged", "inboxflags", "plain"} {
			dr := deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, msgFrom("s@example.org", "alice@example.com", subj, "text of "+subj))
			if len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
				t.Fatalf("%s: %v", subj, dr)
			}
		}
		// Which message lies where, by its subject, with the Maildir info
		// its flags give (":2,..." in cur/, none in new/). missing and
		// hostile fell back to INBOX.
		want := map[string]map[string]string{
			"new":                {"missing": "", "hostile": "", "plain": ""},
			"cur":                {"inboxflags": ":2,R"},
			".Work/new":          {"work": ""},
			".Work/cur":          {},
			".Projects.2026/new": {"create": ""},
			".Projects.2026/cur": {},
			".Starred/new":       {},
			".Starred/cur":       {"flagged": ":2,FS"},
		}
		var starred string
		for sub, subjects := range want {
			got := map[string]string{}
			for _, name := range files(t, filepath.Join(md, sub)) {
				msg := readFile(t, filepath.Join(md, sub, name))
				subj := regexp.MustCompile(`(?m)^Subject: (.*)$`).FindStringSubmatch(msg)
				if subj == nil || !strings.HasSuffix(msg, "\n\ntext of "+subj[1]+"\n") {
					t.Errorf("%s/%s is not one of the messages sent:\n%s", sub, name, msg)
					continue
				}
				if _, dup := got[subj[1]]; dup {
					t.Errorf("%s holds %q twice", sub, subj[1])
				}
				info := ""
				if k := strings.Index(name, ":"); k >= 0 {
					info = name[k:]
				}
				got[subj[1]] = info
				if subj[1] == "flagged" {
					starred = filepath.Join(md, sub, name)
				}
			}
			if !maps.Equal(got, subjects) {
				t.Errorf("%s holds %v (subject: info), want %v", sub, got, subjects)
			}
		}
		if _, err := os.Stat(filepath.Join(md, ".Projects.2026/maildirfolder")); err != nil {
			t.Errorf("created folder lacks maildirfolder: %v", err)
		}
		for _, p := range []string{filepath.Join(in.Base, "example.com/x"), filepath.Join(in.Base, "y"), filepath.Join(in.Base, "example.com/y")} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s exists: a folder name escaped the Maildir", p)
			}
		}
		ents, _ := os.ReadDir(md)
		for _, e := range ents {
			switch e.Name() {
			case "cur", "new", "tmp", ".Work", ".Projects.2026", ".Starred", ".dovecot.sieve", "vlmtpd-sieve":
			default:
				t.Errorf("unexpected entry %q in the Maildir", e.Name())
			}
		}
		if privsep && starred != "" {
			checkOwnerMode(t, starred, 5001, 5001, 0o600)
		}
		waitLog(t, in, "fileinto a folder that does not exist, kept in INBOX")
		waitLog(t, in, "fileinto names no safe folder, kept in INBOX")
	})
}

// TestSieveRejectPerRecipient: alice's script rejects; in the same
// transaction bob (mbox) and carol (no script) are delivered. Only alice
// gets 550 5.7.1, with the script's reason made one line.
func TestSieveRejectPerRecipient(t *testing.T) {
	in := sieveInstance(t, sieveSetup{
		scripts: map[string]string{"example.com/alice/.dovecot.sieve": "require \"reject\";\nreject text:\nNot from you,\r\nthanks.\n.\n;\n"},
	})
	dr := deliverTo(t, in, "s@example.org", []string{"carol@example.com", "alice@example.com", "bob@example.com"}, msgFrom("s@example.org", "alice@example.com", "hello", "hi"))
	if len(dr) != 3 {
		t.Fatalf("replies: %v", dr)
	}
	if !strings.HasPrefix(dr[0], "250") || !strings.HasPrefix(dr[2], "250") {
		t.Errorf("the other recipients: %v", dr)
	}
	if !strings.HasPrefix(dr[1], "550 5.7.1 ") || !strings.Contains(dr[1], "Not from you, thanks.") || strings.ContainsAny(dr[1], "\r\n") {
		t.Errorf("alice: %q, want 550 5.7.1 with the reason on one line", dr[1])
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 0 {
		t.Errorf("rejected message stored (%d files)", n)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/carol"))); n != 1 {
		t.Errorf("carol has %d messages", n)
	}
	if b := readFile(t, filepath.Join(in.Base, "example.com/bob")); !strings.Contains(b, "Subject: hello") {
		t.Errorf("bob's mbox: %q", b)
	}
}

// TestSieveDiscard: discard answers 250, stores nothing and says so in
// the log; fileinto for an mbox recipient falls back to the mbox.
func TestSieveDiscard(t *testing.T) {
	in := sieveInstance(t, sieveSetup{
		scripts: map[string]string{
			"example.com/alice/.dovecot.sieve": `if header :is "subject" "spam" { discard; }`,
			"example.com/bob.sieve":            `require "fileinto"; fileinto "Archive";`,
		},
		table: "alice@example.com example.com/alice/.dovecot.sieve\nbob@example.com example.com/bob.sieve\n",
	})
	dr := deliverTo(t, in, "s@example.org", []string{"alice@example.com", "bob@example.com"}, msgFrom("s@example.org", "alice@example.com", "spam", "buy"))
	if len(dr) != 2 || !strings.HasPrefix(dr[0], "250") || !strings.HasPrefix(dr[1], "250") {
		t.Fatalf("replies: %v", dr)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 0 {
		t.Errorf("discarded message stored (%d files)", n)
	}
	waitLog(t, in, "sieve: message discarded")
	if b := readFile(t, filepath.Join(in.Base, "example.com/bob")); strings.Count(b, "Subject: spam") != 1 {
		t.Errorf("bob's mbox: %q", b)
	}
	waitLog(t, in, "fileinto on an mbox mailbox, kept in the mbox")
}

// TestSieveVacation: a vacation reply goes out once per :days per sender,
// through sendmail_path with the null envelope sender, RFC 3834's
// Auto-Submitted, to the envelope sender; the message itself is kept.
// The response is tracked beneath the Maildir by the worker (as the
// mailbox owner). Privilege separation: the worker composes the reply,
// the front (as nobody) runs sendmail.
func TestSieveVacation(t *testing.T) {
	in := sieveInstance(t, sieveSetup{
		scripts: map[string]string{"example.com/alice/.dovecot.sieve": `require "vacation";
vacation :days 3 :subject "Away" "I am away until Monday.";`},
		privileged: os.Getuid() == 0,
	})
	send := func(from string) {
		dr := deliverTo(t, in, from, []string{"alice@example.com"}, msgFrom(from, "Alice <alice@example.com>", "question", "are you there?"))
		if len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
			t.Fatalf("replies: %v", dr)
		}
	}
	send("s1@example.org")
	send("s1@example.org")
	send("s2@example.org")
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 3 {
		t.Errorf("alice has %d messages, want 3", n)
	}
	got := outbox(t, in)
	if len(got) != 2 {
		t.Fatalf("sendmail called %d times, want 2 (once per sender): %+v", len(got), got)
	}
	for i, want := range []string{"s1@example.org", "s2@example.org"} {
		g := got[i]
		if strings.Join(g.args, " ") != "-i -f <> -- "+want {
			t.Errorf("reply %d: argv %q", i, g.args)
		}
		for _, h := range []string{"Auto-Submitted: auto-replied", "Subject: Away", "To: <" + want + ">", "In-Reply-To: <", "I am away until Monday."} {
			if !strings.Contains(g.msg, h) {
				t.Errorf("reply %d lacks %q:\n%s", i, h, g.msg)
			}
		}
	}
	state, _ := filepath.Glob(filepath.Join(in.Base, "example.com/alice/vlmtpd-sieve/vacation-*"))
	if len(state) != 2 {
		t.Fatalf("vacation state: %v", state)
	}
	// A list message gets no reply (RFC 5230 5.6, the package's decision).
	list := "Precedence: bulk\nList-Id: <l.example.org>\n" + msgFrom("s3@example.org", "alice@example.com", "digest", "x")
	deliverTo(t, in, "s3@example.org", []string{"alice@example.com"}, list)
	if n := len(outbox(t, in)); n != 2 {
		t.Errorf("a list message was answered (%d replies)", n)
	}
	// Once :days have passed (the state's expiry moved into the past),
	// the same sender is answered again.
	for _, f := range state {
		if err := os.WriteFile(f, []byte(fmt.Sprint(time.Now().Add(-time.Minute).Unix())+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	send("s1@example.org")
	if got := outbox(t, in); len(got) != 3 || got[2].args[len(got[2].args)-1] != "s1@example.org" {
		t.Errorf("after the period: %d replies", len(got))
	}
}

// TestSieveRedirect: redirect submits the message to the new address with
// the original envelope sender, marked with X-Sieve-Redirected-From and
// not kept; a message that already carries this recipient's mark is not
// redirected again (a loop) but kept.
func TestSieveRedirect(t *testing.T) {
	in := sieveInstance(t, sieveSetup{
		scripts: map[string]string{"example.com/alice/.dovecot.sieve": `redirect "elsewhere@example.net";`},
	})
	dr := deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, msgFrom("s@example.org", "alice@example.com", "fwd me", "body line"))
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
		t.Fatalf("replies: %v", dr)
	}
	got := outbox(t, in)
	if len(got) != 1 {
		t.Fatalf("sendmail calls: %+v", got)
	}
	if strings.Join(got[0].args, " ") != "-i -f s@example.org -- elsewhere@example.net" {
		t.Errorf("argv %q", got[0].args)
	}
	if !strings.HasPrefix(got[0].msg, "X-Sieve-Redirected-From: alice@example.com\n") || !strings.Contains(got[0].msg, "Subject: fwd me\n") || !strings.Contains(got[0].msg, "\nbody line\n") {
		t.Errorf("redirected message:\n%s", got[0].msg)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 0 {
		t.Errorf("redirected message also kept (%d)", n)
	}
	loop := "X-Sieve-Redirected-From: alice@example.com\n" + msgFrom("s@example.org", "alice@example.com", "again", "x")
	deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, loop)
	if n := len(outbox(t, in)); n != 1 {
		t.Errorf("a redirect loop was submitted again (%d calls)", n)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 1 {
		t.Errorf("the looping message is not kept (%d)", n)
	}
	waitLog(t, in, "redirect loop")
}

// TestSieveRedirectSendmailFails: a failing sendmail never loses the
// message: it is kept in INBOX and the log says why.
func TestSieveRedirectSendmailFails(t *testing.T) {
	in := sieveInstance(t, sieveSetup{
		scripts:  map[string]string{"example.com/alice/.dovecot.sieve": `redirect "elsewhere@example.net";`},
		sendmail: "echo 'sendmail: queue unavailable' >&2\nexit 75\n",
	})
	dr := deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, msgFrom("s@example.org", "alice@example.com", "fwd me", "x"))
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
		t.Fatalf("replies: %v", dr)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 1 {
		t.Errorf("alice has %d messages, want the kept one", n)
	}
	waitLog(t, in, "queue unavailable")
}

// TestSieveSyntaxError: a script that does not compile is not run: the
// message is kept, the log names the error with its line, and the errors
// are written to the .log file beside the script, as Pigeonhole does.
func TestSieveSyntaxError(t *testing.T) {
	in := sieveInstance(t, sieveSetup{
		scripts: map[string]string{"example.com/alice/.dovecot.sieve": "require \"fileinto\";\nif true {\n  fileinto \"x\"\n"},
	})
	dr := deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, msgFrom("s@example.org", "alice@example.com", "hello", "x"))
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
		t.Fatalf("replies: %v", dr)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 1 {
		t.Errorf("alice has %d messages, want the kept one", n)
	}
	logFile := filepath.Join(in.Base, "example.com/alice/.dovecot.sieve.log")
	b := readFile(t, logFile)
	if !strings.Contains(b, "error") || !strings.Contains(b, ".dovecot.sieve:") {
		t.Errorf(".log file: %q", b)
	}
	checkOwnerMode(t, logFile, in.UID, in.GID, 0o600)
	waitLog(t, in, "the user's script is not run, message kept")
}

// TestSieveCPULimit: a script that runs longer than sieve_max_cpu_time is
// cut off and the message is kept.
func TestSieveCPULimit(t *testing.T) {
	var b strings.Builder
	// Each test takes RE2 about 60ms (a 4000-byte subject, a 700-byte
	// pattern); 300 of them would run for 20 seconds.
	b.WriteString(`require ["variables", "regex"]; set "a" "` + strings.Repeat("x", 1000) + `";` + "\n")
	b.WriteString(`set "b" "${a}${a}${a}${a}";` + "\n")
	for i := 0; i < 300; i++ {
		b.WriteString(`if string :regex "${b}" "` + strings.Repeat("(x|xx)*", 100) + `y" { discard; }` + "\n")
	}
	in := sieveInstance(t, sieveSetup{
		scripts: map[string]string{"example.com/alice/.dovecot.sieve": b.String()},
		config:  "sieve_max_cpu_time = \"500ms\"\n",
	})
	start := time.Now()
	dr := deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, msgFrom("s@example.org", "alice@example.com", "hello", "x"))
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
		t.Fatalf("replies: %v", dr)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 1 {
		t.Errorf("alice has %d messages, want the kept one", n)
	}
	waitLog(t, in, "sieve: runtime error, message kept")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("delivery took %v: the script was not cut off", d)
	}
}

// TestSieveBeforeAfter: the administrator's sieve_before and sieve_after
// scripts (absolute paths, read by the worker) run around the user's, as
// in Pigeonhole: flags set before carry over, after runs while the
// message is kept, and recipients without a script of their own get them
// too.
func TestSieveBeforeAfter(t *testing.T) {
	in := sieveInstance(t, sieveSetup{
		scripts: map[string]string{"example.com/alice/.dovecot.sieve": `require "imap4flags"; if header :contains "subject" "seen" { addflag "\\Seen"; }`},
		config:  "sieve_before = [\"BEFORE\"]\nsieve_after = [\"AFTER\"]\n",
		prepare: func(d string) {
			writeTestFile(t, filepath.Join(d, "before.sieve"), `require "imap4flags"; if header :contains "subject" "urgent" { addflag "\\Flagged"; }`)
			writeTestFile(t, filepath.Join(d, "after.sieve"), `require ["fileinto", "mailbox"]; if header :contains "subject" "late" { fileinto :create "After"; }`)
			cfg := filepath.Join(d, "vlmtpd.toml")
			b := readFile(t, cfg)
			b = strings.ReplaceAll(strings.ReplaceAll(b, "BEFORE", filepath.Join(d, "before.sieve")), "AFTER", filepath.Join(d, "after.sieve"))
			writeTestFile(t, cfg, b)
		},
	})
	for _, subj := range []string{"urgent seen", "late", "plain"} {
		deliverTo(t, in, "s@example.org", []string{"alice@example.com", "carol@example.com"}, msgFrom("s@example.org", "alice@example.com", subj, "x"))
	}
	alice := filepath.Join(in.Base, "example.com/alice")
	cur := files(t, filepath.Join(alice, "cur"))
	if len(cur) != 1 || !strings.HasSuffix(cur[0], ":2,FS") {
		t.Errorf("alice cur/: %v, want one message :2,FS (before's flag and the user's)", cur)
	}
	if n := len(files(t, filepath.Join(alice, ".After/new"))); n != 1 {
		t.Errorf("alice .After has %d, want 1", n)
	}
	if n := len(files(t, filepath.Join(alice, "new"))); n != 1 {
		t.Errorf("alice INBOX new/ has %d, want 1 (plain)", n)
	}
	carol := filepath.Join(in.Base, "example.com/carol")
	if cur := files(t, filepath.Join(carol, "cur")); len(cur) != 1 || !strings.HasSuffix(cur[0], ":2,F") {
		t.Errorf("carol cur/: %v, want one message :2,F", cur)
	}
	if n := len(files(t, filepath.Join(carol, ".After/new"))); n != 1 {
		t.Errorf("carol .After has %d, want 1", n)
	}
}

// TestSieveFlagsReadByDovecot: the flags imap4flags set are what Dovecot
// reads from the Maildir (doveadm fetch), in INBOX and in a folder
// fileinto :create made; a non-ASCII folder name with a space is the
// mailbox Dovecot shows under that name (modified UTF-7 on disk).
func TestSieveFlagsReadByDovecot(t *testing.T) {
	owner := testMailOwner(t)
	d := startDovecotForDoveadm(t, owner)
	in := sieveInstance(t, sieveSetup{scripts: map[string]string{"example.com/alice/.dovecot.sieve": fileIntoScript}})
	for _, subj := range []string{"flagged", "inboxflags", "plain", "drafts"} {
		deliverTo(t, in, "s@example.org", []string{"alice@example.com"}, msgFrom("s@example.org", "alice@example.com", subj, "x"))
	}
	side := filepath.Join(d.Dir, "home", "sieve")
	for _, s := range []string{"index", "control"} {
		if err := os.MkdirAll(filepath.Join(side, s), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	chownTree(t, side, owner)
	location := fmt.Sprintf("maildir:%s:INDEX=%s/index:CONTROL=%s/control", filepath.Join(in.Base, "example.com/alice"), side, side)
	cmd := exec.Command(d.doveadm, "-f", "tab", "-c", d.Conf, "-o", "mail_location="+location,
		"fetch", "-u", "reader@readers.test", "mailbox flags hdr.subject", "all")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("doveadm fetch: %v\n%s", err, stderr.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
		f := strings.Split(line, "\t")
		if len(f) == 3 {
			// \Recent is Dovecot's own (first session to see it).
			flags := strings.Fields(strings.ReplaceAll(f[1], `\Recent`, ""))
			got[f[2]] = strings.TrimSpace(f[0] + " " + strings.Join(flags, " "))
		}
	}
	want := map[string]string{"flagged": `Starred \Flagged \Seen`, "inboxflags": `INBOX \Answered`, "plain": "INBOX",
		"drafts": "Entwürfe.Sent Items"}
	for subj, w := range want {
		if g := got[subj]; g != w {
			t.Errorf("%s: Dovecot reads %q, want %q\n%s", subj, g, w, out)
		}
	}
}

// mboxFlagsScript sets flags by subject for bob, whose mailbox is an mbox.
const mboxFlagsScript = `require ["imap4flags", "fileinto"];
if header :is "subject" "seen" { setflag "\\Seen"; }
elsif header :is "subject" "flagged" { addflag ["\\Flagged", "\\Answered"]; }
elsif header :is "subject" "all" { addflag ["\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted", "\\Recent"]; }
elsif header :is "subject" ["labels", "early-labels"] { addflag ["$Label1", "\\Seen", "Junk"]; }
elsif header :is "subject" "fileinto" { fileinto :flags "\\Flagged" "Work"; }
`

// TestSieveMboxFlagsReadByDovecot: the flags imap4flags set for an mbox
// recipient are what Dovecot reads from the mbox (doveadm fetch), and
// flag fields the sender wrote (X-Status: FA, Status: RO, X-Keywords,
// X-UID) give a message no flags. Keywords: Dovecot drops an X-Keywords
// field naming a keyword its index does not know (mbox-sync-parse.c), so
// only those the mbox lists in X-IMAPbase are written: none before
// Dovecot has seen $Label1 (early-labels keeps \Seen), $Label1 once
// doveadm set it on another message, never "Junk".
func TestSieveMboxFlagsReadByDovecot(t *testing.T) {
	owner := testMailOwner(t)
	d := startDovecotForDoveadm(t, owner)
	in := sieveInstance(t, sieveSetup{
		scripts: map[string]string{"example.com/bob.sieve": mboxFlagsScript},
		table:   "bob@example.com example.com/bob.sieve\n",
	})
	for _, subj := range []string{"seen", "flagged", "all", "fileinto", "plain", "early-labels"} {
		deliverTo(t, in, "s@example.org", []string{"bob@example.com"}, msgFrom("s@example.org", "bob@example.com", subj, "x"))
	}
	deliverTo(t, in, "s@example.org", []string{"bob@example.com"}, "From: s@example.org\nTo: bob@example.com\nSubject: forged"+
		"\nStatus: RO\nX-Status: FA\nX-Keywords: $Label1 Junk\nX-UID: 4000000000\n\nx\n")
	mbox := filepath.Join(in.Base, "example.com/bob")
	if b := readFile(t, mbox); strings.Contains(b, "X-UID: 4000000000") || strings.Contains(b, "X-Status: FA") {
		t.Errorf("forged fields reached bob's mbox:\n%s", b)
	}
	got := fetchMboxFlags(t, d, mbox)
	want := map[string]string{
		"seen": `\Seen`, "flagged": `\Answered \Flagged`, "all": `\Answered \Flagged \Deleted \Seen \Draft`,
		"fileinto": `\Flagged`, "plain": "", "forged": "", "early-labels": `\Seen`,
	}
	for subj, w := range want {
		if g, ok := got[subj]; !ok || g != w {
			t.Errorf("%s: Dovecot reads %q, want %q (all: %q)", subj, g, w, got)
		}
	}

	doveadmMbox(t, d, mbox, "flags", "add", "-u", "reader@readers.test", "$Label1", "mailbox", "INBOX", "header", "subject", "plain")
	deliverTo(t, in, "s@example.org", []string{"bob@example.com"}, msgFrom("s@example.org", "bob@example.com", "labels", "x"))
	got = fetchMboxFlags(t, d, mbox)
	want["plain"], want["labels"] = "$Label1", `\Seen $Label1`
	for subj, w := range want {
		if g, ok := got[subj]; !ok || g != w {
			t.Errorf("after $Label1 is known: %s: Dovecot reads %q, want %q (all: %q)", subj, g, w, got)
		}
	}
}

// doveadmMbox runs doveadm on the mbox as INBOX, with Dovecot's index in
// its own directory (kept from one call to the next).
func doveadmMbox(t *testing.T, d *dovecotInstance, mbox string, args ...string) []byte {
	t.Helper()
	side := filepath.Join(d.Dir, "home", "mbox-"+filepath.Base(mbox))
	for _, s := range []string{"index", "root"} {
		if err := os.MkdirAll(filepath.Join(side, s), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	chownTree(t, side, d.Owner)
	location := fmt.Sprintf("mbox:%s/root:INBOX=%s:INDEX=%s/index", side, mbox, side)
	cmd := exec.Command(d.doveadm, append([]string{"-f", "tab", "-c", d.Conf, "-o", "mail_location=" + location}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("doveadm %s: %v\n%s", args[0], err, stderr.String())
	}
	return out
}

// fetchMboxFlags returns each message's flags as Dovecot reads them from
// the mbox, by subject, without \Recent (Dovecot's own: the first
// session to see a message).
func fetchMboxFlags(t *testing.T, d *dovecotInstance, mbox string) map[string]string {
	t.Helper()
	out := doveadmMbox(t, d, mbox, "fetch", "-u", "reader@readers.test", "flags hdr.subject", "all")
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
		f := strings.Split(line, "\t")
		if len(f) == 2 {
			got[f[1]] = strings.Join(strings.Fields(strings.ReplaceAll(f[0], `\Recent`, "")), " ")
		}
	}
	return got
}
