package server

import (
	"errors"
	"syscall"

	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/server/lmtp"
	"github.com/vlmtpd/vlmtpd/store"
)

// Reply is an LMTP reply that a decision produced. Text goes to the client;
// Detail, which may hold internal errors, goes only to the log.
type Reply = lmtp.Reply

var replyf = lmtp.Replyf

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
// (*Reply, the protocol engine's limits among them) pass through; store and map failures get their
// classified code; anything else is a 4xx, never a 5xx, and its text stays
// in the log.
func ToReply(err error) *Reply {
	var r *Reply
	if errors.As(err, &r) {
		return r
	}
	var le *maps.LookupError
	if errors.As(err, &le) {
		return configError(err.Error())
	}
	st := store.StatusOf(err)
	if st == store.Temporary && errors.Is(err, syscall.ENOSPC) {
		// The spool's disk (or memory) is full: the same reply as a full
		// mailbox disk.
		st = store.NoSpace
	}
	var out *Reply
	switch st {
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
