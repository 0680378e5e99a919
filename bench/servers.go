// Runs in: make bench (a tool).

package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
	"github.com/vlmtpd/vlmtpd/internal/rig"
)

// owner is the uid/gid both servers deliver as.
type owner struct {
	UID, GID  int
	Name      string // a user Dovecot may run its internal processes as
	GroupName string // and their group
}

func currentOwner(runAs int) owner {
	if os.Geteuid() == 0 {
		return owner{runAs, runAs, "dovecot", "dovecot"}
	}
	o := owner{os.Getuid(), os.Getgid(), strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())}
	if u, err := user.Current(); err == nil {
		o.Name = u.Username
	}
	if g, err := user.LookupGroupId(strconv.Itoa(o.GID)); err == nil {
		o.GroupName = g.Name
	}
	return o
}

// server is a running LMTP server under test.
type server struct {
	name, version, socket string
	cmd                   *exec.Cmd
	exited                chan struct{}
	mailbox               func(local string) string // Maildir of a recipient's local part
	// front is the pid of the process that speaks LMTP and spools the
	// body (vlmtpd's front), 0 if there is none to single out.
	front func() int
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *server) start(logPath string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); logf.Close(); close(s.exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", s.socket); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.exited:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s exited at startup:\n%s", s.name, out)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("%s does not listen on %s", s.name, s.socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recipients are the local parts smtp-source (Postfix 3.7) sends to with
// -t local@bench.test -r n: local, 2local … nlocal.
func recipients(local string, n int) []string {
	r := []string{local}
	for k := 2; k <= n; k++ {
		r = append(r, fmt.Sprintf("%d%s", k, local))
	}
	return r
}

// cellLocal names the recipient of one run of one cell, so every run
// starts with empty mailboxes.
func cellLocal(slot int) string { return fmt.Sprintf("c%du", slot) }

// fullLocal is the recipient whose mailbox is filled before the fill cell.
const fullLocal = "fullu"

// startVlmtpd serves every recipient in locals from its own Maildir as
// owner: with privsep as root (the production mode: a root parent, the
// front as nobody, delivery workers as owner), else in single-user mode,
// started as owner.
func startVlmtpd(bin, dir string, o owner, locals []string, privsep bool, settings []string) (*server, error) {
	for _, d := range []string{"mail", "spool"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var table strings.Builder
	for _, r := range locals {
		fmt.Fprintf(&table, "%s@bench.test bench.test/%s/\n", r, r)
	}
	if err := os.WriteFile(filepath.Join(dir, "vmailbox"), []byte(table.String()), 0o644); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "lmtp.sock")
	conf := fmt.Sprintf(`hostname = "bench.local"
listen = ["unix:%s"]
socket_mode = "0666"
spool_directory = "spool"
message_size_limit = 20480000
virtual_mailbox_limit = 1024000000
virtual_mailbox_base = "mail"
virtual_mailbox_domains = ["bench.test"]
virtual_mailbox_maps = ["texthash:vmailbox"]
virtual_uid_maps = ["static:%d"]
virtual_gid_maps = ["static:%d"]
virtual_minimum_uid = %d
# Every session delivers to the same few mailboxes; Dovecot 2.3's
# lmtp_user_concurrency_limit is unlimited too.
recipient_concurrency_limit = 0
`, sock, o.UID, o.GID, max(1, min(o.UID, 100)))
	if privsep {
		conf += "user = \"nobody\"\n"
	}
	for _, l := range settings {
		conf += l + "\n"
	}
	spoolOwner := o
	if privsep {
		// The front, running as nobody, writes the spool.
		u, err := user.Lookup("nobody")
		if err != nil {
			return nil, err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		spoolOwner = owner{UID: uid, GID: gid}
	}
	confPath := filepath.Join(dir, "vlmtpd.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := chownTree(dir, o); err != nil {
		return nil, err
	}
	if err := chownTree(filepath.Join(dir, "spool"), spoolOwner); err != nil {
		return nil, err
	}
	version, _ := exec.Command(bin, "version").Output()
	s := &server{
		name:    "vlmtpd",
		version: strings.TrimSpace(string(version)),
		socket:  sock,
		cmd:     exec.Command(bin, "serve", "-config", confPath),
		mailbox: func(local string) string { return filepath.Join(dir, "mail", "bench.test", local) },
	}
	s.front = func() int { return s.cmd.Process.Pid }
	if privsep {
		s.name = "vlmtpd (privsep)"
		s.front = func() int { return childRunning(s.cmd.Process.Pid, "front") }
	} else if os.Geteuid() == 0 {
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(o.UID), Gid: uint32(o.GID), Groups: []uint32{}}}
	}
	return s, s.start(filepath.Join(filepath.Dir(dir), "vlmtpd.log"))
}

// startDovecot runs a private Dovecot with only LMTP: static userdb as
// owner, Maildir under its own base, Dovecot's default mail_fsync.
func startDovecot(dir string, o owner) (*server, error) {
	if err := os.MkdirAll(filepath.Join(dir, "mail"), 0o755); err != nil {
		return nil, err
	}
	if err := chownTree(filepath.Join(dir, "mail"), o); err != nil {
		return nil, err
	}
	loginUser := o.Name
	if os.Geteuid() == 0 {
		loginUser = "dovenull"
	}
	d := rig.Dovecot{Dir: dir, Instance: fmt.Sprintf("vlmtpd-bench-%d", os.Getpid()), Protocols: "lmtp",
		UID: o.UID, GID: o.GID, InternalUser: o.Name, InternalGroup: o.GroupName, LoginUser: loginUser,
		LogPath: filepath.Join(dir, "..", "dovecot.log"), Userdb: "home=" + dir + "/mail/%n",
		Extra: "mail_location = maildir:" + dir + "/mail/%n/Maildir\nservice lmtp {\n  unix_listener lmtp {\n    mode = 0666\n  }\n}\n"}
	if err := d.Dirs(); err != nil {
		return nil, err
	}
	conf := d.Config()
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		bin = "/usr/sbin/dovecot"
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("dovecot not found (Debian packages dovecot-core, dovecot-lmtpd)")
		}
	}
	version, _ := exec.Command(bin, "--version").Output()
	s := &server{
		name:    "dovecot",
		version: "Dovecot " + strings.Fields(string(version) + " ?")[0],
		socket:  filepath.Join(dir, "run", "lmtp"),
		cmd:     exec.Command(bin, "-F", "-c", confPath),
		mailbox: func(local string) string { return filepath.Join(dir, "mail", local, "Maildir") },
	}
	return s, s.start(filepath.Join(dir, "..", "dovecot.stderr"))
}

// childRunning is the pid of pid's child whose first argument is role,
// 0 if there is none.
func childRunning(pid int, role string) int {
	for _, c := range proctree.Children(pid) {
		if argv := proctree.Cmdline(c); len(argv) > 1 && argv[1] == role {
			return c
		}
	}
	return 0
}

// measure runs one cell against one server, delivering to local (and the
// numbered recipients after it), sampling the memory of its process tree
// and of its front, and reading the tree's CPU time before and after;
// then it counts what arrived.
func measure(smtpSource string, s *server, c cell, local string) (result, error) {
	args := []string{"-L", "-d", "-s", strconv.Itoa(c.Sessions), "-m", strconv.Itoa(c.Msgs),
		"-l", strconv.Itoa(c.Size), "-M", "client.test", "-f", "bench@client.test", "-t", local + "@bench.test"}
	if c.Rcpts > 1 {
		args = append(args, "-r", strconv.Itoa(c.Rcpts))
	}
	args = append(args, "unix:"+s.socket)
	count := func() int {
		n := 0
		for _, r := range recipients(local, c.Rcpts) {
			for _, sub := range []string{"new", "cur"} {
				n += countDir(filepath.Join(s.mailbox(r), sub))
			}
		}
		return n
	}
	before := count()
	root := s.cmd.Process.Pid
	stopFront := func() int64 { return 0 }
	if s.front != nil {
		if f := s.front(); f != 0 {
			proctree.ResetHWM(f)
			sampled := proctree.Peak(50*time.Millisecond, func() int64 { return proctree.RSS(f) })
			stopFront = func() int64 { return max(sampled(), proctree.HWM(f)) }
		}
	}
	// smaps_rollup walks every page table: at 50 ms over some 25
	// processes the sampler alone took ~10% of the 2 cores.
	stop := proctree.PeakPSS(root, 250*time.Millisecond)
	cmd := exec.Command(smtpSource, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cpu0 := proctree.CPU(root)
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	cpu := proctree.CPU(root) - cpu0
	peak := stop()
	front := stopFront()
	if err != nil {
		return result{}, fmt.Errorf("smtp-source %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return result{Elapsed: elapsed, Delivered: count() - before, PeakPSS: peak, MaxHWM: proctree.MaxHWM(root), CPU: cpu, FrontRSS: front}, nil
}

// countDir counts the entries of a directory, 0 if it does not exist.
func countDir(dir string) int {
	f, err := os.Open(dir)
	if err != nil {
		return 0
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	return len(names)
}

func chownTree(root string, o owner) error { return rig.ChownTree(root, o.UID, o.GID) }
