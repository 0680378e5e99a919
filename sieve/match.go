// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// comparator is one of RFC 4790's collations as Sieve uses them.
type comparator struct {
	fold    bool // i;ascii-casemap
	numeric bool // i;ascii-numeric
}

var comparators = map[string]comparator{
	"i;octet":         {},
	"i;ascii-casemap": {fold: true},
	"i;ascii-numeric": {numeric: true},
}

// norm folds case for i;ascii-casemap. RFC 4790 9.2 maps to upper case,
// but Pigeonhole maps to lower case, which orders "[" before "m" for
// :value: the scripts written for it expect that.
func (c comparator) norm(s string) string {
	if c.fold {
		return lowerASCII(s)
	}
	return s
}

// numericValue is i;ascii-numeric's value: the leading digits, or
// "infinity" (ok=false) when the string does not start with one.
func numericValue(s string) (digits string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return "", false
	}
	d := strings.TrimLeft(s[:i], "0")
	return d, true
}

// compare orders a and b: -1, 0 or 1.
func (c comparator) compare(a, b string) int {
	if c.numeric {
		da, oka := numericValue(a)
		db, okb := numericValue(b)
		switch {
		case !oka && !okb:
			// Both "infinity"; but Pigeonhole does not find "" equal to
			// a non-numeric string (seen with its sieve-test).
			if (a == "") != (b == "") {
				if a == "" {
					return -1
				}
				return 1
			}
			return 0
		case !oka:
			return 1
		case !okb:
			return -1
		}
		if len(da) != len(db) {
			if len(da) < len(db) {
				return -1
			}
			return 1
		}
		return strings.Compare(da, db)
	}
	return strings.Compare(c.norm(a), c.norm(b))
}

func relHolds(op string, cmp int) bool {
	switch op {
	case "gt":
		return cmp > 0
	case "ge":
		return cmp >= 0
	case "lt":
		return cmp < 0
	case "le":
		return cmp <= 0
	case "eq":
		return cmp == 0
	}
	return cmp != 0 // ne
}

func (c comparator) contains(s, key string) bool {
	return strings.Contains(c.norm(s), c.norm(key))
}

// wildcard matches s against a :matches pattern. It returns the whole
// string and then what each wildcard matched, in order (RFC 5229 3.2:
// each "*" matches as little as it can, leftmost first). It backtracks
// only to the latest "*": placing each literal run at its earliest
// occurrence is what "as little as it can" means, so O(len(pattern) *
// len(s)) steps and no memory beyond the pattern suffice, whatever the
// input. tick is called every 4096 steps; a non-nil result aborts.
func (c comparator) wildcard(s, pattern string, tick func() error) ([]string, bool, error) {
	type tok struct {
		kind byte // 'l' literal, '?' or '*'
		r    rune
	}
	var pat []tok
	for i := 0; i < len(pattern); {
		r, n := utf8.DecodeRuneInString(pattern[i:])
		i += n
		switch r {
		case '\\':
			if i < len(pattern) {
				r, n = utf8.DecodeRuneInString(pattern[i:])
				i += n
				pat = append(pat, tok{'l', r})
			}
		case '*', '?':
			pat = append(pat, tok{byte(r), 0})
		default:
			pat = append(pat, tok{'l', r})
		}
	}
	str := []rune(s)
	eq := func(a, b rune) bool {
		if c.fold {
			if a >= 'A' && a <= 'Z' {
				a += 32
			}
			if b >= 'A' && b <= 'Z' {
				b += 32
			}
		}
		return a == b
	}
	caps := make([][2]int, len(pat)) // per token: the runes it matched
	pi, si := 0, 0
	starP, starS := -1, 0
	steps := 0
	for si < len(str) {
		if steps++; steps&4095 == 0 && tick != nil {
			if err := tick(); err != nil {
				return nil, false, err
			}
		}
		switch {
		case pi < len(pat) && pat[pi].kind == '*':
			starP, starS = pi, si
			caps[pi] = [2]int{si, si}
			pi++
		case pi < len(pat) && (pat[pi].kind == '?' || eq(pat[pi].r, str[si])):
			caps[pi] = [2]int{si, si + 1}
			pi, si = pi+1, si+1
		case starP >= 0:
			// Give the latest "*" one more character and retry after it.
			starS++
			caps[starP][1] = starS
			pi, si = starP+1, starS
		default:
			return nil, false, nil
		}
	}
	for pi < len(pat) && pat[pi].kind == '*' {
		caps[pi] = [2]int{si, si}
		pi++
	}
	if pi != len(pat) {
		return nil, false, nil
	}
	out := []string{s}
	for i, t := range pat {
		if t.kind != 'l' {
			out = append(out, string(str[caps[i][0]:caps[i][1]]))
		}
	}
	return out, true, nil
}

// compileRegex compiles a :regex key. Pigeonhole uses POSIX extended
// regular expressions; Go's RE2 with leftmost-longest matching is the
// closest (no back-references). "." matches newlines, as in POSIX.
func compileRegex(pattern, cmpName string) (*regexp.Regexp, error) {
	flags := "(?s)"
	if cmpName == "i;ascii-casemap" {
		flags = "(?si)"
	}
	re, err := regexp.Compile(flags + pattern)
	if err != nil {
		return nil, err
	}
	re.Longest()
	return re, nil
}

// quoteWildcard escapes :matches wildcards (set :quotewildcard).
func quoteWildcard(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`)
	return r.Replace(s)
}

// quoteRegex escapes POSIX ERE specials (set :quoteregex).
func quoteRegex(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.^$*+?()[]{}|`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func itoa(n int) string { return strconv.Itoa(n) }
