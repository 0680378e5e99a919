// Runs in: the front (and the lookup, check-config and makemap commands).

// Package testserver starts throw-away MariaDB, PostgreSQL and OpenLDAP
// servers for tests: each in its own temporary directory, listening on a
// unix socket and a free 127.0.0.1 port, from the Debian packages listed in
// .ci/apt-packages. It is imported by tests only.
package testserver

import (
	"github.com/vlmtpd/vlmtpd/internal/testutil"

	"errors"
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
)

// ErrMissing is a server binary that is not installed.
var ErrMissing = errors.New("server binary not installed")

// Require skips the test when err says a binary is missing, except under
// CI=true where every server must be there; any other error fails it.
func Require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrMissing) {
		testutil.SkipOrFail(t, "%v", err)
	}
	t.Fatal(err)
}

// Server is one running (or stopped) server process.
type Server struct {
	Dir    string // its temporary directory
	Socket string // unix socket path
	Port   int    // TCP port on 127.0.0.1
	// Certs is the PKI of a server that also speaks TLS (MariaDB, slapd).
	Certs *Certs
	// TLSPort is slapd's ldaps:// port.
	TLSPort int

	name    string
	argv    []string
	cred    *syscall.Credential
	stopSig os.Signal
	ready   func() error
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs the server and waits until it accepts connections.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("%s: already running", s.name)
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Dir = s.Dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "HOME=" + s.Dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: %w", s.name, err)
	}
	logf.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("%s exited at start-up: %s", s.name, s.logTail())
		default:
		}
		if err := s.ready(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("%s not ready after 60s (%v): %s", s.name, err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(s.stopSig)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// Outage stops the server, runs whileDown, and starts the server again.
// It is started again also when whileDown fails the test, so the tests
// after it find the server up.
func (s *Server) Outage(tb testing.TB, whileDown func()) {
	tb.Helper()
	s.Stop()
	started := false
	defer func() {
		if !started {
			s.Start()
		}
	}()
	whileDown()
	started = true
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	s.Stop()
	os.RemoveAll(s.Dir)
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func dialReady(network, addr string) func() error {
	return func() error {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// find returns the first of the paths that exists, or ErrMissing.
func find(pkg string, paths ...string) (string, error) {
	for _, p := range paths {
		if m, _ := filepath.Glob(p); len(m) > 0 {
			return m[len(m)-1], nil // Glob sorts: the highest version
		}
	}
	return "", fmt.Errorf("%w: %s (Debian package %s)", ErrMissing, strings.Join(paths, " or "), pkg)
}

func run(dir string, cred *syscall.Credential, argv ...string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", filepath.Base(argv[0]), err, out)
	}
	return nil
}

// newDir makes a temporary directory others can traverse (servers that
// refuse root run as nobody).
func newDir(prefix string) (string, error) {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	return d, os.Chmod(d, 0o755)
}
