// Runs in: the front.

package server

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"unicode/utf8"
)

// The Delivered-To loop rule.
//
// A delivery agent writes "Delivered-To: <rcpt>" when it puts a message
// into a mailbox; if that message comes back to the same recipient, it has
// looped. But some LMTP clients write the header themselves before they
// hand the message over: OpenSMTPD's delivery helper prepends
// "Return-Path:" and "Delivered-To: <rcpt>" to every message it sends by
// its lmtp action. A looped message has passed an MTA again since the old
// delivery, and every MTA puts a Received: header on top when it takes a
// message in; the header the delivering client just added stands above
// all of them. So:
//
//   - a Delivered-To below a Received: names a mailbox the message was
//     delivered to before it last passed an MTA: delivering to that
//     recipient again is a loop (554 5.4.6);
//   - a Delivered-To above the first Received: was added by the client
//     that is delivering now: it is not a loop, and a trace header it
//     already wrote with the same value is not written a second time.
//
// A message without any Received: header has never passed an MTA, so
// none of its Delivered-To headers is a loop.

// maxHeaderScan bounds how much of the header block the loop check reads.
const maxHeaderScan = 1 << 20

// maxTraceFields bounds the Delivered-To and Return-Path fields kept.
const maxTraceFields = 1000

// headerTrace is what the top of a message's header block says about
// earlier deliveries.
type headerTrace struct {
	// relayed are the Delivered-To addresses (lower case) that stand below
	// a Received: header.
	relayed map[string]bool
	// client are the Delivered-To addresses (lower case) above the first
	// Received:, put there by the client delivering now.
	client map[string]bool
	// clientReturnPath is the first Return-Path value above the first
	// Received:, "" if there is none.
	clientReturnPath string
	hasReturnPath    bool
	// messageID is the first Message-ID field's value, for the log;
	// control characters removed, at most maxMessageIDLog bytes.
	messageID string
}

// maxMessageIDLog bounds the Message-ID a log line repeats.
const maxMessageIDLog = 250

// loops reports whether delivering to addr would be a loop.
func (h *headerTrace) loops(addr string) bool {
	return h != nil && h.relayed[strings.ToLower(addr)]
}

// clientDeliveredTo reports whether the client already put a Delivered-To
// for addr on top of the message.
func (h *headerTrace) clientDeliveredTo(addr string) bool {
	return h != nil && h.client[strings.ToLower(addr)]
}

// clientWroteReturnPath reports whether the client already put on top of
// the message the Return-Path vlmtpd would write for sender (external
// form, "" for the null sender).
func (h *headerTrace) clientWroteReturnPath(sender string) bool {
	return h != nil && h.hasReturnPath && h.clientReturnPath == "<"+sender+">"
}

// scanTrace reads the header block of a spooled body (LF line endings)
// and sorts its Delivered-To headers by the rule above. Header names are
// matched without regard to case and folded fields are unfolded. At most
// maxHeaderScan bytes and maxTraceFields trace fields are looked at; a
// line that is not a header ends the header block.
func scanTrace(body io.ReaderAt, size int64) (*headerTrace, error) {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(io.NewSectionReader(body, 0, min(size, maxHeaderScan)))
	defer func() { br.Reset(nil); readerPool.Put(br) }()

	h := &headerTrace{relayed: map[string]bool{}, client: map[string]bool{}}
	relayed := false // a Received: has been seen above the current line
	fields := 0
	// The field being unfolded: its kind and value so far.
	const (
		other = iota
		deliveredTo
		returnPath
		messageID
	)
	kind := other
	var value []byte
	finish := func() {
		if kind == other {
			return
		}
		v := strings.TrimSpace(string(value))
		switch {
		case kind == returnPath && !relayed && !h.hasReturnPath:
			h.clientReturnPath, h.hasReturnPath = v, true
		case kind == deliveredTo && relayed:
			h.relayed[strings.ToLower(v)] = true
		case kind == deliveredTo:
			h.client[strings.ToLower(v)] = true
		case kind == messageID && h.messageID == "":
			h.messageID = logSafe(v, maxMessageIDLog)
		}
		fields++
		kind, value = other, value[:0]
	}
	for fields < maxTraceFields {
		line, err := br.ReadSlice('\n')
		long := err == bufio.ErrBufferFull
		if len(line) == 0 || line[0] == '\n' {
			break // end of the header block (or of the message)
		}
		if line[0] == ' ' || line[0] == '\t' {
			if kind != other {
				value = append(value, ' ')
				value = append(value, bytes.TrimSpace(line)...)
			}
		} else {
			finish()
			colon := bytes.IndexByte(line, ':')
			if colon < 0 {
				break // not a header line: the header block has ended
			}
			name := bytes.TrimRight(line[:colon], " \t")
			switch {
			case asciiEqualFold(name, "received"):
				relayed = true
			case asciiEqualFold(name, "delivered-to"):
				kind = deliveredTo
				value = append(value[:0], bytes.TrimSpace(line[colon+1:])...)
			case asciiEqualFold(name, "return-path"):
				kind = returnPath
				value = append(value[:0], bytes.TrimSpace(line[colon+1:])...)
			case asciiEqualFold(name, "message-id"):
				kind = messageID
				value = append(value[:0], bytes.TrimSpace(line[colon+1:])...)
			}
		}
		if long {
			// An over-long line is no address: drop the field and skip
			// the rest of the line.
			kind, value = other, value[:0]
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
		}
		if err != nil {
			if err == io.EOF {
				break
			}
			return h, err
		}
	}
	finish()
	return h, nil
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// logSafe is s without control characters, cut to at most n bytes at a
// character boundary: a header value a client chose, about to go into a
// log line.
func logSafe(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
