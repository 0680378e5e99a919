// Runs in: a worker, as the mailbox owner.

package store

import (
	"bufio"
	"bytes"
	"io"
	"slices"
	"strings"
)

// Flags in an mbox live in the message's header, as Dovecot keeps them
// (its mbox-sync-parse.c reads them, mbox-save.c writes them on delivery):
//
//	Status: R        \Seen; "O" would mean "not \Recent", never set on delivery
//	X-Status: AFTD   \Answered \Flagged \Draft \Deleted, in that order
//	X-Keywords: a b  keywords, space-separated
//
// Dovecot adds them at the end of the header, after the message's own
// fields. Because a reader takes them from any message, Dovecot drops
// these fields (and the others it keeps for itself: X-UID, X-IMAPbase,
// Content-Length...) from every message it saves, so that no sender can
// set flags, UIDs or message lengths; every mbox delivery here does the
// same (mboxFilter).

// Keywords need more care. Dovecot takes the keywords of an X-Keywords
// field only if its index knows every one of them; one it does not know
// and it drops the whole field as one the sender wrote. The keywords it
// surely knows are those the mbox's first message lists in X-IMAPbase
// (Dovecot keeps that list equal to its index's and reads it first), so
// only those are written (mboxKeywords); a keyword new to the mailbox is
// left out and logged, and the message keeps its other flags.

// mboxOwnFields are the header fields that never come from the sender:
// Dovecot's list of fields dropped on save (mbox_save_drop_headers).
var mboxOwnFields = []string{
	"Content-Length", "Status", "X-Delivery-ID", "X-IMAP", "X-IMAPbase", "X-Keywords", "X-Status", "X-UID",
}

// maxOwnField is the longest field name mboxFilter needs to see before it
// knows a line is not one of mboxOwnFields (blanks before the colon
// included).
const maxOwnField = 64

func mboxOwnField(name []byte) bool {
	name = bytes.TrimRight(name, " \t")
	for _, f := range mboxOwnFields {
		if len(name) == len(f) && strings.EqualFold(string(name), f) {
			return true
		}
	}
	return false
}

// MboxFlagHeaders returns the header fields that carry IMAP flags in an
// mbox, in Dovecot's order and spelling, or nil when flags holds nothing
// an mbox can store (\Recent is the reader's, not the writer's; invalid
// keywords are dropped as for a Maildir). Status is written whenever any
// flag is, as Dovecot always writes it; X-Status and X-Keywords only when
// they have a value.
func MboxFlagHeaders(flags []string) []byte {
	var status, xstatus []byte
	for _, f := range flags {
		switch strings.ToLower(f) {
		case `\seen`:
			status = append(status, 'R')
		case `\answered`:
			xstatus = append(xstatus, 'A')
		case `\flagged`:
			xstatus = append(xstatus, 'F')
		case `\draft`:
			xstatus = append(xstatus, 'T')
		case `\deleted`:
			xstatus = append(xstatus, 'D')
		}
	}
	keywords := Keywords(flags)
	if len(status) == 0 && len(xstatus) == 0 && len(keywords) == 0 {
		return nil
	}
	var b []byte
	b = append(b, "Status: "...)
	if len(status) > 0 {
		b = append(b, 'R')
	}
	b = append(b, '\n')
	if len(xstatus) > 0 {
		b = append(b, "X-Status: "...)
		for _, c := range []byte("AFTD") {
			if slices.Contains(xstatus, c) {
				b = append(b, c)
			}
		}
		b = append(b, '\n')
	}
	if len(keywords) > 0 {
		b = append(b, "X-Keywords:"...)
		for _, k := range keywords {
			b = append(b, ' ')
			b = append(b, k...)
		}
		b = append(b, '\n')
	}
	return b
}

// mboxFilter passes a message (LF line ends) through to w without the
// header fields in mboxOwnFields, continuation lines included, and adds
// flags (header fields, possibly none) at the end of the header: before
// the empty line that ends it, or, for a message that is all header, at
// its end followed by the empty line it lacked (as Dovecot does). After
// the header it passes bytes through untouched. It works on any split of
// the input and holds back at most maxOwnField bytes.
type mboxFilter struct {
	w       io.Writer
	flags   []byte
	body    bool              // past the header
	bol     bool              // the next byte starts a line
	drop    bool              // the current field is dropped
	pend    [maxOwnField]byte // the start of a field whose name is not known yet
	npend   int
	last    byte // the last byte written to w
	any     bool
	dropped int64 // bytes left out
}

func newMboxFilter(w io.Writer, flags []byte) *mboxFilter {
	return &mboxFilter{w: w, flags: flags, bol: true}
}

func (f *mboxFilter) out(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if _, err := f.w.Write(p); err != nil {
		return err
	}
	f.last, f.any = p[len(p)-1], true
	return nil
}

// decide settles whether the pending field start is dropped and passes it
// on or counts it.
func (f *mboxFilter) decide() error {
	p := f.pend[:f.npend]
	name := p
	if i := bytes.IndexByte(p, ':'); i >= 0 {
		name = p[:i]
	} else {
		name = bytes.TrimSuffix(name, []byte{'\n'})
	}
	f.drop = mboxOwnField(name)
	f.npend = 0
	if f.drop {
		f.dropped += int64(len(p))
		return nil
	}
	return f.out(p)
}

func (f *mboxFilter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if f.body {
			return total, f.out(p)
		}
		if f.npend > 0 || f.bol {
			if f.npend == 0 {
				switch p[0] {
				case '\n': // the end of the header
					if err := f.out(f.flags); err != nil {
						return 0, err
					}
					f.body = true
					continue
				case ' ', '\t': // a continuation line: it goes where its field goes
					f.bol = false
					continue
				}
			}
			// The start of a field: gather its name.
			for len(p) > 0 && f.npend < len(f.pend) {
				c := p[0]
				f.pend[f.npend] = c
				f.npend++
				p = p[1:]
				if c == ':' || c == '\n' {
					break
				}
			}
			c := f.pend[f.npend-1]
			if c != ':' && c != '\n' && f.npend < len(f.pend) {
				return total, nil // the name goes on in the next write
			}
			f.bol = c == '\n'
			if err := f.decide(); err != nil {
				return 0, err
			}
			continue
		}
		line := p
		i := bytes.IndexByte(p, '\n')
		if i >= 0 {
			line = p[:i+1]
			f.bol = true
		}
		p = p[len(line):]
		if f.drop {
			f.dropped += int64(len(line))
		} else if err := f.out(line); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// Close ends a message that is all header: the field start still held
// goes out (or not), then the flags, after a line end the last field may
// lack, with the empty line that ends the header.
func (f *mboxFilter) Close() error {
	if f.body {
		return nil
	}
	f.body = true
	if f.npend > 0 {
		if err := f.decide(); err != nil {
			return err
		}
	}
	if len(f.flags) == 0 {
		return nil
	}
	if f.any && f.last != '\n' {
		if err := f.out([]byte{'\n'}); err != nil {
			return err
		}
	}
	if err := f.out(f.flags); err != nil {
		return err
	}
	return f.out([]byte{'\n'})
}

// mboxDroppedBytes counts the bytes mboxFilter leaves out of msg's
// header, reading only the header.
func mboxDroppedBytes(msg *Message) (int64, error) {
	f := newMboxFilter(io.Discard, nil)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for off := int64(0); off < msg.Size && !f.body; {
		n, err := msg.Body.ReadAt(buf[:min(int64(len(buf)), msg.Size-off)], off)
		f.Write(buf[:n])
		off += int64(n)
		if err != nil && err != io.EOF {
			return 0, err
		}
		if n == 0 {
			return 0, errShortSpool
		}
	}
	return f.dropped, nil
}

// maxFirstHeader bounds how much of the mbox's first message is read
// for its X-IMAPbase.
const maxFirstHeader = 1 << 20

// mboxKeywords returns flags without the keywords the mbox (fd, size
// bytes) does not list in its first message's X-IMAPbase, in the
// mailbox's spelling; what it leaves out is logged.
func (l *Writer) mboxKeywords(fd int, size int64, flags []string, path string) []string {
	known, err := imapBaseKeywords(io.NewSectionReader(fdReaderAt(fd), 0, min(size, maxFirstHeader)))
	if err != nil {
		l.log.Warn("cannot read the mbox's keyword list; keywords not stored", "path", path, "error", err)
	}
	var out, dropped []string
	for _, f := range flags {
		if !validKeyword(f) {
			out = append(out, f)
			continue
		}
		i := slices.IndexFunc(known, func(k string) bool { return strings.EqualFold(k, f) })
		if i < 0 {
			dropped = append(dropped, f)
			continue
		}
		out = append(out, known[i])
	}
	if len(dropped) > 0 {
		l.log.Info("keywords the mbox does not list in X-IMAPbase are not stored (Dovecot would drop the field)",
			"path", path, "keywords", strings.Join(dropped, " "))
	}
	return out
}

// imapBaseKeywords reads the keyword list of the X-IMAPbase (or c-client's
// X-IMAP) field in the first message's header of the mbox r:
// "X-IMAPbase: UIDVALIDITY UIDLAST KEYWORD...". No field, no keywords.
func imapBaseKeywords(r io.Reader) ([]string, error) {
	br := bufio.NewReaderSize(r, 4096)
	first := true
	var field []byte // the X-IMAPbase field, unfolded
	in := false
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line this long is no X-IMAPbase Dovecot wrote; skip it.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			in, first = false, false
			continue
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		switch {
		case first:
			if !bytes.HasPrefix(line, fromBytes) {
				return nil, nil // not an mbox that starts with a message
			}
			first = false
		case len(line) > 0 && (line[0] == ' ' || line[0] == '\t'):
			if in {
				field = append(field, line...)
			}
		case len(bytes.TrimRight(line, "\r\n")) == 0:
			err = io.EOF // the end of the first header
		default:
			in = false
			name, _, ok := bytes.Cut(line, []byte{':'})
			if n := string(bytes.TrimRight(name, " \t")); ok && field == nil && (strings.EqualFold(n, "X-IMAPbase") || strings.EqualFold(n, "X-IMAP")) {
				field, in = append([]byte(nil), line[len(name)+1:]...), true
			}
		}
		if err == io.EOF {
			break
		}
	}
	f := strings.Fields(string(field))
	if len(f) < 2 {
		return nil, nil
	}
	return f[2:], nil
}
