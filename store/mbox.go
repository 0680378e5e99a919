// Runs in: a worker, as the mailbox owner.

package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fromLineTime is asctime(3)'s layout, used in the From_ line.
const fromLineTime = "Mon Jan _2 15:04:05 2006"

// fromLine is the mbox separator: "From <sender>  <asctime>" with the
// delivery time in UTC (Postfix uses local time; UTC keeps the worker
// processes, which may run without a TZ setting, consistent).
func fromLine(sender string, now time.Time) []byte {
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	b := make([]byte, 0, len(sender)+32)
	b = append(b, "From "...)
	b = append(b, sender...)
	b = append(b, "  "...)
	b = now.UTC().AppendFormat(b, fromLineTime)
	return append(b, '\n')
}

var bufioPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, copyBufSize) }}

// checkMboxStat refuses anything but a regular file with one link owned
// by uid.
func checkMboxStat(st *unix.Stat_t, uid int) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return errors.New("mailbox is a symbolic link")
	default:
		return fmt.Errorf("mailbox is not a regular file (mode %#o)", st.Mode&unix.S_IFMT)
	}
	if st.Nlink != 1 {
		return fmt.Errorf("mailbox has %d hard links", st.Nlink)
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("mailbox is owned by uid %d, not %d", st.Uid, uid)
	}
	return nil
}

// openMboxDir opens the directory that holds the mbox. It is never
// created: a missing parent is a temporary failure, as in virtual(8).
func (l *Writer) openMboxDir(mp mailboxPath, path string) (int, error) {
	dirfd, err := openBeneath(l.base, mp.dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err == unix.ENOENT {
		return -1, fail(Temporary, "open", path, fmt.Errorf("mailbox directory %s does not exist: %w", mp.dir, err))
	}
	if err != nil {
		return -1, classify("open", path, err)
	}
	return dirfd, nil
}

// openMbox opens the mbox name in dirfd for appending, creating it (0600)
// if it is missing. It never follows a symlink and never opens anything
// but a regular file with one link owned by this uid: the entry is checked
// with lstat first (so a FIFO or device is never opened) and the opened
// file is checked again. key names the opened file (it is fixed for the
// descriptor's life); created says whether this call made the file.
func (l *Writer) openMbox(dirfd int, name, path string) (fd int, key inodeKey, created bool, err error) {
	for tries := 0; tries < 10; tries++ {
		var st unix.Stat_t
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			fd, err := openBeneath(dirfd, name, unix.O_RDWR|unix.O_APPEND|unix.O_CREAT|unix.O_EXCL, 0o600)
			if err == unix.EEXIST {
				continue // lost a race with another creator: open it as existing
			}
			if err == nil {
				err = unix.Fstat(fd, &st)
				if err != nil {
					unix.Close(fd)
				}
			}
			if err != nil {
				return -1, inodeKey{}, false, classify("create", path, err)
			}
			return fd, inodeKey{st.Dev, st.Ino}, true, nil
		}
		if err != nil {
			return -1, inodeKey{}, false, classify("open", path, err)
		}
		if err := checkMboxStat(&st, l.uid); err != nil {
			return -1, inodeKey{}, false, fail(BadMailbox, "open", path, err)
		}
		// O_NONBLOCK: should a FIFO appear after the lstat, opening it
		// fails (ENXIO) or returns at once instead of hanging.
		// Read access lets a later delivery check what an interrupted
		// append left (see recoverAppend); a mailbox its owner may not
		// read is still written to.
		fd, err := openBeneath(dirfd, name, unix.O_RDWR|unix.O_APPEND|unix.O_NONBLOCK, 0)
		if err == unix.EACCES {
			fd, err = openBeneath(dirfd, name, unix.O_WRONLY|unix.O_APPEND|unix.O_NONBLOCK, 0)
		}
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			return -1, inodeKey{}, false, classify("open", path, err)
		}
		var fst unix.Stat_t
		if err := unix.Fstat(fd, &fst); err != nil {
			unix.Close(fd)
			return -1, inodeKey{}, false, classify("open", path, err)
		}
		if err := checkMboxStat(&fst, l.uid); err != nil {
			unix.Close(fd)
			return -1, inodeKey{}, false, fail(BadMailbox, "open", path, err)
		}
		if fst.Dev != st.Dev || fst.Ino != st.Ino {
			unix.Close(fd)
			continue
		}
		return fd, inodeKey{fst.Dev, fst.Ino}, false, nil
	}
	return -1, inodeKey{}, false, fail(Temporary, "open", path, errors.New("mailbox keeps changing while being opened"))
}

// deliverMbox appends one message to an mbox under its locks: From_ line,
// trace headers, the message with From quoting and without the header
// fields that carry flags and UIDs (mboxflags.go), a final LF if missing
// and one empty line; fdatasync. On any failure the file is truncated back
// to its size before the append, so it never holds part of a message;
// should this process be killed midway, the append record
// (appendrecord.go) lets the next delivery do it instead.
func (l *Writer) deliverMbox(ctx context.Context, msg *Message, r Recipient, mp mailboxPath, hdr []byte, t *Timing) error {
	return l.deliverMboxFlags(ctx, msg, r, mp, hdr, nil, t)
}

// deliverMboxFlags is deliverMbox with IMAP flags, written as header
// fields at the end of the message's header (MboxFlagHeaders).
func (l *Writer) deliverMboxFlags(ctx context.Context, msg *Message, r Recipient, mp mailboxPath, hdr []byte, flags []string, t *Timing) error {
	from := fromLine(msg.Sender, time.Now())

	dirfd, err := l.openMboxDir(mp, r.Path)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	fd, key, created, err := l.openMbox(dirfd, mp.name, r.Path)
	if err != nil {
		return err
	}
	lk, err := l.lockMbox(ctx, fd, key, dirfd, mp.name, r.Path)
	// Release order: closing drops the kernel locks, then the dotlock goes
	// and the next writer in this process gets its turn.
	defer lk.release()
	defer unix.Close(fd)
	if err != nil {
		return err
	}

	// Whoever held the lock may have replaced or linked the file; check
	// again now that nobody else may change it.
	var st, cur unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return classify("stat", r.Path, err)
	}
	if err := checkMboxStat(&st, l.uid); err != nil {
		return fail(BadMailbox, "lock", r.Path, err)
	}
	if err := unix.Fstatat(dirfd, mp.name, &cur, unix.AT_SYMLINK_NOFOLLOW); err != nil || cur.Dev != st.Dev || cur.Ino != st.Ino {
		return fail(Temporary, "lock", r.Path, errors.New("mailbox was replaced while waiting for the lock"))
	}
	if len(Keywords(flags)) > 0 {
		flags = l.mboxKeywords(fd, st.Size, flags, r.Path)
	}
	flagHdr := MboxFlagHeaders(flags)
	// The least this append can add, unless header fields are dropped
	// (counted below only when it matters); quoting, a missing final LF or
	// empty line only add to it.
	minAppend := int64(len(from)+len(hdr)+len(flagHdr)) + msg.Size + 1
	oldSize, recorded, err := l.startRecord(fd, key, st.Size, from, hdr, r.Path)
	if err != nil {
		return err
	}
	if recorded {
		beginAppend(key)
		defer endAppend(key)
	}
	if r.Limit > 0 && oldSize+minAppend > r.Limit {
		// Fields the filter drops may make it fit after all.
		if dropped, err := mboxDroppedBytes(msg); err == nil {
			minAppend -= dropped
		}
	}
	if r.Limit > 0 && oldSize+minAppend > r.Limit {
		if recorded {
			unix.Fremovexattr(fd, appendXattr)
		}
		return fail(OverLimit, "write", r.Path, fmt.Errorf("%w: mailbox of %d bytes plus a message of at least %d, limit %d",
			errOverLimit, oldSize, minAppend, r.Limit))
	}

	err = l.appendMbox(fd, oldSize, r.Limit, msg, from, hdr, flagHdr)
	if err == nil && recorded {
		// Removed before the sync, so that the sync makes the message and
		// the removal durable together (see appendrecord.go).
		if err = unix.Fremovexattr(fd, appendXattr); err == nil {
			recorded = false
			err = timed(t, func() error { return unix.Fsync(fd) }) // fdatasync need not write the attribute
		}
	} else if err == nil {
		err = timed(t, func() error { return unix.Fdatasync(fd) })
	}
	if err == nil && created {
		err = timed(t, func() error { return syncDir(dirfd) }) // the new file's name must be durable too
	}
	if err != nil {
		// Errors from the truncate itself cannot be reported any better;
		// the record stays if it fails, for the next delivery to retry.
		if unix.Ftruncate(fd, oldSize) == nil && recorded {
			unix.Fremovexattr(fd, appendXattr)
		}
		return classify("write", r.Path, err)
	}
	return nil
}

// appendMbox streams the message into fd in one pass with a fixed buffer:
// memory use does not grow with the message. flagHdr goes at the end of
// the message's header.
func (l *Writer) appendMbox(fd int, size, limit int64, msg *Message, from, hdr, flagHdr []byte) error {
	var fw io.Writer = &fdWriter{fd: fd, size: size, limit: limit}
	if testHookMboxWrite != nil {
		fw = hookWriter{fw}
	}
	bw := bufioPool.Get().(*bufio.Writer)
	bw.Reset(fw)
	defer func() {
		bw.Reset(nil)
		bufioPool.Put(bw)
	}()
	bw.Write(from)
	bw.Write(hdr)
	q := newFromQuoter(bw)
	f := newMboxFilter(q, flagHdr)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	n, err := io.CopyBuffer(f, io.NewSectionReader(msg.Body, 0, msg.Size), *bp)
	if err == nil && n < msg.Size {
		err = errShortSpool
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = q.Close()
	}
	if err == nil {
		err = bw.WriteByte('\n')
	}
	if err == nil {
		err = bw.Flush()
	}
	return err
}

// testHookMboxWrite, set only by tests, runs after each write of an
// append has reached the file: the crash tests kill the writer there.
var testHookMboxWrite func()

type hookWriter struct{ w io.Writer }

func (h hookWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	testHookMboxWrite()
	return n, err
}
