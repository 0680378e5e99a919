package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Status
	}{
		{unix.ENOSPC, NoSpace},
		{unix.EDQUOT, OverLimit},
		{unix.EFBIG, OverLimit},
		{fmt.Errorf("write: %w", errOverLimit), OverLimit},
		{unix.ELOOP, BadMailbox},
		{unix.EXDEV, BadMailbox},
		{unix.ENOTDIR, BadMailbox},
		{unix.EIO, Temporary},
		{unix.EACCES, Temporary},
		{errShortSpool, Temporary},
		{errors.New("anything else"), Temporary},
		{fail(Locked, "lock", "p", errLockBusy), Locked},
	} {
		if got := classify("op", "p", tc.err).Status; got != tc.want {
			t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// The kernel's own file size limit (how virtual(8) enforces
// virtual_mailbox_limit) makes writes fail with EFBIG: that is OverLimit,
// and nothing of the message stays behind.
func TestFileSizeLimitEFBIG(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	old := oldMbox
	must(t, os.WriteFile(filepath.Join(base, "mbox"), []byte(old), 0o600))
	msg := spool(t, "a@b", strings.Repeat("x", 300<<10))

	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	var saved unix.Rlimit
	must(t, unix.Getrlimit(unix.RLIMIT_FSIZE, &saved))
	must(t, unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 100 << 10, Max: saved.Max}))
	errs := l.Deliver(t.Context(), msg, []Recipient{rcpt("mbox"), rcpt("md/")})
	must(t, unix.Setrlimit(unix.RLIMIT_FSIZE, &saved))

	wantStatus(t, errs[0], OverLimit)
	wantStatus(t, errs[1], OverLimit)
	if !errors.Is(errs[0], unix.EFBIG) || !errors.Is(errs[1], unix.EFBIG) {
		t.Errorf("not the kernel's EFBIG: %v; %v", errs[0], errs[1])
	}
	if got := readFile(t, filepath.Join(base, "mbox")); got != old {
		t.Errorf("mbox not truncated back: %d bytes", len(got))
	}
	if files := maildirFiles(t, filepath.Join(base, "md")); len(files) != 0 {
		t.Errorf("Maildir kept %v", files)
	}
}

// lockHelperEnv makes the test binary a lock holder (see TestMain): it
// locks the file named in the variable, says "locked" and holds the lock
// until its stdin closes.
const lockHelperEnv = "STORE_TEST_LOCK_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(lockHelperEnv); spec != "" {
		os.Exit(lockHelper(spec))
	}
	os.Exit(m.Run())
}

func lockHelper(spec string) int {
	method, path, _ := strings.Cut(spec, ":")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err == nil {
		switch method {
		case "posix": // a classic process-owned fcntl lock, as mutt or Dovecot take
			err = unix.FcntlFlock(f.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK})
		case "flock":
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		default:
			err = fmt.Errorf("unknown lock method %q", method)
		}
	}
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("locked")
	bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// Our locks conflict with those of other programs: a classic fcntl lock
// (against our OFD lock) and a flock lock held by another process.
func TestLockOtherProcess(t *testing.T) {
	for _, tc := range []struct{ helper, method string }{{"posix", LockFcntl}, {"flock", LockFlock}} {
		t.Run(tc.helper, func(t *testing.T) {
			l, base := newTestWriter(t, WriterOptions{LockMethods: []string{tc.method}, LockTimeout: 200 * time.Millisecond})
			path := filepath.Join(base, "mbox")
			must(t, os.WriteFile(path, []byte(oldMbox), 0o600))

			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), lockHelperEnv+"="+tc.helper+":"+path)
			stdin, err := cmd.StdinPipe()
			must(t, err)
			stdout, err := cmd.StdoutPipe()
			must(t, err)
			must(t, cmd.Start())
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			if line != "locked\n" {
				t.Fatalf("helper: %q", line)
			}

			wantStatus(t, deliver(t, l, spool(t, "a@b", "x\n"), rcpt("mbox")), Locked)
			if got := readFile(t, path); got != oldMbox {
				t.Fatalf("mbox written while another process held the lock")
			}
			stdin.Close()
			must(t, cmd.Wait())
			if err := deliver(t, l, spool(t, "a@b", "x\n"), rcpt("mbox")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
