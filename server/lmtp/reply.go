// Runs in: the front.

package lmtp

import (
	"fmt"
	"strconv"
	"strings"
)

// EnhancedCode is an RFC 3463 status code: class, subject, detail.
type EnhancedCode [3]int

// Reply is one LMTP reply. Text goes to the client; Detail, which may hold
// internal errors, goes only to the log.
type Reply struct {
	Code     int
	Enhanced EnhancedCode
	Text     string
	Detail   string
}

// Replyf builds a reply with a formatted text.
func Replyf(code, class, subject, detail int, format string, args ...any) *Reply {
	return &Reply{Code: code, Enhanced: EnhancedCode{class, subject, detail}, Text: fmt.Sprintf(format, args...)}
}

func (r *Reply) Error() string {
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

// Wire is the reply line as the client gets it, without CRLF; rcpt, when
// not empty, is named as replies to RCPT and after the message name it.
func (r *Reply) Wire(rcpt string) string {
	if rcpt == "" {
		return r.line("")
	}
	return r.line("<" + rcpt + "> ")
}

// line is the reply as sent, without CRLF. Text comes from our own
// decisions, but a CR or LF in it would desynchronise the client, so any
// control character is replaced.
func (r *Reply) line(prefix string) string {
	text := prefix + r.Text
	if strings.ContainsFunc(text, isControl) {
		text = strings.Map(func(c rune) rune {
			if isControl(c) {
				return '?'
			}
			return c
		}, text)
	}
	// Built by hand, not with fmt: every command of every message gets
	// a reply, and Sprintf was most of what formatting one cost.
	b := make([]byte, 0, 10+len(text))
	b = appendCode(b, r.Code)
	b = append(b, ' ')
	if r.Enhanced != (EnhancedCode{}) {
		b = r.Enhanced.Append(b)
		b = append(b, ' ')
	}
	return string(append(b, text...))
}

// appendCode appends a reply code as three digits.
func appendCode(b []byte, code int) []byte {
	if code >= 0 && code < 1000 {
		return append(b, byte('0'+code/100), byte('0'+code/10%10), byte('0'+code%10))
	}
	return strconv.AppendInt(b, int64(code), 10)
}

// Append appends the code as "class.subject.detail".
func (e EnhancedCode) Append(b []byte) []byte {
	b = strconv.AppendInt(b, int64(e[0]), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(e[1]), 10)
	b = append(b, '.')
	return strconv.AppendInt(b, int64(e[2]), 10)
}

// isControl reports characters that must never reach a reply, a header we
// write or a table key: C0 and C1 controls, DEL, and the Unicode line and
// paragraph separators (which some readers treat as line ends).
func isControl(c rune) bool {
	return c < ' ' || (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029
}

// HasControl reports whether s holds a character isControl refuses.
func HasControl(s string) bool { return strings.ContainsFunc(s, isControl) }

// Replies the protocol engine decides by itself.
var (
	// RcptOK is the reply to an accepted RCPT.
	RcptOK           = Replyf(250, 2, 1, 5, "recipient ok")
	ErrMessageTooBig = Replyf(552, 5, 3, 4, "message exceeds the size limit")
	ErrLineTooLong   = Replyf(500, 5, 5, 2, "message line too long")
	// errNoStatus is what a recipient gets when the backend gave it no
	// reply: never a default success.
	errNoStatus   = Replyf(451, 4, 3, 0, "no delivery status, will retry")
	errDataTimout = Replyf(451, 4, 4, 2, "timeout while receiving the message, will retry")
)
