// Runs in: the front.

package server

import (
	"context"
	"strconv"
	"sync"

	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/store/maildirpp"
)

// mailboxKey names one mailbox for the in-flight accounting: its owner
// and path (two addresses mapped to one mailbox share it).
func mailboxKey(b store.Recipient) string {
	return strconv.Itoa(b.UID) + ":" + strconv.Itoa(b.GID) + ":" + b.Path
}

// inflight is what the deliveries accepted at RCPT and not yet finished
// hold against one mailbox.
type inflight struct {
	n        int   // deliveries
	reserved int64 // bytes their SIZE= announced
	count    int64 // messages
}

// book keeps, in the front, the deliveries in flight to each mailbox: the
// per-mailbox concurrency limit and the quota reservations at RCPT. The
// worker decides exactly at delivery; the book only keeps RCPT from
// accepting more than can fit, so concurrent messages are refused while
// the client can still be told.
type book struct {
	mu sync.Mutex
	m  map[string]*inflight
}

// hold is one RCPT's claim on a mailbox, released exactly once when its
// transaction ends, whatever the outcome (delivered, refused, worker
// crashed, client gone).
type hold struct {
	b      *book
	key    string
	bytes  int64
	once   sync.Once
	counts bool
	// slot: this hold takes one of recipient_concurrency_limit's places.
	// Further recipients of the same transaction for the same mailbox
	// (a catch-all, aliases) share the transaction's slot: they are one
	// delivery in flight, written by one worker request.
	slot bool
}

func (b *book) get(key string) *inflight {
	if b.m == nil {
		b.m = map[string]*inflight{}
	}
	f := b.m[key]
	if f == nil {
		f = &inflight{}
		b.m[key] = f
	}
	return f
}

func (h *hold) release() {
	if h == nil {
		return
	}
	h.once.Do(func() {
		h.b.mu.Lock()
		defer h.b.mu.Unlock()
		f := h.b.m[h.key]
		if f == nil {
			return
		}
		if h.slot {
			f.n--
		}
		f.reserved -= h.bytes
		if h.counts {
			f.count--
		}
		if f.n <= 0 && f.reserved == 0 && f.count == 0 {
			delete(h.b.m, h.key)
		}
	})
}

// Reservations reports what this server's deliveries in flight to box
// hold against its quota (for `vlmtpd quota`, through the metrics
// listener).
func (s *Server) Reservations(box store.Recipient) (deliveries int, bytes, count int64) {
	return s.book.Reservations(box)
}

// Reservations reports what the deliveries in flight to a mailbox hold.
func (b *book) Reservations(box store.Recipient) (deliveries int, bytes, count int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.m[mailboxKey(box)]; f != nil {
		return f.n, f.reserved, f.count
	}
	return 0, 0, 0
}

// overQuota is the reply to a message that does not fit: 552 5.2.2, or
// 452 4.2.2 with virtual_overquota_bounce off so that the client retries,
// with virtual_maildir_limit_message as the text.
func overQuota(cfg *config.Config, detail string) *Reply {
	r := replyf(552, 5, 2, 2, "%s", cfg.VirtualMaildirLimitMessage)
	if !cfg.VirtualOverquotaBounce {
		r = replyf(452, 4, 2, 2, "%s", cfg.VirtualMaildirLimitMessage)
	}
	r.Detail = detail
	return r
}

// QuotaDecision is what RCPT makes of a recipient's quota.
type QuotaDecision struct {
	Limits maildirpp.Limits
	Usage  maildirpp.Usage
	// Recalculated: why the worker did not use maildirsize as it was.
	Recalculated string
	// In flight to the mailbox now: deliveries, reserved bytes, messages.
	Deliveries      int
	Reserved, Count int64
	// Reply is the RCPT reply for the message size asked about; nil is
	// accepted.
	Reply *Reply
	// Err: the usage could not be read (Reply is then its 4xx).
	Err error
}

// decideQuota asks the mailbox owner's worker for the usage and decides
// whether a message announced as size bytes (SIZE=, 0 if unknown) may be
// accepted at RCPT. It does not reserve. SIZE= counts CRLF line ends and
// we store LF, so the message takes at least half of it: a message that
// cannot fit even then is over quota (a decision); one that fits now but
// not with the deliveries in flight is refused for now (452 4.2.2), since
// those may still fail.
func (s *Server) decideQuota(ctx context.Context, cfg *config.Config, box store.Recipient, size int64) QuotaDecision {
	d := QuotaDecision{Limits: box.Quota.Limits}
	d.Deliveries, d.Reserved, d.Count = s.book.Reservations(box)
	if d.Limits.None() {
		return d
	}
	qr, ok := s.deliver.(store.QuotaReporter)
	if !ok {
		return d // decided at delivery only
	}
	u, err := qr.Quota(ctx, box, false)
	if err != nil {
		// Failing to read the usage decides nothing: a 4xx whatever the
		// cause (an EDQUOT would otherwise map to 552), and the exact
		// check at delivery still runs when the client retries.
		if store.StatusOf(err) == store.OverLimit {
			err = &store.Error{Status: store.Temporary, Op: "quota", Path: box.Path, Err: err}
		}
		d.Reply, d.Err = ToReply(err), err
		return d
	}
	d.Usage, d.Recalculated = u.Usage, u.Recalculated
	least := leastStored(size)
	if !d.Usage.Fits(least, d.Limits) {
		d.Reply = overQuota(cfg, "quota "+d.Limits.String()+" used "+usageString(d.Usage)+", message at least "+strconv.FormatInt(least, 10)+" bytes")
		return d
	}
	withHeld := maildirpp.Usage{Bytes: d.Usage.Bytes + d.Reserved, Count: d.Usage.Count + d.Count}
	if !withHeld.Fits(least, d.Limits) {
		d.Reply = replyf(452, 4, 2, 2, "%s (deliveries in progress), try again later", cfg.VirtualMaildirLimitMessage)
		d.Reply.Detail = "in flight " + strconv.FormatInt(d.Reserved, 10) + " bytes in " + strconv.FormatInt(d.Count, 10) + " messages"
	}
	return d
}

// leastStored is the least a message announced as size bytes (0: not
// announced) takes in the mailbox: half its SIZE= (every line end loses
// its CR), and never nothing, as the trace header alone takes bytes.
func leastStored(size int64) int64 { return max((size+1)/2, 1) }

func usageString(u maildirpp.Usage) string {
	return strconv.FormatInt(u.Bytes, 10) + " bytes in " + strconv.FormatInt(u.Count, 10) + " messages"
}

// admit applies recipient_concurrency_limit and the quota to an accepted
// recipient and takes its hold; the quota question and the hold are one
// step under the book's lock per mailbox, so two RCPTs racing for the
// last room cannot both get it. inTransaction says the transaction
// already holds a slot for this mailbox: no second one is taken.
func (s *Server) admit(ctx context.Context, cfg *config.Config, box store.Recipient, size int64, inTransaction bool) (*hold, *Reply) {
	key := mailboxKey(box)
	limit := cfg.RecipientConcurrencyLimit
	s.book.mu.Lock()
	if f := s.book.m[key]; !inTransaction && limit > 0 && f != nil && f.n >= limit {
		s.book.mu.Unlock()
		r := replyf(451, 4, 2, 1, "too many deliveries to this mailbox at once, try again later")
		r.Detail = "recipient_concurrency_limit " + strconv.Itoa(limit)
		return nil, r
	}
	// Claim the slot first, so that the quota question (a round trip to
	// the worker, outside the lock) counts this delivery as in flight.
	f := s.book.get(key)
	if !inTransaction {
		f.n++
	}
	s.book.mu.Unlock()
	h := &hold{b: &s.book, key: key, slot: !inTransaction}
	if box.Quota.Set && !box.Quota.Limits.None() {
		d := s.decideQuota(ctx, cfg, box, size)
		if d.Reply != nil {
			h.release()
			return nil, d.Reply
		}
		// Re-check under the lock: another RCPT may have reserved since.
		s.book.mu.Lock()
		held := maildirpp.Usage{Bytes: d.Usage.Bytes + f.reserved, Count: d.Usage.Count + f.count}
		if !held.Fits(leastStored(size), box.Quota.Limits) {
			s.book.mu.Unlock()
			h.release()
			r := replyf(452, 4, 2, 2, "%s (deliveries in progress), try again later", cfg.VirtualMaildirLimitMessage)
			return nil, r
		}
		h.bytes, h.counts = size, true
		f.reserved += size
		f.count++
		s.book.mu.Unlock()
	}
	return h, nil
}

// CheckQuota answers, outside a running server (vlmtpd quota), what RCPT
// would make of a message announced as size bytes to box, with d asking
// the mailbox owner's worker. Reservations are those of this process:
// none.
func CheckQuota(ctx context.Context, cfg *config.Config, d store.Deliverer, box store.Recipient, size int64) QuotaDecision {
	s := &Server{deliver: d, book: book{m: map[string]*inflight{}}}
	return s.decideQuota(ctx, cfg, box, size)
}
