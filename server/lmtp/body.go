// Runs in: the front.

package lmtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
)

// A body reader is what Session.Data reads: the message as the client sent
// it (CRLF line ends; DATA's dot-stuffing removed). It returns io.EOF only
// once the whole message has arrived. A message over a limit yields
// ErrMessageTooBig or ErrLineTooLong; a client that goes away or stalls
// yields a stream error. Either way the backend must not deliver, and
// drain then consumes what is left of the message so the connection stays
// in step.
type bodyReader interface {
	io.Reader
	drain() error
}

// LF returns a reader of body with LF line ends: each CRLF becomes LF, a
// CR not followed by LF is kept. For the DATA body Session.Data is given,
// that is the same single pass that unstuffs it and counts its limits;
// any other reader is converted on the way through. A body is read
// through LF or directly, not both.
func LF(body io.Reader) io.Reader {
	if d, ok := body.(*dotReader); ok {
		return dotLF{d}
	}
	return &lfReader{r: body, buf: lfBufs.Get().(*[]byte)}
}

// lfBufs holds lfReader's buffers: BDAT bodies (what Postfix's LMTP client
// sends when CHUNKING is offered) are read through it, one per message.
var lfBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// lfReader turns CRLF into LF in what it reads from r, holding back a
// final CR until the byte after it is known.
type lfReader struct {
	r   io.Reader
	buf *[]byte // from lfBufs; returned once r's error has been passed on
	b   []byte  // read from r, not yet converted
	err error
}

func (l *lfReader) Read(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if n = l.convert(p); n > 0 || l.err != nil {
			break
		}
		buf := *l.buf
		k := copy(buf, l.b) // at most a CR
		m, err := l.r.Read(buf[k:])
		l.b, l.err = buf[:k+m], err
	}
	if n > 0 {
		return n, nil
	}
	// r has ended and everything read from it has been passed on: the
	// buffer is no longer needed (a zero-length Read proves neither).
	if l.buf != nil && l.err != nil && len(l.b) == 0 {
		lfBufs.Put(l.buf)
		l.buf = nil
	}
	return 0, l.err
}

func (l *lfReader) convert(p []byte) int {
	n := 0
	for n < len(p) && len(l.b) > 0 {
		i := bytes.IndexByte(l.b, '\r')
		switch {
		case i < 0:
			k := copy(p[n:], l.b)
			n, l.b = n+k, l.b[k:]
		case i > 0:
			k := copy(p[n:], l.b[:i])
			n, l.b = n+k, l.b[k:]
		case len(l.b) == 1 && l.err == nil:
			return n // is the CR's LF still to come?
		case len(l.b) > 1 && l.b[1] == '\n':
			p[n] = '\n'
			n, l.b = n+1, l.b[2:]
		default:
			p[n] = '\r'
			n, l.b = n+1, l.b[1:]
		}
	}
	return n
}

// Stream errors: the message did not arrive whole.
var (
	errClientGone = errors.New("client closed the connection during the message")
	errRset       = errors.New("message abandoned by RSET")
	errQuit       = errors.New("message abandoned by QUIT")
	errDesync     = errors.New("malformed BDAT command: cannot find the end of the chunk")
)

// limits counts a message's size and longest line as it arrives. The
// first limit exceeded sticks.
type limits struct {
	maxSize int64
	maxLine int
	size    int64
	line    int
	err     error
}

func (l *limits) count(p []byte) {
	l.size += int64(len(p))
	if l.maxSize > 0 && l.size > l.maxSize && l.err == nil {
		l.err = ErrMessageTooBig
	}
	if l.maxLine <= 0 {
		return
	}
	// A line's length is counted up to its LF, its CR included: a line
	// ended by a bare LF may be one byte longer than the limit.
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.line += len(p)
			break
		}
		if l.line+i > l.maxLine+1 && l.err == nil {
			l.err = ErrLineTooLong
		}
		l.line = 0
		p = p[i+1:]
	}
	if l.line > l.maxLine+1 && l.err == nil {
		l.err = ErrLineTooLong
	}
}

// add counts n more bytes of the current line; complete says they end it
// (its LF included), and line lengths are then counted as count does.
func (l *limits) add(n int, complete bool) {
	l.size += int64(n)
	if l.maxSize > 0 && l.size > l.maxSize && l.err == nil {
		l.err = ErrMessageTooBig
	}
	if l.maxLine <= 0 {
		return
	}
	l.line += n
	if complete {
		l.line-- // the LF
	}
	if l.line > l.maxLine+1 && l.err == nil {
		l.err = ErrLineTooLong
	}
	if complete {
		l.line = 0
	}
}

// dotReader reads a DATA body up to the "." line straight from the
// connection's buffer: one pass over the bytes finds the line ends,
// removes the dot-stuffing, counts the limits and, read through LF,
// turns CRLF into LF as it copies.
type dotReader struct {
	br       *bufio.Reader
	lim      limits
	bol      bool // the next byte starts a line
	prevCRLF bool // the last line ended with CRLF
	lastCR   bool // the last byte consumed was a CR
	done     bool
	err      error // stream error, sticky
}

func newDotReader(br *bufio.Reader, lim limits) *dotReader {
	return &dotReader{br: br, lim: lim, bol: true, prevCRLF: true}
}

func (r *dotReader) Read(p []byte) (int, error) { return r.read(p, false, false) }

// dotLF is a dotReader read with LF line ends.
type dotLF struct{ r *dotReader }

func (d dotLF) Read(p []byte) (int, error) { return d.r.read(p, true, false) }

func (r *dotReader) drain() error {
	r.read(nil, false, true)
	return r.err
}

// read copies the body into p (with LF line ends if lf; nothing at all
// if discard, which reads to the end of the message whatever the limits
// say). It returns what the connection's buffer held before it would
// wait for more, so a slow client's bytes are passed on as they come.
func (r *dotReader) read(p []byte, lf, discard bool) (int, error) {
	n := 0
	full := func() bool { return r.done || r.err != nil || !discard && (r.lim.err != nil || n == len(p)) }
	for !full() {
		buf, _ := r.br.Peek(r.br.Buffered())
		used, m := r.scan(buf, p[n:], lf, discard)
		r.br.Discard(used)
		n += m
		if full() || n > 0 && !discard {
			// What the buffer held is passed on before waiting for more.
			break
		}
		// The buffer is empty, or holds the undecided start of a line.
		if _, err := r.br.Peek(len(buf) - used + 1); err != nil {
			// A partial last line is dropped: the message is incomplete.
			r.err = streamError(err)
		}
	}
	switch {
	case n > 0:
		return n, nil
	case r.lim.err != nil && !discard:
		return 0, r.lim.err
	case r.done:
		return 0, io.EOF
	}
	return 0, r.err
}

// scan takes what it can decide of buf: whole lines, and the start of an
// unfinished one, each unstuffed and counted, copied into p as it fits.
// It stops before a line start that could still be the end marker ("."
// or ".\r" so far) and, with lf, before a CR that is the last byte it
// has. It returns the bytes of buf consumed and of p filled.
func (r *dotReader) scan(buf, p []byte, lf, discard bool) (used, n int) {
	for used < len(buf) && (n < len(p) || discard) {
		seg := buf[used:]
		if r.bol && seg[0] == '.' {
			switch {
			case len(seg) >= 3 && seg[1] == '\r' && seg[2] == '\n':
				if r.prevCRLF {
					// Only CRLF.CRLF ends the message: a "." after a bare
					// LF is content, so a message cannot end where a lax
					// reader would see an end and a strict one would not
					// (SMTP smuggling).
					r.done = true
					return used + 3, n
				}
			case len(seg) == 1 || len(seg) == 2 && seg[1] == '\r':
				return used, n
			default:
				seg = seg[1:]
				used++
				r.bol, r.lastCR = false, false
			}
		}
		complete := false
		if i := bytes.IndexByte(seg, '\n'); i >= 0 {
			seg, complete = seg[:i+1], true
		} else if lf && seg[len(seg)-1] == '\r' {
			if seg = seg[:len(seg)-1]; len(seg) == 0 {
				return used, n
			}
		}
		// With lf, a line's CRLF is copied as LF: one byte shorter.
		crlf := lf && complete && len(seg) >= 2 && seg[len(seg)-2] == '\r'
		outLen := len(seg)
		if crlf {
			outLen--
		}
		if !discard && outLen > len(p)-n {
			// Part of the line now, the rest on the next read. The cut
			// is before the line's end, so no CRLF is split by it.
			seg, complete, crlf = seg[:len(p)-n], false, false
		}
		r.lim.add(len(seg), complete)
		used += len(seg)
		if complete {
			r.prevCRLF = len(seg) >= 2 && seg[len(seg)-2] == '\r' || len(seg) == 1 && r.lastCR
		}
		r.lastCR = seg[len(seg)-1] == '\r'
		r.bol = complete
		switch {
		case discard:
		case r.lim.err != nil:
			return used, n
		case crlf:
			n += copy(p[n:], seg[:len(seg)-2])
			p[n] = '\n'
			n++
		default:
			n += copy(p[n:], seg)
		}
	}
	return used, n
}

// chunkReader reads a BDAT body: the chunk that started it and every
// following one up to LAST. Between chunks it answers the previous one
// and reads the next command itself, so a chunk's bytes are only ever
// read as data.
type chunkReader struct {
	c       *conn
	lim     limits
	left    int64 // bytes of the current chunk still to read
	size    int64 // the current chunk's size, for its reply
	last    bool
	done    bool
	err     error
	discard bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for {
		if r.lim.err != nil && !r.discard {
			return 0, r.lim.err
		}
		if r.left > 0 {
			break
		}
		if r.last {
			r.done = true
		}
		if r.done {
			return 0, io.EOF
		}
		if r.err != nil {
			return 0, r.err
		}
		r.nextChunk()
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.c.br.Read(p)
	r.left -= int64(n)
	if err != nil {
		r.err = streamError(err)
		return 0, r.err
	}
	r.lim.count(p[:n])
	if r.lim.err != nil && !r.discard {
		return 0, r.lim.err
	}
	return n, nil
}

// nextChunk answers the chunk just read and reads commands until the next
// BDAT. RSET and QUIT abandon the message; NOOP is answered; any other
// command is out of sequence.
func (r *chunkReader) nextChunk() {
	c := r.c
	c.reply(Replyf(250, 2, 0, 0, "%d octets received", r.size))
	for r.err == nil {
		line, err := c.readLine()
		if errors.Is(err, errCommandTooLong) {
			c.protocolError(Replyf(500, 5, 5, 2, "command line too long"))
			continue
		}
		if err != nil {
			r.err = err
			return
		}
		verb, arg := splitCommand(line)
		switch verb {
		case "BDAT":
			size, last, ok := parseBDAT(arg)
			if !ok {
				r.err = errDesync
				return
			}
			r.size, r.left, r.last = size, size, last
			return
		case "RSET":
			r.err = errRset
		case "QUIT":
			r.err = errQuit
		case "NOOP":
			c.reply(replyOK)
		default:
			c.protocolError(Replyf(503, 5, 5, 1, "BDAT, RSET or QUIT expected after a non-final chunk"))
			if c.closing {
				r.err = errTooManyErrors
			}
		}
	}
}

func (r *chunkReader) drain() error {
	r.discard = true
	buf := make([]byte, 32<<10)
	for {
		_, err := r.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil && r.err != nil {
			return r.err
		}
	}
}

// parseBDAT parses "size [LAST]".
func parseBDAT(arg string) (size int64, last bool, ok bool) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 {
		return 0, false, false
	}
	size, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || size < 0 || f[0][0] == '+' {
		return 0, false, false
	}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "LAST") {
			return 0, false, false
		}
		last = true
	}
	return size, last, true
}
