// Runs in: a worker, as the mailbox owner.

package store

import (
	"bytes"
	"io"
)

// fromQuoter writes a message body into an mbox with mboxo quoting: a ">"
// before every line that starts exactly with "From " (case-sensitive,
// headers included), nothing else changed, so a line already starting with
// ">From " stays as it is. This is what Postfix, mutt and the go-mbox
// writer do and what mbox readers expect. It works in one pass over any
// split of the input, holding back at most the four bytes of a possible
// "From" at the start of a line.
type fromQuoter struct {
	w    io.Writer
	bol  bool  // the next byte starts a line
	held int   // bytes of "From " matched at the start of this line, not yet written
	last byte  // the last byte of the body written
	any  bool  // whether any byte was written
	n    int64 // bytes written to w
}

const fromPrefix = "From "

var (
	fromBytes       = []byte(fromPrefix)
	quotedFromBytes = []byte(">" + fromPrefix)
)

func newFromQuoter(w io.Writer) *fromQuoter {
	return &fromQuoter{w: w, bol: true}
}

func (q *fromQuoter) out(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	n, err := q.w.Write(p)
	q.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if n > 0 {
		q.last, q.any = p[n-1], true
	}
	return err
}

// Write quotes p. It reports len(p) on success although more or (while a
// "From" is held back) fewer bytes may have reached w.
func (q *fromQuoter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if q.bol {
			need := fromPrefix[q.held:]
			m := 0
			for m < len(need) && m < len(p) && p[m] == need[m] {
				m++
			}
			switch {
			case m == len(need):
				if err := q.out(quotedFromBytes); err != nil {
					return 0, err
				}
				p = p[m:]
				q.held, q.bol = 0, false
				continue
			case m == len(p):
				q.held += m
				return total, nil
			}
			// Not a From_ line: release what was held and go on as text.
			if err := q.out(fromBytes[:q.held]); err != nil {
				return 0, err
			}
			q.held, q.bol = 0, false
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if err := q.out(p); err != nil {
				return 0, err
			}
			return total, nil
		}
		if err := q.out(p[:i+1]); err != nil {
			return 0, err
		}
		p = p[i+1:]
		q.bol = true
	}
	return total, nil
}

// Close ends the body: it writes any held bytes and a final LF if the body
// did not end with one. It does not write the blank separator line.
func (q *fromQuoter) Close() error {
	if q.held > 0 {
		if err := q.out(fromBytes[:q.held]); err != nil {
			return err
		}
		q.held = 0
	}
	if q.any && q.last != '\n' {
		return q.out([]byte{'\n'})
	}
	return nil
}
