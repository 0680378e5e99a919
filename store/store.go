// Runs in: a worker (the types are shared with the front).

// Package store writes messages into Maildir and mbox mailboxes: the
// delivery contract shared by in-process delivery and the per-uid workers,
// the writers themselves, their locks and the mailbox limit.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Format is a mailbox format.
type Format uint8

const (
	Mbox Format = iota
	Maildir
)

func (f Format) String() string {
	if f == Maildir {
		return "maildir"
	}
	return "mbox"
}

// FormatOf applies virtual(8)'s rule: a path ending in "/" is a Maildir.
func FormatOf(path string) Format {
	if len(path) > 0 && path[len(path)-1] == '/' {
		return Maildir
	}
	return Mbox
}

// Message is one spooled message, shared by all its recipients.
type Message struct {
	// Sender is the envelope sender in external (quoted) form, "" for <>.
	Sender string
	// Body is the spool: the message with LF line endings, read with
	// ReadAt or from offset 0 through a SectionReader, never modified.
	Body *os.File
	// Size is the body's length in bytes.
	Size int64
	// Arrival is when the message was received (used for the From_ line).
	Arrival time.Time
	// ID is the session's queue id, for logs.
	ID string
	// HasReturnPath: the client already put on top of the message (above
	// every Received:) the Return-Path the writers would add, so they add
	// none. OpenSMTPD's lmtp delivery does.
	HasReturnPath bool
}

// Recipient is one mailbox to write to.
type Recipient struct {
	// Address is the recipient as given to RCPT, in external form and
	// original case: the Delivered-To header value.
	Address string
	// OriginalRecipient is the X-Original-To value (ORCPT, else Address).
	OriginalRecipient string
	// Path is the mailbox relative to the mailbox base (the map result,
	// leading slashes allowed); a trailing "/" marks a Maildir.
	Path string
	// UID and GID own the mailbox; deliveries run with exactly these ids.
	UID, GID int
	// Limit is virtual_mailbox_limit for this mailbox, 0 for none: the mbox
	// file size after the append, or each Maildir message file.
	Limit int64
	// HasDeliveredTo: the client already put "Delivered-To: Address" on
	// top of the message (above every Received:), so the writers add no
	// second one.
	HasDeliveredTo bool
	// Quota is the recipient's entry in virtual_mailbox_limit_maps; the
	// zero value is no entry.
	Quota Quota
	// Folder is the +detail whose Maildir++ folder the message goes to
	// (mapped and checked by DetailFolder), "" for INBOX. The message goes
	// to INBOX if the detail names no folder, the folder does not exist
	// and CreateFolder is not set.
	Folder       string
	CreateFolder bool
	// Sieve is the recipient's active Sieve script (sieve_script_maps),
	// relative to the mailbox base like Path; "" for none. The worker reads
	// it as the mailbox owner, never following a symlink.
	Sieve string
	// NoSieve delivers as if the recipient had no script: the implicit
	// keep only. The front asks for it when a redirect it was to submit
	// failed, so that the message is not lost.
	NoSieve bool
}

// Format is the recipient's mailbox format.
func (r Recipient) Format() Format { return FormatOf(r.Path) }

// Deliverer writes messages into mailboxes. Implementations: Writer (in the
// calling process, only for its own uid) and the worker pool.
type Deliverer interface {
	// Deliver writes msg to every recipient and returns one error per
	// recipient, in order; nil means durably delivered. The errors are
	// *Error values so callers can map them to replies.
	Deliver(ctx context.Context, msg *Message, rcpts []Recipient) []error
	// MailboxSize reports the current size of a recipient's mailbox in
	// bytes (an mbox file's size; 0 for a Maildir or a missing mbox), for
	// limit checks at RCPT time.
	MailboxSize(ctx context.Context, r Recipient) (int64, error)
	// Permits tells, before the message arrives, whether this deliverer
	// may write as uid/gid at all, so the server answers at RCPT instead
	// of after DATA. A refusal is an *Error with Status NotPermitted.
	Permits(uid, gid int) error
}

// Timing is where one recipient's delivery spent its time, for the
// delivery_phase_seconds metrics and the delays= of Postfix-style logs.
type Timing struct {
	// WorkerWait is waiting for a worker process: starting one, or for a
	// free slot under worker_limit. Zero for in-process delivery.
	WorkerWait time.Duration
	// Write is writing the mailbox, mbox lock waits included; Fsync is
	// making it durable (the file's and the directory's fsync).
	Write, Fsync time.Duration
}

// TimedDeliverer is a Deliverer that also reports, per recipient, where
// the time went and what its Sieve scripts ask to submit (redirects,
// vacation replies), which the caller must then do: a redirected message
// is not stored unless Outbound.Kept says so. Deliverers that do not
// implement it are timed as a whole by their caller and submit nothing.
type TimedDeliverer interface {
	DeliverTimed(ctx context.Context, msg *Message, rcpts []Recipient) ([]error, []Timing, []Outbound)
}

// DeliverTimed delivers through d, with its per-recipient timings and
// submissions if d keeps them (a TimedDeliverer: the Writer and the worker
// pool), else the call's time as every recipient's write time and nothing
// to submit.
func DeliverTimed(ctx context.Context, d Deliverer, msg *Message, rcpts []Recipient) ([]error, []Timing, []Outbound) {
	if td, ok := d.(TimedDeliverer); ok {
		return td.DeliverTimed(ctx, msg, rcpts)
	}
	start := time.Now()
	errs := d.Deliver(ctx, msg, rcpts)
	times := make([]Timing, len(rcpts))
	for i := range times {
		times[i].Write = time.Since(start)
	}
	return errs, times, nil
}

// BatchDeliverer is a deliverer that writes several messages in one call
// and makes them durable together (the Writer: one fsync per new/
// directory for all of them).
type BatchDeliverer interface {
	DeliverBatch(ctx context.Context, ds []Delivery) []Delivered
}

// DeliverBatch delivers ds through d: in one call if d is a
// BatchDeliverer, else one message after the other with DeliverTimed.
func DeliverBatch(ctx context.Context, d Deliverer, ds []Delivery) []Delivered {
	if bd, ok := d.(BatchDeliverer); ok {
		return bd.DeliverBatch(ctx, ds)
	}
	res := make([]Delivered, len(ds))
	for i, m := range ds {
		res[i].Errs, res[i].Times, res[i].Outs = DeliverTimed(ctx, d, m.Msg, m.Rcpts)
	}
	return res
}

// DeliverKeeping is Deliver for a caller that submits nothing: every
// recipient whose redirect would have gone out and whose message is not
// kept yet is delivered again with NoSieve, the implicit keep, so nothing
// is lost; vacation replies are dropped.
func DeliverKeeping(ctx context.Context, d TimedDeliverer, msg *Message, rcpts []Recipient) []error {
	errs, _, outs := d.DeliverTimed(ctx, msg, rcpts)
	var again []Recipient
	var idx []int
	for i, o := range outs {
		if i < len(errs) && errs[i] == nil && o.Redirects() > 0 && !o.Kept {
			r := rcpts[i]
			r.NoSieve = true
			again = append(again, r)
			idx = append(idx, i)
		}
	}
	if len(again) > 0 {
		kerrs, _, _ := d.DeliverTimed(ctx, msg, again)
		for j, i := range idx {
			errs[i] = kerrs[j]
		}
	}
	return errs
}

// QuotaReporter is implemented by deliverers that can report a mailbox's
// quota usage (reading it as the mailbox's owner), for decisions at RCPT;
// recalc rebuilds a Maildir's maildirsize from its files first.
type QuotaReporter interface {
	Quota(ctx context.Context, r Recipient, recalc bool) (QuotaUsage, error)
}

// Status classifies a delivery failure; it is what crosses the worker
// protocol and what the server maps to an LMTP reply.
type Status uint8

const (
	OK           Status = iota
	Temporary           // transient I/O or an unclassified failure: 451 4.3.0
	Locked              // lock not acquired before the deadline: 451 4.2.0
	NoSpace             // ENOSPC: 452 4.3.0, as virtual(8)
	OverLimit           // virtual_mailbox_limit or quota: 552 5.2.2
	BadMailbox          // symlink, hard link, wrong owner, not a regular file: 451 4.2.0; bad path: 451 4.3.5
	NotPermitted        // this process may not write as that uid: 451 4.3.0
	WorkerFailed        // the worker died or timed out: 451 4.3.0
	Rejected            // a Sieve reject/ereject: 550 5.7.1 with the script's reason (Error.Err)
)

var statusNames = [...]string{"ok", "temporary", "locked", "no-space", "over-limit", "bad-mailbox", "not-permitted", "worker-failed", "rejected"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Error is a failed delivery to one recipient.
type Error struct {
	Status Status
	Op     string // what was being done: "open", "lock", "write", "link"…
	Path   string // the mailbox, relative to the base
	Err    error  // the cause, for logs only: never shown to the client
}

func (e *Error) Error() string {
	msg := e.Status.String()
	if e.Op != "" {
		msg += ": " + e.Op
	}
	if e.Path != "" {
		msg += " " + e.Path
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// StatusOf returns the Status of err: OK for nil, the Status of an *Error
// in its chain, Temporary for anything else.
func StatusOf(err error) Status {
	if err == nil {
		return OK
	}
	var se *Error
	if errors.As(err, &se) {
		return se.Status
	}
	return Temporary
}

// Rejection is the cause of a Rejected error: the reason a Sieve script
// gave, which, unlike other causes, is meant for the client's reply.
type Rejection struct{ Reason string }

func (r *Rejection) Error() string { return r.Reason }

// RejectReason returns the reason of a Rejected error.
func RejectReason(err error) (string, bool) {
	var se *Error
	if !errors.As(err, &se) || se.Status != Rejected {
		return "", false
	}
	if se.Err == nil {
		return "", true
	}
	return se.Err.Error(), true
}
