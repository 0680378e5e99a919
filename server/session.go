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
	s     *Server
	st    *state // the configuration the session started under
	id    string
	log   *slog.Logger
	start time.Time

	from  string // external form, "" for <>
	size  int64  // SIZE= from MAIL, 0 if not given
	rcpts []*rcpt
	nmsg  int
}

// rcpt is one accepted RCPT and where it goes.
type rcpt struct {
	to  string // as the client wrote it
	box store.Recipient
	key string // folded address: duplicates share one delivery
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
	ss := &session{s: s, st: s.current(), id: id, start: time.Now(), log: s.log.With("session", id)}
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
	if from.Raw != "" {
		ss.from = maps.Address{Local: from.Local, Domain: from.Domain}.Quoted()
	}
	ss.size = opts.Size
	return nil
}

func (ss *session) Rcpt(ctx context.Context, to lmtp.Address, opts lmtp.RcptOptions) *Reply {
	ctx, cancel := context.WithTimeout(ctx, ss.st.cfg.DeliveryTimeout)
	defer cancel()
	res := ss.st.resolver.Resolve(ctx, to.String())
	if res.Err == nil {
		res.Err = ss.s.rcptLimits(ctx, &res.Recipient, ss.size)
	}
	if res.Err != nil {
		ss.logOutcome(to.Raw, res.Recipient.Path, res.Err, "rcpt", 0)
		return res.Err
	}
	var h *hold
	if !ss.hasKey(res.Address.String()) {
		var rep *Reply
		if h, rep = ss.s.admit(ctx, res.Recipient, ss.size, ss.holdsSlot(mailboxKey(res.Recipient))); rep != nil {
			ss.logOutcome(to.Raw, res.Recipient.Path, rep, "rcpt", 0)
			return rep
		}
	}
	for _, err := range opts.ParamErrors {
		ss.log.Info("recipient parameter ignored", "rcpt", to.Raw, "reason", err)
	}
	box := res.Recipient
	box.OriginalRecipient = box.Address
	if o := originalRecipient(opts.OriginalRecipient); o != "" {
		box.OriginalRecipient = o
	}
	if !ss.st.cfg.EnableOriginalRecipient {
		box.OriginalRecipient = ""
	}
	ss.rcpts = append(ss.rcpts, &rcpt{to: to.Raw, box: box, key: res.Address.String(), hold: h})
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
	if p, ok := s.deliver.(store.Permitter); ok {
		if err := p.Permits(box.UID, box.GID); err != nil {
			r := ToReply(err)
			s.log.Warn("recipient refused: privileges missing to deliver as its uid", "uid", box.UID, "gid", box.GID, "error", err)
			return r
		}
	}
	if box.Limit <= 0 || size <= 0 || box.Quota.Set {
		// A quota (virtual_mailbox_limit_maps) is decided by admit.
		return nil
	}
	// SIZE= counts CRLF line ends and we store LF: a message of n bytes
	// on the wire takes at least n/2 once every CR is gone (all empty
	// lines). Only what cannot fit even then is refused here; the exact
	// size decides after DATA.
	least := (size + 1) / 2
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
	msgID := ss.id + "." + strconv.Itoa(ss.nmsg)
	start := time.Now()
	rcpts := ss.rcpts
	out := make([]*Reply, len(rcpts))

	body, size, err := ss.st.spool.Write(r, ss.size)
	if err != nil {
		rep := ToReply(err)
		ss.log.Warn("message not received", "id", msgID, "error", err)
		for i, rc := range rcpts {
			ss.logOutcome(rc.to, rc.box.Path, rep, msgID, time.Since(start))
			out[i] = rep
		}
		return out
	}
	defer body.Close()

	trace, err := scanTrace(body, size)
	if err != nil {
		ss.log.Warn("reading header for loop check", "id", msgID, "error", err)
	}

	// One delivery per distinct recipient; a repeated RCPT gets the same
	// reply as its first occurrence, without a second copy.
	msg := &store.Message{Sender: ss.from, Body: body, Size: size, Arrival: start, ID: msgID,
		HasReturnPath: trace.clientWroteReturnPath(ss.from)}
	replies := make(map[string]*Reply, len(rcpts))
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
		errs := ss.s.deliver.Deliver(dctx, msg, boxes)
		cancel()
		for i, k := range keys {
			var err error
			if i < len(errs) {
				err = errs[i]
			} else {
				err = &store.Error{Status: store.Temporary, Op: "deliver", Err: errors.New("deliverer returned too few results")}
			}
			switch {
			case err != nil && store.StatusOf(err) == store.OverLimit && boxes[i].Quota.Set:
				replies[k] = ss.s.overQuota(err.Error())
			case err != nil:
				replies[k] = ToReply(err)
			default:
				replies[k] = &Reply{Code: 250, Enhanced: lmtp.EnhancedCode{2, 0, 0}, Text: "delivered (" + msgID + ")"}
			}
		}
	}
	delay := time.Since(start)
	for i, rc := range rcpts {
		out[i] = replies[rc.key]
		ss.logOutcome(rc.to, rc.box.Path, out[i], msgID, delay)
	}
	return out
}

func (ss *session) logOutcome(to, mailbox string, rep *Reply, msgID string, delay time.Duration) {
	code, text, detail := 250, "delivered", ""
	if rep != nil {
		code, text, detail = rep.Code, rep.Text, rep.Detail
	}
	st := &ss.s.stats
	switch {
	case msgID == "rcpt":
		st.rcpt.Add(1)
	case code/100 == 2:
		st.sent.Add(1)
	case code/100 == 4:
		st.deferred.Add(1)
	default:
		st.bounced.Add(1)
	}
	level := slog.LevelInfo
	if code/100 == 4 {
		level = slog.LevelWarn
	}
	attrs := []any{"id", msgID, "rcpt", to, "mailbox", mailbox, "code", code, "status", text, "delay", delay.Round(time.Microsecond)}
	if detail != "" {
		attrs = append(attrs, "detail", detail)
	}
	ss.log.Log(context.Background(), level, "recipient", attrs...)
}

func (ss *session) Reset() {
	for _, rc := range ss.rcpts {
		rc.hold.release()
	}
	ss.from, ss.size, ss.rcpts = "", 0, nil
}

func (ss *session) Close() {
	ss.s.stats.sessions.Add(-1)
	ss.st.release()
	ss.Reset()
	ss.log.Info("session end", "messages", ss.nmsg, "duration", time.Since(ss.start).Round(time.Millisecond))
}
