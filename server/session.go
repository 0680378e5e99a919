// Runs in: the front.

package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/server/lmtp"
	"github.com/vlmtpd/vlmtpd/store"
)

// session is one client's LMTP session: the protocol engine calls it for
// each envelope command and message, one call at a time.
type session struct {
	s      *Server
	st     *state // the configuration the session started under
	id     string
	log    *slog.Logger
	start  time.Time
	client string // for log lines: "local" or the peer's address
	hello  string

	// The transaction: its id (session id, a dot, the transaction's
	// number in the session), set at MAIL, names it in every log line and
	// reply, from its first RCPT on.
	txID  string
	ntx   int
	from  string // external form, "" for <>
	size  int64  // SIZE= from MAIL, 0 if not given
	rcpts []*rcpt
	nmsg  int
}

// rcpt is one accepted RCPT and where it goes.
type rcpt struct {
	to     string // as the client wrote it
	box    store.Recipient
	key    string        // folded address: duplicates share one delivery
	lookup time.Duration // resolving it at RCPT
	// hold is the delivery's claim on the mailbox (concurrency, quota
	// reservation), nil for a duplicate; released when the transaction ends.
	hold *hold
}

func (s *Server) NewSession(info lmtp.ConnInfo) lmtp.Session {
	id := newID()
	client := "local"
	if a := info.Remote; a != nil && a.String() != "" && a.String() != "@" {
		client = a.String()
	}
	ss := &session{s: s, st: s.current(), id: id, start: time.Now(), log: s.log.With("session", id), client: client, hello: info.Hello}
	s.stats.sessions.Add(1)
	s.stats.sessionsTotal.Add(1)
	attrs := []any{"client", client, "lhlo", info.Hello}
	if info.TLS != nil {
		attrs = append(attrs, "tls", tls.VersionName(info.TLS.Version), "cipher", tls.CipherSuiteName(info.TLS.CipherSuite))
	}
	ss.log.Info("session start", attrs...)
	return ss
}

func (ss *session) Mail(from lmtp.Address, opts lmtp.MailOptions) *Reply {
	ss.Reset()
	ss.ntx++
	ss.txID = ss.id + "." + strconv.Itoa(ss.ntx)
	if from.Raw != "" {
		ss.from = maps.Address{Local: from.Local, Domain: from.Domain}.Quoted()
	}
	ss.size = opts.Size
	return nil
}

func (ss *session) Rcpt(ctx context.Context, to lmtp.Address, opts lmtp.RcptOptions) *Reply {
	ctx, cancel := context.WithTimeout(ctx, ss.st.cfg.DeliveryTimeout)
	defer cancel()
	start := time.Now()
	res := ss.st.resolver.Resolve(ctx, to.String())
	lookup := time.Since(start)
	ss.s.observePhase("lookup", lookup)
	if res.Err == nil {
		res.Err = ss.s.rcptLimits(ctx, &res.Recipient, ss.size)
	}
	if res.Err != nil {
		rep := withID(res.Err, ss.txID)
		ss.logRefusal(to.Raw, rep)
		return rep
	}
	key := res.Address.String()
	var h *hold
	if !ss.hasKey(key) {
		var rep *Reply
		if h, rep = ss.s.admit(ctx, ss.st.cfg, res.Recipient, ss.size, ss.holdsSlot(mailboxKey(res.Recipient))); rep != nil {
			rep = withID(rep, ss.txID)
			ss.logRefusal(to.Raw, rep)
			return rep
		}
	}
	for _, err := range opts.ParamErrors {
		ss.log.Info("recipient parameter ignored", "id", ss.txID, "rcpt", to.Raw, "reason", err)
	}
	box := res.Recipient
	box.OriginalRecipient = box.Address
	if o := originalRecipient(opts.OriginalRecipient); o != "" {
		box.OriginalRecipient = o
	}
	if !ss.st.cfg.EnableOriginalRecipient {
		box.OriginalRecipient = ""
	}
	ss.rcpts = append(ss.rcpts, &rcpt{to: to.Raw, box: box, key: key, lookup: lookup, hold: h})
	return nil
}

// holdsSlot reports whether the transaction already has a concurrency
// slot for the mailbox key names.
func (ss *session) holdsSlot(key string) bool {
	for _, rc := range ss.rcpts {
		if rc.hold != nil && rc.hold.slot && rc.hold.key == key {
			return true
		}
	}
	return false
}

func (ss *session) hasKey(key string) bool {
	for _, rc := range ss.rcpts {
		if rc.key == key {
			return true
		}
	}
	return false
}

// withID adds the transaction id to a 4xx reply's text, so that the
// deferral the client logs ("said: 451 4.3.0 … (id)") leads to our log
// lines. The reply is copied: replies may be shared.
func withID(rep *Reply, id string) *Reply {
	if rep == nil || rep.Code/100 != 4 || id == "" {
		return rep
	}
	c := *rep
	c.Text += " (" + id + ")"
	return &c
}

// originalRecipient is ORCPT's address as X-Original-To shows it: quoting
// only where the local part needs it, as virtual(8) writes it.
func originalRecipient(orcpt string) string {
	if orcpt == "" {
		return ""
	}
	if a, err := lmtp.ParseMailbox(orcpt); err == nil {
		return maps.Address{Local: a.Local, Domain: a.Domain}.Quoted()
	}
	return orcpt
}

// rcptLimits decides at RCPT what the mailbox limit and the deliverer can
// decide before the body arrives.
func (s *Server) rcptLimits(ctx context.Context, box *store.Recipient, size int64) *Reply {
	if err := s.deliver.Permits(box.UID, box.GID); err != nil {
		r := ToReply(err)
		s.log.Warn("recipient refused: privileges missing to deliver as its uid", "uid", box.UID, "gid", box.GID, "error", err)
		return r
	}
	if box.Limit <= 0 || size <= 0 || box.Quota.Set {
		// A quota (virtual_mailbox_limit_maps) is decided by admit.
		return nil
	}
	// SIZE= counts CRLF line ends and we store LF: a message of n bytes
	// on the wire takes at least n/2 once every CR is gone (all empty
	// lines). Only what cannot fit even then is refused here; the exact
	// size decides after DATA.
	least := leastStored(size)
	if box.Format() == store.Maildir {
		if least > box.Limit {
			return replyf(552, 5, 2, 2, "message too large for this mailbox")
		}
		return nil
	}
	cur, err := s.deliver.MailboxSize(ctx, *box)
	if err != nil {
		return ToReply(err)
	}
	if cur+least > box.Limit {
		return replyf(552, 5, 2, 2, "mailbox full")
	}
	return nil
}

// Data spools the body once, then delivers to every recipient and returns
// one reply per accepted RCPT, each a success only once that mailbox is
// durable.
func (ss *session) Data(ctx context.Context, r io.Reader) []*Reply {
	ss.nmsg++
	msgID := ss.txID
	start := time.Now()
	rcpts := ss.rcpts
	out := make([]*Reply, len(rcpts))

	body, size, err := ss.st.spool.Write(r, ss.size)
	spooled := time.Since(start)
	ss.s.observePhase("spool", spooled)
	if err != nil {
		rep := withID(ToReply(err), msgID)
		ss.log.Warn("message not received", "id", msgID, "error", err)
		for i, rc := range rcpts {
			out[i] = rep
			ss.logOutcome(rc, rep, msgID, delays{lookup: rc.lookup, spool: spooled, total: rc.lookup + time.Since(start)})
		}
		return out
	}
	ss.s.stats.spoolBytes.Add(size)
	defer func() {
		body.Close()
		ss.s.stats.spoolBytes.Add(-size)
	}()

	trace, err := scanTrace(body, size)
	if err != nil {
		ss.log.Warn("reading header for loop check", "id", msgID, "error", err)
	}
	ss.log.Info("message", "id", msgID, "from", ss.from, "size", size, "nrcpt", len(rcpts), "message_id", trace.messageID, "client", ss.client)

	// One delivery per distinct recipient; a repeated RCPT gets the same
	// reply as its first occurrence, without a second copy.
	msg := &store.Message{Sender: ss.from, Body: body, Size: size, Arrival: start, ID: msgID,
		HasReturnPath: trace.clientWroteReturnPath(ss.from)}
	replies := make(map[string]*Reply, len(rcpts))
	times := make(map[string]store.Timing, len(rcpts))
	var boxes []store.Recipient
	var keys []string
	for _, rc := range rcpts {
		if _, dup := replies[rc.key]; dup {
			continue
		}
		if ss.st.cfg.DeliveredToLoopCheck && trace.loops(rc.box.Address) {
			replies[rc.key] = replyf(554, 5, 4, 6, "mail forwarding loop for %s", rc.box.Address)
			continue
		}
		replies[rc.key] = nil
		box := rc.box
		box.HasDeliveredTo = trace.clientDeliveredTo(box.Address)
		boxes = append(boxes, box)
		keys = append(keys, rc.key)
	}
	if len(boxes) > 0 {
		dctx, cancel := context.WithTimeout(ctx, ss.st.cfg.DeliveryTimeout)
		errs, ts, outs := store.DeliverTimed(dctx, ss.s.deliver, msg, boxes)
		cancel()
		errs = ss.submitAll(ctx, msg, boxes, errs, outs)
		for i, k := range keys {
			var err error
			if i < len(errs) {
				err = errs[i]
			} else {
				err = &store.Error{Status: store.Temporary, Op: "deliver", Err: errors.New("deliverer returned too few results")}
			}
			switch {
			case err != nil && store.StatusOf(err) == store.OverLimit && boxes[i].Quota.Set:
				replies[k] = withID(overQuota(ss.st.cfg, err.Error()), msgID)
			case err != nil:
				replies[k] = withID(ToReply(err), msgID)
			default:
				replies[k] = &Reply{Code: 250, Enhanced: lmtp.EnhancedCode{2, 0, 0}, Text: "delivered (" + msgID + ")"}
			}
			if i < len(ts) {
				t := ts[i]
				times[k] = t
				ss.s.observePhase("worker_wait", t.WorkerWait)
				ss.s.observePhase("write", t.Write)
				ss.s.observePhase("fsync", t.Fsync)
			}
		}
	}
	elapsed := time.Since(start)
	for i, rc := range rcpts {
		out[i] = replies[rc.key]
		t := times[rc.key]
		ss.logOutcome(rc, out[i], msgID, delays{lookup: rc.lookup, spool: spooled, workerWait: t.WorkerWait,
			write: t.Write, fsync: t.Fsync, total: rc.lookup + elapsed})
	}
	return out
}

// submitAll sends, after the delivery, what each delivered recipient's
// Sieve scripts asked for (submit.go), and delivers again with NoSieve —
// the implicit keep — every recipient whose redirect failed and whose
// message is not kept yet: its reply is then that delivery's, so the
// message is acknowledged only once it is durable somewhere.
func (ss *session) submitAll(ctx context.Context, msg *store.Message, boxes []store.Recipient, errs []error, outs []store.Outbound) []error {
	var again []store.Recipient
	var idx []int
	sctx, cancel := context.WithTimeout(ctx, ss.st.cfg.DeliveryTimeout)
	defer cancel()
	var down error
	for i := range boxes {
		if i >= len(errs) || errs[i] != nil || i >= len(outs) || len(outs[i].Submissions) == 0 {
			continue
		}
		if ss.submitFor(sctx, msg, boxes[i], outs[i], &down) {
			r := boxes[i]
			r.NoSieve = true
			again = append(again, r)
			idx = append(idx, i)
		}
	}
	if len(again) == 0 {
		return errs
	}
	kctx, kcancel := context.WithTimeout(ctx, ss.st.cfg.DeliveryTimeout)
	defer kcancel()
	kerrs, _, _ := store.DeliverTimed(kctx, ss.s.deliver, msg, again)
	for j, i := range idx {
		if j < len(kerrs) {
			errs[i] = kerrs[j]
		} else {
			errs[i] = &store.Error{Status: store.Temporary, Op: "keep", Err: errors.New("deliverer returned too few results")}
		}
		if errs[i] != nil {
			ss.log.Warn("sieve: keeping the message after a failed redirect failed", "id", msg.ID, "rcpt", again[j].Address, "error", errs[i])
		}
	}
	return errs
}

// delays are where one recipient's time went. In Postfix-style logs they
// are delays=lookup/spool/worker_wait/write+fsync and delay=total.
type delays struct {
	lookup, spool, workerWait, write, fsync, total time.Duration
}

// logOutcome logs and counts one recipient's outcome after the message.
func (ss *session) logOutcome(rc *rcpt, rep *Reply, msgID string, d delays) {
	o := outcomeOf(rep)
	ss.s.stats.count(o)
	ss.s.observePhase("total", d.total)
	code, text, detail := 250, "delivered", ""
	if rep != nil {
		code, text, detail = rep.Code, rep.Text, rep.Detail
	}
	level := slog.LevelInfo
	if code/100 == 4 {
		level = slog.LevelWarn
	}
	relay := "none"
	if rc.box.Path != "" {
		relay = rc.box.Format().String()
	}
	attrs := []any{"id", msgID, "rcpt", rc.to}
	if rc.box.OriginalRecipient != "" && rc.box.OriginalRecipient != rc.to {
		attrs = append(attrs, "orig_to", rc.box.OriginalRecipient)
	}
	attrs = append(attrs, "mailbox", rc.box.Path, "relay", relay, "code", code, "dsn", o.DSN, "result", o.Status, "status", text,
		"delay", d.total, slog.Group("delays", "lookup", d.lookup, "spool", d.spool, "worker_wait", d.workerWait, "write", d.write, "fsync", d.fsync))
	if detail != "" {
		attrs = append(attrs, "detail", detail)
	}
	ss.log.Log(context.Background(), level, "recipient", attrs...)
}

// logRefusal logs and counts a recipient refused at RCPT.
func (ss *session) logRefusal(to string, rep *Reply) {
	dsn := dsnOf(rep)
	ss.s.stats.count(Outcome{"rejected", dsn})
	level := slog.LevelInfo
	if rep.Code/100 == 4 {
		level = slog.LevelWarn
	}
	attrs := []any{"id", ss.txID, "rcpt", to, "code", rep.Code, "dsn", dsn, "status", rep.Text,
		"from", ss.from, "client", ss.client, "lhlo", ss.hello}
	if rep.Detail != "" {
		attrs = append(attrs, "detail", rep.Detail)
	}
	ss.log.Log(context.Background(), level, "recipient refused", attrs...)
}

func (ss *session) Reset() {
	for _, rc := range ss.rcpts {
		rc.hold.release()
	}
	ss.from, ss.size, ss.rcpts, ss.txID = "", 0, nil, ""
}

func (ss *session) Close() {
	ss.s.stats.sessions.Add(-1)
	ss.st.release()
	ss.Reset()
	ss.log.Info("session end", "client", ss.client, "messages", ss.nmsg, "duration", time.Since(ss.start).Round(time.Millisecond))
}
