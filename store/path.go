// Runs in: a worker, as the mailbox owner.

package store

import (
	"errors"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Every mailbox file operation is relative to the base directory's
// descriptor and resolved with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, so
// neither a ".." nor a symlink planted by a mailbox owner can lead a write
// outside the base or into another user's files.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS

// haveOpenat2 is cleared when the kernel (or a seccomp filter) refuses
// openat2; the component-by-component walk is then used instead.
var haveOpenat2 atomic.Bool

func init() { haveOpenat2.Store(true) }

// openBeneath opens path relative to dirfd without following any symlink
// and without leaving dirfd's tree. flags get O_CLOEXEC and O_NOFOLLOW.
// Callers that pass O_PATH must also pass O_DIRECTORY: O_PATH|O_NOFOLLOW
// alone would return a descriptor for a final symlink itself.
func openBeneath(dirfd int, path string, flags int, mode uint32) (int, error) {
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	if haveOpenat2.Load() {
		how := unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: resolveFlags}
		for tries := 0; ; tries++ {
			fd, err := unix.Openat2(dirfd, path, &how)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN && tries < 16:
				// A concurrent rename elsewhere made the kernel unsure
				// the walk stayed beneath; retrying is the documented fix.
				continue
			case (err == unix.ENOSYS || err == unix.EPERM) && !probeOpenat2():
				return openWalk(dirfd, path, flags, mode)
			}
			return fd, err
		}
	}
	return openWalk(dirfd, path, flags, mode)
}

// probeOpenat2 tells a real EPERM or ENOSYS for one file from a kernel or
// seccomp filter that refuses the openat2 system call as a whole, and
// switches to openWalk for good in the latter case.
func probeOpenat2() bool {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC | unix.O_DIRECTORY}
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &how)
	if err == nil {
		unix.Close(fd)
		return true
	}
	if err == unix.ENOSYS || err == unix.EPERM {
		haveOpenat2.Store(false)
		return false
	}
	return true
}

// openWalk is openBeneath for kernels without openat2 (before 5.6): it
// opens one component at a time with O_NOFOLLOW. Paths reaching it were
// checked by parsePath (no ".."), so the walk cannot climb out of dirfd.
func openWalk(dirfd int, path string, flags int, mode uint32) (int, error) {
	comps := strings.Split(path, "/")
	cur := dirfd
	closeCur := func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}
	for _, c := range comps[:len(comps)-1] {
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			closeCur()
			return -1, unix.EXDEV
		}
		next, err := openatRetry(cur, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		closeCur()
		if err != nil {
			return -1, err
		}
		cur = next
	}
	last := comps[len(comps)-1]
	if last == ".." {
		closeCur()
		return -1, unix.EXDEV
	}
	if last == "" {
		last = "."
	}
	fd, err := openatRetry(cur, last, flags, mode)
	closeCur()
	return fd, err
}

func openatRetry(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// mailboxPath is a Recipient.Path checked and split for use beneath the base.
type mailboxPath struct {
	comps []string // the components, none empty, ".", or ".."
	rel   string   // comps joined by "/": relative to the base
	dir   string   // parent of the last component relative to the base, "." for the base
	name  string   // the last component
}

var (
	errEmptyPath   = errors.New("empty mailbox path")
	errDotDot      = errors.New(`".." in mailbox path`)
	errControlChar = errors.New("control character in mailbox path")
)

// parsePath checks a map result the way virtual(8) should have: no NUL or
// other control characters, no ".." component. Leading and repeated
// slashes are dropped (base + "/" + "/x" stays under the base) and so are
// "." components. The trailing slash that marks a Maildir is the caller's
// business (FormatOf).
func parsePath(p string) (mailboxPath, error) {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return mailboxPath{}, errControlChar
		}
	}
	var mp mailboxPath
	for c := range strings.SplitSeq(p, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return mailboxPath{}, errDotDot
		}
		mp.comps = append(mp.comps, c)
	}
	if len(mp.comps) == 0 {
		return mailboxPath{}, errEmptyPath
	}
	mp.rel = strings.Join(mp.comps, "/")
	mp.name = mp.comps[len(mp.comps)-1]
	mp.dir = "."
	if len(mp.comps) > 1 {
		mp.dir = strings.Join(mp.comps[:len(mp.comps)-1], "/")
	}
	return mp, nil
}

// mkdirAllBeneath opens the directory rel (components comps) beneath
// basefd as O_PATH, creating missing components with mode 0700 like
// `mkdir -p`. Each step is opened without following symlinks, so a
// directory swapped for a symlink between mkdir and open is refused.
func mkdirAllBeneath(basefd int, rel string, comps []string) (int, error) {
	fd, err := openBeneath(basefd, rel, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != unix.ENOENT {
		return fd, err
	}
	cur := basefd
	for _, c := range comps {
		next, err := openOrMkdir(cur, c, unix.O_PATH)
		if cur != basefd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

// openOrMkdir opens the directory name in dirfd (with flags: O_PATH or
// O_RDONLY), creating it with mode 0700 if it is missing.
func openOrMkdir(dirfd int, name string, flags int) (int, error) {
	fd, err := openBeneath(dirfd, name, flags|unix.O_DIRECTORY, 0)
	if err != unix.ENOENT {
		return fd, err
	}
	if err := unix.Mkdirat(dirfd, name, 0o700); err == nil {
		if err := syncDir(dirfd); err != nil {
			return -1, err
		}
	} else if err != unix.EEXIST {
		return -1, err
	}
	return openBeneath(dirfd, name, flags|unix.O_DIRECTORY, 0)
}

// syncDir fsyncs the directory dirfd (which may be an O_PATH descriptor),
// making a new entry in it durable. It is only needed after creating a
// directory or an mbox, which happens once per mailbox.
func syncDir(dirfd int) error {
	fd, err := openBeneath(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	err = unix.Fsync(fd)
	unix.Close(fd)
	return err
}
