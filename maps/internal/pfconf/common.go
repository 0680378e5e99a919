// Runs in: the front (and the lookup, check-config and makemap commands).

package pfconf

import (
	"context"
	"fmt"
	"strings"

	"github.com/vlmtpd/vlmtpd/maps"
)

// Common holds the parameters every SQL and LDAP table has: result_format,
// expansion_limit and domain, plus the Expander fed by the table's query
// templates.
type Common struct {
	Exp    Expander
	Format Template
	Limit  int
	Domain *DomainList
}

// ReadCommon reads result_format (or its legacy name, if given),
// expansion_limit and domain.
func ReadCommon(c *Config, legacyFormatName string, opts maps.Options) (*Common, error) {
	cm := &Common{}
	f := c.Str("result_format", "")
	if f == "" && legacyFormatName != "" {
		f = c.Str(legacyFormatName, "")
	}
	if f == "" {
		f = "%s"
	}
	var err error
	if cm.Format, err = ParseTemplate(f); err != nil {
		return nil, fmt.Errorf("%s: result_format: %w", c.Path, err)
	}
	cm.Exp.AddResult(cm.Format)
	if cm.Limit, err = c.Int("expansion_limit", 0, 0); err != nil {
		return nil, err
	}
	if cm.Domain, err = ParseDomainList(c.Str("domain", ""), opts); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Path, err)
	}
	return cm, nil
}

// Prepare splits key and decides whether it is to be looked up at all
// (domain restriction and the suppression rules of the escapes).
func (cm *Common) Prepare(ctx context.Context, key string) (Key, bool, error) {
	k := SplitKey(key)
	if strings.IndexByte(key, 0) >= 0 {
		// Postfix's keys are C strings: a NUL can never reach its tables,
		// and servers disagree on what one means (slapd ignores the rest).
		return k, false, nil
	}
	ok, err := cm.Domain.Allows(ctx, k)
	if err != nil || !ok {
		return k, false, err
	}
	return k, !cm.Exp.Skip(k), nil
}

// Close releases the domain list's tables.
func (cm *Common) Close() error { return cm.Domain.Close() }
