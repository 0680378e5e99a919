// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// DomainList is a Postfix string list of domains, as used by
// virtual_mailbox_domains (match_list(3) with exact, case-insensitive
// matching and no subdomain matching). Its items are, in order:
//   - a domain name, matched exactly;
//   - "/absolute/file": the file's logical lines (postmap source rules,
//     '#' comments) are read once at start-up and parsed again as items;
//   - "type:table": the bare domain is looked up, a hit is a match (the
//     value is ignored), a lookup error is returned and means "try later";
//   - any of these after "!", which negates it; a '!' before a file applies
//     to every item in it (so "!x" inside "!/file" matches x).
//
// The first item that matches decides; when none does the domain is not
// in the list.
type DomainList struct {
	items  []domainItem
	tables []Map
	text   string
}

type domainItem struct {
	names  map[string]struct{} // a run of literal names with the same polarity
	table  Map
	negate bool
	source string // table items: the item as written
	file   string // the file the item came from, if any
}

// NewDomainList parses items, already split the way SplitList splits a
// main.cf value. Tables are opened with opts; a table that cannot be
// opened, an unreadable file or a "$name" reference (not expanded in
// vlmtpd's TOML configuration) is an error.
func NewDomainList(items []string, opts Options) (*DomainList, error) {
	l := &DomainList{text: strings.Join(items, ", ")}
	for _, it := range items {
		if err := l.add(it, false, "", opts, 0); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

const maxDomainFileDepth = 10

func (l *DomainList) add(item string, negate bool, file string, opts Options, depth int) error {
	orig := item
	for strings.HasPrefix(item, "!") {
		negate = !negate
		item = strings.TrimLeftFunc(item[1:], isSpaceRune)
	}
	switch {
	case item == "":
		return fmt.Errorf("%q: nothing after '!'", orig)
	case strings.HasPrefix(item, "$"):
		return fmt.Errorf("%q: $parameter expansion is not available in vlmtpd's configuration; list the domains or tables themselves", orig)
	case strings.HasPrefix(item, "/"):
		if depth >= maxDomainFileDepth {
			return fmt.Errorf("%s: files included more than %d deep", item, maxDomainFileDepth)
		}
		f, err := os.Open(item)
		if err != nil {
			return err
		}
		defer f.Close()
		warn := Warn(func(msg string) { opts.Logger.Warn(msg, "list", "virtual_mailbox_domains") })
		return ScanLines(f, item, warn, func(_ int, text string) error {
			for _, sub := range SplitList(text) {
				if err := l.add(sub, negate, item, opts, depth+1); err != nil {
					return fmt.Errorf("%s: %w", item, err)
				}
			}
			return nil
		})
	case strings.Contains(item, ":") && !strings.HasPrefix(item, "["):
		m, err := Open(item, opts)
		if err != nil {
			return err
		}
		l.tables = append(l.tables, m)
		l.items = append(l.items, domainItem{table: m, negate: negate, source: orig, file: file})
	default:
		name := FoldKey(item)
		// Consecutive names of the same polarity and origin form one set:
		// the first match among them decides the same way in any order.
		if n := len(l.items); n > 0 && l.items[n-1].names != nil && l.items[n-1].negate == negate && l.items[n-1].file == file {
			l.items[n-1].names[name] = struct{}{}
			return nil
		}
		l.items = append(l.items, domainItem{names: map[string]struct{}{name: {}}, negate: negate, file: file})
	}
	return nil
}

// Match reports whether domain is in the list. An error is a failed table
// lookup: the caller must answer with a temporary failure.
func (l *DomainList) Match(ctx context.Context, domain string) (bool, error) {
	ok, _, err := l.Explain(ctx, domain)
	return ok, err
}

// Explain is Match that also says which item decided (empty when none
// did), for `vlmtpd lookup`: "example.com", "!example.com",
// "texthash:/etc/vdomains", with " (from /file)" for items read from a
// file.
func (l *DomainList) Explain(ctx context.Context, domain string) (matched bool, item string, err error) {
	if l == nil || domain == "" {
		return false, "", nil
	}
	d := FoldKey(domain)
	for _, it := range l.items {
		if it.names != nil {
			if _, ok := it.names[d]; ok {
				return !it.negate, it.explain(d), nil
			}
			continue
		}
		_, found, err := it.table.Lookup(ctx, d)
		if err != nil {
			return false, it.source, &LookupError{Table: it.table.Spec(), Key: d, Err: err}
		}
		if found {
			return !it.negate, it.explain(""), nil
		}
	}
	return false, "", nil
}

func (it domainItem) explain(name string) string {
	s := it.source
	if it.names != nil {
		s = name
		if it.negate {
			s = "!" + s
		}
	}
	if it.file != "" {
		s += " (from " + it.file + ")"
	}
	return s
}

// String is the list as configured.
func (l *DomainList) String() string {
	if l == nil {
		return ""
	}
	return l.text
}

// Close closes the tables the list opened.
func (l *DomainList) Close() error {
	if l == nil {
		return nil
	}
	return List(l.tables).Close()
}
