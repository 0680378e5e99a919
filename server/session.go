package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/store"
)

// session is one LMTP connection. go-smtp may call Logout while LMTPData
// runs, so the transaction state is guarded by mu.
type session struct {
	s     *Server
	conn  *smtp.Conn
	id    string
	log   *slog.Logger
	start time.Time

	mu     sync.Mutex
	from   string // external form, "" for <>
	size   int64  // SIZE= from MAIL, 0 if not given
	rcpts  []*rcpt
	nmsg   int
	closed bool
}

// rcpt is one accepted RCPT: the string go-smtp knows it by, and where it
// goes.
type rcpt struct {
	to  string
	box store.Recipient
	key string // folded address: duplicates share one delivery
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	id := newID()
	client := "local"
	if a := c.Conn().RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		client = a.String()
	}
	ss := &session{s: s, conn: c, id: id, start: time.Now(),
		log: s.log.With("session", id)}
	ss.log.Info("session start", "client", client, "lhlo", c.Hostname())
	return ss, nil
}

// hasControl reports characters that must never reach a mailbox header or
// a table key (CR and LF would let an address inject lines into an mbox).
func hasControl(s string) bool {
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

var (
	errBadAddress = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "address contains control characters"}
	errDraining   = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "service shutting down, try again later"}
)

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.s.draining.Load() {
		return errDraining
	}
	if hasControl(from) {
		return errBadAddress
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.resetLocked()
	if from != "" {
		ss.from = maps.ParseAddress(from).Quoted()
	}
	if opts != nil {
		ss.size = opts.Size
	}
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if hasControl(to) {
		return errBadAddress
	}
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.cfg.DeliveryTimeout)
	defer cancel()
	res := ss.s.resolver.Resolve(ctx, to)
	if res.Err == nil {
		res.Err = ss.s.rcptLimits(ctx, &res.Recipient, ss.txSize())
	}
	if res.Err != nil {
		ss.logOutcome(to, res.Recipient.Path, res.Err, "rcpt", 0)
		return res.Err.For(to).SMTP()
	}
	box := res.Recipient
	box.OriginalRecipient = box.Address
	if opts != nil && opts.OriginalRecipient != "" && !hasControl(opts.OriginalRecipient) &&
		(opts.OriginalRecipientType == smtp.DSNAddressTypeRFC822 || opts.OriginalRecipientType == smtp.DSNAddressTypeUTF8) {
		box.OriginalRecipient = opts.OriginalRecipient
	}
	if !ss.s.cfg.EnableOriginalRecipient {
		box.OriginalRecipient = ""
	}
	ss.mu.Lock()
	ss.rcpts = append(ss.rcpts, &rcpt{to: to, box: box, key: res.Address.String()})
	ss.mu.Unlock()
	return nil
}

func (ss *session) txSize() int64 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.size
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
	if box.Limit <= 0 || size <= 0 {
		return nil
	}
	if box.Format() == store.Maildir {
		if size > box.Limit {
			return replyf(552, 5, 2, 2, "message too large for this mailbox")
		}
		return nil
	}
	cur, err := s.deliver.MailboxSize(ctx, *box)
	if err != nil {
		return ToReply(err)
	}
	if cur+size > box.Limit {
		return replyf(552, 5, 2, 2, "mailbox full")
	}
	return nil
}

func (ss *session) Data(r io.Reader) error {
	// Not reached in LMTP mode: go-smtp calls LMTPData.
	return errors.New("DATA outside LMTP")
}

// LMTPData spools the body once, then delivers to every recipient and sets
// one status per accepted RCPT, each only once that mailbox is durable.
func (ss *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	ss.mu.Lock()
	rcpts := ss.rcpts
	from := ss.from
	ss.nmsg++
	msgID := ss.id + "." + strconv.Itoa(ss.nmsg)
	ss.mu.Unlock()
	start := time.Now()

	// go-smtp sets the read deadline per command line only, which would
	// bound the whole body by idle_timeout: DATA gets its own.
	ss.conn.Conn().SetReadDeadline(start.Add(ss.s.cfg.DataTimeout))
	body, size, err := ss.s.spool.Write(r)
	if err != nil {
		rep := dataError(err)
		ss.log.Warn("message not received", "id", msgID, "error", err)
		for _, rc := range rcpts {
			ss.logOutcome(rc.to, rc.box.Path, rep, msgID, time.Since(start))
			status.SetStatus(rc.to, rep.SMTP())
		}
		return nil
	}
	defer body.Close()

	trace, err := scanTrace(body, size)
	if err != nil {
		ss.log.Warn("reading header for loop check", "id", msgID, "error", err)
	}

	// One delivery per distinct recipient; a repeated RCPT gets the same
	// reply as its first occurrence, without a second copy.
	msg := &store.Message{Sender: from, Body: body, Size: size, Arrival: start, ID: msgID,
		HasReturnPath: trace.clientWroteReturnPath(from)}
	replies := make(map[string]*Reply, len(rcpts))
	var boxes []store.Recipient
	var keys []string
	for _, rc := range rcpts {
		if _, dup := replies[rc.key]; dup {
			continue
		}
		if ss.s.cfg.DeliveredToLoopCheck && trace.loops(rc.box.Address) {
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
		ctx, cancel := context.WithTimeout(context.Background(), ss.s.cfg.DeliveryTimeout)
		errs := ss.s.deliver.Deliver(ctx, msg, boxes)
		cancel()
		for i, k := range keys {
			var err error
			if i < len(errs) {
				err = errs[i]
			} else {
				err = &store.Error{Status: store.Temporary, Op: "deliver", Err: errors.New("deliverer returned too few results")}
			}
			if err != nil {
				replies[k] = ToReply(err)
			} else {
				replies[k] = &Reply{Code: 250, Enhanced: smtp.EnhancedCode{2, 0, 0}, Text: "delivered (" + msgID + ")"}
			}
		}
	}
	delay := time.Since(start)
	for _, rc := range rcpts {
		rep := replies[rc.key]
		ss.logOutcome(rc.to, rc.box.Path, rep, msgID, delay)
		status.SetStatus(rc.to, rep.SMTP())
	}
	return nil
}

// dataError maps a failure to receive or spool the body.
func dataError(err error) *Reply {
	if errors.Is(err, smtp.ErrTooLongLine) {
		return replyf(500, 5, 5, 2, "line too long")
	}
	return ToReply(err)
}

func (ss *session) logOutcome(to, mailbox string, rep *Reply, msgID string, delay time.Duration) {
	code, text, detail := 250, "delivered", ""
	if rep != nil {
		code, text, detail = rep.Code, rep.Text, rep.Detail
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
	ss.mu.Lock()
	ss.resetLocked()
	ss.mu.Unlock()
}

func (ss *session) resetLocked() {
	ss.from, ss.size, ss.rcpts = "", 0, nil
}

func (ss *session) Logout() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !ss.closed {
		ss.closed = true
		ss.log.Info("session end", "messages", ss.nmsg, "duration", time.Since(ss.start).Round(time.Millisecond))
	}
	return nil
}
