package tests

import (
	"os"
	"os/exec"
	"path/filepath"
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
	for _, want := range []string{
		"skipping this line",
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
