package worker

import (
	"fmt"
	"os/exec"

	"github.com/vlmtpd/vlmtpd/internal/testutil"

	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSandboxConfinesWrites confines one locked thread of the test process
// the way a worker confines itself and checks what it may still do. The
// thread is never unlocked, so it ends with its goroutine.
func TestSandboxConfinesWrites(t *testing.T) {
	abi := landlockABI()
	if abi < 1 {
		testutil.SkipOrFail(t, "the kernel has no Landlock")
	}
	base, outside := t.TempDir(), t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	type check struct {
		what string
		err  error
		want error // nil: must succeed
	}
	results := make(chan []check)
	go func() {
		runtime.LockOSThread()
		var out []check
		add := func(what string, err, want error) { out = append(out, check{what, err, want}) }
		defer func() { results <- out }()
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			add("no_new_privs", err, nil)
			return
		}
		sb, err := sandboxThisThread(base)
		if err != nil || sb != sandboxLandlock {
			// The kernel has Landlock (checked above): anything else is a
			// failure, never a pass with nothing checked.
			add("sandbox", fmt.Errorf("got sandbox %q: %v", sb, err), nil)
			return
		}
		create := func(path string) error {
			fd, err := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
			if err == nil {
				unix.Write(fd, []byte("x\n"))
				unix.Close(fd)
			}
			return err
		}
		// What a mailbox writer does beneath the base.
		add("create in base", create(filepath.Join(base, "tmpfile")), nil)
		add("mkdir in base", unix.Mkdir(filepath.Join(base, "new"), 0o700), nil)
		add("link across dirs in base", unix.Link(filepath.Join(base, "tmpfile"), filepath.Join(base, "new", "msg")), nil)
		add("unlink in base", unix.Unlink(filepath.Join(base, "tmpfile")), nil)
		add("truncate in base", unix.Truncate(filepath.Join(base, "new", "msg"), 0), nil)
		_, err = os.ReadFile("/proc/self/status")
		add("read /proc", err, nil)
		// What it must not do.
		add("create outside", create(filepath.Join(outside, "f")), unix.EACCES)
		add("mkdir outside", unix.Mkdir(filepath.Join(outside, "d"), 0o700), unix.EACCES)
		add("symlink in base", unix.Symlink("/etc/passwd", filepath.Join(base, "sym")), unix.EACCES)
		// The child a locked thread starts inherits its domain: no program
		// runs, though it may be read.
		_, err = os.ReadFile("/bin/true")
		add("read a program", err, nil)
		add("execute a program", exec.Command("/bin/true").Run(), unix.EACCES)
		if abi >= 4 {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err == nil {
				err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
				unix.Close(fd)
			}
			add("tcp connect", err, unix.EACCES)
		}
		if abi >= 6 {
			add("signal outside", unix.Kill(os.Getppid(), 0), unix.EPERM)
		}
	}()
	for _, c := range <-results {
		if c.want == nil && c.err != nil {
			t.Errorf("%s: %v", c.what, c.err)
		}
		if c.want != nil && !errors.Is(c.err, c.want) {
			t.Errorf("%s: got %v, want %v", c.what, c.err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "f")); err == nil {
		t.Error("a file was created outside the base")
	}
}
