// Runs in: a worker, as the mailbox owner.

package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Writer delivers in the calling process, to mailboxes of the process's own
// uid only. It is safe for concurrent use.
type Writer struct {
	opts WriterOptions
	log  *slog.Logger
	uid  int    // the only uid this process may deliver as
	host string // the Maildir-safe hostname
	pid  string

	queue inodeQueue // this process's mbox writers, one at a time per file

	scripts scriptCache // compiled Sieve scripts, by file version

	tmpMu      sync.Mutex
	tmpCleaned map[[2]uint64]bool // Maildir tmp/ directories (dev, ino) cleaned by this process

	mu   sync.RWMutex // Close waits for deliveries that use base
	base int          // the mailbox base, O_PATH|O_DIRECTORY; -1 when closed
}

var _ Deliverer = (*Writer)(nil)

// Defaults of WriterOptions and SieveOptions fields left zero: the
// configuration's defaults (server/config's table, which owns them;
// TestPackageDefaultsAgree there keeps these equal). DefaultLockTimeout
// is deliver_lock_attempts × deliver_lock_delay.
const DefaultLockTimeout = 20 * time.Second

// DefaultLockMethods is virtual_mailbox_lock's default.
var DefaultLockMethods = []string{LockFcntl, LockDotlock}

// NewWriter opens the mailbox base (which must be an absolute path to an
// existing directory) once; every mailbox is then reached beneath it.
// Empty options get their defaults; an unknown or repeated lock method is
// an error.
func NewWriter(base string, opts WriterOptions) (*Writer, error) {
	if !filepath.IsAbs(base) {
		return nil, fmt.Errorf("store: mailbox base %q is not an absolute path", base)
	}
	if len(opts.LockMethods) == 0 {
		opts.LockMethods = DefaultLockMethods
	}
	opts.LockMethods = append([]string(nil), opts.LockMethods...)
	seen := map[string]bool{}
	for _, m := range opts.LockMethods {
		if !slices.Contains(LockMethods, m) {
			return nil, fmt.Errorf("store: unknown mailbox lock method %q (want one of %s)", m, strings.Join(LockMethods, ", "))
		}
		if seen[m] {
			return nil, fmt.Errorf("store: mailbox lock method %q given twice", m)
		}
		seen[m] = true
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("store: hostname for Maildir names: %w", err)
		}
		opts.Hostname = h
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	fd, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("store: open mailbox base: %w", &os.PathError{Op: "open", Path: base, Err: err})
	}
	return &Writer{
		opts: opts,
		log:  opts.Logger,
		uid:  os.Geteuid(),
		host: maildirHost(opts.Hostname),
		pid:  strconv.Itoa(os.Getpid()),
		base: fd,
	}, nil
}

// Close releases the mailbox base. It waits for deliveries in progress;
// later calls fail with a Temporary error.
func (l *Writer) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.base < 0 {
		return nil
	}
	err := unix.Close(l.base)
	l.base = -1
	return err
}

var errClosed = errors.New("store: deliverer is closed")

// maxParallelRecipients bounds the recipients of one Deliver call written
// at the same time. Deliveries wait on the disk, not the CPU: writing
// them together lets the filesystem commit their fsyncs together.
const maxParallelRecipients = 8

// Deliver writes msg into each recipient's mailbox. Recipients are written
// concurrently (at most maxParallelRecipients at once) and independently:
// a failure for one never affects another. Recipients that share a
// Maildir share one fsync of its new/ directory, done after all links and
// before Deliver returns.
// Nothing is submitted: see DeliverKeeping.
func (l *Writer) Deliver(ctx context.Context, msg *Message, rcpts []Recipient) []error {
	return DeliverKeeping(ctx, l, msg, rcpts)
}

var _ TimedDeliverer = (*Writer)(nil)

// DeliverTimed is Deliver that also reports each recipient's write and
// fsync time, and what each one's Sieve scripts ask the caller to submit.
// A Maildir's new/ fsync shared by several recipients counts for each of
// them: each waited for it.
func (l *Writer) DeliverTimed(ctx context.Context, msg *Message, rcpts []Recipient) ([]error, []Timing, []Outbound) {
	d := l.DeliverBatch(ctx, []Delivery{{Msg: msg, Rcpts: rcpts}})[0]
	return d.Errs, d.Times, d.Outs
}

// Delivery is one message and its recipients, for DeliverBatch.
type Delivery struct {
	Msg   *Message
	Rcpts []Recipient
}

// Delivered is one Delivery's outcome: per recipient, as DeliverTimed's.
type Delivered struct {
	Errs  []error
	Times []Timing
	Outs  []Outbound
}

// maxParallelBatch bounds the recipients of one DeliverBatch call written
// at the same time, over all its messages.
const maxParallelBatch = 32

// DeliverBatch is DeliverTimed for several messages at once (a worker
// serving the deliveries that waited for it): all their recipients are
// written concurrently and then share one fsync per new/ directory, so a
// Maildir that several sessions deliver into is made durable once for all
// of them (group commit). Nothing is reported before that fsync; each
// recipient's outcome stays its own.
func (l *Writer) DeliverBatch(ctx context.Context, ds []Delivery) []Delivered {
	n := 0
	for _, d := range ds {
		n += len(d.Rcpts)
	}
	errs := make([]error, n)
	times := make([]Timing, n)
	outs := make([]Outbound, n)
	l.mu.RLock()
	defer l.mu.RUnlock()
	batch := dirSyncBatch{times: times}
	one := func(msg *Message, i int, r Recipient) {
		start := time.Now()
		errs[i] = l.deliverOne(ctx, msg, r, i, &batch, &outs[i])
		times[i].Write = time.Since(start) - times[i].Fsync
	}
	if n == 1 {
		for _, d := range ds {
			if len(d.Rcpts) == 1 {
				one(d.Msg, 0, d.Rcpts[0])
			}
		}
	} else if n > 1 {
		// The batch's indexes run over all recipients of all messages.
		all := make([]Recipient, 0, n)
		for _, d := range ds {
			all = append(all, d.Rcpts...)
		}
		sem := make(chan struct{}, min(maxParallelRecipients*len(ds), maxParallelBatch))
		var wg sync.WaitGroup
		off := 0
		for _, d := range ds {
			msg := d.Msg
			shared := l.singleInstanceGroup(d.Rcpts)
			inShared := make([]bool, len(d.Rcpts))
			for j, i := range shared {
				inShared[i] = true
				shared[j] = off + i
			}
			if shared != nil {
				// One task: the links follow the one write.
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					l.deliverShared(ctx, msg, all, shared, errs, &batch)
				})
			}
			for i, r := range d.Rcpts {
				if inShared[i] {
					continue
				}
				at := off + i
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					one(msg, at, r)
				})
			}
			off += len(d.Rcpts)
		}
		wg.Wait()
	}
	batch.sync(errs)
	for i := range outs {
		if errs[i] != nil {
			outs[i] = Outbound{} // nothing is sent for a message not stored
		}
	}
	res := make([]Delivered, len(ds))
	off := 0
	for k, d := range ds {
		end := off + len(d.Rcpts)
		res[k] = Delivered{Errs: errs[off:end:end], Times: times[off:end:end], Outs: outs[off:end:end]}
		off = end
	}
	return res
}

// precheck is what every recipient's delivery checks first: the writer may
// deliver as r's uid, the delivery is still wanted, there is a message,
// and r.Path is a path beneath the base, which it returns parsed.
func (l *Writer) precheck(ctx context.Context, msg *Message, r Recipient) (mailboxPath, error) {
	if err := l.permitted(r); err != nil {
		return mailboxPath{}, err
	}
	if err := ctx.Err(); err != nil {
		return mailboxPath{}, fail(Temporary, "deliver", r.Path, err)
	}
	if msg == nil || msg.Body == nil || msg.Size < 0 {
		return mailboxPath{}, fail(Temporary, "deliver", r.Path, errors.New("no message to deliver"))
	}
	mp, err := parsePath(r.Path)
	if err != nil {
		return mailboxPath{}, fail(BadMailbox, "path", r.Path, err)
	}
	return mp, nil
}

func (l *Writer) deliverOne(ctx context.Context, msg *Message, r Recipient, idx int, batch *dirSyncBatch, out *Outbound) error {
	mp, err := l.precheck(ctx, msg, r)
	if err != nil {
		return err
	}
	hdr, err := traceHeader(msg, r)
	if err != nil {
		return fail(Temporary, "header", r.Path, err)
	}
	if l.filtered(r) {
		return l.deliverSieve(ctx, msg, r, mp, hdr, idx, batch, out)
	}
	if r.Format() == Maildir {
		return l.deliverMaildir(ctx, msg, r, mp, hdr, idx, batch, detailDest(r))
	}
	return l.deliverMbox(ctx, msg, r, mp, hdr, batch.timing(idx))
}

// permitted checks that this process may write as r.UID and that the
// deliverer is open. It must hold l.mu.
func (l *Writer) permitted(r Recipient) error {
	if l.base < 0 {
		return fail(Temporary, "deliver", r.Path, errClosed)
	}
	if r.UID != l.uid {
		l.log.Warn("cannot deliver: this process lacks privileges for the mailbox uid",
			"path", r.Path, "uid", r.UID, "process_uid", l.uid)
		return fail(NotPermitted, "deliver", r.Path, l.notUID(r.UID))
	}
	return nil
}

// notUID is why this process may not deliver as uid.
func (l *Writer) notUID(uid int) error {
	return fmt.Errorf("process running as uid %d lacks privileges to deliver as uid %d", l.uid, uid)
}

// Permits reports whether this process may deliver as uid: only its own.
func (l *Writer) Permits(uid, gid int) error {
	if uid != l.uid {
		return fail(NotPermitted, "deliver", "", l.notUID(uid))
	}
	return nil
}

// MailboxSize reports an mbox's current size (0 if it does not exist yet)
// and 0 for a Maildir. The mbox must be a regular file beneath the base.
func (l *Writer) MailboxSize(ctx context.Context, r Recipient) (int64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.permitted(r); err != nil {
		return 0, err
	}
	mp, err := parsePath(r.Path)
	if err != nil {
		return 0, fail(BadMailbox, "path", r.Path, err)
	}
	if r.Format() == Maildir {
		return 0, nil
	}
	dirfd, err := openBeneath(l.base, mp.dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err == unix.ENOENT {
		return 0, nil
	}
	if err != nil {
		return 0, classify("stat", r.Path, err)
	}
	defer unix.Close(dirfd)
	var st unix.Stat_t
	err = unix.Fstatat(dirfd, mp.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return 0, nil
	}
	if err != nil {
		return 0, classify("stat", r.Path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, fail(BadMailbox, "stat", r.Path, fmt.Errorf("mailbox is not a regular file (mode %#o)", st.Mode&unix.S_IFMT))
	}
	return st.Size, nil
}

// traceHeader is what virtual(8) puts before the message, in its order:
// Return-Path (with angle brackets, <> for the null sender), X-Original-To
// (left out when unknown) and Delivered-To (both without brackets, as
// Postfix writes them and as its loop detection compares them). A
// Return-Path or Delivered-To the client already put on top with the same
// value (msg.HasReturnPath, r.HasDeliveredTo) is not written twice.
func traceHeader(msg *Message, r Recipient) ([]byte, error) {
	sender := msg.Sender
	for _, s := range []string{sender, r.Address, r.OriginalRecipient} {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == 0x7f {
				return nil, fmt.Errorf("control character in envelope address %q", s)
			}
		}
	}
	b := make([]byte, 0, 64+len(sender)+len(r.Address)+len(r.OriginalRecipient))
	if !msg.HasReturnPath {
		b = append(b, "Return-Path: <"...)
		b = append(b, sender...)
		b = append(b, ">\n"...)
	}
	if r.OriginalRecipient != "" {
		b = append(b, "X-Original-To: "...)
		b = append(b, r.OriginalRecipient...)
		b = append(b, '\n')
	}
	if !r.HasDeliveredTo {
		b = append(b, "Delivered-To: "...)
		b = append(b, r.Address...)
		b = append(b, '\n')
	}
	return b, nil
}
