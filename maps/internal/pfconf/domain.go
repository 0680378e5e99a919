package pfconf

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/vlmtpd/vlmtpd/maps"
)

// DomainList is the "domain" parameter: a Postfix string list of domains
// (exact, case-insensitive, no subdomains). Items are names, "!name" to
// exclude, "/file" whose lines are read as more items, and "type:table"
// in which the bare domain is looked up. The first matching item decides.
type DomainList struct {
	items  []domainItem
	tables maps.List
}

type domainItem struct {
	name  string
	table maps.Map
	neg   bool
}

// ParseDomainList parses the value of "domain"; an empty value gives nil
// (no restriction).
func ParseDomainList(value string, opts maps.Options) (*DomainList, error) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	d := &DomainList{}
	if err := d.add(value, false, opts, 0); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *DomainList) add(value string, neg bool, opts maps.Options, depth int) error {
	if depth > 10 {
		return fmt.Errorf("domain: files nested too deeply")
	}
	for _, item := range maps.SplitList(value) {
		n := neg
		for strings.HasPrefix(item, "!") {
			n = !n
			item = item[1:]
		}
		switch {
		case item == "":
			return fmt.Errorf("domain: empty item after \"!\"")
		case strings.HasPrefix(item, "/"):
			if err := d.addFile(item, n, opts, depth); err != nil {
				return err
			}
		case strings.Contains(item, ":") && !strings.HasPrefix(item, "["):
			m, err := maps.Open(item, opts)
			if err != nil {
				return fmt.Errorf("domain: %w", err)
			}
			d.tables = append(d.tables, m)
			d.items = append(d.items, domainItem{table: m, neg: n})
		default:
			d.items = append(d.items, domainItem{name: strings.ToLower(item), neg: n})
		}
	}
	return nil
}

func (d *DomainList) addFile(path string, neg bool, opts maps.Options, depth int) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("domain: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if err := d.add(line, neg, opts, depth+1); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("domain: %s: %w", path, err)
	}
	return nil
}

// Allows reports whether key may be looked up: it must have a non-empty
// localpart and a domain the list matches. A nil list allows every key.
func (d *DomainList) Allows(ctx context.Context, key Key) (bool, error) {
	if d == nil {
		return true, nil
	}
	if !key.At || key.User == "" {
		return false, nil
	}
	dom := strings.ToLower(key.Domain)
	for _, it := range d.items {
		if it.table != nil {
			_, found, err := it.table.Lookup(ctx, dom)
			if err != nil {
				return false, fmt.Errorf("domain list: %s: %w", it.table.Spec(), err)
			}
			if found {
				return !it.neg, nil
			}
			continue
		}
		if it.name == dom {
			return !it.neg, nil
		}
	}
	return false, nil
}

// Close closes the tables the list opened.
func (d *DomainList) Close() error {
	if d == nil {
		return nil
	}
	return d.tables.Close()
}
