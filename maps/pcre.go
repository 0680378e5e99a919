// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"fmt"
	"regexp"
	"strings"
)

func init() {
	Register("pcre", func(name string, opts Options) (Map, error) { return openRules(pcreDialect, name, opts) })
}

// pcreDialect is pcre_table(5) on Go's RE2 engine, whose syntax is Perl's
// minus backreferences, lookaround, atomic groups, possessive quantifiers,
// recursion and callouts: a pattern using those is a load error.
//
// Flags (each toggles; defaults as in Postfix): i caseless (on) → (?i);
// s dotall (on) → (?s); m multiline → (?m); U ungreedy → (?U); A anchored
// → \A(?:…); x extended → white space and #comments are removed from the
// pattern before RE2 sees it (RE2 has no x flag); E dollar-endonly → no
// change: RE2's '$' without m only ever matches at the very end, which is
// what E asks for; without E, PCRE's '$' also matches before a final
// newline, a difference that cannot show with mail addresses. X (PCRE1's
// "extra") is ignored with a warning, as Postfix built with PCRE2 does.
var pcreDialect = &dialect{
	typ:     "pcre",
	flags:   "imsxAEUX",
	ignored: "X",
	compile: compilePCRE,
}

func compilePCRE(pat, flags string) (*regexp.Regexp, error) {
	icase, dotall, multiline, extended, anchored, ungreedy := true, true, false, false, false, false
	for _, f := range []byte(flags) {
		switch f {
		case 'i':
			icase = !icase
		case 's':
			dotall = !dotall
		case 'm':
			multiline = !multiline
		case 'x':
			extended = !extended
		case 'A':
			anchored = !anchored
		case 'U':
			ungreedy = !ungreedy
		}
	}
	if extended {
		var err error
		if pat, err = stripExtended(pat); err != nil {
			return nil, err
		}
	}
	pat = bytePattern(pat) // bytes, as Postfix (bytewise.go)
	var prefix strings.Builder
	for _, f := range []struct {
		on   bool
		flag string
	}{{icase, "i"}, {dotall, "s"}, {multiline, "m"}, {ungreedy, "U"}} {
		if f.on {
			prefix.WriteString(f.flag)
		}
	}
	expr := pat
	if prefix.Len() > 0 {
		expr = "(?" + prefix.String() + ")" + expr
	}
	if anchored {
		expr = `\A(?:` + expr + `)`
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s", describeRE2Error(err))
	}
	return re, nil
}

// stripExtended removes what PCRE's x flag ignores: white space and
// "#…" comments outside character classes, unless escaped; \Q…\E is left
// alone.
func stripExtended(pat string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch {
		case c == '\\':
			if i+1 >= len(pat) {
				return "", fmt.Errorf("trailing backslash")
			}
			if pat[i+1] == 'Q' {
				end := strings.Index(pat[i+2:], `\E`)
				if end < 0 {
					b.WriteString(pat[i:])
					return b.String(), nil
				}
				b.WriteString(pat[i : i+2+end+2])
				i += 2 + end + 1
				continue
			}
			b.WriteByte(c)
			b.WriteByte(pat[i+1])
			i++
		case inClass:
			if c == ']' {
				inClass = false
			}
			b.WriteByte(c)
		case c == '[':
			inClass = true
			b.WriteByte(c)
			// a ']' right after '[' or '[^' is literal
			if i+1 < len(pat) && pat[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(pat) && pat[i+1] == ']' {
				b.WriteString(`\]`)
				i++
			}
		case isSpace(c):
		case c == '#':
			for i+1 < len(pat) && pat[i+1] != '\n' {
				i++
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
