// Runs in: the front and a worker.

// Package fdio holds what the mailbox writers need on raw descriptors
// (opened with openat2 and O_NOFOLLOW, so never wrapped in *os.File) and
// the standard library has only for files: writing a buffer whole.
package fdio

import (
	"io"

	"golang.org/x/sys/unix"
)

// WriteAll writes p to fd completely, retrying interrupted and short
// writes.
func WriteAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		p = p[n:]
	}
	return nil
}
