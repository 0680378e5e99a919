package tests

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
)

// proc is a live child process of a vlmtpd under test.
type proc struct {
	pid  int
	argv []string
}

// children lists the live children of pid.
func children(t testing.TB, pid int) []proc {
	t.Helper()
	var out []proc
	for _, c := range proctree.Children(pid) {
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(c) + "/cmdline")
		if err != nil {
			continue // exited meanwhile
		}
		out = append(out, proc{pid: c, argv: strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")})
	}
	return out
}

func (p proc) role() string {
	if len(p.argv) > 1 {
		return p.argv[1]
	}
	return ""
}

// privsepInstance starts vlmtpd as root (the privilege-separated mode)
// with three recipients owned by three uid/gid pairs: a Maildir for
// 5001:5001, an mbox for 5002:5002, a Maildir for 5003:5004. Their home
// directories exist, owned by them, as an administrator makes them.
func privsepInstance(t *testing.T) *Instance {
	rootOrSkip(t, "privilege separation")
	return StartInstance(t, Options{
		Privileged: true,
		Tables: map[string]string{
			"vmailbox": "u1@example.com example.com/u1/Maildir/\nu2@example.com example.com/u2/mbox\nu3@example.com example.com/u3/Maildir/\n",
			"uids":     "u1@example.com 5001\nu2@example.com 5002\nu3@example.com 5003\n",
			"gids":     "u1@example.com 5001\nu2@example.com 5002\nu3@example.com 5004\n",
		},
		Config: `user = "nobody"
virtual_uid_maps = ["texthash:uids"]
virtual_gid_maps = ["texthash:gids"]
virtual_minimum_uid = 1000`,
		Prepare: func(dir string) {
			for _, o := range [][3]int{{1, 5001, 5001}, {2, 5002, 5002}, {3, 5003, 5004}} {
				home := filepath.Join(dir, "mail/example.com/u"+strconv.Itoa(o[0]))
				if err := os.Mkdir(home, 0o700); err != nil {
					t.Fatal(err)
				}
				os.Chown(home, o[1], o[2])
			}
			// The front (nobody) writes the spool.
			os.Chown(filepath.Join(dir, "spool"), 65534, 65534)
		},
	})
}

func TestPrivsepDeliversAsEachOwner(t *testing.T) {
	in := privsepInstance(t)
	parent := in.cmd.Process.Pid

	r := in.Dial(t)
	r.lhlo()
	rcpts, data := r.txn("<sender@example.org>", []string{"<u1@example.com>", "<u2@example.com>", "<u3@example.com>"},
		"Subject: three owners\n\nHello.\n")
	checkDelivered(t, rcpts, data, "u1@example.com", "u2@example.com", "u3@example.com")
	base := filepath.Join(in.Base, "example.com")
	for _, o := range [][3]int{{1, 5001, 5001}, {3, 5003, 5004}} {
		md := filepath.Join(base, "u"+strconv.Itoa(o[0]), "Maildir")
		for _, d := range []string{"", "tmp", "new", "cur"} {
			checkOwnerMode(t, filepath.Join(md, d), o[1], o[2], 0o700)
		}
		files := maildirFiles(t, md)
		if len(files) != 1 {
			t.Fatalf("%s: %v", md, files)
		}
		checkOwnerMode(t, files[0], o[1], o[2], 0o600)
		if !strings.Contains(readFile(t, files[0]), "Hello.") {
			t.Errorf("%s lacks the body", files[0])
		}
	}
	mbox := filepath.Join(base, "u2/mbox")
	checkOwnerMode(t, mbox, 5002, 5002, 0o600)
	if msgs := mboxMessages(t, readFile(t, mbox)); len(msgs) != 1 {
		t.Errorf("mbox holds %d messages", len(msgs))
	}

	// ps: the parent is root, the front is nobody, each worker holds
	// exactly its owner's ids and nothing else.
	var front *proc
	for _, c := range children(t, parent) {
		if c.role() == "front" {
			front = &c
		}
	}
	if front == nil {
		t.Fatalf("no front among the parent's children: %v", children(t, parent))
	}
	fc, err := proctree.ReadCreds(front.pid)
	if err != nil {
		t.Fatal(err)
	}
	if fc.UIDs != [4]int{65534, 65534, 65534, 65534} || fc.CapEff != 0 || fc.CapPrm != 0 {
		t.Errorf("front %d: uids %v caps eff %x prm %x, want nobody without capabilities", front.pid, fc.UIDs, fc.CapEff, fc.CapPrm)
	}
	want := map[[2]int]bool{{5001, 5001}: true, {5002, 5002}: true, {5003, 5004}: true}
	var workers []int
	for _, c := range children(t, parent) {
		if c.role() != "worker" {
			continue
		}
		workers = append(workers, c.pid)
		wc, err := proctree.ReadCreds(c.pid)
		if err != nil {
			t.Fatal(err)
		}
		ids := [2]int{wc.UIDs[0], wc.GIDs[0]}
		if !want[ids] {
			t.Errorf("worker %d runs as %v", c.pid, ids)
			continue
		}
		delete(want, ids)
		if wc.UIDs != [4]int{ids[0], ids[0], ids[0], ids[0]} || wc.GIDs != [4]int{ids[1], ids[1], ids[1], ids[1]} {
			t.Errorf("worker %d: uids %v gids %v", c.pid, wc.UIDs, wc.GIDs)
		}
		if len(wc.Groups) != 0 || wc.CapEff|wc.CapPrm|wc.CapAmb|wc.CapInh != 0 || !wc.NoNewPrivs {
			t.Errorf("worker %d: groups %v caps eff %x prm %x amb %x inh %x no_new_privs %v",
				c.pid, wc.Groups, wc.CapEff, wc.CapPrm, wc.CapAmb, wc.CapInh, wc.NoNewPrivs)
		}
		if env, _ := os.ReadFile("/proc/" + strconv.Itoa(c.pid) + "/environ"); len(env) != 0 {
			t.Errorf("worker %d has an environment: %q", c.pid, env)
		}
	}
	if len(want) != 0 {
		t.Errorf("no worker for %v", want)
	}

	// A second message to the same owners reuses the warm workers.
	rcpts, data = r.txn("<sender@example.org>", []string{"<u1@example.com>", "<u2@example.com>"}, "Subject: again\n\nx\n")
	checkDelivered(t, rcpts, data, "u1@example.com", "u2@example.com")
	var again []int
	for _, c := range children(t, parent) {
		if c.role() == "worker" {
			again = append(again, c.pid)
		}
	}
	slices.Sort(workers)
	slices.Sort(again)
	if !slices.Equal(again, workers) {
		t.Errorf("workers after the second message %v, want the same %v", again, workers)
	}

	// SIGTERM to the parent reaches the front; everything exits.
	r.Close()
	in.Stop(t)
	if code := in.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("parent exited with %d", code)
	}
	for _, pid := range append(workers, front.pid) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("process %d outlived the parent", pid)
		}
	}
	if _, err := os.Lstat(in.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestPrivsepMissingUserFailsClearly(t *testing.T) {
	rootOrSkip(t, "privilege separation")
	bin := vlmtpdBinary(t)
	dir := sharedTempDir(t)
	cfg := filepath.Join(dir, "vlmtpd.toml")
	os.MkdirAll(filepath.Join(dir, "mail"), 0o755)
	writeTestFile(t, cfg, `user = "no-such-vlmtpd-user"
listen = ["unix:`+filepath.Join(dir, "lmtp.sock")+`"]
spool_directory = "spool"
virtual_mailbox_base = "mail"
virtual_mailbox_domains = ["example.com"]
virtual_mailbox_maps = ["static:x/"]
virtual_uid_maps = ["static:5000"]
virtual_gid_maps = ["static:5000"]
`)
	out, err := runWithTimeout(t, bin, "serve", "-config", cfg)
	if err == nil {
		t.Fatalf("serve started without its user:\n%s", out)
	}
	if !strings.Contains(out, "no-such-vlmtpd-user") || !strings.Contains(out, "does not exist") {
		t.Errorf("message does not name the missing user:\n%s", out)
	}
}

// Started unprivileged, vlmtpd delivers only as itself; another uid gets a
// temporary failure and a log line that says why.
func TestSingleUserRefusesOtherUID(t *testing.T) {
	in := StartInstance(t, Options{
		Tables: map[string]string{
			"vmailbox": "me@example.com example.com/me/\nother@example.com example.com/other/\n",
			"uids":     "other@example.com 5999\n",
		},
		Config: `virtual_uid_maps = ["texthash:uids", "static:` + strconv.Itoa(testMailOwner(t).UID) + `"]`,
	})
	r := in.Dial(t)
	r.lhlo()
	rcpts, data := r.txn("<sender@example.org>", []string{"<me@example.com>", "<other@example.com>"}, "Subject: x\n\ny\n")
	// Refused at RCPT already: the deliverer says it may not write as 5999.
	if len(rcpts) != 2 || !strings.HasPrefix(rcpts[0], "250") || !strings.HasPrefix(rcpts[1], "451 4.3.0 <other@example.com> ") {
		t.Fatalf("RCPT replies %v, want 250 then 451 4.3.0 <other@example.com>", rcpts)
	}
	if len(data) != 1 || !strings.HasPrefix(data[0], "250 2.0.0 <me@example.com> ") {
		t.Fatalf("DATA replies %v, want one 250", data)
	}
	if files := maildirFiles(t, filepath.Join(in.Base, "example.com/me")); len(files) != 1 {
		t.Errorf("me: %v", files)
	}
	if _, err := os.Stat(filepath.Join(in.Base, "example.com/other")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("other's mailbox was created: %v", err)
	}
	pollUntil(t, 5*time.Second, "a log line that says privileges are missing", func() bool {
		return strings.Contains(in.Logs(), "privileges missing")
	})
}

// checkDelivered fails unless every RCPT was accepted and each recipient's
// DATA reply, in RCPT order, says it was delivered.
func checkDelivered(t *testing.T, rcptReplies, dataReplies []string, rcpts ...string) {
	t.Helper()
	for i, rep := range rcptReplies {
		if !strings.HasPrefix(rep, "250 ") {
			t.Fatalf("RCPT reply %d: %s", i, rep)
		}
	}
	if len(dataReplies) != len(rcpts) {
		t.Fatalf("DATA replies %v, want %d", dataReplies, len(rcpts))
	}
	for i, rcpt := range rcpts {
		if !strings.HasPrefix(dataReplies[i], "250 2.0.0 <"+rcpt+"> delivered") {
			t.Errorf("DATA reply %d: %s, want 250 2.0.0 <%s> delivered", i, dataReplies[i], rcpt)
		}
	}
}

// runWithTimeout runs the binary to completion (at most 20s) and returns
// its combined output.
func runWithTimeout(t testing.TB, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// frontOf returns the front process of a privileged instance. The socket
// accepts as soon as the parent has opened it, which is before the parent
// starts the front: wait for the front to appear.
func frontOf(t *testing.T, in *Instance) int {
	t.Helper()
	front := 0
	pollUntil(t, 10*time.Second, "the front to start", func() bool {
		for _, c := range children(t, in.cmd.Process.Pid) {
			if c.role() == "front" {
				front = c.pid
				return true
			}
		}
		return false
	})
	return front
}

func waitExit(t *testing.T, pid int, what string) {
	t.Helper()
	pollUntil(t, 10*time.Second, what, func() bool { return !proctree.Running(pid) })
}

// The parent exits when the front dies, and a front whose parent died
// stops instead of deferring all mail forever.
func TestPrivsepLifetimes(t *testing.T) {
	in := privsepInstance(t)
	front := frontOf(t, in)
	if err := syscall.Kill(front, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the parent outlived its front")
	}

	in = privsepInstance(t)
	front = frontOf(t, in)
	if err := in.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitExit(t, front, "the front to exit after its parent")
	// Its last line may still be on its way through the log pipe.
	pollUntil(t, 5*time.Second, "the front to say why it stopped", func() bool {
		return strings.Contains(in.Logs(), "parent is gone")
	})
}
