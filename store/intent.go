package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"

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

// maxRecordPrefix bounds the bytes of the message kept in a record: the
// From_ line and the trace headers, which carry the time and addresses.
const maxRecordPrefix = 512

// appendRecord is the decoded attribute.
type appendRecord struct {
	size   int64 // the mbox size before the append: where it starts
	writer processID
	prefix []byte // the first bytes written at size
}

// encode lays the record out as one line of fields and then the prefix:
// "1 <size> <pid> <start> <boot> <host>\n<prefix>".
func (r *appendRecord) encode() []byte {
	boot, host := r.writer.boot, r.writer.host
	if boot == "" {
		boot = "-"
	}
	if host == "" {
		host = "-"
	}
	b := make([]byte, 0, 96+len(host)+len(r.prefix))
	b = append(b, "1 "...)
	b = strconv.AppendInt(b, r.size, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(r.writer.pid), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, r.writer.start, 10)
	b = append(b, ' ')
	b = append(b, boot...)
	b = append(b, ' ')
	b = append(b, host...)
	b = append(b, '\n')
	return append(b, r.prefix...)
}

func decodeRecord(b []byte) (*appendRecord, error) {
	line, prefix, ok := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if !ok || len(f) != 6 || f[0] != "1" || len(prefix) == 0 {
		return nil, fmt.Errorf("malformed append record %q", b[:min(len(b), 80)])
	}
	r := &appendRecord{prefix: prefix}
	var err1, err2, err3 error
	r.size, err1 = strconv.ParseInt(f[1], 10, 64)
	r.writer.pid, err2 = strconv.Atoi(f[2])
	r.writer.start, err3 = strconv.ParseUint(f[3], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || r.size < 0 || r.writer.pid <= 0 {
		return nil, fmt.Errorf("malformed append record %q", line)
	}
	if f[4] != "-" {
		r.writer.boot = f[4]
	}
	if f[5] != "-" {
		r.writer.host = f[5]
	}
	return r, nil
}

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
	case w.boot != "" && me.boot != "" && w.boot != me.boot:
		return true // written before the last boot
	case w.pid == me.pid:
		if w.start != 0 && me.start != 0 && w.start != me.start {
			return true // an earlier process with our pid
		}
		return !appendInProgress(k)
	case pidGone(w.pid):
		return true
	}
	// A live pid may be a later process that reused it: its start time
	// tells, where /proc shows it.
	if start, ok := procStart(w.pid); ok && w.start != 0 && start != w.start {
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

// recoverAppend looks for an append record left on the locked mbox fd
// (size st.Size) by a writer that died, cuts off the partial message it
// names, and returns the mbox size to append at. ok is false when the
// filesystem keeps no user attributes, so no record should be set.
// Only errors that make the mbox unusable are returned.
func (l *Local) recoverAppend(fd int, k inodeKey, size int64, path string) (newSize int64, ok bool, err error) {
	var buf [2048]byte
	n, err := unix.Fgetxattr(fd, appendXattr, buf[:])
	switch {
	case err == unix.ENODATA:
		return size, true, nil
	case xattrUnsupported(err):
		l.warnNoXattr(path, err)
		return size, false, nil
	case err == unix.ERANGE:
		l.log.Warn("removing an oversized append record", "path", path)
		return size, true, l.dropRecord(fd, path)
	case err != nil:
		l.log.Warn("cannot read the mailbox's append record", "path", path, "error", err)
		return size, true, nil
	}
	rec, err := decodeRecord(buf[:n])
	if err != nil {
		l.log.Warn("removing an unreadable append record", "path", path, "error", err)
		return size, true, l.dropRecord(fd, path)
	}
	if !writerGone(rec.writer, k) {
		// We hold the locks, so a live writer is not appending now: most
		// likely its pid was reused. Leave its data alone.
		l.log.Warn("mailbox has the append record of a writer that may still be running; leaving it",
			"path", path, "writer_pid", rec.writer.pid, "writer_host", rec.writer.host)
		return size, true, nil
	}
	log := l.log.With("path", path, "writer_pid", rec.writer.pid, "offset", rec.size, "mbox_size", size)
	switch {
	case size == rec.size:
		return size, true, l.dropRecord(fd, path)
	case size < rec.size:
		log.Warn("mailbox shrank since an interrupted append; leaving it as it is")
		return size, true, l.dropRecord(fd, path)
	}
	same, err := partialAppendAt(fd, rec, size)
	if err != nil {
		log.Warn("cannot check the mailbox after an interrupted append; leaving it as it is", "error", err)
		return size, true, nil
	}
	if !same {
		log.Warn("mailbox was changed by another program since an interrupted append; leaving it as it is")
		return size, true, l.dropRecord(fd, path)
	}
	if err := unix.Ftruncate(fd, rec.size); err != nil {
		return size, true, classify("truncate", path, err)
	}
	if err := unix.Fsync(fd); err != nil {
		return rec.size, true, classify("truncate", path, err)
	}
	log.Warn(fmt.Sprintf("recovered interrupted append of %d bytes", size-rec.size), "bytes", size-rec.size)
	return rec.size, true, l.dropRecord(fd, path)
}

func (l *Local) warnNoXattr(path string, err error) {
	noXattrWarning.Do(func() {
		l.log.Warn("filesystem keeps no user extended attributes: an mbox append interrupted by a crash cannot be cut off again",
			"path", path, "error", err)
	})
}

func (l *Local) dropRecord(fd int, path string) error {
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
	if size-rec.size < int64(len(rec.prefix)) {
		// Killed within the first bytes: what is there must match.
		got := make([]byte, size-rec.size)
		if _, err := io.ReadFull(io.NewSectionReader(fdReaderAt(fd), rec.size, size-rec.size), got); err != nil {
			return false, err
		}
		return bytes.HasPrefix(rec.prefix, got), nil
	}
	got := make([]byte, len(rec.prefix))
	if _, err := io.ReadFull(io.NewSectionReader(fdReaderAt(fd), rec.size, int64(len(got))), got); err != nil {
		return false, err
	}
	if !bytes.Equal(got, rec.prefix) {
		return false, nil
	}
	start := rec.size + int64(len(rec.prefix))
	br := bufio.NewReaderSize(io.NewSectionReader(fdReaderAt(fd), start, size-start), copyBufSize)
	bol := rec.prefix[len(rec.prefix)-1] == '\n'
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

// setRecord sets the append record before the first byte is written. It
// reports whether a record is now set; a failure to set one is logged and
// the delivery goes on without it, as it would on a filesystem without
// extended attributes.
func (l *Local) setRecord(fd int, size int64, from, hdr []byte, path string) bool {
	prefix := make([]byte, 0, maxRecordPrefix)
	prefix = append(prefix, from[:min(len(from), maxRecordPrefix)]...)
	prefix = append(prefix, hdr[:min(len(hdr), maxRecordPrefix-len(prefix))]...)
	rec := appendRecord{size: size, writer: self(), prefix: prefix}
	err := unix.Fsetxattr(fd, appendXattr, rec.encode(), 0)
	if err == nil {
		return true
	}
	if xattrUnsupported(err) {
		l.warnNoXattr(path, err)
	} else {
		l.log.Warn("cannot set the mailbox's append record; appending without it", "path", path, "error", err)
	}
	return false
}
