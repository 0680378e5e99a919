package sieve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The Pigeonhole oracle: every script in testdata/oracle/*.sieve runs on
// every message in testdata/oracle/*.eml, through Pigeonhole's sieve-test
// and through this package, and the action lists must agree, but for the
// entries of testdata/oracle/allowlist.txt (deliberate differences, each
// with its reason). Scripts named vacation*.sieve also run in sieve-test's
// execute mode (-e), where Pigeonhole applies RFC 5230's rules, so that
// whether a reply goes out, and its From/To/Subject, are compared too.

const (
	oracleSender    = "sender@example.com"
	oracleRecipient = "me+box@example.net"
)

// oracleEnvelopes: sieve-test cannot take the null sender (-f "" and
// -f "<>" are refused, and without -f it takes the From field), so the
// null sender is covered by the unit tests only.
func oracleEnvelopes(string) []Envelope {
	return []Envelope{{From: oracleSender, To: oracleRecipient}}
}

// oracleFolders exist besides INBOX in both mail stores.
var oracleFolders = []string{"Work", "Lists"}

func chmodAll(dir string) {
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Chmod(p, 0o777)
		}
		return nil
	})
}

func ciRequired() bool { return os.Getenv("CI") == "true" }

func sieveTestOrSkip(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/sieve-test"} {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("sieve-test"); err == nil {
		return p
	}
	if ciRequired() {
		t.Fatal("CI=true: Pigeonhole's sieve-test is missing (Debian package dovecot-sieve)")
	}
	t.Skip("Pigeonhole's sieve-test is missing (Debian package dovecot-sieve)")
	return ""
}

// pigeonhole runs sieve-test without a running Dovecot: a private config
// names every directory, and as root it runs as nobody (Dovecot refuses
// mail access as root).
type pigeonhole struct {
	bin, dir, conf string
	asNobody       bool
}

func newPigeonhole(t *testing.T) *pigeonhole {
	bin := sieveTestOrSkip(t)
	dir, err := os.MkdirTemp("", "sieve-oracle-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &pigeonhole{bin: bin, dir: dir, conf: filepath.Join(dir, "dovecot.conf"), asNobody: os.Geteuid() == 0}
	for _, d := range []string{"run", "state", "home", "global"} {
		os.MkdirAll(filepath.Join(dir, d), 0o777)
	}
	// The mailboxes that exist, for mailboxexists: INBOX and oracleFolders.
	for _, f := range append([]string{""}, oracleFolders...) {
		for _, sub := range []string{"cur", "new", "tmp"} {
			d := filepath.Join(dir, "mail", "."+f, sub)
			if f == "" {
				d = filepath.Join(dir, "mail", sub)
			}
			os.MkdirAll(d, 0o777)
		}
	}
	chmodAll(filepath.Join(dir, "mail"))
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = /dev/stderr
mail_home = %[1]s/home
mail_location = maildir:%[1]s/home/Maildir
plugin {
  sieve = file:%[1]s/personal
  sieve_global = %[1]s/global
  sieve_extensions = +editheader +vacation-seconds
  recipient_delimiter = +
}
`, dir)
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	return p
}

func (p *pigeonhole) run(t *testing.T, script, message string, env Envelope, execute bool) (string, int) {
	args := []string{"-c", p.conf, "-r", env.To, "-f", env.From}
	if !execute {
		args = append(args, "-l", "maildir:"+filepath.Join(p.dir, "mail"))
	}
	if execute {
		home, err := os.MkdirTemp(p.dir, "exec-")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range oracleFolders {
			os.MkdirAll(filepath.Join(home, "."+f, "cur"), 0o777)
		}
		chmodAll(home)
		args = append(args, "-e", "-l", "maildir:"+home)
	}
	args = append(args, script, message)
	return p.runArgs(t, args...)
}

func (p *pigeonhole) runArgs(t *testing.T, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = []string{"TZ=UTC", "PATH=/usr/bin:/bin"}
	if p.asNobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("sieve-test: %v", err)
	}
	return string(out), code
}

// parsePigeonhole turns sieve-test's report into canonical lines.
func parsePigeonhole(out string, code int, execute bool) []string {
	if code == 89 || strings.Contains(out, "failed to compile sieve script") {
		return []string{"compile-error"}
	}
	if strings.Contains(out, "final result: failed") {
		return []string{"error"}
	}
	if execute {
		return parseExecuted(out)
	}
	var lines []string
	state := ""
	var vac *[]string
	var body []string
	inBody := false
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case inBody:
			if l == "END MESSAGE" {
				inBody = false
				lines[len(lines)-1] += " reason=" + fmt.Sprintf("%q", strings.TrimSpace(strings.Join(body, "\n")))
				body = nil
				continue
			}
			body = append(body, l)
			continue
		case l == "Performed actions:":
			state = ""
		case l == "Implicit keep:":
			state = "implicit: "
		case l == "START MESSAGE":
			inBody = true
		case strings.HasPrefix(l, " * "):
			a := strings.TrimPrefix(l, " * ")
			vac = nil
			switch {
			case strings.HasPrefix(a, "store message in folder: "):
				a = "store " + strings.TrimPrefix(a, "store message in folder: ")
			case strings.HasPrefix(a, "redirect message to: "):
				a = "redirect " + strings.Trim(strings.TrimPrefix(a, "redirect message to: "), "<>")
			case strings.HasPrefix(a, "reject message with reason: "):
				a = "reject " + fmt.Sprintf("%q", strings.TrimSpace(strings.TrimPrefix(a, "reject message with reason: ")))
			case strings.HasPrefix(a, "track duplicate"):
				a = "track " + strings.TrimPrefix(a, "track ")
			case a == "send vacation message:":
				a = "vacation"
			}
			lines = append(lines, state+a)
			if a == "vacation" {
				vac = &lines
			}
		case strings.TrimSpace(l) == "+ create mailbox if it does not exist":
			lines[len(lines)-1] += " create"
		case strings.HasPrefix(strings.TrimSpace(l), "+ add IMAP flags: "):
			flags := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "+ add IMAP flags: "))
			lines[len(lines)-1] += canonFlags(flags)
		case vac != nil && strings.HasPrefix(strings.TrimSpace(l), "=> "):
			kv := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(l), "=> "), ":", 2)
			if len(kv) == 2 {
				k, v := strings.TrimSpace(kv[0]), strings.TrimSpace(kv[1])
				if k == "seconds" || k == "handle" {
					lines[len(lines)-1] += fmt.Sprintf(" %s=%q", k, v)
				}
			}
		}
	}
	// Duplicate tracking is not ordered with the other actions here.
	var track, rest []string
	for _, l := range lines {
		if strings.HasPrefix(l, "track ") {
			track = append(track, l)
		} else {
			rest = append(rest, l)
		}
	}
	return append(track, rest...)
}

// parseExecuted reports what execute mode did with the vacation reply.
func parseExecuted(out string) []string {
	if i := strings.Index(out, "sending message from <>:"); i >= 0 {
		hdr := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(out[i:]))
		sc.Scan()
		last := ""
		for sc.Scan() && sc.Text() != "" {
			l := sc.Text()
			if (l[0] == ' ' || l[0] == '\t') && last != "" {
				hdr[last] += " " + l[1:]
				continue
			}
			if k, v, ok := strings.Cut(l, ": "); ok {
				last = strings.ToLower(k)
				hdr[last] = v
			}
		}
		for k, v := range hdr {
			hdr[k] = decodeHeader(v)
		}
		return []string{fmt.Sprintf("vacation-sent from=%q to=%q subject=%q in-reply-to=%q references=%q",
			stripAngle(hdr["from"]), stripAngle(hdr["to"]), hdr["subject"], hdr["in-reply-to"], strings.Join(strings.Fields(hdr["references"]), " "))}
	}
	if strings.Contains(out, "vacation action:") || strings.Contains(out, "send vacation message") {
		return []string{"vacation-not-sent"}
	}
	return []string{"no-vacation"}
}

func stripAngle(s string) string {
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		return strings.TrimSuffix(s[i+1:], ">")
	}
	return s
}

func canonFlags(flags []string) string {
	if len(flags) == 0 {
		return ""
	}
	var out []string
	for _, f := range flags {
		out = append(out, strings.ToLower(f))
	}
	sort.Strings(out)
	return " flags=" + strings.Join(out, ",")
}

// ours runs this package the way the oracle case runs sieve-test.
func ours(src []byte, msg []byte, env Envelope, execute bool, loader IncludeLoader) []string {
	s, err := Compile(src, &Options{Include: loader})
	if err != nil {
		return []string{"compile-error"}
	}
	m, _ := ParseMessage(msg)
	mboxes := mailboxes{"INBOX": true}
	for _, f := range oracleFolders {
		mboxes[f] = true
	}
	res, err := s.Run(context.Background(), &Env{Envelope: env, Message: m, Now: time.Now().UTC(), Mailboxes: mboxes})
	if err != nil {
		return []string{"error"}
	}
	if !execute {
		return canonResult(res, nil)
	}
	if execute {
		for _, a := range res.Actions {
			if v, ok := a.(*Vacation); ok {
				if !v.Send {
					return []string{"vacation-not-sent"}
				}
				return []string{fmt.Sprintf("vacation-sent from=%q to=%q subject=%q in-reply-to=%q references=%q",
					stripAngle(v.From), v.To, v.Subject, v.InReplyTo, strings.Join(strings.Fields(v.References), " "))}
			}
		}
		return []string{"no-vacation"}
	}
	return nil
}

// canonResult is a Result in the canonical lines of parsePigeonhole; a
// runtime error adds "error" after the earlier scripts' actions.
func canonResult(res *Result, err error) []string {
	var lines []string
	for _, a := range res.Actions {
		switch a := a.(type) {
		case *Keep:
			lines = append(lines, "store INBOX"+canonFlags(a.Flags))
		case *FileInto:
			create := ""
			if a.Create {
				create = " create"
			}
			lines = append(lines, "store "+sanitized(a.Mailbox)+create+canonFlags(a.Flags))
		case *Redirect:
			lines = append(lines, "redirect "+a.Address)
		case *Reject:
			// sieve-test prints control characters as '?'.
			reason := strings.TrimSpace(strings.NewReplacer("\r", "?", "\n", "?").Replace(a.Reason))
			lines = append(lines, "reject "+fmt.Sprintf("%q", reason))
		case *Discard:
			lines = append(lines, "discard")
		case *Vacation:
			// sieve-test prints the handle up to its first line break.
			handle, _, _ := strings.Cut(a.Handle, "\r")
			handle, _, _ = strings.Cut(handle, "\n")
			lines = append(lines, fmt.Sprintf("vacation seconds=%q handle=%q reason=%q",
				fmt.Sprint(int64(a.Period/time.Second)), handle, strings.TrimSpace(strings.ReplaceAll(a.Reason, "\r\n", "\n"))))
		}
	}
	var track []string
	for _, d := range res.Duplicates {
		if d.Handle != "" {
			track = append(track, "track duplicate with handle: "+d.Handle)
		} else {
			track = append(track, "track duplicate")
		}
	}
	lines = append(track, lines...)
	if err != nil {
		if len(lines) == 0 {
			return []string{"error"}
		}
		lines = append(lines, "error")
	}
	if res.ImplicitKeep && err == nil {
		lines = append(lines, "implicit: store INBOX"+canonFlags(res.KeepFlags))
	}
	return lines
}

type allowEntry struct {
	script, message, reason string
	used                    bool
}

func loadAllowlist(t *testing.T) []*allowEntry {
	data, err := os.ReadFile("testdata/oracle/allowlist.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out []*allowEntry
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.SplitN(l, " ", 3)
		if len(f) < 3 {
			t.Fatalf("allowlist: %q needs SCRIPT MESSAGE REASON", l)
		}
		out = append(out, &allowEntry{script: f[0], message: f[1], reason: f[2]})
	}
	return out
}

func TestPigeonholeOracle(t *testing.T) {
	p := newPigeonhole(t)
	scripts, _ := filepath.Glob("testdata/oracle/*.sieve")
	msgs, _ := filepath.Glob("testdata/oracle/*.eml")
	if len(scripts) == 0 || len(msgs) == 0 {
		t.Fatal("no oracle corpus")
	}
	// sieve-test runs as nobody: give it copies it can read, and the
	// included scripts where its config looks for them.
	for _, d := range []string{"personal", "global"} {
		src, _ := filepath.Glob("testdata/oracle/include/" + d + "/*.sieve")
		os.MkdirAll(filepath.Join(p.dir, d), 0o755)
		for _, f := range src {
			data, _ := os.ReadFile(f)
			os.WriteFile(filepath.Join(p.dir, d, filepath.Base(f)), data, 0o644)
		}
	}
	loader := func(loc IncludeLocation, name string) ([]byte, error) {
		return os.ReadFile(filepath.Join("testdata/oracle/include", loc.String(), name+".sieve"))
	}
	copyIn := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(p.dir, filepath.Base(path))
		os.WriteFile(dst, data, 0o644)
		return dst
	}
	allow := loadAllowlist(t)
	agree, allowed, differ, agreeCompile, agreeRuntime := 0, 0, 0, 0, 0
	for _, sp := range scripts {
		src, _ := os.ReadFile(sp)
		scriptCopy := copyIn(sp)
		for _, mp := range msgs {
			msg, _ := os.ReadFile(mp)
			msgCopy := copyIn(mp)
			for _, env := range oracleEnvelopes(sp) {
				modes := []bool{false}
				if strings.HasPrefix(filepath.Base(sp), "vacation") {
					modes = append(modes, true)
				}
				for _, exec := range modes {
					out, code := p.run(t, scriptCopy, msgCopy, env, exec)
					want := parsePigeonhole(out, code, exec)
					got := ours(src, msg, env, exec, loader)
					if strings.Join(want, "\n") == strings.Join(got, "\n") {
						agree++
						switch want[0] {
						case "compile-error":
							agreeCompile++
						case "error":
							agreeRuntime++
						}
						continue
					}
					name := fmt.Sprintf("%s × %s (from <%s>, execute=%v)", filepath.Base(sp), filepath.Base(mp), env.From, exec)
					if e := findAllow(allow, filepath.Base(sp), filepath.Base(mp)); e != nil {
						e.used = true
						allowed++
						t.Logf("allowed difference %s: %s", name, e.reason)
						continue
					}
					differ++
					t.Errorf("%s:\nPigeonhole: %q\nvlmtpd:     %q\nsieve-test output:\n%s", name, want, got, out)
				}
			}
		}
	}
	for _, e := range allow {
		if !e.used {
			t.Errorf("allowlist entry %s %s is stale: no difference left", e.script, e.message)
		}
	}
	t.Logf("oracle: %d cases agree (%d of them both refuse the script, %d both fail at runtime), %d allowed differences, %d differ",
		agree, agreeCompile, agreeRuntime, allowed, differ)
}

func findAllow(list []*allowEntry, script, msg string) *allowEntry {
	for _, e := range list {
		if e.script == script && (e.message == "*" || e.message == msg) {
			return e
		}
	}
	return nil
}

// sanitized is how sieve-test prints a long name: 125 bytes and "...".
func sanitized(s string) string {
	s = strings.NewReplacer("\r", "?", "\n", "?").Replace(s)
	if len(s) <= 128 {
		return s
	}
	return truncUTF8(s, 125) + "..."
}

// TestPigeonholeSequence compares RunSequence with sieve-test -s (the
// scripts before the main one, as sieve_before): each directory of
// testdata/oracle/sequence holds 1.sieve, 2.sieve, ... the last the main.
func TestPigeonholeSequence(t *testing.T) {
	p := newPigeonhole(t)
	dirs, _ := filepath.Glob("testdata/oracle/sequence/*")
	msgs := []string{"testdata/oracle/plain.eml", "testdata/oracle/list.eml"}
	env := Envelope{From: oracleSender, To: oracleRecipient}
	agree := 0
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sieve"))
		sort.Strings(files)
		var scripts []*Script
		var args []string
		compileErr := false
		for i, f := range files {
			src, _ := os.ReadFile(f)
			s, err := Compile(src, nil)
			if err != nil {
				compileErr = true
			}
			scripts = append(scripts, s)
			dst := filepath.Join(p.dir, filepath.Base(dir)+"-"+filepath.Base(f))
			os.WriteFile(dst, src, 0o644)
			if i < len(files)-1 {
				args = append(args, "-s", dst)
			} else {
				args = append(args, dst)
			}
		}
		for _, mp := range msgs {
			data, _ := os.ReadFile(mp)
			msgCopy := filepath.Join(p.dir, filepath.Base(mp))
			os.WriteFile(msgCopy, data, 0o644)
			out, code := p.runArgs(t, append(append([]string{"-c", p.conf, "-r", env.To, "-f", env.From, "-l", "maildir:" + filepath.Join(p.dir, "mail")}, args...), msgCopy)...)
			want := parseSequence(out, code)
			var got []string
			if compileErr {
				got = []string{"compile-error"}
			} else {
				m, _ := ParseMessage(data)
				res, err := RunSequence(context.Background(), &Env{Envelope: env, Message: m}, scripts...)
				got = canonResult(res, err)
			}
			if strings.Join(want, "\n") != strings.Join(got, "\n") {
				t.Errorf("%s × %s:\nPigeonhole: %q\nvlmtpd:     %q\n%s", filepath.Base(dir), filepath.Base(mp), want, got, out)
				continue
			}
			agree++
		}
	}
	t.Logf("sequence oracle: %d cases agree", agree)
}

// parseSequence merges sieve-test's per-script sections: the actions of
// all, once each, and the implicit keep of the last script run.
func parseSequence(out string, code int) []string {
	sections := strings.Split(out, "## Executing script: ")
	if len(sections) < 2 {
		return parsePigeonhole(out, code, false)
	}
	var lines, implicit []string
	seen := map[string]bool{}
	for i, sec := range sections[1:] {
		for _, l := range parsePigeonhole(sec, 0, false) {
			l = strings.Replace(l, "keep", "store INBOX", 1)
			if l == "error" {
				continue // added once below
			}
			if strings.HasPrefix(l, "implicit: ") {
				if i == len(sections)-2 {
					implicit = append(implicit, l)
				}
				continue
			}
			if !seen[l] {
				seen[l] = true
				lines = append(lines, l)
			}
		}
	}
	if strings.Contains(out, "final result: failed") {
		lines = append(lines, "error")
	}
	// An explicit keep of an earlier script and the implicit keep store
	// once: RunSequence reports the explicit one, with the implicit flags.
	if len(implicit) == 1 {
		for i, l := range lines {
			if l == "store INBOX" || strings.HasPrefix(l, "store INBOX flags=") {
				lines[i] = strings.TrimPrefix(implicit[0], "implicit: ")
				return lines
			}
		}
	}
	return append(lines, implicit...)
}
