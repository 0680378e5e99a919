package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// postmapCmd returns a runner of Debian's postmap with a private main.cf
// (given to postmap by MAIL_CONFIG, as a command line copied from our
// hints would run it), and that configuration directory.
func postmapCmd(t *testing.T) (run func(args ...string), cfgDir string) {
	t.Helper()
	bin := toolOrSkip(t, "postmap builds hash:/btree:/lmdb: tables", "postmap", "/usr/sbin/postmap")
	cfgDir = t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "main.cf"), []byte("smtputf8_enable = yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "MAIL_CONFIG="+cfgDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("postmap %v: %v\n%s", args, err, out)
		}
	}, cfgDir
}

// TestBerkeleyDBTablesDeliver serves virtual_mailbox_maps from a hash:
// file and virtual_uid_maps/virtual_gid_maps from btree: files, all built
// by postmap, delivers through them, then rebuilds the hash: table in
// place under the running server and delivers to an address only the new
// version has.
func TestBerkeleyDBTablesDeliver(t *testing.T) {
	run, _ := postmapCmd(t)
	owner := testMailOwner(t)
	ids := fmt.Sprintf("alice@example.com %d\ndave@example.com %d\n", owner.UID, owner.UID)
	gids := fmt.Sprintf("alice@example.com %d\ndave@example.com %d\n", owner.GID, owner.GID)
	in := StartInstance(t, Options{
		Tables: map[string]string{"vmailbox.src": "Alice@Example.com example.com/alice/\n", "uids": ids, "gids": gids},
		Config: `
virtual_mailbox_maps = ["hash:vmailbox"]
virtual_uid_maps = ["btree:uids"]
virtual_gid_maps = ["btree:gids"]
`,
		Prepare: func(dir string) {
			// vmailbox.db from a source of another name: the server
			// must read the .db, not a texthash: source.
			src := filepath.Join(dir, "vmailbox.src")
			run("hash:" + src)
			if err := os.Rename(src+".db", filepath.Join(dir, "vmailbox.db")); err != nil {
				t.Fatal(err)
			}
			run("btree:" + filepath.Join(dir, "uids"))
			run("btree:" + filepath.Join(dir, "gids"))
		},
	})
	deliver := func(rcpt string) (rcptReply, dataReply string) {
		c := in.Dial(t)
		defer c.Close()
		c.lhlo()
		rr, dr := c.txn("<sender@remote.test>", []string{"<" + rcpt + ">"}, "Subject: hi\n\nhello\n")
		return rr[0], strings.Join(dr, "|")
	}
	if rr, dr := deliver("alice@example.com"); !strings.HasPrefix(rr, "250") || !strings.HasPrefix(dr, "250 2.0.0") {
		t.Fatalf("alice: %q %q\n%s", rr, dr, in.Logs())
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 1 {
		t.Fatalf("alice has %d messages", n)
	}
	if rr, _ := deliver("dave@example.com"); !strings.HasPrefix(rr, "550 5.1.1") {
		t.Fatalf("dave before the rebuild: %q", rr)
	}

	// postmap rebuilds vmailbox.db in place (Debian's libdb truncates and
	// rewrites the same inode under an exclusive lock).
	db := filepath.Join(in.Dir, "vmailbox.db")
	before, _ := os.Stat(db)
	if err := os.WriteFile(filepath.Join(in.Dir, "vmailbox"), []byte("alice@example.com example.com/alice/\ndave@example.com example.com/dave/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("hash:" + filepath.Join(in.Dir, "vmailbox"))
	if after, _ := os.Stat(db); !os.SameFile(before, after) {
		t.Log("postmap replaced vmailbox.db instead of rewriting it in place")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		rr, dr := deliver("dave@example.com")
		if strings.HasPrefix(rr, "250") {
			if !strings.HasPrefix(dr, "250 2.0.0") {
				t.Fatalf("dave: %q\n%s", dr, in.Logs())
			}
			break
		}
		if !strings.HasPrefix(rr, "550 5.1.1") || time.Now().After(deadline) {
			t.Fatalf("dave after the rebuild: %q\n%s", rr, in.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/dave"))); n != 1 {
		t.Fatalf("dave has %d messages", n)
	}
	if !strings.Contains(in.Logs(), "table file changed: reloaded") {
		t.Errorf("no reload logged:\n%s", in.Logs())
	}
}

// TestLMDBHintConverts takes the conversion command vlmtpd suggests for an
// lmdb: table from its own error message, runs it as written (postmap -s
// piped into vlmtpd makemap), and serves the converted table.
func TestLMDBHintConverts(t *testing.T) {
	run, cfgDir := postmapCmd(t)
	if _, err := os.Stat("/usr/lib/postfix/postfix-lmdb.so"); err != nil {
		skipOrFail(t, "postmap lmdb: support (apt-get install postfix-lmdb): %v", err)
	}
	bin := vlmtpdBinary(t)
	dir := sharedTempDir(t)
	src := filepath.Join(dir, "vmailbox")
	entries := "Alice@Example.com example.com/alice/\nbob@example.com example.com/bob\n\"a b\"@example.com quoted/\n"
	if err := os.WriteFile(src, []byte(entries), 0o644); err != nil {
		t.Fatal(err)
	}
	run("lmdb:" + src)
	// An admin may have only the .lmdb; without the source, a makemap
	// that ignored stdin would fail instead of converting the source.
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "vlmtpd.toml")
	writeCfg := func(maps string) {
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
virtual_mailbox_base = %q
virtual_mailbox_domains = ["example.com"]
virtual_mailbox_maps = [%q]
virtual_uid_maps = ["static:5000"]
virtual_gid_maps = ["static:5000"]
`, dir, maps)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("lmdb:" + src)
	out, err := exec.Command(bin, "check-config", "-config", cfg).CombinedOutput()
	m := regexp.MustCompile("convert with `([^`]+)`").FindSubmatch(out)
	if err == nil || m == nil {
		t.Fatalf("check-config on an lmdb: table: %v, no conversion hint:\n%s", err, out)
	}
	hint := strings.ReplaceAll(string(m[1]), "FILE", src)
	conv := exec.Command("bash", "-o", "pipefail", "-c", hint)
	conv.Env = append(os.Environ(), "MAIL_CONFIG="+cfgDir, "PATH="+filepath.Dir(bin)+":/usr/sbin:"+os.Getenv("PATH"))
	if out, err := conv.CombinedOutput(); err != nil || !strings.Contains(string(out), "3 entries") {
		t.Fatalf("%s: %v\n%s", hint, err, out)
	}
	writeCfg("cdb:" + src)
	out, err = exec.Command(bin, "lookup", "-config", cfg, "alice@example.com", `"a b"@example.com`, "bob@example.com").CombinedOutput()
	if err != nil {
		t.Fatalf("lookup in the converted table: %v\n%s", err, out)
	}
	for _, want := range []string{`"example.com/alice/"  (table cdb:` + src, `"quoted/"`, `"example.com/bob"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lookup output lacks %q:\n%s", want, out)
		}
	}
}

// TestHelpCommand: the binary's help, -h and --help exit 0 listing the
// commands, and a command's -h documents its flags.
func TestHelpCommand(t *testing.T) {
	bin := vlmtpdBinary(t)
	for _, arg := range []string{"help", "-h", "--help"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil || !strings.Contains(string(out), "\n  serve ") || !strings.Contains(string(out), "\n  makemap ") {
			t.Errorf("vlmtpd %s: %v\n%s", arg, err, out)
		}
	}
	out, err := exec.Command(bin, "serve", "-h").Output()
	if err != nil || !strings.HasPrefix(string(out), "usage: vlmtpd serve") || !strings.Contains(string(out), "-config") {
		t.Errorf("vlmtpd serve -h: %v\n%s", err, out)
	}
}
