// Runs in: the front.

package server

import (
	"errors"
	"strings"
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
// (*Reply, the protocol engine's limits among them) pass through; store
// and map failures get their classified code; anything else is a 4xx,
// never a 5xx, and its text stays in the log.
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
	switch {
	case st == store.Rejected:
		// A Sieve reject is the user's decision: the one store status
		// whose text reaches the client (RFC 5429 2.1: 550 5.7.1).
		reason, _ := store.RejectReason(err)
		out = replyf(550, 5, 7, 1, "%s", rejectText(reason))
	case st == store.Locked:
		out = replyf(451, 4, 2, 0, "mailbox busy, try again later")
	case st == store.NoSpace:
		// virtual(8)'s mbox_dsn: ENOSPC is 4.3.0.
		out = replyf(452, 4, 3, 0, "insufficient system storage")
	case st == store.OverLimit:
		out = replyf(552, 5, 2, 2, "mailbox full")
	case st == store.BadMailbox && storeOp(err) == "path":
		out = configError("") // a result with "..": 4.3.5, as Postfix 3.12
	case (st == store.BadMailbox || st == store.Temporary) && opensMailbox(storeOp(err)):
		// virtual(8) defers 4.2.0 for a mailbox it cannot open, create,
		// lock or link into (symlink, hard links, wrong owner, missing
		// directory, EACCES), so MTA logs read the same.
		out = replyf(451, 4, 2, 0, "mailbox cannot be opened, will retry")
	case st == store.BadMailbox:
		out = configError("")
	case st == store.NotPermitted:
		out = replyf(451, 4, 3, 0, "delivery not permitted for this mailbox's owner, will retry")
	default:
		out = replyf(451, 4, 3, 0, "temporary local problem, will retry")
	}
	out.Detail = err.Error()
	return out
}

// storeOp is the operation a store error names ("open", "write"…).
func storeOp(err error) string {
	var se *store.Error
	if errors.As(err, &se) {
		return se.Op
	}
	return ""
}

// opensMailbox reports whether a store operation is one of the steps
// before the message is written: virtual(8)'s 4.2.0 stage. Errors while
// writing stay 4.3.0 (virtual(8) bounces them 5.3.0; vlmtpd never
// bounces an I/O error).
func opensMailbox(op string) bool {
	switch op {
	case "open", "create", "mkdir", "stat", "link", "lock":
		return true
	}
	return strings.HasSuffix(op, " lock") // "fcntl lock", "dotlock lock"…
}

// maxRejectText bounds the reason a Sieve script puts into a reply line.
const maxRejectText = 400

// rejectText makes a script's reject reason fit one reply line: control
// characters (CR, LF among them) become spaces, runs of white space one
// space, non-ASCII is replaced (no SMTPUTF8 reply text), and an empty
// reason gets Pigeonhole's default.
func rejectText(reason string) string {
	var b strings.Builder
	space := false
	for _, c := range reason {
		if c < ' ' || c == 0x7f || c == ' ' || c == '\t' {
			space = b.Len() > 0
			continue
		}
		if c > '~' {
			c = '?'
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(c)
		if b.Len() >= maxRejectText {
			break
		}
	}
	if b.Len() == 0 {
		return "Message rejected"
	}
	return b.String()
}
