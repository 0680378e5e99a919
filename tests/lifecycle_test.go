package tests

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func forModes(t *testing.T, run func(t *testing.T, privsep bool)) {
	for _, privsep := range []bool{false, true} {
		t.Run(map[bool]string{false: "single-user", true: "privsep"}[privsep], func(t *testing.T) {
			if privsep {
				rootOrSkip(t, "privilege separation")
			}
			run(t, privsep)
		})
	}
}

// privsepOptions completes o for a privilege-separated instance: the
// front runs as nobody and writes the spool.
func privsepOptions(o Options, privsep bool) Options {
	if !privsep {
		return o
	}
	o.Privileged = true
	o.Config = "user = \"nobody\"\n" + o.Config
	prep := o.Prepare
	o.Prepare = func(dir string) {
		if prep != nil {
			prep(dir)
		}
		os.Chown(filepath.Join(dir, "spool"), 65534, 65534)
	}
	return o
}

func waitLog(t *testing.T, in *Instance, what string) {
	t.Helper()
	pollUntil(t, 10*time.Second, "log line "+what, func() bool { return strings.Contains(in.Logs(), what) })
}

// SIGHUP: sessions started afterwards use the new message_size_limit and
// the new table; one open across the reload keeps the old ones; an
// invalid configuration is refused and the running one stays.
func TestReloadOnSIGHUP(t *testing.T) {
	forModes(t, func(t *testing.T, privsep bool) {
		in := StartInstance(t, privsepOptions(Options{Tables: map[string]string{
			"vmailbox2": defaultMailboxes + "new@example.com example.com/new/\n"}}, privsep))
		old := in.Dial(t)
		old.lhlo()
		cfg, err := os.ReadFile(in.Config)
		if err != nil {
			t.Fatal(err)
		}
		next := strings.Replace(string(cfg), `virtual_mailbox_maps = ["texthash:vmailbox"]`, `virtual_mailbox_maps = ["texthash:vmailbox2"]`, 1) +
			"\nmessage_size_limit = 2000\nvirtual_mailbox_limit = 2000\n"
		writeTestFile(t, in.Config, next)
		in.cmd.Process.Signal(syscall.SIGHUP)
		waitLog(t, in, "reloaded")

		fresh := in.Dial(t)
		fresh.Send("LHLO client.test\r\n")
		if got := fresh.Reply(); got != "250 SIZE 2000" {
			t.Errorf("new session's LHLO ends %q, want SIZE 2000", got)
		}
		fresh.Send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<new@example.com>\r\nRSET\r\n")
		fresh.Expect("250")
		fresh.Expect("250 2.1.5 <new@example.com>")
		fresh.Expect("250")
		// ... and the new limit is enforced, not only announced.
		if _, dr := fresh.txn("<s@remote.test>", []string{"<alice@example.com>"}, "Subject: big\n\n"+strings.Repeat("x", 5000)+"\n"); len(dr) != 1 || !strings.HasPrefix(dr[0], "552 5.3.4") {
			t.Errorf("new session's 5 KB message: %v, want 552 5.3.4", dr)
		}

		// The session open across the reload: old table, old limit.
		old.Send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<new@example.com>\r\nRSET\r\n")
		old.Expect("250")
		old.Expect("550 5.1.1 <new@example.com>")
		old.Expect("250")
		_, dr := old.txn("<s@remote.test>", []string{"<alice@example.com>"}, "Subject: big\n\n"+strings.Repeat("x", 5000)+"\n")
		if len(dr) != 1 || !strings.HasPrefix(dr[0], "250 2.0.0") {
			t.Errorf("old session's 5 KB message: %v", dr)
		}

		writeTestFile(t, in.Config, next+"\nno_such_setting = 1\n")
		in.cmd.Process.Signal(syscall.SIGHUP)
		waitLog(t, in, "reload refused")
		again := in.Dial(t)
		again.Send("LHLO client.test\r\n")
		if got := again.Reply(); got != "250 SIZE 2000" {
			t.Errorf("after a refused reload LHLO ends %q, want the reloaded SIZE 2000", got)
		}
	})
}

// Type=notify: READY=1 once serving, RELOADING=1 and READY=1 around a
// reload, STOPPING=1 at SIGTERM, from whichever process serves.
func TestSystemdNotify(t *testing.T) {
	forModes(t, func(t *testing.T, privsep bool) {
		dir := sharedTempDir(t)
		sock := filepath.Join(dir, "notify")
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		os.Chmod(sock, 0o666)
		next := func() string {
			t.Helper()
			buf := make([]byte, 4096)
			c.SetReadDeadline(time.Now().Add(15 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("no notification: %v", err)
			}
			return string(buf[:n])
		}
		in := StartInstance(t, privsepOptions(Options{Env: []string{"NOTIFY_SOCKET=" + sock}}, privsep))
		if m := next(); !strings.HasPrefix(m, "READY=1\nSTATUS=0 sessions open") {
			t.Fatalf("first notification %q", m)
		}
		in.cmd.Process.Signal(syscall.SIGHUP)
		for _, want := range []string{"RELOADING=1\nMONOTONIC_USEC=", "READY=1"} {
			m := next()
			for strings.HasPrefix(m, "STATUS=") {
				m = next()
			}
			if !strings.HasPrefix(m, want) {
				t.Fatalf("got %q, want %q", m, want)
			}
		}
		in.cmd.Process.Signal(syscall.SIGTERM)
		m := next()
		for strings.HasPrefix(m, "STATUS=") {
			m = next()
		}
		if !strings.HasPrefix(m, "STOPPING=1") {
			t.Fatalf("at SIGTERM: %q", m)
		}
	})
}

// Socket activation: the sockets systemd-socket-activate passes are
// served, the listen setting is not, and the socket file stays at exit.
func TestSocketActivation(t *testing.T) {
	activate := toolOrSkip(t, "socket activation", "/usr/bin/systemd-socket-activate", "/bin/systemd-socket-activate")
	forModes(t, func(t *testing.T, privsep bool) {
		dir := sharedTempDir(t)
		os.Chmod(dir, 0o777) // systemd-socket-activate runs as the server's user
		sock := filepath.Join(dir, "activated.sock")
		in := StartInstance(t, privsepOptions(Options{
			Wrap: []string{activate, "-l", sock, "--fdname=lmtp"},
			Prepare: func(d string) {
				// The harness dials its own socket path: point it at the
				// activated one.
				os.Symlink(sock, filepath.Join(d, "lmtp.sock"))
			},
		}, privsep))
		c := in.Dial(t)
		c.lhlo()
		_, dr := c.txn("<s@remote.test>", []string{"<alice@example.com>"}, "Subject: activated\n\nx\n")
		if len(dr) != 1 || !strings.HasPrefix(dr[0], "250 2.0.0") {
			t.Fatalf("delivery over the activated socket: %v", dr)
		}
		waitLog(t, in, "using the sockets systemd passed")
		if nc, err := net.DialTimeout("tcp", in.Addr, time.Second); err == nil {
			nc.Close()
			t.Error("the listen setting's TCP port is open too")
		}
		in.Stop(t)
		if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
			t.Errorf("the activated socket's file is gone at exit: %v", err)
		}
	})
}

// ps -C vlmtpd sees every process, each with its role in argv[0].
func TestProcessNames(t *testing.T) {
	rootOrSkip(t, "privilege separation")
	in := StartInstance(t, privsepOptions(Options{}, true))
	c := in.Dial(t)
	c.lhlo()
	if _, dr := c.txn("<s@remote.test>", []string{"<alice@example.com>"}, "x\n"); len(dr) != 1 || !strings.HasPrefix(dr[0], "250") {
		t.Fatalf("delivery: %v", dr)
	}
	comm := func(pid int) string {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		return strings.TrimSpace(string(b))
	}
	if got := comm(in.cmd.Process.Pid); got != "vlmtpd" {
		t.Errorf("parent's name %q", got)
	}
	var front proc
	var workers []proc
	for _, p := range children(t, in.cmd.Process.Pid) {
		switch p.role() {
		case "front":
			front = p
		case "worker":
			workers = append(workers, p)
		}
	}
	if front.pid == 0 || front.argv[0] != "vlmtpd: front" || comm(front.pid) != "vlmtpd" {
		t.Fatalf("front: argv %q, name %q", front.argv, comm(front.pid))
	}
	want := fmt.Sprintf("vlmtpd: worker %d:%d", in.UID, in.GID)
	found := false
	for _, p := range workers {
		found = true
		if p.argv[0] != want || comm(p.pid) != "vlmtpd" {
			t.Errorf("worker: argv[0] %q, name %q; want %q, vlmtpd", p.argv[0], comm(p.pid), want)
		}
	}
	if !found {
		t.Error("no worker found under the parent")
	}
}
