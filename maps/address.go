// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"context"
	"strings"
)

// Address is a recipient in internal (unquoted) form.
type Address struct {
	Local  string
	Domain string // empty for an address without "@"
}

// ParseAddress splits an internal-form address at its last "@".
func ParseAddress(s string) Address {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return Address{Local: s}
	}
	return Address{Local: s[:i], Domain: s[i+1:]}
}

// String is the internal (unquoted) form.
func (a Address) String() string {
	if a.Domain == "" {
		return a.Local
	}
	return a.Local + "@" + a.Domain
}

// Quoted is the RFC 5322 external form: the localpart is quoted unless it
// is a dot-atom (Postfix's quote_822_local).
func (a Address) Quoted() string {
	l := QuoteLocal(a.Local)
	if a.Domain == "" {
		return l
	}
	return l + "@" + a.Domain
}

// Fold case-folds the whole address with FoldKey (full Unicode case
// folding), as virtual(8) does before any lookup.
func (a Address) Fold() Address {
	return Address{Local: FoldKey(a.Local), Domain: FoldKey(a.Domain)}
}

// QuoteLocal returns local unchanged if it is a dot-atom, else quoted with
// a backslash before '"', '\' and CR.
func QuoteLocal(local string) string {
	if isDotAtom(local) {
		return local
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		c := local[i]
		if c == '"' || c == '\\' || c == '\r' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f || strings.IndexByte(`()<>@,;:\"[]`, c) >= 0 {
			return false
		}
	}
	return true
}

// DefaultDoubleBounce is Postfix's default double_bounce_sender.
const DefaultDoubleBounce = "double-bounce"

// SplitExtension cuts local at the first character from delims, with the
// rules of Postfix's split_addr: no split when there is no delimiter or
// the localpart starts with one; never for postmaster, MAILER-DAEMON and
// the default double_bounce_sender; and, when "-" is a delimiter, never
// for owner-* and *-request.
func SplitExtension(local, delims string) (base, ext string, ok bool) {
	return Strategy{Delimiters: delims}.split(local)
}

// Strategy is how FindAddress searches: mail_addr_find(3)'s default
// strategy with the settings it reads.
type Strategy struct {
	// Delimiters is recipient_delimiter, a set of characters.
	Delimiters string
	// DoubleBounce is double_bounce_sender, never split; empty means
	// DefaultDoubleBounce.
	DoubleBounce string
	// Local reports whether a (folded) domain is $myorigin or in
	// $mydestination: then the bare localpart is looked up too, as
	// Postfix's mail_addr_find does. nil: never.
	Local func(ctx context.Context, domain string) (bool, error)
}

func (s Strategy) split(local string) (base, ext string, ok bool) {
	delims := s.Delimiters
	if delims == "" {
		return local, "", false
	}
	db := s.DoubleBounce
	if db == "" {
		db = DefaultDoubleBounce
	}
	// split_addr compares with strcasecmp: ASCII case only.
	lower := strings.ToLower(local)
	if lower == "postmaster" || lower == "mailer-daemon" || lower == strings.ToLower(db) {
		return local, "", false
	}
	if strings.Contains(delims, "-") && (strings.HasPrefix(lower, "owner-") || strings.HasSuffix(lower, "-request")) {
		return local, "", false
	}
	i := strings.IndexAny(local, delims)
	if i <= 0 {
		return local, "", false
	}
	return local[:i], local[i+1:], true
}

// FindAddress is Search with only recipient_delimiter set.
func (l List) FindAddress(ctx context.Context, addr Address, delims string) (Hit, bool, error) {
	return l.Search(ctx, addr, Strategy{Delimiters: delims})
}

// Search looks a recipient up in virtual(8)'s order:
//  1. the full address (every table);
//  2. the address without its extension;
//  3. if the domain is local (s.Local): the bare localpart with its
//     extension, then without;
//  4. "@domain".
//
// Steps 2-4 ask fixed-key tables only. Each key is tried in quoted form
// and then unquoted if that differs. addr must already be folded. The
// search stops at the first hit or the first error.
func (l List) Search(ctx context.Context, addr Address, s Strategy) (Hit, bool, error) {
	try := func(a Address, fixedOnly bool) (Hit, bool, error) {
		q := a.Quoted()
		if h, ok, err := l.Find(ctx, q, fixedOnly); ok || err != nil {
			return h, ok, err
		}
		if u := a.String(); u != q {
			return l.Find(ctx, u, fixedOnly)
		}
		return Hit{}, false, nil
	}
	if h, ok, err := try(addr, false); ok || err != nil {
		return h, ok, err
	}
	base, _, split := s.split(addr.Local)
	if split {
		if h, ok, err := try(Address{Local: base, Domain: addr.Domain}, true); ok || err != nil {
			return h, ok, err
		}
	}
	if addr.Domain == "" {
		return Hit{}, false, nil
	}
	if s.Local != nil {
		local, err := s.Local(ctx, addr.Domain)
		if err != nil {
			return Hit{}, false, err
		}
		if local {
			if h, ok, err := try(Address{Local: addr.Local}, true); ok || err != nil {
				return h, ok, err
			}
			if split {
				if h, ok, err := try(Address{Local: base}, true); ok || err != nil {
					return h, ok, err
				}
			}
		}
	}
	return l.Find(ctx, "@"+addr.Domain, true)
}
