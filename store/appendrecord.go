// Runs in: a worker, as the mailbox owner.

package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"sync"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
	"golang.org/x/sys/unix"
)

// An append record makes an interrupted mbox append recoverable. Before
// the first byte of a message is appended, the writer sets an extended
// attribute on the mbox naming itself, the size before the append and
// the first bytes it is about to write there; it removes the attribute
// once the message is complete (or cut off again after a failure). A
// writer killed in between (SIGKILL, the OOM killer) leaves the
// attribute behind, and the next delivery, holding the same locks, cuts
// the partial message off before appending its own.
//
// The removal comes before the final fsync, which makes the complete
// message and the removal durable together: were it removed after the
// sync, a power loss in between could leave the record of an
// acknowledged message, and the next delivery would cut that message off.

const appendXattr = "user.vlmtpd.append"

// maxRecordPrefix bounds the bytes of the message a record identifies
// the append by: the From_ line and the trace headers, which carry the
// time and the addresses.
const maxRecordPrefix = 512

// appendRecord is the attribute's content. It is a fixed 51-byte binary
// layout, because ext4 keeps an attribute of up to 56 bytes' value
// (under this name) inside the inode it already writes; a longer one
// costs a block of its own, allocated and freed on every delivery.
//
//	version 1 | size 8 | pid 4 | start 4 | host 4 | boot 4 | prefix length 2 | prefix hash 8 | head 16
//
// big-endian, the hashes FNV-1a, start the low 32 bits of the start
// time. The hash identifies our bytes at size; head, their first bytes,
// checks a partial append shorter than the hashed prefix.
type appendRecord struct {
	size   int64 // the mbox size before the append: where it starts
	writer processID
	plen   int    // how many bytes at size the hash covers
	phash  uint64 // their hash
	head   [recordHead]byte
}

const (
	recordVersion = 1
	recordHead    = 16
	recordLen     = 35 + recordHead
)

// encode appends the record to b.
func (r *appendRecord) encode(b []byte) []byte {
	b = append(b, recordVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(r.size))
	b = binary.BigEndian.AppendUint32(b, uint32(r.writer.pid))
	b = binary.BigEndian.AppendUint32(b, uint32(r.writer.start))
	b = binary.BigEndian.AppendUint32(b, r.writer.host)
	b = binary.BigEndian.AppendUint32(b, r.writer.boot)
	b = binary.BigEndian.AppendUint16(b, uint16(r.plen))
	b = binary.BigEndian.AppendUint64(b, r.phash)
	return append(b, r.head[:]...)
}

func decodeRecord(b []byte) (*appendRecord, error) {
	if len(b) != recordLen || b[0] != recordVersion {
		return nil, fmt.Errorf("malformed append record %x", b[:min(len(b), 64)])
	}
	r := &appendRecord{
		size: int64(binary.BigEndian.Uint64(b[1:])),
		writer: processID{
			pid:   int(binary.BigEndian.Uint32(b[9:])),
			start: uint64(binary.BigEndian.Uint32(b[13:])),
			host:  binary.BigEndian.Uint32(b[17:]),
			boot:  binary.BigEndian.Uint32(b[21:]),
		},
		plen:  int(binary.BigEndian.Uint16(b[25:])),
		phash: binary.BigEndian.Uint64(b[27:]),
	}
	copy(r.head[:], b[35:])
	if r.size < 0 || r.writer.pid <= 0 || r.writer.pid > 1<<30 || r.plen < recordHead || r.plen > maxRecordPrefix {
		return nil, fmt.Errorf("malformed append record %x", b)
	}
	return r, nil
}

// newRecord describes the append this process is about to make at size,
// beginning with the bytes of from (a From_ line, longer than head) and
// then hdr.
func newRecord(size int64, from, hdr []byte) *appendRecord {
	n := min(len(from), maxRecordPrefix)
	m := min(len(hdr), maxRecordPrefix-n)
	me := self()
	me.start = uint64(uint32(me.start))
	r := &appendRecord{size: size, writer: me, plen: n + m, phash: fnv64a(fnv64a(fnvOffset64, from[:n]), hdr[:m])}
	copy(r.head[:], from)
	return r
}

// fnv64a continues an FNV-1a hash over b without allocating.
func fnv64a(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

const fnvOffset64 = 14695981039346656037

// appending counts this process's appends in progress per mbox inode, so
// that a record naming this very process can be told to be left over
// (its pid was reused by us, or a removal failed) rather than live.
var appending struct {
	sync.Mutex
	m map[inodeKey]int
}

func beginAppend(k inodeKey) {
	appending.Lock()
	if appending.m == nil {
		appending.m = make(map[inodeKey]int)
	}
	appending.m[k]++
	appending.Unlock()
}

func endAppend(k inodeKey) {
	appending.Lock()
	if appending.m[k]--; appending.m[k] <= 0 {
		delete(appending.m, k)
	}
	appending.Unlock()
}

func appendInProgress(k inodeKey) bool {
	appending.Lock()
	defer appending.Unlock()
	return appending.m[k] > 0
}

// writerGone reports whether the process that wrote a record has ended,
// erring on the side of "still there": pid reuse keeps a record alive.
func writerGone(w processID, k inodeKey) bool {
	me := self()
	switch {
	case w.host != me.host:
		return false // another host's pid: we cannot know
	case w.boot != 0 && me.boot != 0 && w.boot != me.boot:
		return true // written before the last boot
	case w.pid == me.pid:
		if w.start != 0 && me.start != 0 && w.start != uint64(uint32(me.start)) {
			return true // an earlier process with our pid
		}
		return !appendInProgress(k)
	case pidGone(w.pid):
		return true
	}
	// A live pid may be a later process that reused it: its start time
	// tells, where /proc shows it.
	if start, ok := proctree.StartTime(w.pid); ok && w.start != 0 && uint64(uint32(start)) != w.start {
		return true
	}
	return false
}

// noXattrWarning is logged once per process for a filesystem without
// user extended attributes.
var noXattrWarning sync.Once

func xattrUnsupported(err error) bool {
	return err == unix.ENOTSUP || err == unix.EOPNOTSUPP
}

// recoverAppend handles an append record found on the locked mbox fd of
// size bytes: if its writer is gone it cuts off the partial message the
// record names. It returns the mbox size to append at; only errors that
// make the mbox unusable are returned.
func (l *Writer) recoverAppend(fd int, k inodeKey, size int64, path string) (int64, error) {
	var buf [recordLen + 1]byte
	n, err := unix.Fgetxattr(fd, appendXattr, buf[:])
	switch {
	case err == unix.ENODATA:
		return size, nil
	case err == unix.ERANGE:
		l.log.Warn("removing an oversized append record", "path", path)
		return size, l.dropRecord(fd, path)
	case err != nil:
		l.log.Warn("cannot read the mailbox's append record", "path", path, "error", err)
		return size, nil
	}
	rec, err := decodeRecord(buf[:n])
	if err != nil {
		l.log.Warn("removing an unreadable append record", "path", path, "error", err)
		return size, l.dropRecord(fd, path)
	}
	if !writerGone(rec.writer, k) {
		// We hold the locks, so a live writer is not appending now: most
		// likely its pid was reused. Leave its data alone.
		l.log.Warn("mailbox has the append record of a writer that may still be running; leaving it",
			"path", path, "writer_pid", rec.writer.pid, "same_host", rec.writer.host == self().host)
		return size, nil
	}
	log := l.log.With("path", path, "writer_pid", rec.writer.pid, "offset", rec.size, "mbox_size", size)
	switch {
	case size == rec.size:
		return size, l.dropRecord(fd, path)
	case size < rec.size:
		log.Warn("mailbox shrank since an interrupted append; leaving it as it is")
		return size, l.dropRecord(fd, path)
	}
	same, err := partialAppendAt(fd, rec, size)
	if err != nil {
		log.Warn("cannot check the mailbox after an interrupted append; leaving it as it is", "error", err)
		return size, nil
	}
	if !same {
		log.Warn("mailbox was changed by another program since an interrupted append; leaving it as it is")
		return size, l.dropRecord(fd, path)
	}
	if err := unix.Ftruncate(fd, rec.size); err != nil {
		return size, classify("truncate", path, err)
	}
	if err := unix.Fsync(fd); err != nil {
		return rec.size, classify("truncate", path, err)
	}
	log.Warn(fmt.Sprintf("recovered interrupted append of %d bytes", size-rec.size), "bytes", size-rec.size)
	return rec.size, l.dropRecord(fd, path)
}

func (l *Writer) warnNoXattr(path string, err error) {
	noXattrWarning.Do(func() {
		l.log.Warn("filesystem keeps no user extended attributes: an mbox append interrupted by a crash cannot be cut off again",
			"path", path, "error", err)
	})
}

func (l *Writer) dropRecord(fd int, path string) error {
	if err := unix.Fremovexattr(fd, appendXattr); err != nil && err != unix.ENODATA {
		return classify("remove append record", path, err)
	}
	return nil
}

// foreignFromRE finds a From_ line that another program may have
// appended after the partial message without starting a new line.
var foreignFromRE = regexp.MustCompile(`From [^ \n]+ +[A-Z][a-z][a-z] [A-Z][a-z][a-z] +[0-9]+ [0-9]+:[0-9]+`)

// partialAppendAt reports whether the mbox from rec.size to size holds
// only the start of the recorded append: it begins with the recorded
// bytes, and no other message follows. What we write is From-quoted, so
// a "From " line after our From_ line was appended by someone else (a
// delivery agent that does not know the record), whose message must not
// be cut off with ours.
func partialAppendAt(fd int, rec *appendRecord, size int64) (bool, error) {
	r := io.NewSectionReader(fdReaderAt(fd), rec.size, size-rec.size)
	if size-rec.size < int64(rec.plen) {
		// Killed within the From_ line and trace headers, which the hash
		// covers as a whole: what is there must begin with the recorded
		// head and hold one From_ line and no end of the header.
		got := make([]byte, size-rec.size)
		if _, err := io.ReadFull(r, got); err != nil {
			return false, err
		}
		n := min(len(got), recordHead)
		return bytes.Equal(got[:n], rec.head[:n]) && !bytes.Contains(got, []byte("\n\n")) &&
			!bytes.Contains(got[1:], fromBytes), nil
	}
	br := bufio.NewReaderSize(r, copyBufSize)
	got := make([]byte, rec.plen)
	if _, err := io.ReadFull(br, got); err != nil {
		return false, err
	}
	if fnv64a(fnvOffset64, got) != rec.phash {
		return false, nil
	}
	bol := got[len(got)-1] == '\n'
	for {
		line, err := br.ReadSlice('\n')
		if bol && bytes.HasPrefix(line, fromBytes) {
			return false, nil
		}
		for _, m := range foreignFromRE.FindAllIndex(line, -1) {
			if m[0] > 0 && line[m[0]-1] != '>' {
				return false, nil
			}
		}
		bol = err == nil
		switch err {
		case nil, bufio.ErrBufferFull:
		case io.EOF:
			return true, nil
		default:
			return false, err
		}
	}
}

// fdReaderAt reads a raw descriptor at explicit offsets.
type fdReaderAt int

func (fd fdReaderAt) ReadAt(p []byte, off int64) (int, error) {
	total := 0
	for total < len(p) {
		n, err := unix.Pread(int(fd), p[total:], off+int64(total))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, io.EOF
		}
		total += n
	}
	return total, nil
}

// startRecord sets the append record before the first byte is written,
// at the mbox's size; if one is there already (a writer died in the
// middle of an append), it recovers first and appends at the size that
// leaves. The common case costs one system call. recorded says whether
// a record is now set: a failure to set one is logged and the delivery
// goes on without it, as on a filesystem without extended attributes.
func (l *Writer) startRecord(fd int, k inodeKey, size int64, from, hdr []byte, path string) (newSize int64, recorded bool, err error) {
	rec := newRecord(size, from, hdr)
	var buf [recordLen]byte
	err = unix.Fsetxattr(fd, appendXattr, rec.encode(buf[:0]), unix.XATTR_CREATE)
	if err == unix.EEXIST {
		if size, err = l.recoverAppend(fd, k, size, path); err != nil {
			return size, false, err
		}
		rec.size = size
		err = unix.Fsetxattr(fd, appendXattr, rec.encode(buf[:0]), 0)
	}
	switch {
	case err == nil:
		return size, true, nil
	case xattrUnsupported(err):
		l.warnNoXattr(path, err)
	default:
		l.log.Warn("cannot set the mailbox's append record; appending without it", "path", path, "error", err)
	}
	return size, false, nil
}
