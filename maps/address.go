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

// Fold case-folds the whole address, UTF-8 aware, as virtual(8) does before
// any lookup.
func (a Address) Fold() Address {
	return Address{Local: strings.ToLower(a.Local), Domain: strings.ToLower(a.Domain)}
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

// SplitExtension cuts local at the first character from delims, with the
// rules of Postfix's split_addr: no split when there is no delimiter or
// the localpart starts with one; never for postmaster and MAILER-DAEMON;
// and, when "-" is a delimiter, never for owner-* and *-request.
func SplitExtension(local, delims string) (base, ext string, ok bool) {
	if delims == "" {
		return local, "", false
	}
	lower := strings.ToLower(local)
	if lower == "postmaster" || lower == "mailer-daemon" {
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

// FindAddress searches the list for a recipient in virtual(8)'s order:
// the full address (every table), the address without its extension, then
// "@domain" (fixed-key tables only). Each key is tried in quoted form and
// then unquoted if that differs. addr must already be folded. The search
// stops at the first hit or the first error.
func (l List) FindAddress(ctx context.Context, addr Address, delims string) (Hit, bool, error) {
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
	if base, _, split := SplitExtension(addr.Local, delims); split {
		if h, ok, err := try(Address{Local: base, Domain: addr.Domain}, true); ok || err != nil {
			return h, ok, err
		}
	}
	if addr.Domain != "" {
		return l.Find(ctx, "@"+addr.Domain, true)
	}
	return Hit{}, false, nil
}
