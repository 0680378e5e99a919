// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"context"
	"fmt"
	"strings"
)

func init() {
	Register("static", openStatic)
	Register("inline", openInline)
}

// splitBraced splits s at commas and white space outside braces, as
// Postfix's mystrtokq does for inline tables; a token keeps its braces.
func splitBraced(s string) ([]string, error) {
	var out []string
	depth, start := 0, -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{':
			depth++
		case c == '}':
			if depth == 0 {
				return nil, fmt.Errorf("unbalanced '}' in %q", s)
			}
			depth--
		case depth == 0 && (c == ',' || isSpace(c)):
			if start >= 0 {
				out = append(out, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if depth > 0 {
		return nil, fmt.Errorf("missing '}' in %q", s)
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out, nil
}

// unbrace strips the outer braces of "{ text }" and the white space just
// inside them (Postfix's extpar). ok is false when tok does not start with
// '{'; text after the closing brace is an error.
func unbrace(tok string) (inner string, ok bool, err error) {
	if !strings.HasPrefix(tok, "{") {
		return tok, false, nil
	}
	depth := 0
	for i := 0; i < len(tok); i++ {
		switch tok[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				if i != len(tok)-1 {
					return "", true, fmt.Errorf("syntax error after '}' in %q", tok)
				}
				return strings.TrimFunc(tok[1:i], isSpaceRune), true, nil
			}
		}
	}
	return "", true, fmt.Errorf("missing '}' in %q", tok)
}

func isSpaceRune(r rune) bool { return r < 0x80 && isSpace(byte(r)) }

// static: returns its text for every key.
type static struct {
	spec, value string
}

func openStatic(name string, _ Options) (Map, error) {
	v, _, err := unbrace(name)
	if err != nil {
		return nil, err
	}
	if v == "" {
		return nil, fmt.Errorf("empty value: a static: table needs the text it returns, as in static:5000 or static:{ text }")
	}
	return &static{spec: "static:" + name, value: v}, nil
}

func (s *static) Lookup(context.Context, string) (string, bool, error) { return s.value, true, nil }
func (s *static) Spec() string                                         { return s.spec }

// Pattern is false: static: is a fixed-key table in Postfix, so it also
// answers the partial keys (user@domain, @domain) of the address search.
func (s *static) Pattern() bool { return false }

// inline: is a table written in the spec itself:
// inline:{k1=v1, { k2 = value with spaces, commas }}.
type inline struct {
	spec string
	m    map[string]string
}

const inlineSyntax = "need inline:{key=value, { key = value }, ...}"

func openInline(name string, opts Options) (Map, error) {
	inner, braced, err := unbrace(name)
	if err != nil || !braced {
		return nil, fmt.Errorf("bad syntax: %q; %s", name, inlineSyntax)
	}
	toks, err := splitBraced(inner)
	if err != nil {
		return nil, fmt.Errorf("%v; %s", err, inlineSyntax)
	}
	t := &inline{spec: "inline:" + name, m: make(map[string]string, len(toks))}
	for _, tok := range toks {
		nv, _, err := unbrace(tok)
		if err != nil {
			return nil, fmt.Errorf("%v; %s", err, inlineSyntax)
		}
		k, v, err := splitNameValue(nv)
		if err != nil {
			return nil, fmt.Errorf("%s in %q; %s", err, tok, inlineSyntax)
		}
		if Unfolded(k) {
			opts.Logger.Warn(UnfoldedWarning(k), "table", t.spec)
		}
		if _, dup := t.m[k]; dup {
			opts.Logger.Warn("duplicate key in inline table: the later value wins, as in Postfix", "table", t.spec, "key", k)
		}
		t.m[k] = v
	}
	if len(t.m) == 0 {
		return nil, fmt.Errorf("empty table; %s", inlineSyntax)
	}
	return t, nil
}

// splitNameValue splits "name = value" (Postfix's split_nameval): white
// space around '=' is allowed, the name has none, the value is trimmed.
func splitNameValue(s string) (name, value string, err error) {
	s = strings.TrimLeftFunc(s, isSpaceRune)
	end := strings.IndexFunc(s, func(r rune) bool { return r == '=' || isSpaceRune(r) })
	if end == 0 || s == "" {
		return "", "", fmt.Errorf("missing key")
	}
	if end < 0 {
		return "", "", fmt.Errorf("missing '=' after key")
	}
	name = s[:end]
	rest := strings.TrimLeftFunc(s[end:], isSpaceRune)
	if !strings.HasPrefix(rest, "=") {
		return "", "", fmt.Errorf("missing '=' after key %q (keys cannot contain white space)", name)
	}
	value = strings.TrimFunc(rest[1:], isSpaceRune)
	if value == "" {
		return "", "", fmt.Errorf("empty value for key %q (a table must not return an empty result)", name)
	}
	return name, value, nil
}

func (t *inline) Lookup(_ context.Context, key string) (string, bool, error) {
	v, ok := t.m[key]
	return v, ok, nil
}
func (t *inline) Spec() string  { return t.spec }
func (t *inline) Pattern() bool { return false }
