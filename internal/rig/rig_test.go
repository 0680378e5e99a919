package rig

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
)

// The configuration is one Dovecot's own parser accepts, with the values
// given.
func TestDovecotConfigParses(t *testing.T) {
	doveconf := testutil.Tool(t, "Dovecot's doveconf", "/usr/bin/doveconf")
	dir := t.TempDir()
	d := Dovecot{Dir: dir, Instance: "rig-test", Protocols: "lmtp", UID: 5000, GID: 5001,
		InternalUser: "root", LoginUser: "root", Userdb: "home=" + dir + "/home/%n",
		Extra: "mail_location = maildir:~/Maildir\n"}
	if err := d.Dirs(); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(conf, []byte(d.Config()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(doveconf, "-n", "-c", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("doveconf: %v\n%s\n%s", err, out, d.Config())
	}
	for _, want := range []string{"instance_name = rig-test", "protocols = lmtp", "args = uid=5000 gid=5001 home=" + dir + "/home/%n",
		"mail_location = maildir:~/Maildir", "log_path = " + dir + "/dovecot.log"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("doveconf -n lacks %q:\n%s", want, out)
		}
	}
}

// ChownTree gives the whole tree, links themselves included, to the owner.
func TestChownTree(t *testing.T) {
	testutil.RequireRoot(t, "chown")
	dir, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "target")
	for _, err := range []error{
		os.MkdirAll(filepath.Join(dir, "a/b"), 0o755),
		os.WriteFile(filepath.Join(dir, "a/b/f"), nil, 0o644),
		os.WriteFile(target, nil, 0o644),
		os.Symlink(target, filepath.Join(dir, "a/link")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := ChownTree(dir, 5000, 5001); err != nil {
		t.Fatal(err)
	}
	seen := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		seen++
		if st, ok := sysStat(fi); !ok || st[0] != 5000 || st[1] != 5001 {
			t.Errorf("%s: owner %v", p, st)
		}
		return nil
	})
	if seen != 5 { // dir, a, a/b, a/b/f, a/link
		t.Errorf("walked %d entries, want 5", seen)
	}
	if st, err := os.Stat(target); err != nil {
		t.Fatal(err)
	} else if o, _ := sysStat(st); o[0] != 0 {
		t.Error("the link's target was chowned")
	}
}

func sysStat(fi os.FileInfo) ([2]int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return [2]int{}, false
	}
	return [2]int{int(st.Uid), int(st.Gid)}, true
}
