// Runs in: the front (and the lookup, check-config and makemap commands).

package pfconf

import (
	"fmt"
	"strings"
)

// Segment is one piece of a template: literal text, or one %-escape
// (Esc is the letter after "%": s u d S U D or 1..9).
type Segment struct {
	Lit string
	Esc byte
}

// Template is a parsed query or result_format template.
type Template []Segment

// ParseTemplate splits s into literal text and escapes; "%%" becomes a
// literal "%". Any other escape is a configuration error, as in Postfix.
func ParseTemplate(s string) (Template, error) {
	var t Template
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return nil, fmt.Errorf("template %q ends with a lone %%", s)
		}
		c := s[i]
		if c == '%' {
			lit.WriteByte('%')
			continue
		}
		if !ValidEscape(c) {
			return nil, fmt.Errorf("template %q: invalid escape %%%c", s, c)
		}
		if lit.Len() > 0 {
			t = append(t, Segment{Lit: lit.String()})
			lit.Reset()
		}
		t = append(t, Segment{Esc: c})
	}
	if lit.Len() > 0 {
		t = append(t, Segment{Lit: lit.String()})
	}
	return t, nil
}

// ValidEscape reports whether %c is an escape the tables know.
func ValidEscape(c byte) bool {
	return strings.IndexByte("sudSUD", c) >= 0 || (c >= '1' && c <= '9')
}

// HasEscapes reports whether the template substitutes anything.
func (t Template) HasEscapes() bool {
	for _, s := range t {
		if s.Esc != 0 {
			return true
		}
	}
	return false
}

// Key is a lookup key (or a result value) split the way the escapes need.
type Key struct {
	Full   string
	User   string // the localpart; the whole key when there is no "@"
	Domain string // after the last "@"; empty when there is none
	At     bool   // the key has an "@"
	Labels []string
}

// SplitKey splits at the last "@"; domain labels are the non-empty pieces
// between dots.
func SplitKey(s string) Key {
	k := Key{Full: s, User: s}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		k.At = true
		k.User, k.Domain = s[:i], s[i+1:]
		for _, l := range strings.Split(k.Domain, ".") {
			if l != "" {
				k.Labels = append(k.Labels, l)
			}
		}
	}
	return k
}

// Field is what escape c stands for in k ("%1" is the rightmost label).
func (k Key) Field(c byte) string {
	switch c {
	case 's', 'S':
		return k.Full
	case 'u', 'U':
		return k.User
	case 'd', 'D':
		return k.Domain
	}
	if n := int(c - '0'); n >= 1 && n <= len(k.Labels) {
		return k.Labels[len(k.Labels)-n]
	}
	return ""
}

// Expander knows which parts of the key and of result values a table's
// templates use, and so which lookups must not be made at all: Postfix
// answers "not found" without asking the server when the key has no domain
// but %d is used, an empty localpart but %u is used, or fewer domain
// labels than the highest %1..%9 (db_common.c).
type Expander struct {
	keyUser, keyDomain     bool
	valueUser, valueDomain bool
	labels                 int
}

// AddQuery registers a template expanded with the lookup key (query,
// query_filter, search_base): upper- and lower-case escapes both mean the key.
func (e *Expander) AddQuery(t Template) {
	for _, s := range t {
		e.addKey(s.Esc)
	}
}

func (e *Expander) addKey(c byte) {
	switch c {
	case 'u', 'U':
		e.keyUser = true
	case 'd', 'D':
		e.keyDomain = true
	default:
		if c >= '1' && c <= '9' {
			e.keyDomain = true
			e.labels = max(e.labels, int(c-'0'))
		}
	}
}

// AddResult registers a result_format template: lower-case escapes mean
// the result value, upper-case ones and %1..%9 the lookup key.
func (e *Expander) AddResult(t Template) {
	for _, s := range t {
		switch s.Esc {
		case 'u':
			e.valueUser = true
		case 'd':
			e.valueDomain = true
		default:
			e.addKey(s.Esc)
		}
	}
}

// Partial reports whether the templates use a part of the key: such a
// table is a pattern table (maps.Map.Pattern), asked only full addresses.
func (e *Expander) Partial() bool {
	return e.keyUser || e.keyDomain || e.labels > 0
}

// Skip reports whether key must not be looked up (the answer is "not found").
func (e *Expander) Skip(k Key) bool {
	if e.keyDomain && k.Domain == "" {
		return true
	}
	if e.keyUser && k.At && k.User == "" {
		return true
	}
	return len(k.Labels) < e.labels
}

// Expand substitutes key into t, passing each substituted value through
// quote (identity when nil).
func Expand(t Template, key Key, quote func(string) string) string {
	var b strings.Builder
	for _, s := range t {
		if s.Esc == 0 {
			b.WriteString(s.Lit)
			continue
		}
		v := key.Field(s.Esc)
		if quote != nil {
			v = quote(v)
		}
		b.WriteString(v)
	}
	return b.String()
}

// ExpandResult applies result_format to one result value. ok is false when
// the value lacks the part the format needs (%d with no domain, %u with an
// empty localpart): Postfix drops such a value.
func (e *Expander) ExpandResult(t Template, value string, key Key) (string, bool) {
	v := SplitKey(value)
	if (e.valueDomain && v.Domain == "") || (e.valueUser && v.At && v.User == "") {
		return "", false
	}
	var b strings.Builder
	for _, s := range t {
		switch {
		case s.Esc == 0:
			b.WriteString(s.Lit)
		case s.Esc == 's' || s.Esc == 'u' || s.Esc == 'd':
			b.WriteString(v.Field(s.Esc))
		default:
			b.WriteString(key.Field(s.Esc))
		}
	}
	return b.String(), true
}
