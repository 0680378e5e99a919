// Runs in: the front (and the lookup, check-config and makemap commands).

package pfconf

import (
	"context"
	"strings"

	"github.com/vlmtpd/vlmtpd/maps"
)

// DomainList is the "domain" parameter: a Postfix string list of domains
// (maps.DomainList: names, "!name", "/file", "type:table"). Keys outside
// it are not found without asking the server.
type DomainList struct {
	list *maps.DomainList
}

// ParseDomainList parses the value of "domain"; an empty value gives nil
// (no restriction).
func ParseDomainList(value string, opts maps.Options) (*DomainList, error) {
	items := maps.SplitList(value)
	if len(items) == 0 {
		return nil, nil
	}
	l, err := maps.NewDomainList(items, opts)
	if err != nil {
		return nil, err
	}
	return &DomainList{list: l}, nil
}

// Allows reports whether key may be looked up: with a list, it must have
// a non-empty localpart and a domain in the list (Postfix's
// db_common_check_domain). A nil list allows every key.
func (d *DomainList) Allows(ctx context.Context, key Key) (bool, error) {
	if d == nil {
		return true, nil
	}
	if !key.At || key.User == "" {
		return false, nil
	}
	return d.list.Match(ctx, strings.ToLower(key.Domain))
}

// Close closes the tables the list opened.
func (d *DomainList) Close() error {
	if d == nil {
		return nil
	}
	return d.list.Close()
}
