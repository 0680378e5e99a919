// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// List is a parameter's tables, searched in order; the first hit wins and
// the first error stops the search (Postfix's maps.c).
type List []Map

// Hit says which table answered which key, for logs and `vlmtpd lookup`.
type Hit struct {
	Value string
	Table string // the table's spec
	Key   string // the key that matched
}

// ErrEmptyResult is a table answering with an empty string: Postfix treats
// that as a configuration error ("should return NO RESULT in case of NOT
// FOUND"), so it defers instead of bouncing.
var ErrEmptyResult = errors.New("table returned an empty result (it should return no result for not found)")

// LookupError is a lookup that failed in one table. It is always temporary.
type LookupError struct {
	Table string
	Key   string
	Err   error
}

func (e *LookupError) Error() string {
	return fmt.Sprintf("lookup of %q in %s: %v", e.Key, e.Table, e.Err)
}

func (e *LookupError) Unwrap() error { return e.Err }

// Find asks each table for key in order. With fixedOnly, pattern tables are
// skipped (the partial-key steps of the address search).
func (l List) Find(ctx context.Context, key string, fixedOnly bool) (Hit, bool, error) {
	if key == "" {
		return Hit{}, false, nil // Postfix: an empty key is not found without a query
	}
	for _, m := range l {
		if fixedOnly && m.Pattern() {
			continue
		}
		v, found, err := m.Lookup(ctx, key)
		if err != nil {
			return Hit{}, false, &LookupError{Table: m.Spec(), Key: key, Err: err}
		}
		if !found {
			continue
		}
		if v == "" {
			return Hit{}, false, &LookupError{Table: m.Spec(), Key: key, Err: ErrEmptyResult}
		}
		return Hit{Value: v, Table: m.Spec(), Key: key}, true, nil
	}
	return Hit{}, false, nil
}

// Close closes every table in the list and returns the first error.
func (l List) Close() error {
	var first error
	for _, m := range l {
		if err := Close(m); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// OpenList opens every spec; on error it closes what it had opened.
func OpenList(specs []string, opts Options) (List, error) {
	var l List
	for _, s := range specs {
		m, err := Open(s, opts)
		if err != nil {
			l.Close()
			return nil, err
		}
		l = append(l, m)
	}
	return l, nil
}

// SplitList splits a main.cf-style list value: items separated by commas
// or white space, with "{…}" keeping an inline table's text together.
func SplitList(s string) []string {
	var out []string
	var cur strings.Builder
	depth := 0
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch {
		case r == '{':
			depth++
			cur.WriteRune(r)
		case r == '}' && depth > 0:
			depth--
			cur.WriteRune(r)
		case depth == 0 && (r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return out
}
