package server

import (
	"errors"
	"fmt"

	"github.com/emersion/go-smtp"

	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/store"
)

// Reply is an LMTP reply that a decision produced. Text goes to the client;
// Detail, which may hold internal errors, goes only to the log.
type Reply struct {
	Code     int
	Enhanced smtp.EnhancedCode
	Text     string
	Detail   string
}

func (r *Reply) Error() string {
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

// SMTP is the reply as go-smtp sends it.
func (r *Reply) SMTP() *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: r.Enhanced, Message: r.Text}
}

// For prefixes the text with the recipient, as RCPT replies carry it (go-smtp
// adds it itself to the replies after DATA).
func (r *Reply) For(rcpt string) *Reply {
	c := *r
	c.Text = "<" + rcpt + "> " + r.Text
	return &c
}

// Temporary reports whether the MTA should retry.
func (r *Reply) Temporary() bool { return r.Code/100 == 4 }

func replyf(code, class, subject, detail int, format string, args ...any) *Reply {
	return &Reply{Code: code, Enhanced: smtp.EnhancedCode{class, subject, detail}, Text: fmt.Sprintf(format, args...)}
}

// configError is virtual(8)'s "mail system configuration error": 4.3.5.
func configError(detail string) *Reply {
	r := replyf(451, 4, 3, 5, "mail system configuration error, will retry")
	r.Detail = detail
	return r
}

func lookupFailed(param string, err error) *Reply {
	return configError(param + ": " + err.Error())
}

// ToReply is the one mapping from any error to an LMTP reply. Decisions
// (*Reply, *smtp.SMTPError) pass through; store and map failures get their
// classified code; anything else is a 4xx, never a 5xx, and its text stays
// in the log.
func ToReply(err error) *Reply {
	var r *Reply
	if errors.As(err, &r) {
		return r
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return &Reply{Code: se.Code, Enhanced: se.EnhancedCode, Text: se.Message}
	}
	var le *maps.LookupError
	if errors.As(err, &le) {
		return configError(err.Error())
	}
	var out *Reply
	switch store.StatusOf(err) {
	case store.Locked:
		out = replyf(451, 4, 2, 0, "mailbox busy, try again later")
	case store.NoSpace:
		out = replyf(452, 4, 3, 1, "insufficient system storage")
	case store.OverLimit:
		out = replyf(552, 5, 2, 2, "mailbox full")
	case store.BadMailbox:
		out = configError("")
	case store.NotPermitted:
		out = replyf(451, 4, 3, 0, "delivery not permitted for this mailbox's owner, will retry")
	default:
		out = replyf(451, 4, 3, 0, "temporary local problem, will retry")
	}
	out.Detail = err.Error()
	return out
}
