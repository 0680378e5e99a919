// Runs in: a worker, as the mailbox owner (and in the front's in-process Writer in tests).

package store

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// Single-instance delivery (WriterOptions.SingleInstance, the opt-in
// single_instance_delivery): the Maildir recipients of one Deliver call
// get one message file, written and made durable once, then hard-linked
// into each recipient's new/ — Dovecot's maildir_copy_with_hardlinks. The
// file is the same for all of them, so it carries no per-recipient
// Delivered-To or X-Original-To, only Return-Path. Everything else stays
// per recipient: the mailbox limit, the quota decision and its
// maildirsize line (at the link, under that Maildir's quota lock), the
// fsync of each new/ before its success is reported.
//
// On a journalling filesystem the fsync of each new/ also commits the
// file's link count, changed in the same transaction as the entry; on
// ext4 without a journal a crash needs fsck anyway, which recounts links.

// singleInstanceGroup returns the indexes of the recipients that share one
// file: Maildir recipients of this process's uid whose message no filter
// can change (Sieve decides per recipient, and its flags and folders make
// a recipient's file different). Fewer than two: nil, nothing to share.
func (l *Writer) singleInstanceGroup(rcpts []Recipient) []int {
	if !l.opts.SingleInstance || len(rcpts) < 2 {
		return nil
	}
	var group []int
	for i, r := range rcpts {
		if r.Format() == Maildir && r.UID == l.uid && !l.filtered(r) {
			group = append(group, i)
		}
	}
	if len(group) < 2 {
		return nil
	}
	return group
}

// deliverShared delivers msg to rcpts[i] for each i in group: the first
// recipient whose Maildir takes the file holds it in its tmp/ while it is
// linked into every recipient's new/ (or +detail folder), then its tmp/
// name is removed. A recipient on another filesystem (EXDEV) gets a copy
// of its own, with its trace headers, as without the option. errs and
// the batch are as in DeliverTimed.
func (l *Writer) deliverShared(ctx context.Context, msg *Message, rcpts []Recipient, group []int, errs []error, batch *dirSyncBatch) {
	// The header every copy shares: Return-Path only (traceHeader with
	// no X-Original-To and Delivered-To "already there").
	hdr, herr := traceHeader(msg, Recipient{HasDeliveredTo: true})
	srcDir, srcName := -1, ""
	var dataSync time.Duration // the shared fdatasync, which each recipient waited for
	defer func() {
		if srcDir >= 0 {
			unix.Unlinkat(srcDir, srcName, 0)
			unix.Close(srcDir)
		}
	}()
	for _, i := range group {
		r := rcpts[i]
		start := time.Now()
		err := l.linkShared(ctx, msg, r, hdr, herr, i, batch, &srcDir, &srcName, &dataSync)
		if err == errCrossDevice {
			err = l.deliverOne(ctx, msg, r, i, batch, new(Outbound)) // unfiltered: nothing to submit
		} else if t := batch.timing(i); t != nil && err == nil {
			t.Fsync += dataSync
		}
		errs[i] = err
		if t := batch.timing(i); t != nil {
			t.Write = time.Since(start) - t.Fsync
		}
	}
}

// linkShared is one recipient of deliverShared: the checks deliverOne
// makes, the shared file written first if there is none yet, then the
// link.
func (l *Writer) linkShared(ctx context.Context, msg *Message, r Recipient, hdr []byte, herr error, idx int, batch *dirSyncBatch, srcDir *int, srcName *string, dataSync *time.Duration) error {
	mp, err := l.precheck(ctx, msg, r)
	if err != nil {
		return err
	}
	if herr != nil {
		return fail(Temporary, "header", r.Path, herr)
	}
	size := int64(len(hdr)) + msg.Size
	d, _, err := l.openDest(mp, r, detailDest(r), size)
	if err != nil {
		return err
	}
	defer d.close() // batch.add may take over d.new
	if *srcDir < 0 {
		var t Timing
		name, err := l.writeTmp(d.tmp, hdr, msg, &t, r.Path)
		if err != nil {
			return err // the next recipient tries in its own Maildir
		}
		fd, err := unix.Dup(d.tmp)
		if err != nil {
			unix.Unlinkat(d.tmp, name, 0)
			return classify("write", r.Path, err)
		}
		*srcDir, *srcName, *dataSync = fd, name, t.Fsync
	}
	err = l.linkMessage(ctx, r, mp, d, *srcDir, *srcName, size, "", idx, batch)
	if se, ok := err.(*Error); ok && se.Op == "link" && errors.Is(se.Err, unix.EXDEV) {
		return errCrossDevice
	}
	return err
}

// errCrossDevice: the recipient's Maildir is on another filesystem than
// the shared file, which cannot be linked there. (Not any EXDEV: openat2
// also says EXDEV for a path that would leave the base.)
var errCrossDevice = errors.New("store: Maildir on another filesystem than the shared file")
