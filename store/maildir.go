// Runs in: a worker, as the mailbox owner.

package store

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/fdio"
	"github.com/vlmtpd/vlmtpd/store/maildirpp"
)

// maildirDest is where in a Maildir a message goes: folder is a Maildir++
// folder's name on disk without its leading "." ("" for INBOX), already
// checked (DetailFolder, SieveFolder); create makes it when it is
// missing (else the message goes to INBOX); flags are Maildir info letters
// of the system flags.
type maildirDest struct {
	folder   string
	create   bool
	flags    string
	keywords []string // IMAP keywords, mapped to letters through dovecot-keywords
}

// detailDest is where a recipient's +detail sends the message.
func detailDest(r Recipient) maildirDest {
	if f, ok := DetailFolder(r.Folder); ok {
		return maildirDest{folder: f, create: r.CreateFolder}
	}
	return maildirDest{}
}

// maildirCounter makes names unique within this process (the Q part).
var maildirCounter atomic.Uint64

// maildirName is a new unique base name: <sec>.M<usec>P<pid>Q<n>.<host>.
func (l *Writer) maildirName() string {
	now := time.Now()
	var b strings.Builder
	b.Grow(64)
	b.WriteString(strconv.FormatInt(now.Unix(), 10))
	b.WriteString(".M")
	b.WriteString(strconv.Itoa(now.Nanosecond() / 1000))
	b.WriteString("P")
	b.WriteString(l.pid)
	b.WriteString("Q")
	b.WriteString(strconv.FormatUint(maildirCounter.Add(1), 10))
	b.WriteByte('.')
	b.WriteString(l.host)
	return b.String()
}

// maildirHost makes a hostname safe for Maildir names: "/" and ":" are
// written as \057 and \072 (the Maildir convention), other control or
// special bytes are dropped.
func maildirHost(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == '/':
			b.WriteString(`\057`)
		case c == ':':
			b.WriteString(`\072`)
		case c <= ' ' || c == 0x7f || c == ',':
			// dropped: "," would start the info part (,S=…)
		default:
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "localhost"
	}
	return b.String()
}

// checkOwnedDir verifies that st is a directory owned by uid: a Maildir
// somebody else owns is not ours to write into.
func checkOwnedDir(st *unix.Stat_t, uid int, what string) error {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory", what)
	}
	if int(st.Uid) != uid {
		return fmt.Errorf("%s is owned by uid %d, not %d", what, st.Uid, uid)
	}
	return nil
}

// dirError classifies a failure to open or check a Maildir directory: a
// system error by its errno, a failed check as BadMailbox.
func dirError(path string, err error) *Error {
	if _, ok := err.(unix.Errno); ok {
		return classify("mkdir", path, err)
	}
	return fail(BadMailbox, "open", path, err)
}

// maildirDirs are the open directories of one Maildir.
type maildirDirs struct {
	tmp    int // O_PATH
	new    int // O_RDONLY, so that it can be fsynced
	newDev uint64
	newIno uint64
}

func (d *maildirDirs) close() {
	if d.tmp >= 0 {
		unix.Close(d.tmp)
		d.tmp = -1
	}
	if d.new >= 0 {
		unix.Close(d.new)
		d.new = -1
	}
}

// openSub opens (flags O_PATH or O_RDONLY) or creates the subdirectory
// name of md and checks it.
func (l *Writer) openSub(md int, name string, flags int, st *unix.Stat_t) (int, error) {
	fd, err := openOrMkdir(md, name, flags)
	if err != nil {
		return -1, err
	}
	if err = unix.Fstat(fd, st); err == nil {
		err = checkOwnedDir(st, l.uid, name+"/")
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// checkCur makes sure cur/ exists as a directory of ours. Nothing is
// written there, so it is only looked at (lstat), not opened.
func (l *Writer) checkCur(md int) error {
	var st unix.Stat_t
	err := unix.Fstatat(md, "cur", &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		if err = unix.Mkdirat(md, "cur", 0o700); err == nil {
			err = syncDir(md)
		} else if err == unix.EEXIST {
			err = nil
		}
		if err == nil {
			err = unix.Fstatat(md, "cur", &st, unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	if err != nil {
		return err
	}
	return checkOwnedDir(&st, l.uid, "cur/")
}

// openMaildir opens (creating what is missing, 0700) the Maildir at mp and
// its tmp/, new/ and cur/ directories, all owned by this uid.
func (l *Writer) openMaildir(mp mailboxPath, path string) (*maildirDirs, error) {
	md, err := mkdirAllBeneath(l.base, mp.rel, mp.comps)
	if err != nil {
		return nil, classify("mkdir", path, err)
	}
	defer unix.Close(md)
	var st unix.Stat_t
	if err = unix.Fstat(md, &st); err == nil {
		err = checkOwnedDir(&st, l.uid, "maildir")
	}
	if err != nil {
		return nil, dirError(path, err)
	}
	d := &maildirDirs{tmp: -1, new: -1}
	if d.tmp, err = l.openSub(md, "tmp", unix.O_PATH, &st); err == nil {
		l.cleanTmpOnce(d.tmp, st.Dev, st.Ino, path)
		// Readable, not O_PATH: an O_PATH descriptor cannot be fsynced.
		if d.new, err = l.openSub(md, "new", unix.O_RDONLY, &st); err == nil {
			d.newDev, d.newIno = st.Dev, st.Ino
			err = l.checkCur(md)
		}
	}
	if err != nil {
		d.close()
		return nil, dirError(path, err)
	}
	return d, nil
}

// openDest opens the Maildir a message file of size bytes goes to for r:
// refused over r's limit, the +detail folder dest names (created if
// allowed) or the mailbox itself. It returns the directories and the path
// opened.
func (l *Writer) openDest(mp mailboxPath, r Recipient, dest maildirDest, size int64) (*maildirDirs, mailboxPath, error) {
	if r.Limit > 0 && size > r.Limit {
		return nil, mp, fail(OverLimit, "write", r.Path, fmt.Errorf("%w: message file of %d bytes, limit %d", errOverLimit, size, r.Limit))
	}
	target := mp
	if dest.folder != "" {
		var err error
		if target, err = l.detailTarget(mp, dest, r.Path); err != nil {
			return nil, mp, err
		}
	}
	d, err := l.openMaildir(target, r.Path)
	return d, target, err
}

// deliverMaildir writes one message file: tmp/<name> (O_EXCL, 0600),
// fsynced, then linked as new/<name>,S=<size>. The new/ fsync is left to
// the batch so that recipients sharing a Maildir share one fsync.
//
// With a quota (r.Quota.Set), the decision is made at the link, under the
// Maildir's quota lock, from maildirsize, which then records the message.
//
// dest.flags are Maildir info flags (e.g. "FS", sorted): a message with flags is
// linked into cur/ as <name>,S=<size>:2,<flags>, the way Dovecot stores a
// message that already has flags, so that IMAP clients see them.
func (l *Writer) deliverMaildir(ctx context.Context, msg *Message, r Recipient, mp mailboxPath, hdr []byte, idx int, batch *dirSyncBatch, dest maildirDest) error {
	flags := dest.flags
	size := int64(len(hdr)) + msg.Size
	d, target, err := l.openDest(mp, r, dest, size)
	if err != nil {
		return err
	}
	defer d.close() // batch.add may take over d.new
	if flags != "" || len(dest.keywords) > 0 {
		md, err := openBeneath(l.base, target.rel, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return classify("open", r.Path, err)
		}
		if len(dest.keywords) > 0 {
			// A keyword that cannot be recorded costs the message its
			// keyword, never its delivery.
			letters, dropped, err := keywordLetters(md, dest.keywords, l.uid)
			if err != nil || len(dropped) > 0 {
				l.log.Warn("Sieve keywords not stored", "mailbox", r.Path, "keywords", dest.keywords, "dropped", dropped, "err", err)
			}
			flags += letters
		}
		if flags != "" {
			// Link into cur/ instead: it takes new/'s place in d (and in
			// the batch that fsyncs the directory linked into).
			var st unix.Stat_t
			cur, err := l.openSub(md, "cur", unix.O_RDONLY, &st)
			unix.Close(md)
			if err != nil {
				return dirError(r.Path, err)
			}
			unix.Close(d.new)
			d.new, d.newDev, d.newIno = cur, st.Dev, st.Ino
		} else {
			unix.Close(md)
		}
	}

	name, err := l.writeTmp(d.tmp, hdr, msg, batch.timing(idx), r.Path)
	if err != nil {
		return err
	}
	err = l.linkMessage(ctx, r, mp, d, d.tmp, name, size, flags, idx, batch)
	unix.Unlinkat(d.tmp, name, 0)
	return err
}

// writeTmp writes hdr and the message into a new file in tmp (O_EXCL,
// 0600) and makes its data durable (the fdatasync's time goes to t, which
// may be nil). It returns the file's name; on failure nothing is left.
func (l *Writer) writeTmp(tmp int, hdr []byte, msg *Message, t *Timing, path string) (string, error) {
	var name string
	var fd int
	var err error
	for tries := 0; ; tries++ {
		name = l.maildirName()
		fd, err = openBeneath(tmp, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
		if err == unix.EEXIST && tries < 100 {
			continue // unlike Postfix: a collision just takes a new name
		}
		if err != nil {
			return "", classify("create", path, err)
		}
		break
	}
	err = fdio.WriteAll(fd, hdr)
	if err == nil {
		err = copySpool(fd, msg.Body, msg.Size)
	}
	if err == nil {
		err = timed(t, func() error { return unix.Fdatasync(fd) })
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(tmp, name, 0)
		return "", classify("write", path, err)
	}
	return name, nil
}

// linkMessage links the durable file srcDir/srcName into d.new as a
// message of size bytes and leaves the fsync of that directory to the
// batch. With a quota (r.Quota.Set), the decision is made at the link,
// under the Maildir's quota lock, from maildirsize, which then records the
// message. The source name stays; the caller removes it.
func (l *Writer) linkMessage(ctx context.Context, r Recipient, mp mailboxPath, d *maildirDirs, srcDir int, srcName string, size int64, flags string, idx int, batch *dirSyncBatch) error {
	// A quota entry of 0 without maildirsize limits and records nothing:
	// checking it would be a full recalculation of the Maildir++ tree per
	// message for nothing. (With maildirsize kept, the check is a read of
	// that file and creates it when missing.)
	var q *quotaLock
	var err error
	if r.Quota.Set && (r.Quota.Extended || !r.Quota.Limits.None()) {
		if q, err = l.lockQuota(ctx, mp, r.Path); err != nil {
			return err
		}
		defer q.release()
		if err = l.checkQuota(q, r, size); err != nil {
			return err
		}
	}

	info := ",S=" + strconv.FormatInt(size, 10)
	if flags != "" {
		info += ":2," + flags
	}
	newName := srcName + info
	for tries := 0; ; tries++ {
		err = unix.Linkat(srcDir, srcName, d.new, newName, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EEXIST && tries < 100 {
			newName = l.maildirName() + info
			continue
		}
		break
	}
	if err != nil {
		return classify("link", r.Path, err)
	}
	undo := quotaUndo{root: -1}
	if q != nil && l.recordQuota(q, r, size) {
		// If new/ cannot be made durable the link is taken back: so is
		// this line, or the retry would count the message twice. A new
		// open, not a dup: a dup shares the open file and so the flock,
		// which would then stay held until the batch's fsync and make
		// every other delivery of the batch into this Maildir wait for
		// it until its lock timeout.
		if fd, err := unix.Openat(q.root, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			undo = quotaUndo{root: fd, size: size}
		}
	}
	batch.add(d, idx, newName, r.Path, undo)
	return nil
}

// quotaUndo is what a recorded maildirsize line needs to be taken back;
// root is -1 when nothing was recorded.
type quotaUndo struct {
	root int
	size int64
}

// apply takes the line back (a negative one, as a deletion writes), or
// removes maildirsize so it is rebuilt, and closes root. It takes the
// quota lock for it if it can within a second; else it appends without
// (best effort: the new/ fsync that failed has made the Maildir suspect).
func (u quotaUndo) apply() {
	if u.root < 0 {
		return
	}
	for range 100 {
		if err := unix.Flock(u.root, unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK && err != unix.EINTR {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if maildirpp.Append(u.root, maildirpp.Usage{Bytes: -u.size, Count: -1}) != nil {
		unix.Unlinkat(u.root, maildirpp.FileName, 0)
	}
	u.close()
}

func (u quotaUndo) close() {
	if u.root >= 0 {
		unix.Close(u.root)
	}
}

// dirSyncBatch collects the new/ directories linked into during one
// Deliver call; sync fsyncs each directory once, after all the links.
type dirSyncBatch struct {
	mu   sync.Mutex
	dirs []pendingDir
	// times, if set, has one entry per recipient: fsync time is added to
	// it. Each recipient's entry is written by its own goroutine only, and
	// by sync after them.
	times []Timing
}

// timing is recipient idx's Timing, nil if the batch keeps none.
func (b *dirSyncBatch) timing(idx int) *Timing {
	if idx < len(b.times) {
		return &b.times[idx]
	}
	return nil
}

// timed runs an fsync and adds its duration to t (which may be nil).
func timed(t *Timing, sync func() error) error {
	start := time.Now()
	err := sync()
	if t != nil {
		t.Fsync += time.Since(start)
	}
	return err
}

type pendingDir struct {
	fd       int
	dev, ino uint64
	links    []pendingLink
	took     time.Duration // the fsync's duration
}

type pendingLink struct {
	idx        int
	name, path string
	quota      quotaUndo
}

// add records a link in d's new/ directory. It takes over d.new unless
// the batch already holds that directory.
func (b *dirSyncBatch) add(d *maildirDirs, idx int, name, path string, quota quotaUndo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ln := pendingLink{idx, name, path, quota}
	for i := range b.dirs {
		if b.dirs[i].dev == d.newDev && b.dirs[i].ino == d.newIno {
			b.dirs[i].links = append(b.dirs[i].links, ln)
			return
		}
	}
	b.dirs = append(b.dirs, pendingDir{fd: d.new, dev: d.newDev, ino: d.newIno, links: []pendingLink{ln}})
	d.new = -1
}

// sync makes every recorded link durable, fsyncing the directories
// concurrently. If a directory cannot be fsynced its new messages are
// unlinked again (best effort) and reported as failed, so that a retry
// does not produce a duplicate. It must not run concurrently with add.
func (b *dirSyncBatch) sync(errs []error) {
	syncDir := func(d *pendingDir) {
		start := time.Now()
		err := unix.Fsync(d.fd)
		d.took = time.Since(start)
		for _, ln := range d.links {
			if err != nil {
				unix.Unlinkat(d.fd, ln.name, 0)
				ln.quota.apply()
				errs[ln.idx] = classify("fsync", ln.path, err)
			} else {
				ln.quota.close()
			}
		}
		unix.Close(d.fd)
	}
	if len(b.dirs) == 1 {
		syncDir(&b.dirs[0])
	} else {
		var wg sync.WaitGroup
		for i := range b.dirs {
			wg.Go(func() { syncDir(&b.dirs[i]) })
		}
		wg.Wait()
	}
	// After the fsyncs, not in them: a recipient with links in several
	// directories (Sieve's fileinto and keep) waited for each.
	for _, d := range b.dirs {
		for _, ln := range d.links {
			if t := b.timing(ln.idx); t != nil {
				t.Fsync += d.took
			}
		}
	}
	b.dirs = nil
}

// tmpMaxAge is the Maildir convention's limit (maildir(5)): a file in
// tmp/ that nobody has touched for 36 hours is the leftover of a delivery
// that died (a killed worker, a crash) and is deleted.
const tmpMaxAge = 36 * time.Hour

// maxTmpScan bounds the entries one cleanup looks at, so that a tmp/
// holding millions of files does not hold up a delivery for long.
const maxTmpScan = 10000

// maxTmpCleaned bounds the Maildirs a process remembers having cleaned.
const maxTmpCleaned = 4096

// tmpNow is the cleanup's clock (tests move it forward).
var tmpNow = time.Now

// cleanTmpOnce cleans the tmp/ directory (dev, ino) the first time this
// process opens it: workers are replaced after worker_max_use deliveries
// and at idle, so each Maildir is looked at about once per worker. A
// failure is logged and never fails the delivery.
func (l *Writer) cleanTmpOnce(tmp int, dev, ino uint64, path string) {
	key := [2]uint64{dev, ino}
	l.tmpMu.Lock()
	if l.tmpCleaned[key] {
		l.tmpMu.Unlock()
		return
	}
	if l.tmpCleaned == nil || len(l.tmpCleaned) >= maxTmpCleaned {
		l.tmpCleaned = map[[2]uint64]bool{}
	}
	l.tmpCleaned[key] = true
	l.tmpMu.Unlock()
	n, err := cleanTmp(tmp, l.uid, tmpNow())
	if n > 0 {
		l.log.Info("removed stale files from a Maildir's tmp/ (older than 36 hours)", "mailbox", path, "files", n)
	}
	if err != nil {
		l.log.Warn("cleaning a Maildir's tmp/", "mailbox", path, "err", err)
	}
}

// cleanTmp deletes the regular files owned by uid in the directory tmp
// (an O_PATH descriptor) whose access, modification and change times are
// all older than tmpMaxAge. Nothing is followed: entries are looked at
// with lstat semantics and unlinked by name in that directory only, so a
// symlink, a directory or anything else is left alone.
func cleanTmp(tmp, uid int, now time.Time) (int, error) {
	fd, err := unix.Openat(tmp, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	dir := os.NewFile(uintptr(fd), "tmp")
	defer dir.Close()
	names, err := dir.Readdirnames(maxTmpScan)
	if err == io.EOF {
		err = nil
	}
	limit := now.Add(-tmpMaxAge).Unix()
	removed := 0
	for _, name := range names {
		var st unix.Stat_t
		if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			continue // gone meanwhile
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != uid ||
			st.Atim.Sec >= limit || st.Mtim.Sec >= limit || st.Ctim.Sec >= limit {
			continue
		}
		if uerr := unix.Unlinkat(fd, name, 0); uerr == nil {
			removed++
		} else if uerr != unix.ENOENT && err == nil {
			err = fmt.Errorf("unlink tmp/%s: %w", name, uerr)
		}
	}
	return removed, err
}
