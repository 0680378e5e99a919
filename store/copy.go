// Runs in: a worker, as the mailbox owner.

package store

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/fdio"
)

const copyBufSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copySpool appends the first size bytes of the spool to dst at dst's
// current offset. It reads the spool only at explicit offsets, so one
// spool descriptor can serve many recipients (and goroutines) at once.
// The kernel copies the data (sendfile); pread and write are the last
// resort, e.g. for an O_APPEND target.
//
// Not copy_file_range: the spool is mostly a memfd, and from there to a
// disk filesystem it fails with EXDEV on every message (one wasted system
// call per delivery). Where it works, on one local filesystem, it gains
// nothing either: the copy starts after the trace header, not on a block
// boundary, so it cannot share blocks and does the same splice as
// sendfile.
func copySpool(dst int, src *os.File, size int64) error {
	rc, err := src.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	err = rc.Control(func(fd uintptr) { cerr = copyFD(dst, int(fd), size) })
	if err != nil {
		return err
	}
	return cerr
}

// chunk bounds one copy system call, well below the kernel's limit.
const chunk = 1 << 30

func copyFD(dst, src int, size int64) error {
	var off int64
	for off < size {
		n, err := unix.Sendfile(dst, src, &off, int(min(size-off, chunk)))
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			if fallbackErr(err) && n <= 0 {
				break
			}
			return err
		}
		if n == 0 {
			return errShortSpool
		}
	}
	if off >= size {
		return nil
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for off < size {
		n, err := unix.Pread(src, buf[:min(int64(len(buf)), size-off)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return errShortSpool
		}
		if err := fdio.WriteAll(dst, buf[:n]); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// fallbackErr says the kernel cannot do this copy this way (an unsupported
// file type, an O_APPEND target, an old kernel), not that the copy itself
// failed.
func fallbackErr(err error) bool {
	switch err {
	case unix.EXDEV, unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP, unix.EBADF, unix.EPERM:
		return true
	}
	return false
}

// fdWriter is an io.Writer on a raw descriptor that refuses to let the
// file grow past limit bytes (limit 0: no limit), so a mailbox limit is
// enforced before the bytes reach the disk.
type fdWriter struct {
	fd    int
	size  int64 // current file size, including what was written
	limit int64
}

func (w *fdWriter) Write(p []byte) (int, error) {
	if w.limit > 0 && w.size+int64(len(p)) > w.limit {
		return 0, errOverLimit
	}
	if err := fdio.WriteAll(w.fd, p); err != nil {
		return 0, err
	}
	w.size += int64(len(p))
	return len(p), nil
}
