// Runs in: the front.

package lmtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
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

// dotReader reads a DATA body up to the "." line, line by line straight
// from the connection's buffer.
type dotReader struct {
	br       *bufio.Reader
	lim      limits
	pending  []byte // the rest of the current line, unstuffed
	bol      bool   // the next byte starts a line
	prevCRLF bool   // the last line ended with CRLF
	done     bool
	err      error // stream error, sticky
	discard  bool
}

func newDotReader(br *bufio.Reader, lim limits) *dotReader {
	return &dotReader{br: br, lim: lim, bol: true, prevCRLF: true}
}

func (r *dotReader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.lim.err != nil {
			return 0, r.lim.err
		}
		if r.done {
			return 0, io.EOF
		}
		if r.err != nil {
			return 0, r.err
		}
		r.next()
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

func (r *dotReader) next() {
	line, err := r.br.ReadSlice('\n')
	if err != nil && err != bufio.ErrBufferFull {
		// A partial last line is dropped: the message is incomplete.
		r.err = streamError(err)
		return
	}
	if r.bol && len(line) > 0 && line[0] == '.' {
		// Only CRLF.CRLF ends the message: a "." after a bare LF is
		// content, so a message cannot end where a lax reader would see
		// an end and a strict one would not (SMTP smuggling).
		if string(line) == ".\r\n" && r.prevCRLF {
			r.done = true
			return
		}
		if string(line) != ".\r\n" {
			line = line[1:]
		}
	}
	complete := err == nil
	r.bol = complete
	if complete {
		r.prevCRLF = len(line) >= 2 && line[len(line)-2] == '\r'
	}
	r.lim.count(line)
	if !r.discard && r.lim.err == nil {
		r.pending = line
	}
}

func (r *dotReader) drain() error {
	r.discard, r.pending = true, nil
	for !r.done && r.err == nil {
		r.next()
	}
	return r.err
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
