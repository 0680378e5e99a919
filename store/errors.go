// Runs in: a worker, as the mailbox owner.

package store

import (
	"errors"

	"golang.org/x/sys/unix"
)

var (
	// errOverLimit is the mailbox limit (Recipient.Limit) being crossed.
	errOverLimit = errors.New("mailbox size limit exceeded")
	// errShortSpool is a spool file shorter than Message.Size.
	errShortSpool = errors.New("spool file shorter than the message size")
)

// fail is an *Error with a fixed status.
func fail(st Status, op, path string, err error) *Error {
	return &Error{Status: st, Op: op, Path: path, Err: err}
}

// classify maps the cause of a failed operation to a Status: quota and
// file-size limits are OverLimit (a bounce, as in virtual(8)), a full disk
// is NoSpace, anything that says the path is not a safe mailbox (a
// symlink, an escape from the base, a file where a directory belongs) is
// BadMailbox, and everything else is Temporary, never a bounce.
func classify(op, path string, err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	st := Temporary
	switch {
	case errors.Is(err, errOverLimit), errors.Is(err, unix.EFBIG), errors.Is(err, unix.EDQUOT):
		st = OverLimit
	case errors.Is(err, unix.ENOSPC):
		st = NoSpace
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOTDIR),
		errors.Is(err, unix.EISDIR), errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENAMETOOLONG):
		st = BadMailbox
	}
	return &Error{Status: st, Op: op, Path: path, Err: err}
}
