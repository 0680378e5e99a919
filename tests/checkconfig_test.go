package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// check-config catches what would otherwise fail only later, one line per
// problem saying how to fix it.
func TestCheckConfigProblems(t *testing.T) {
	rootOrSkip(t, "a spool directory only root may write")
	bin := vlmtpdBinary(t)
	dir := sharedTempDir(t)
	base := filepath.Join(dir, "private", "mail")
	os.MkdirAll(base, 0o755)
	os.Chmod(filepath.Join(dir, "private"), 0o700)
	spool := filepath.Join(dir, "spool")
	os.Mkdir(spool, 0o700) // root's
	writeTestFile(t, filepath.Join(dir, "vmailbox"), "alice@example.com example.com/alice/\nthis-line-has-no-value\n")
	cfg := filepath.Join(dir, "vlmtpd.toml")
	writeTestFile(t, cfg, `virtual_mailbox_base = "private/mail"
spool_directory = "spool"
virtual_mailbox_maps = "texthash:vmailbox"
virtual_uid_maps = "static:5000"
virtual_gid_maps = "static:0"
user = "nobody"
`)
	out, err := exec.Command(bin, "check-config", "-config", cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("check-config exited 0:\n%s", out)
	}
	// The skipped line, by its table, file and line number, once.
	skipped := regexp.MustCompile(`(?m)^vlmtpd check-config: warning: ` +
		regexp.QuoteMeta(filepath.Join(dir, "vmailbox")+":2: expected format: key whitespace value: skipping this line") +
		` table=texthash:vmailbox$`)
	if n := len(skipped.FindAll(out, -1)); n != 1 || strings.Count(string(out), "skipping this line") != 1 {
		t.Errorf("check-config reports vmailbox's line 2 %d times, want once, naming texthash:vmailbox:\n%s", n, out)
	}
	for _, want := range []string{
		"virtual_gid_maps: static:0 makes every mailbox root's",
		"virtual_mailbox_base: " + filepath.Join(dir, "private") + " is not searchable by other users",
		"spool_directory: " + spool + " is not writable by nobody",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check-config output lacks %q:\n%s", want, out)
		}
	}
	writeTestFile(t, cfg, strings.Replace(readFile(t, cfg), `user = "nobody"`, `user = "no-such-user-here"`, 1))
	out, _ = exec.Command(bin, "check-config", "-config", cfg).CombinedOutput()
	if !strings.Contains(string(out), `user: "no-such-user-here" does not exist`) {
		t.Errorf("a missing user is not reported:\n%s", out)
	}
}

// check-config compiles sieve_before/sieve_after and checks that they and
// sendmail_path are usable by every mailbox owner.
func TestCheckConfigSieve(t *testing.T) {
	bin := vlmtpdBinary(t)
	dir := sharedTempDir(t)
	os.MkdirAll(filepath.Join(dir, "mail"), 0o755)
	os.MkdirAll(filepath.Join(dir, "spool"), 0o700)
	writeTestFile(t, filepath.Join(dir, "vmailbox"), "alice@example.com example.com/alice/\n")
	writeTestFile(t, filepath.Join(dir, "broken.sieve"), "require \"fileinto\";\nif true {\n")
	writeTestFile(t, filepath.Join(dir, "private.sieve"), "keep;\n")
	os.Chmod(filepath.Join(dir, "private.sieve"), 0o600)
	writeTestFile(t, filepath.Join(dir, "good.sieve"), "require \"fileinto\"; fileinto \"x\";\n")
	cfg := filepath.Join(dir, "vlmtpd.toml")
	writeTestFile(t, cfg, `virtual_mailbox_base = "mail"
spool_directory = "spool"
virtual_mailbox_maps = "texthash:vmailbox"
virtual_uid_maps = "static:5000"
virtual_gid_maps = "static:5000"
sieve_before = ["`+filepath.Join(dir, "broken.sieve")+`", "`+filepath.Join(dir, "good.sieve")+`"]
sieve_after = ["`+filepath.Join(dir, "private.sieve")+`"]
sendmail_path = "`+filepath.Join(dir, "no-sendmail")+`"
`)
	out, err := exec.Command(bin, "check-config", "-config", cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("check-config exited 0:\n%s", out)
	}
	for _, want := range []string{
		"sieve_before: " + filepath.Join(dir, "broken.sieve") + ":3:",
		"sieve_after: " + filepath.Join(dir, "private.sieve") + " is not readable by others",
		"sendmail_path: stat " + filepath.Join(dir, "no-sendmail"),
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check-config output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "good.sieve") {
		t.Errorf("a good script is reported:\n%s", out)
	}
}

// check-config warns when the front would run Postfix's sendmail under
// no_new_privs (the unit's NoNewPrivileges=yes, which check-config shares
// as ExecStartPre): its set-gid postdrop cannot queue there. Not without
// no_new_privs, and not with submission_host set.
func TestCheckConfigSendmailNoNewPrivs(t *testing.T) {
	rootOrSkip(t, "a spool directory for the front's user")
	sendmail := toolOrSkip(t, "Postfix's sendmail", "/usr/sbin/sendmail")
	setpriv := toolOrSkip(t, "setpriv (util-linux)", "/usr/bin/setpriv")
	bin := vlmtpdBinary(t)
	dir := sharedTempDir(t)
	os.MkdirAll(filepath.Join(dir, "mail"), 0o755)
	os.MkdirAll(filepath.Join(dir, "spool"), 0o700)
	os.Chown(filepath.Join(dir, "spool"), 65534, 65534)
	cfg := filepath.Join(dir, "vlmtpd.toml")
	base := `virtual_mailbox_base = "mail"
spool_directory = "spool"
virtual_mailbox_maps = "static:x/"
virtual_uid_maps = "static:5000"
virtual_gid_maps = "static:5000"
sieve_script_maps = "static:x/.dovecot.sieve"
user = "nobody"
sendmail_path = "` + sendmail + `"
`
	const warning = "is Postfix's sendmail, whose set-gid postdrop cannot queue under no_new_privs"
	for _, c := range []struct {
		nnp   bool
		extra string
		warn  bool
	}{
		{true, "", true},
		{false, "", false},
		{true, "submission_host = \"inet:127.0.0.1:25\"\n", false},
	} {
		writeTestFile(t, cfg, base+c.extra)
		args := []string{bin, "check-config", "-config", cfg}
		if c.nnp {
			args = append([]string{setpriv, "--no-new-privs"}, args...)
		}
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if got := strings.Contains(string(out), warning); got != c.warn {
			t.Errorf("no_new_privs %v, %q: warning %v, want %v:\n%s", c.nnp, c.extra, got, c.warn, out)
		}
		if c.warn && !strings.Contains(string(out), "set submission_host") {
			t.Errorf("the warning does not say what to do:\n%s", out)
		}
	}
}
