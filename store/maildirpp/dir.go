// Runs in: a worker, as the mailbox owner.

package maildirpp

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/fdio"
)

// lockName is the lock Dovecot's maildir quota takes (as a dotlock) while
// it rewrites maildirsize; we take the same one, so the two never rewrite
// the file at once.
const lockName = FileName + ".lock"

// staleLock is the age after which a leftover lock is removed (Dovecot's
// stale_timeout for this lock is 30 seconds too).
const staleLock = 30 * time.Second

// ErrBusy means another writer is rebuilding maildirsize right now.
var ErrBusy = errors.New("maildirsize is being rebuilt by another process")

const openFlags = unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK

func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|openFlags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// regularFile checks an opened descriptor: a regular file with one link.
func regularFile(fd int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return st, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return st, fmt.Errorf("%s is not a regular file", name)
	}
	if st.Nlink > 1 {
		return st, fmt.Errorf("%s has %d hard links", name, st.Nlink)
	}
	return st, nil
}

// Read reads the maildirsize in the Maildir root dirfd. A missing file is
// Reason Missing, not an error.
func Read(dirfd int) (File, time.Time, Reason, error) {
	fd, err := openat(dirfd, FileName, unix.O_RDONLY, 0)
	if err == unix.ENOENT {
		return File{}, time.Time{}, Missing, nil
	}
	if err != nil {
		return File{}, time.Time{}, "", fmt.Errorf("open %s: %w", FileName, err)
	}
	defer unix.Close(fd)
	st, err := regularFile(fd, FileName)
	if err != nil {
		return File{}, time.Time{}, "", err
	}
	mtime := time.Unix(st.Mtim.Unix())
	buf := make([]byte, MaxFileSize+1)
	n := 0
	for n < len(buf) {
		k, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return File{}, mtime, "", fmt.Errorf("read %s: %w", FileName, err)
		}
		if k == 0 {
			break
		}
		n += k
	}
	f, why := Parse(buf[:n])
	return f, mtime, why, nil
}

// Recalculate sums the ,S= sizes (or, for names without one, the file
// sizes) of every message in new/ and cur/ of the Maildir root dirfd and of
// each of its Maildir++ folders (subdirectories named ".something").
// Like Dovecot, every folder counts, Trash included. Symlinks are never
// followed: a folder or message that is a symlink is skipped. changed
// reports that a directory changed while it was being summed, so the
// result should not be written down.
func Recalculate(dirfd int) (u Usage, changed bool, err error) {
	names, err := readDirNames(dirfd, ".")
	if err != nil {
		return Usage{}, false, err
	}
	folders := []string{"."}
	for _, n := range names {
		if len(n) > 1 && n[0] == '.' && n != ".." {
			folders = append(folders, n)
		}
	}
	for _, folder := range folders {
		fd := dirfd
		if folder != "." {
			fd, err = openat(dirfd, folder, unix.O_RDONLY|unix.O_DIRECTORY, 0)
			if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
				continue // gone, a file, or a symlink: not a folder of ours
			}
			if err != nil {
				return Usage{}, false, fmt.Errorf("open folder %s: %w", folder, err)
			}
		}
		for _, sub := range []string{"new", "cur"} {
			c, err := sumDir(fd, sub, &u)
			changed = changed || c
			if err != nil {
				if fd != dirfd {
					unix.Close(fd)
				}
				return Usage{}, false, fmt.Errorf("%s/%s: %w", folder, sub, err)
			}
		}
		if fd != dirfd {
			unix.Close(fd)
		}
	}
	return u, changed, nil
}

// sumDir adds the messages of parent/name to u.
func sumDir(parent int, name string, u *Usage) (changed bool, err error) {
	fd, err := openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var before, after unix.Stat_t
	if err := unix.Fstat(fd, &before); err != nil {
		return false, err
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return false, err
	}
	for _, n := range names {
		if strings.HasPrefix(n, ".") {
			continue
		}
		if size, ok := SizeFromName(n); ok {
			u.Bytes = satAdd(u.Bytes, size)
			u.Count++
			continue
		}
		var st unix.Stat_t
		err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			continue // expunged meanwhile
		}
		if err != nil {
			return false, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		u.Bytes = satAdd(u.Bytes, st.Size)
		u.Count++
	}
	if err := unix.Fstat(fd, &after); err != nil {
		return false, err
	}
	return after.Mtim != before.Mtim || after.Ctim != before.Ctim, nil
}

func readDirNames(dirfd int, name string) ([]string, error) {
	fd, err := openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return f.Readdirnames(-1)
}

// Write replaces maildirsize with the limits and one usage line, the way
// Dovecot does: written to maildirsize.lock (created exclusively, which is
// also the lock), then renamed over. ErrBusy: somebody holds the lock.
func Write(dirfd int, l Limits, u Usage) error {
	fd, err := openat(dirfd, lockName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, lockName, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
			time.Since(time.Unix(st.Mtim.Unix())) > staleLock {
			unix.Unlinkat(dirfd, lockName, 0)
			fd, err = openat(dirfd, lockName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
		}
		if err == unix.EEXIST {
			return ErrBusy
		}
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", lockName, err)
	}
	data := Contents(l, u)
	err = fdio.WriteAll(fd, data)
	if err == nil {
		err = unix.Fdatasync(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dirfd, lockName, dirfd, FileName)
	}
	if err != nil {
		unix.Unlinkat(dirfd, lockName, 0)
		return fmt.Errorf("write %s: %w", FileName, err)
	}
	return nil
}

// Append adds one change line with a single O_APPEND write, so concurrent
// appenders (Dovecot, Courier, other workers) never interleave within a
// line. A missing file is unix.ENOENT: nothing is created.
func Append(dirfd int, d Usage) error {
	fd, err := openat(dirfd, FileName, unix.O_WRONLY|unix.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if _, err := regularFile(fd, FileName); err != nil {
		return err
	}
	return fdio.WriteAll(fd, UsageLine(d))
}

// Options say what Current may do to the file.
type Options struct {
	// Create writes maildirsize by a full recalculation when it is
	// missing (virtual_create_maildirsize).
	Create bool
	// Now is the current time; zero means time.Now().
	Now time.Time
}

// State is a Maildir's quota as Current found it.
type State struct {
	Usage Usage
	// Recalculated says why the usage was recalculated rather than read
	// ("" when it was read from the file).
	Recalculated Reason
	// Written: the recalculation was written to maildirsize.
	Written bool
	// WriteErr is why a recalculated maildirsize could not be written
	// (the usage is valid regardless), nil otherwise.
	WriteErr error
}

// Current returns the Maildir's usage under the limits l: read from
// maildirsize when it can be trusted, else recalculated and (when the file
// exists or opts.Create) written back.
func Current(dirfd int, l Limits, opts Options) (State, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	f, mtime, why, err := Read(dirfd)
	if err != nil {
		return State{}, err
	}
	if why == Fine {
		why = f.Check(l, mtime, now)
	}
	if why == Fine {
		return State{Usage: f.Usage}, nil
	}
	u, changed, err := Recalculate(dirfd)
	if err != nil {
		return State{}, err
	}
	st := State{Usage: u, Recalculated: why}
	if changed || (why == Missing && !opts.Create) {
		return st, nil
	}
	switch err := Write(dirfd, l, u); {
	case err == nil:
		st.Written = true
	case errors.Is(err, ErrBusy):
		// The other writer is rebuilding it from the same files.
	default:
		// The usage is known all the same: the decision is made from it,
		// and the next delivery rebuilds the file again. A failed
		// bookkeeping write must never refuse a message that fits.
		st.WriteErr = err
	}
	return st, nil
}
