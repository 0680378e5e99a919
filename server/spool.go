// Runs in: the front.

package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/vlmtpd/vlmtpd/server/lmtp"
	"golang.org/x/sys/unix"
)

// Spool holds message bodies while they are delivered. A body starts in
// memory (a sealed memfd: no inode to allocate on disk, nothing left
// behind by a crash) and moves to an anonymous file in spool_directory
// (O_TMPFILE) once it outgrows memSpoolLimit, so memory stays flat in
// message size. The body is written once, with LF line endings.
type Spool struct {
	dir string
}

// memSpoolLimit is the largest body kept in memory: a 1 MB message with
// its headers still fits. Most mail is far smaller; 100 sessions at this
// size cost at most ~200 MB of page cache, never the front's heap.
const memSpoolLimit = 2 << 20

// NewSpool checks that dir can hold spool files, creating it (0700) if
// it is missing.
func NewSpool(dir string) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool_directory %s: %w", dir, err)
	}
	s := &Spool{dir: dir}
	f, err := s.createFile()
	if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("spool_directory %s must be writable by uid %d, the user this process runs as: %w", dir, os.Getuid(), err)
	}
	if err != nil {
		return nil, fmt.Errorf("spool_directory %s: %w", dir, err)
	}
	f.Close()
	return s, nil
}

func (s *Spool) createFile() (*os.File, error) {
	fd, err := unix.Open(s.dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), s.dir+"/(spool)"), nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, &os.PathError{Op: "open", Path: s.dir, Err: err}
	}
	// Filesystems without O_TMPFILE: a named file, unlinked at once.
	f, err := os.CreateTemp(s.dir, "spool-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

// Write copies r into a new spool file, turning CRLF into LF, and returns
// the file (read it with ReadAt; it is never written again) and its size.
// On a read error the file is closed and the error returned as is, so the
// caller can tell a client's fault (too big, too long a line) from ours.
//
// The body is read through lmtp.LF: for a DATA body that is the pass that
// unstuffs it, so each byte is looked at once and copied once, from the
// connection's buffer into a 64 KB buffer that fills before each write.
//
// sizeHint is the client's SIZE= (0 if none): a body announced larger
// than memSpoolLimit goes to disk at once instead of being copied there
// when it outgrows memory. SIZE= counts CRLF line ends, so the stored
// body is at least half of it.
func (s *Spool) Write(r io.Reader, sizeHint int64) (*os.File, int64, error) {
	sw, err := s.newSpillWriter(sizeHint/2 > memSpoolLimit)
	if err != nil {
		return nil, 0, err
	}
	buf := bufPool.Get().(*[]byte)
	lf := lmtp.LF(r)
	for err == nil {
		var n int
		n, err = readFull(lf, *buf)
		if n > 0 {
			if _, werr := sw.Write((*buf)[:n]); werr != nil {
				err = werr
			}
		}
	}
	bufPool.Put(buf)
	if err == io.EOF {
		err = sw.finish()
	}
	if err != nil {
		sw.f.Close()
		return nil, 0, err
	}
	return sw.f, sw.n, nil
}

// readFull reads until p is full or r ends: io.ReadFull without its
// ErrUnexpectedEOF for a short last part.
func readFull(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// spillWriter writes to a memfd until memSpoolLimit, then moves what it
// has to a file in the spool directory and goes on there.
type spillWriter struct {
	s     *Spool
	f     *os.File
	inMem bool
	n     int64
}

func (s *Spool) newSpillWriter(large bool) (*spillWriter, error) {
	fd, err := -1, error(nil)
	if !large {
		fd, err = unix.MemfdCreate("vlmtpd-spool", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if large || err != nil {
		// Announced as large, or no memfd (old kernel, seccomp):
		// straight to disk.
		f, ferr := s.createFile()
		return &spillWriter{s: s, f: f}, ferr
	}
	return &spillWriter{s: s, f: os.NewFile(uintptr(fd), "(spool memfd)"), inMem: true}, nil
}

func (w *spillWriter) Write(p []byte) (int, error) {
	if w.inMem && w.n+int64(len(p)) > memSpoolLimit {
		if err := w.spill(); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *spillWriter) spill() error {
	disk, err := w.s.createFile()
	if err != nil {
		return err
	}
	if err := copyInto(disk, w.f, w.n); err != nil {
		disk.Close()
		return err
	}
	w.f.Close()
	w.f, w.inMem = disk, false
	return nil
}

// copyInto appends the first n bytes of src to dst with sendfile: the
// kernel moves the pages from the memfd, without the 32 KB buffer
// io.Copy would allocate for every body that spills (a file's ReadFrom
// cannot help: copy_file_range refuses a memfd source). read and write
// remain for a kernel that refuses sendfile here.
func copyInto(dst, src *os.File, n int64) error {
	var off int64
	for off < n {
		m, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), &off, int(n-off))
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			continue
		case err != nil && off == 0 && (err == unix.EINVAL || err == unix.ENOSYS):
			_, err = io.Copy(dst, io.NewSectionReader(src, 0, n))
			return err
		case err != nil:
			return err
		case m == 0:
			return io.ErrUnexpectedEOF
		}
	}
	return nil
}

// finish seals an in-memory body: from here on no process holding the
// descriptor, a delivery worker included, can change it.
func (w *spillWriter) finish() error {
	if !w.inMem {
		return nil
	}
	_, err := unix.FcntlInt(w.f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
	return err
}

// The buffers of Write are reused: a busy server spools many messages a
// second and each would otherwise cost its buffer in garbage. 64 KB
// writes: 16 system calls for a 1 MB body, and 6.4 MB of buffers for
// 100 sessions (128 KB measured the same CPU and cost 5–8 MB more).
var (
	bufPool    = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
)
