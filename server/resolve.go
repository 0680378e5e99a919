// Runs in: the front.

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
	"github.com/vlmtpd/vlmtpd/store/maildirpp"
)

// Resolver turns a recipient address into a mailbox the way virtual(8)
// does: domain list, mailbox map, uid map, gid map, then policy checks.
type Resolver struct {
	domains    *maps.DomainList
	mailboxes  maps.List
	uids, gids maps.List
	limits     maps.List // virtual_mailbox_limit_maps, nil if unset
	scripts    maps.List // sieve_script_maps, nil if unset
	strategy   maps.Strategy
	myorigin   string           // folded
	mydest     *maps.DomainList // mydestination
	minUID     int
	limit      int64
	// what a quota entry turns on, and +detail delivery
	extended, create, detail, createDetail bool
}

// NewResolver opens every table the configuration names.
func NewResolver(cfg *config.Config) (*Resolver, error) {
	return newResolver(cfg, cfg.MapOptions())
}

// newResolver opens the tables with opts (the server's observe lookups).
func newResolver(cfg *config.Config, opts maps.Options) (*Resolver, error) {
	r := &Resolver{minUID: cfg.VirtualMinimumUID, limit: cfg.VirtualMailboxLimit, myorigin: maps.FoldKey(cfg.MyOrigin),
		extended: cfg.VirtualMaildirExtended, create: cfg.VirtualCreateMaildirsize,
		detail: cfg.SaveToDetailMailbox, createDetail: cfg.DetailMailboxCreate}
	r.strategy = maps.Strategy{Delimiters: cfg.RecipientDelimiter, DoubleBounce: cfg.DoubleBounceSender, Local: r.isLocal}
	var err error
	if r.domains, err = maps.NewDomainList(cfg.VirtualMailboxDomains, opts); err != nil {
		return nil, fmt.Errorf("virtual_mailbox_domains: %w", err)
	}
	if r.mydest, err = maps.NewDomainList(cfg.MyDestination, opts); err != nil {
		r.domains.Close()
		return nil, fmt.Errorf("mydestination: %w", err)
	}
	if r.mailboxes, err = maps.OpenList(cfg.VirtualMailboxMaps, opts); err != nil {
		r.Close()
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
	if len(cfg.VirtualMailboxLimitMaps) > 0 {
		if r.limits, err = maps.OpenList(cfg.VirtualMailboxLimitMaps, opts); err != nil {
			r.Close()
			return nil, fmt.Errorf("virtual_mailbox_limit_maps: %w", err)
		}
	}
	if len(cfg.SieveScriptMaps) > 0 {
		if r.scripts, err = maps.OpenList(cfg.SieveScriptMaps, opts); err != nil {
			r.Close()
			return nil, fmt.Errorf("sieve_script_maps: %w", err)
		}
	}
	return r, nil
}

// Close releases the tables.
func (r *Resolver) Close() error {
	var lerr, serr error
	if r.limits != nil {
		lerr = r.limits.Close()
	}
	if r.scripts != nil {
		serr = r.scripts.Close()
	}
	return errors.Join(r.domains.Close(), r.mydest.Close(), r.mailboxes.Close(), r.uids.Close(), r.gids.Close(), lerr, serr)
}

// isLocal is Postfix's test in mail_addr_find for looking up the bare
// localpart: the domain is $myorigin (case-insensitive), or, after one
// trailing dot is cut, in $mydestination (resolve_local). Address
// literals matching inet_interfaces are not local here: vlmtpd has no
// such setting. A failing mydestination table is an error.
func (r *Resolver) isLocal(ctx context.Context, domain string) (bool, error) {
	if domain == r.myorigin {
		return true, nil
	}
	d, ok := strings.CutSuffix(domain, ".")
	if !ok {
		d = domain
	}
	if d == "" || strings.HasSuffix(d, ".") {
		return false, nil
	}
	return r.mydest.Match(ctx, d)
}

// Resolution is the outcome of resolving one address, with enough detail
// to explain it.
type Resolution struct {
	Address   maps.Address // folded, internal form
	Domain    string       // the virtual_mailbox_domains item that decided
	Mailbox   maps.Hit
	UID, GID  maps.Hit
	Quota     maps.Hit // virtual_mailbox_limit_maps, if it has an entry
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

	hit, found, err := r.mailboxes.Search(ctx, addr, r.strategy)
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
	if namesDirectory(hit.Value) {
		// virtual(8) opens base/result as an mbox, which fails on a
		// directory: 4.2.0. Cleaning the path would write another file.
		res.Err = replyf(451, 4, 2, 0, "mailbox cannot be opened, will retry")
		res.Err.Detail = fmt.Sprintf("mailbox path %q from %s names a directory (it ends in \"/.\"); end it in \"/\" for a Maildir", hit.Value, hit.Table)
		return res
	}
	res.Recipient.Path = hit.Value

	uid, rep := r.id(ctx, addr, r.uids, "virtual_uid_maps", &res.UID)
	if rep != nil {
		res.Err = rep
		return res
	}
	gid, rep := r.id(ctx, addr, r.gids, "virtual_gid_maps", &res.GID)
	if rep != nil {
		res.Err = rep
		return res
	}
	if err := (store.IDPolicy{MinUID: r.minUID}).Check(uid, gid); err != nil {
		res.Err = configError(fmt.Sprintf("%v (virtual_uid_maps %s, virtual_gid_maps %s)", err, res.UID.Table, res.GID.Table))
		return res
	}
	res.Recipient.UID, res.Recipient.GID = uid, gid
	if rep := r.quota(ctx, addr, res); rep != nil {
		res.Err = rep
		return res
	}
	if rep := r.sieveScript(ctx, addr, res); rep != nil {
		res.Err = rep
		return res
	}
	if r.detail && res.Recipient.Format() == store.Maildir && hit.Key != addr.Quoted() && hit.Key != addr.String() && hit.Key != addr.Local {
		// The extension as the client wrote it: folder names keep case.
		// Not when the address with its extension has its own entry,
		// with the domain or, for a $mydestination domain, bare: that is
		// a mailbox of its own, not a folder.
		if _, ext, ok := maps.SplitExtension(given.Local, r.strategy.Delimiters); ok {
			res.Recipient.Folder, res.Recipient.CreateFolder = ext, r.createDetail
		}
	}
	return res
}

// quota looks the recipient up in virtual_mailbox_limit_maps (like
// virtual_uid_maps: full address, without extension, @domain). An entry
// replaces virtual_mailbox_limit: for a Maildir it limits the whole
// Maildir++ tree, for an mbox the file's size (a message count means
// nothing there and is ignored). A malformed entry defers (4.3.5).
func (r *Resolver) quota(ctx context.Context, addr maps.Address, res *Resolution) *Reply {
	if r.limits == nil {
		return nil
	}
	h, found, err := r.limits.Search(ctx, addr, r.strategy)
	if err != nil {
		return lookupFailed("virtual_mailbox_limit_maps", err)
	}
	if !found {
		return nil
	}
	res.Quota = h
	l, err := maildirpp.ParseLimits(h.Value)
	if err != nil {
		return configError(fmt.Sprintf("bad quota %q in virtual_mailbox_limit_maps (%s): %v", h.Value, h.Table, err))
	}
	rc := &res.Recipient
	rc.Quota = store.Quota{Set: true, Limits: l, Extended: r.extended, Create: r.create}
	rc.Limit = 0
	if rc.Format() == store.Mbox {
		rc.Quota.Limits.Count = 0
		rc.Quota.Extended, rc.Quota.Create = false, false
		rc.Limit = l.Bytes
	}
	return nil
}

// sieveScript looks the recipient's active Sieve script up in
// sieve_script_maps, the way virtual_mailbox_maps is searched. The result
// is a path beneath virtual_mailbox_base, checked like a mailbox path; the
// worker opens it as the mailbox owner (the front never reads it). No
// entry: no script.
func (r *Resolver) sieveScript(ctx context.Context, addr maps.Address, res *Resolution) *Reply {
	if r.scripts == nil {
		return nil
	}
	h, found, err := r.scripts.Search(ctx, addr, r.strategy)
	if err != nil {
		return lookupFailed("sieve_script_maps", err)
	}
	if !found {
		return nil
	}
	if reason := badPath(h.Value); reason != "" || strings.HasSuffix(h.Value, "/") {
		if reason == "" {
			reason = "names a directory"
		}
		return configError(fmt.Sprintf("bad Sieve script path %q from %s: %s", h.Value, h.Table, reason))
	}
	res.Recipient.Sieve = h.Value
	return nil
}

// id looks up a uid or gid: not found or not a plain decimal number up to
// store.MaxID is a configuration error (4.3.5), never a bounce.
func (r *Resolver) id(ctx context.Context, addr maps.Address, l maps.List, param string, hit *maps.Hit) (int, *Reply) {
	h, found, err := l.Search(ctx, addr, r.strategy)
	if err != nil {
		return 0, lookupFailed(param, err)
	}
	if !found {
		return 0, configError("not found in " + param)
	}
	*hit = h
	n, ok := ParseID(h.Value)
	if !ok {
		return 0, configError(fmt.Sprintf("bad id %q in %s (%s)", h.Value, param, h.Table))
	}
	return n, nil
}

// ParseID reads a uid or gid as a table gives it: a plain decimal number
// up to store.MaxID, surrounding blanks allowed.
func ParseID(v string) (int, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil || n > store.MaxID {
		return 0, false
	}
	return int(n), true
}

// namesDirectory reports whether a mailbox path (an mbox: no trailing
// "/") ends in a "." component, which names the directory before it.
func namesDirectory(p string) bool {
	return p == "." || strings.HasSuffix(p, "/.")
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
