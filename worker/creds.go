// Runs in: a worker.

package worker

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
	"github.com/vlmtpd/vlmtpd/store"
)

// check verifies everything a worker must be before it touches a mailbox.
func checkCreds(c *proctree.Creds, cfg Config) error {
	for i, id := range c.UIDs {
		if id != cfg.UID {
			return fmt.Errorf("uid set %v is not exactly %d (index %d)", c.UIDs, cfg.UID, i)
		}
	}
	for i, id := range c.GIDs {
		if id != cfg.GID {
			return fmt.Errorf("gid set %v is not exactly %d (index %d)", c.GIDs, cfg.GID, i)
		}
	}
	if err := (store.IDPolicy{}).Check(cfg.UID, cfg.GID); err != nil {
		return err
	}
	if len(c.Groups) > 0 && !cfg.KeepGroups {
		return fmt.Errorf("supplementary groups %v are not empty", c.Groups)
	}
	if c.CapInh|c.CapPrm|c.CapEff|c.CapAmb != 0 {
		return fmt.Errorf("holds capabilities (inh %x prm %x eff %x amb %x)", c.CapInh, c.CapPrm, c.CapEff, c.CapAmb)
	}
	if !c.NoNewPrivs {
		return errors.New("no_new_privs is not set")
	}
	return nil
}

// dropOnThisThread sets no_new_privs and clears every capability set of
// the calling thread. Both are per-thread in Linux, so the caller locks
// the thread and then execs, which makes that thread's state the whole
// new process's.
func dropOnThisThread() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("PR_SET_NO_NEW_PRIVS: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("PR_CAP_AMBIENT_CLEAR_ALL: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// reexecConfined re-executes the worker from a thread that has dropped
// every capability, set no_new_privs and confined itself beneath base, so
// that every thread of the new image inherits all of it. It returns only
// on failure.
func reexecConfined(base string, args []string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := dropOnThisThread(); err != nil {
		return err
	}
	sandbox, err := sandboxThisThread(base)
	if err != nil {
		return err
	}
	argv := append([]string{os.Args[0], workerArg, "-dropped=" + sandbox}, args...)
	err = syscall.Exec(SelfExe, argv, []string{})
	return fmt.Errorf("re-exec: %w", err)
}

// checkDescriptors refuses a process that holds a listening socket or a
// network socket: a worker must not be able to talk to the network.
func checkDescriptors() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
			continue
		}
		domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			return fmt.Errorf("fd %d: %v", fd, err)
		}
		if domain != unix.AF_UNIX {
			return fmt.Errorf("fd %d is a network socket (domain %d)", fd, domain)
		}
		if l, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); l != 0 {
			return fmt.Errorf("fd %d is a listening socket", fd)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(socketFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("fd %d is not the front's socket", socketFD)
	}
	return nil
}
