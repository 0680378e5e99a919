// Runs in: the front (and the lookup, check-config and makemap commands).

package pfconf

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// ErrExpansionLimit is more results than expansion_limit allows; Postfix
// treats it as a temporary error, so the recipient is deferred.
var ErrExpansionLimit = errors.New("expansion_limit exceeded")

// Results collects the values of one lookup: each through result_format,
// joined with ",", at most limit of them (0 = no limit).
type Results struct {
	exp    *Expander
	format Template
	key    Key
	limit  int
	log    *slog.Logger
	table  string
	vals   []string
}

// NewResults starts collecting the answer for key.
func NewResults(exp *Expander, format Template, key Key, limit int, log *slog.Logger, table string) *Results {
	return &Results{exp: exp, format: format, key: key, limit: limit, log: log, table: table}
}

// Add takes one raw value. Empty values are skipped with a warning (NULLs
// never reach here); values lacking what result_format needs are skipped.
func (r *Results) Add(v string) error {
	if v == "" {
		r.log.Warn("table returned an empty value; ignored", "table", r.table, "key", r.key.Full)
		return nil
	}
	out, ok := r.exp.ExpandResult(r.format, v, r.key)
	if !ok {
		return nil
	}
	if r.limit > 0 && len(r.vals) >= r.limit {
		return fmt.Errorf("%w: more than %d results for %q", ErrExpansionLimit, r.limit, r.key.Full)
	}
	r.vals = append(r.vals, out)
	return nil
}

// Value is the joined result; found is false when nothing was collected.
func (r *Results) Value() (string, bool) {
	if len(r.vals) == 0 {
		return "", false
	}
	return strings.Join(r.vals, ","), true
}
