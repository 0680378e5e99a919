package store

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// maildirCounter makes names unique within this process (the Q part).
var maildirCounter atomic.Uint64

// maildirName is a new unique base name: <sec>.M<usec>P<pid>Q<n>.<host>.
func (l *Local) maildirName() string {
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

// checkOwnedDir verifies that fd is a directory owned by uid: a Maildir
// somebody else owns is not ours to write into.
func checkOwnedDir(fd, uid int, what string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
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
	tmp int // O_PATH
	new int // O_RDONLY, so that it can be fsynced
}

func (d maildirDirs) close() {
	if d.tmp >= 0 {
		unix.Close(d.tmp)
	}
	if d.new >= 0 {
		unix.Close(d.new)
	}
}

// openSub opens or creates the subdirectory name of md and checks it.
func (l *Local) openSub(md int, name string) (int, error) {
	fd, err := openOrMkdir(md, name)
	if err != nil {
		return -1, err
	}
	if err := checkOwnedDir(fd, l.uid, name+"/"); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// openMaildir opens (creating what is missing, 0700) the Maildir at mp and
// its tmp/, new/ and cur/ directories, all owned by this uid.
func (l *Local) openMaildir(mp mailboxPath, path string) (maildirDirs, error) {
	d := maildirDirs{tmp: -1, new: -1}
	md, err := mkdirAllBeneath(l.base, mp.rel, mp.comps)
	if err != nil {
		return d, classify("mkdir", path, err)
	}
	defer unix.Close(md)
	if err := checkOwnedDir(md, l.uid, "maildir"); err != nil {
		return d, dirError(path, err)
	}
	var nfd, cfd int
	if d.tmp, err = l.openSub(md, "tmp"); err != nil {
		return d, dirError(path, err)
	}
	if nfd, err = l.openSub(md, "new"); err == nil {
		// Reopen readable: an O_PATH descriptor cannot be fsynced.
		d.new, err = openBeneath(nfd, ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(nfd)
	}
	if err == nil {
		if cfd, err = l.openSub(md, "cur"); err == nil {
			unix.Close(cfd)
		}
	}
	if err != nil {
		d.close()
		return maildirDirs{tmp: -1, new: -1}, dirError(path, err)
	}
	return d, nil
}

// deliverMaildir writes one message file: tmp/<name> (O_EXCL, 0600),
// fsynced, then linked as new/<name>,S=<size>. The new/ fsync is left to
// the batch so that recipients sharing a Maildir share one fsync.
func (l *Local) deliverMaildir(msg *Message, r Recipient, mp mailboxPath, hdr []byte, idx int, batch *dirSyncBatch) error {
	size := int64(len(hdr)) + msg.Size
	if r.Limit > 0 && size > r.Limit {
		return fail(OverLimit, "write", r.Path, fmt.Errorf("%w: message file of %d bytes, limit %d", errOverLimit, size, r.Limit))
	}
	d, err := l.openMaildir(mp, r.Path)
	if err != nil {
		return err
	}
	defer func() { d.close() }() // batch.add may take over d.new

	var name string
	var fd int
	for tries := 0; ; tries++ {
		name = l.maildirName()
		fd, err = openBeneath(d.tmp, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
		if err == unix.EEXIST && tries < 100 {
			continue // unlike Postfix: a collision just takes a new name
		}
		if err != nil {
			return classify("create", r.Path, err)
		}
		break
	}
	removeTmp := func() { unix.Unlinkat(d.tmp, name, 0) }

	err = writeAll(fd, hdr)
	if err == nil {
		err = copySpool(fd, msg.Body, msg.Size)
	}
	if err == nil {
		err = unix.Fdatasync(fd)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		removeTmp()
		return classify("write", r.Path, err)
	}

	info := ",S=" + strconv.FormatInt(size, 10)
	newName := name + info
	for tries := 0; ; tries++ {
		err = unix.Linkat(d.tmp, name, d.new, newName, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EEXIST && tries < 100 {
			newName = l.maildirName() + info
			continue
		}
		break
	}
	removeTmp()
	if err != nil {
		return classify("link", r.Path, err)
	}
	batch.add(&d.new, idx, newName, r.Path)
	return nil
}

// dirSyncBatch collects the new/ directories linked into during one
// Deliver call; sync fsyncs each directory once, after all the links.
type dirSyncBatch struct {
	dirs []pendingDir
}

type pendingDir struct {
	fd       int
	dev, ino uint64
	links    []pendingLink
}

type pendingLink struct {
	idx        int
	name, path string
}

// add records a link in the directory *fd. It takes over the descriptor
// (setting *fd to -1) unless the batch already holds that directory.
func (b *dirSyncBatch) add(fd *int, idx int, name, path string) {
	var st unix.Stat_t
	if err := unix.Fstat(*fd, &st); err == nil {
		for i := range b.dirs {
			if b.dirs[i].dev == st.Dev && b.dirs[i].ino == st.Ino {
				b.dirs[i].links = append(b.dirs[i].links, pendingLink{idx, name, path})
				return
			}
		}
	}
	b.dirs = append(b.dirs, pendingDir{fd: *fd, dev: st.Dev, ino: st.Ino, links: []pendingLink{{idx, name, path}}})
	*fd = -1
}

// sync makes every recorded link durable. If a directory cannot be
// fsynced its new messages are unlinked again (best effort) and reported
// as failed, so that a retry does not produce a duplicate.
func (b *dirSyncBatch) sync(errs []error) {
	for _, d := range b.dirs {
		err := unix.Fsync(d.fd)
		if err != nil {
			for _, ln := range d.links {
				unix.Unlinkat(d.fd, ln.name, 0)
				errs[ln.idx] = classify("fsync", ln.path, err)
			}
		}
		unix.Close(d.fd)
	}
	b.dirs = b.dirs[:0]
}
