// Package tests drives the built vlmtpd binary end to end: real sockets,
// real LMTP clients and MTAs, real files checked afterwards.
package tests

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// vlmtpdBinary builds the vlmtpd binary once per test run and returns its
// path. The directory is world-readable so servers started as another
// user can execute it.
func vlmtpdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "vlmtpd-bin-")
		if buildErr != nil {
			return
		}
		os.Chmod(buildDir, 0o755)
		binPath = filepath.Join(buildDir, "vlmtpd")
		cmd := exec.Command("go", "build", "-o", binPath, "../cmd/vlmtpd")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Instance is a vlmtpd server started by a test in its own temp directory.
type Instance struct {
	Dir    string // holds the config, tables, spool and socket
	Base   string // virtual_mailbox_base
	Socket string // unix socket path
	Addr   string // 127.0.0.1:port
	Config string // config file path
	// UID and GID own the default mailboxes (and run the server unless
	// Privileged).
	UID, GID int

	Privileged bool

	cmd  *exec.Cmd
	logs *testutil.SyncBuffer
	done chan struct{}
}

// Options describe an instance. Tables maps file names (in Dir) to their
// contents; Config holds extra TOML lines that override the defaults.
type Options struct {
	Tables map[string]string
	Config string
	// Prepare runs after the files are written and before the server starts.
	Prepare func(dir string)
	// Privileged keeps the server root when the tests run as root (the
	// privilege-separated mode). Otherwise a root test run starts the
	// server as testUID:testGID, in single-user mode.
	Privileged bool
	// Stderr, when set, receives the server's stdout and stderr instead
	// of the log buffer (Logs is then empty).
	Stderr *os.File
	// Env is added to the server's environment.
	Env []string
	// Wrap runs the server through another program (its command line
	// comes first), as systemd-socket-activate does.
	Wrap []string
}

// testUID and testGID own the mailboxes when the tests run as root.
const testUID, testGID = 5000, 5000

// DefaultTables: a Maildir, an mbox, a catch-all domain and the uid/gid of
// the test process (so an unprivileged server may write them).
func defaultConfig(uid, gid int) string {
	return fmt.Sprintf(`
virtual_mailbox_domains = ["example.com", "example.org", "texthash:domains"]
virtual_mailbox_maps = ["texthash:vmailbox"]
virtual_uid_maps = ["static:%d"]
virtual_gid_maps = ["static:%d"]
virtual_minimum_uid = %d
recipient_delimiter = "+"
`, uid, gid, max(1, min(uid, 100)))
}

const defaultMailboxes = `
alice@example.com     example.com/alice/
bob@example.com       example.com/bob
carol@example.com     example.com/carol/
@example.org          example.org/catchall/
`

// StartInstance writes a configuration and starts `vlmtpd serve` on a unix
// socket and a loopback TCP port; the server is stopped at test cleanup.
func StartInstance(t testing.TB, o Options) *Instance {
	t.Helper()
	bin := vlmtpdBinary(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	in := &Instance{Dir: dir, Base: filepath.Join(dir, "mail"), Socket: filepath.Join(dir, "lmtp.sock"),
		Addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), Config: filepath.Join(dir, "vlmtpd.toml"),
		logs: &testutil.SyncBuffer{}, done: make(chan struct{})}
	// example.com/ exists, as an admin creates it: mbox parents are never
	// created by delivery (virtual(8) does not either).
	for _, d := range []string{filepath.Join(in.Base, "example.com"), filepath.Join(dir, "spool")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	owner := testMailOwner(t)
	uid, gid := owner.UID, owner.GID
	if os.Getuid() == 0 {
		// t.TempDir's parent is 0700: let the unprivileged server in.
		os.Chmod(filepath.Dir(dir), 0o755)
	}
	in.UID, in.GID = uid, gid
	tables := map[string]string{"vmailbox": defaultMailboxes, "domains": "example.net ok\n"}
	for k, v := range o.Tables {
		tables[k] = v
	}
	for name, content := range tables {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := fmt.Sprintf(`
hostname = "mx.test"
listen = ["unix:%s", "inet:%s"]
spool_directory = "spool"
virtual_mailbox_base = "mail"
`, in.Socket, in.Addr) + defaultConfig(uid, gid)
	cfg = mergeTOML(cfg, o.Config)
	if err := os.WriteFile(in.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		dirs := []string{in.Base, filepath.Join(in.Base, "example.com"), filepath.Join(dir, "spool")}
		if !o.Privileged {
			dirs = append(dirs, dir) // the unprivileged server makes its socket there
		}
		for _, d := range dirs {
			os.Chown(d, uid, gid)
		}
	}
	if o.Prepare != nil {
		o.Prepare(dir)
	}
	in.start(t, bin, o)
	return in
}

func (in *Instance) start(t testing.TB, bin string, o Options) {
	if os.Getuid() == 0 && o.Privileged {
		in.Privileged = true
	}
	t.Helper()
	args := append(append([]string(nil), o.Wrap...), bin, "serve", "-config", in.Config)
	in.cmd = exec.Command(args[0], args[1:]...)
	in.cmd.Stdout = in.logs
	in.cmd.Stderr = in.logs
	if o.Stderr != nil {
		in.cmd.Stdout, in.cmd.Stderr = o.Stderr, o.Stderr
	}
	in.cmd.Env = append(append(os.Environ(), "GOTRACEBACK=all"), o.Env...)
	if os.Getuid() == 0 && !o.Privileged {
		in.cmd.SysProcAttr = credAttr(uint32(in.UID), uint32(in.GID))
	}
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { in.cmd.Wait(); close(in.done) }()
	t.Cleanup(func() { in.Stop(t) })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("unix", in.Socket)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-in.done:
			t.Fatalf("vlmtpd exited at startup:\n%s", in.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vlmtpd did not listen on %s in time:\n%s", in.Socket, in.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits; the log is shown if the test failed.
func (in *Instance) Stop(t testing.TB) {
	select {
	case <-in.done:
	default:
		in.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-in.done:
		case <-time.After(20 * time.Second):
			in.cmd.Process.Kill()
			<-in.done
		}
	}
	if t.Failed() {
		t.Logf("vlmtpd log:\n%s", in.Logs())
	}
}

// Logs returns what the server has logged so far.
func (in *Instance) Logs() string { return in.logs.String() }

// Dial opens a raw connection to the unix socket.
func (in *Instance) Dial(t testing.TB) *Raw {
	t.Helper()
	c, err := net.Dial("unix", in.Socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return newRaw(t, c)
}

// Raw is a line-level LMTP client for exact transcripts.
type Raw struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func newRaw(t testing.TB, c net.Conn) *Raw {
	r := &Raw{t: t, c: c, r: bufio.NewReader(c)}
	r.Expect("220 ")
	return r
}

// Send writes text as is (the caller supplies CRLFs).
func (r *Raw) Send(s string) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write([]byte(s)); err != nil {
		r.t.Fatalf("send: %v", err)
	}
}

// Reply reads one whole (possibly multi-line) reply and returns its last
// line.
func (r *Raw) Reply() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		line, err := r.r.ReadString('\n')
		if err != nil {
			r.t.Fatalf("reading reply: %v (got %q)", err, line)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 || line[3] != '-' {
			return line
		}
	}
}

// Expect reads one reply and fails unless it starts with prefix.
func (r *Raw) Expect(prefix string) string {
	r.t.Helper()
	got := r.Reply()
	if !strings.HasPrefix(got, prefix) {
		r.t.Fatalf("expected reply %q..., got %q", prefix, got)
	}
	return got
}

// Close closes the connection.
func (r *Raw) Close() { r.c.Close() }

// mergeTOML lets extra lines replace keys of the base configuration.
func mergeTOML(base, extra string) string {
	keys := map[string]bool{}
	for _, l := range strings.Split(extra, "\n") {
		if k, _, ok := strings.Cut(l, "="); ok {
			keys[strings.TrimSpace(k)] = true
		}
	}
	var out []string
	for _, l := range strings.Split(base, "\n") {
		if k, _, ok := strings.Cut(l, "="); ok && keys[strings.TrimSpace(k)] {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n") + "\n" + extra + "\n"
}
