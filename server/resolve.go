package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/server/lmtp"
	"github.com/vlmtpd/vlmtpd/store"
)

// Resolver turns a recipient address into a mailbox the way virtual(8)
// does: domain list, mailbox map, uid map, gid map, then policy checks.
type Resolver struct {
	domains    *maps.DomainList
	mailboxes  maps.List
	uids, gids maps.List
	delims     string
	minUID     int
	limit      int64
}

// NewResolver opens every table the configuration names.
func NewResolver(cfg *config.Config) (*Resolver, error) {
	return newResolver(cfg, cfg.MapOptions())
}

// newResolver opens the tables with opts (the server's observe lookups).
func newResolver(cfg *config.Config, opts maps.Options) (*Resolver, error) {
	r := &Resolver{delims: cfg.RecipientDelimiter, minUID: cfg.VirtualMinimumUID, limit: cfg.VirtualMailboxLimit}
	var err error
	if r.domains, err = maps.NewDomainList(cfg.VirtualMailboxDomains, opts); err != nil {
		return nil, fmt.Errorf("virtual_mailbox_domains: %w", err)
	}
	if r.mailboxes, err = maps.OpenList(cfg.VirtualMailboxMaps, opts); err != nil {
		return nil, fmt.Errorf("virtual_mailbox_maps: %w", err)
	}
	if r.uids, err = maps.OpenList(cfg.VirtualUIDMaps, opts); err != nil {
		r.Close()
		return nil, fmt.Errorf("virtual_uid_maps: %w", err)
	}
	if r.gids, err = maps.OpenList(cfg.VirtualGIDMaps, opts); err != nil {
		r.Close()
		return nil, fmt.Errorf("virtual_gid_maps: %w", err)
	}
	return r, nil
}

// Close releases the tables.
func (r *Resolver) Close() error {
	return errors.Join(r.domains.Close(), r.mailboxes.Close(), r.uids.Close(), r.gids.Close())
}

// Resolution is the outcome of resolving one address, with enough detail
// to explain it.
type Resolution struct {
	Address   maps.Address // folded, internal form
	Domain    string       // the virtual_mailbox_domains item that decided
	Mailbox   maps.Hit
	UID, GID  maps.Hit
	Recipient store.Recipient
	// Err is nil when the address is deliverable, else the reply RCPT gets.
	Err *Reply
}

// Resolve looks rcpt (internal form, original case) up. It never returns
// a Go error: every outcome, including backend failures, is a Reply.
func (r *Resolver) Resolve(ctx context.Context, rcpt string) *Resolution {
	given := maps.ParseAddress(rcpt)
	res := &Resolution{Address: given.Fold()}
	res.Recipient.Address = given.Quoted()
	res.Recipient.Limit = r.limit
	addr := res.Address

	if !utf8.ValidString(rcpt) {
		// Postfix: a key that is not valid UTF-8 is not found.
		res.Err = replyf(550, 5, 1, 1, "unknown user")
		return res
	}
	if addr.Domain == "" {
		res.Err = replyf(550, 5, 1, 2, "address has no domain")
		return res
	}
	ok, item, err := r.domains.Explain(ctx, addr.Domain)
	res.Domain = item
	if err != nil {
		res.Err = lookupFailed("virtual_mailbox_domains", err)
		return res
	}
	if !ok {
		res.Err = replyf(550, 5, 1, 2, "domain %s is not served here", addr.Domain)
		return res
	}

	hit, found, err := r.mailboxes.FindAddress(ctx, addr, r.delims)
	if err != nil {
		res.Err = lookupFailed("virtual_mailbox_maps", err)
		return res
	}
	if !found {
		res.Err = replyf(550, 5, 1, 1, "unknown user")
		return res
	}
	res.Mailbox = hit
	if reason := badPath(hit.Value); reason != "" {
		res.Err = configError(fmt.Sprintf("bad mailbox path %q from %s: %s", hit.Value, hit.Table, reason))
		return res
	}
	res.Recipient.Path = hit.Value

	uid, rep := r.id(ctx, addr, r.uids, "virtual_uid_maps", &res.UID)
	if rep != nil {
		res.Err = rep
		return res
	}
	if uid < r.minUID {
		res.Err = configError(fmt.Sprintf("bad uid %d in virtual_uid_maps (virtual_minimum_uid is %d)", uid, r.minUID))
		return res
	}
	gid, rep := r.id(ctx, addr, r.gids, "virtual_gid_maps", &res.GID)
	if rep != nil {
		res.Err = rep
		return res
	}
	if gid == 0 {
		res.Err = configError("bad gid 0 in virtual_gid_maps")
		return res
	}
	res.Recipient.UID, res.Recipient.GID = uid, gid
	return res
}

// id looks up a uid or gid: not found or not a plain decimal number is a
// configuration error (4.3.5), never a bounce.
func (r *Resolver) id(ctx context.Context, addr maps.Address, l maps.List, param string, hit *maps.Hit) (int, *Reply) {
	h, found, err := l.FindAddress(ctx, addr, r.delims)
	if err != nil {
		return 0, lookupFailed(param, err)
	}
	if !found {
		return 0, configError("not found in " + param)
	}
	*hit = h
	n, err := strconv.ParseUint(strings.TrimSpace(h.Value), 10, 31)
	if err != nil {
		return 0, configError(fmt.Sprintf("bad id %q in %s (%s)", h.Value, param, h.Table))
	}
	return int(n), nil
}

// badPath reports why a map result may not be used as a mailbox path, or
// "" if it may: no ".." component, no control characters, not empty.
func badPath(p string) string {
	if strings.Trim(p, "/") == "" {
		return "empty path"
	}
	if lmtp.HasControl(p) {
		return "control character"
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return `".." component`
		}
	}
	return ""
}
