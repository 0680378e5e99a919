// Runs in: a worker, as the mailbox owner.

package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/store/maildirpp"
)

// Quota is a recipient's entry in virtual_mailbox_limit_maps.
type Quota struct {
	// Set: the table has an entry (which may be 0, no limit). Without
	// one, only Recipient.Limit applies.
	Set bool
	// Limits: for a Maildir the whole Maildir++ tree (INBOX and folders),
	// bytes and messages; for an mbox the file's size (Count unused).
	Limits maildirpp.Limits
	// Extended keeps maildirsize up to date on every delivery
	// (virtual_maildir_extended); Create writes it when it is missing
	// (virtual_create_maildirsize).
	Extended, Create bool
}

// QuotaUsage is what a mailbox holds against its quota.
type QuotaUsage struct {
	Usage maildirpp.Usage
	// Recalculated says why maildirsize was not used as it was, "" when
	// it was (always "" for an mbox).
	Recalculated string
}

// Quota implements QuotaReporter: a Maildir's usage from maildirsize (or
// a recalculation by its rules), an mbox's size. A mailbox that does not
// exist yet holds nothing.
func (l *Writer) Quota(ctx context.Context, r Recipient, recalc bool) (QuotaUsage, error) {
	if r.Format() != Maildir {
		n, err := l.MailboxSize(ctx, r)
		return QuotaUsage{Usage: maildirpp.Usage{Bytes: n}}, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.permitted(r); err != nil {
		return QuotaUsage{}, err
	}
	mp, err := parsePath(r.Path)
	if err != nil {
		return QuotaUsage{}, fail(BadMailbox, "path", r.Path, err)
	}
	root, err := openBeneath(l.base, mp.rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err == unix.ENOENT {
		return QuotaUsage{}, nil
	}
	if err != nil {
		return QuotaUsage{}, classify("open", r.Path, err)
	}
	defer unix.Close(root)
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return QuotaUsage{}, classify("stat", r.Path, err)
	}
	if err := checkOwnedDir(&st, l.uid, "maildir"); err != nil {
		return QuotaUsage{}, fail(BadMailbox, "open", r.Path, err)
	}
	// Under the quota lock: a rebuild that renamed a new maildirsize over
	// the one a delivery is appending to would lose that delivery's line.
	q, err := l.lockQuota(ctx, mp, r.Path)
	if err != nil {
		return QuotaUsage{}, err
	}
	defer q.release()
	if recalc {
		return l.rebuild(q, r)
	}
	return l.maildirUsage(q.root, r)
}

// rebuild recalculates maildirsize under the quota lock and writes it.
func (l *Writer) rebuild(q *quotaLock, r Recipient) (QuotaUsage, error) {
	u, _, err := maildirpp.Recalculate(q.root)
	if err == nil {
		err = maildirpp.Write(q.root, r.Quota.Limits, u)
	}
	if err != nil {
		return QuotaUsage{}, classify("quota", r.Path, err)
	}
	l.log.Info("maildirsize rebuilt on request", "path", r.Path, "bytes", u.Bytes, "messages", u.Count)
	return QuotaUsage{Usage: u, Recalculated: "requested"}, nil
}

// maildirUsage reads or recalculates the usage of the Maildir root.
func (l *Writer) maildirUsage(root int, r Recipient) (QuotaUsage, error) {
	if !r.Quota.Extended {
		// Without maildirsize every question is a full recalculation.
		u, _, err := maildirpp.Recalculate(root)
		if err != nil {
			return QuotaUsage{}, classify("quota", r.Path, err)
		}
		return QuotaUsage{Usage: u, Recalculated: "virtual_maildir_extended is off"}, nil
	}
	st, err := maildirpp.Current(root, r.Quota.Limits, maildirpp.Options{Create: r.Quota.Create})
	if err != nil {
		return QuotaUsage{}, classify("quota", r.Path, err)
	}
	if st.Recalculated != "" {
		l.log.Info("maildirsize recalculated", "path", r.Path, "reason", string(st.Recalculated),
			"bytes", st.Usage.Bytes, "messages", st.Usage.Count, "written", st.Written)
	}
	if st.WriteErr != nil {
		l.log.Warn("maildirsize recalculated but not written; the next delivery rebuilds it", "path", r.Path, "error", st.WriteErr)
	}
	return QuotaUsage{Usage: st.Usage, Recalculated: string(st.Recalculated)}, nil
}

// quotaLock serialises the quota decision and the link of deliveries to
// one Maildir across every process of ours: an flock on the Maildir's
// root directory, held from reading the usage until maildirsize records
// the new message. Dovecot and Courier take no such lock, so a message
// they save at the same moment can still overshoot, as between them.
type quotaLock struct {
	root int
}

func (l *Writer) lockQuota(ctx context.Context, mp mailboxPath, path string) (*quotaLock, error) {
	root, err := openBeneath(l.base, mp.rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, classify("open", path, err)
	}
	deadline := time.Now().Add(l.opts.LockTimeout)
	err = retryLock(ctx, deadline, func() error {
		err := unix.Flock(root, unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return nil
		case unix.EWOULDBLOCK:
			return errLockBusy
		case unix.EINTR:
			return errRetryNow
		}
		return err
	})
	if err != nil {
		unix.Close(root)
		if errors.Is(err, errLockBusy) {
			return nil, fail(Locked, "lock", path, fmt.Errorf("quota lock on the maildir: %w", err))
		}
		return nil, classify("lock", path, err)
	}
	return &quotaLock{root: root}, nil
}

func (q *quotaLock) release() { unix.Close(q.root) }

// checkQuota decides, under q, whether a message file of size bytes fits.
func (l *Writer) checkQuota(q *quotaLock, r Recipient, size int64) error {
	cur, err := l.maildirUsage(q.root, r)
	if err != nil {
		return err
	}
	if !cur.Usage.Fits(size, r.Quota.Limits) {
		return fail(OverLimit, "quota", r.Path, fmt.Errorf("%w: maildir holds %d bytes in %d messages; a message of %d bytes does not fit in %s",
			errOverLimit, cur.Usage.Bytes, cur.Usage.Count, size, r.Quota.Limits))
	}
	return nil
}

// record appends the delivered message to maildirsize. It cannot undo
// the delivery, so a failure removes the file instead: the next delivery
// rebuilds it rather than trusting a count that misses this message.
// It reports whether a line was appended.
func (l *Writer) recordQuota(q *quotaLock, r Recipient, size int64) bool {
	if !r.Quota.Extended {
		return false
	}
	err := maildirpp.Append(q.root, maildirpp.Usage{Bytes: size, Count: 1})
	if err == nil {
		return true
	}
	if err == unix.ENOENT && !r.Quota.Create {
		return false
	}
	l.log.Warn("maildirsize not updated; removing it so that it is rebuilt", "path", r.Path, "error", err)
	unix.Unlinkat(q.root, maildirpp.FileName, 0)
	return false
}

// maxFolderName bounds a +detail folder name (a path component).
const maxFolderName = 200

// DetailFolder turns a +detail into the Maildir++ folder it names, without
// the leading ".", or reports that it names none (the message then goes
// to INBOX). Only printable ASCII is allowed; no "/", no leading or
// trailing ".", no empty hierarchy level (".."), and "INBOX" (any case)
// is INBOX itself. "." stays the Maildir++ hierarchy separator ("a.b" is
// folder b inside a, as Dovecot and Courier read it); "&", which starts
// a modified UTF-7 escape in IMAP folder names, is written "&-". The
// result is always one path component beneath the Maildir.
func DetailFolder(detail string) (string, bool) {
	if detail == "" || len(detail) > maxFolderName/2 || strings.EqualFold(detail, "inbox") {
		return "", false
	}
	if detail[0] == '.' || detail[len(detail)-1] == '.' || strings.Contains(detail, "..") {
		return "", false
	}
	for i := 0; i < len(detail); i++ {
		if c := detail[i]; c < 0x21 || c > 0x7e || c == '/' || c == '\\' {
			return "", false
		}
	}
	return strings.ReplaceAll(detail, "&", "&-"), true
}

// detailTarget is where a Maildir recipient's message goes: the folder
// dest names (a +detail or a Sieve fileinto) if that exists (or may be
// created), else the Maildir itself.
func (l *Writer) detailTarget(mp mailboxPath, dest maildirDest, path string) (mailboxPath, error) {
	folder := dest.folder
	if folder == "" || folder[0] == '.' || strings.ContainsAny(folder, "/\x00") {
		return mp, nil // never more than one safe component (checked before; kept here too)
	}
	// The Maildir itself first: the folder lives inside it.
	md, err := mkdirAllBeneath(l.base, mp.rel, mp.comps)
	if err != nil {
		return mp, classify("mkdir", path, err)
	}
	defer unix.Close(md)
	name := "." + folder
	var st unix.Stat_t
	err = unix.Fstatat(md, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
	case err == nil:
		// A file or symlink where the folder would be: not a folder.
		return mp, nil
	case err == unix.ENOENT && dest.create:
		if err := l.createFolder(md, name); err != nil {
			return mp, classify("mkdir", path, err)
		}
	case err == unix.ENOENT:
		return mp, nil
	default:
		return mp, classify("stat", path, err)
	}
	fp := mp
	fp.comps = append(append([]string(nil), mp.comps...), name)
	fp.rel = mp.rel + "/" + name
	fp.dir, fp.name = mp.rel, name
	return fp, nil
}

// createFolder makes a Maildir++ folder with its maildirfolder marker
// (which Maildir++ readers such as Courier's deliverquota look for to find
// the quota in the parent); tmp/, new/ and cur/ come from openMaildir.
func (l *Writer) createFolder(md int, name string) error {
	if err := unix.Mkdirat(md, name, 0o700); err != nil && err != unix.EEXIST {
		return err
	}
	fd, err := openBeneath(md, name, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if err := checkOwnedDir(&st, l.uid, name); err != nil {
		return err
	}
	mf, err := openBeneath(fd, "maildirfolder", unix.O_WRONLY|unix.O_CREAT, 0o600)
	if err != nil {
		return err
	}
	unix.Close(mf)
	if err := syncDir(fd); err != nil {
		return err
	}
	return syncDir(md)
}
