// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

func init() {
	Register("regexp", func(name string, opts Options) (Map, error) { return openRules(regexpDialect, name, opts) })
}

// regexpDialect is regexp_table(5): POSIX regcomp with glibc's extensions,
// flags i (REG_ICASE, on), x (REG_EXTENDED, on) and m (REG_NEWLINE, off).
var regexpDialect = &dialect{
	typ:       "regexp",
	flags:     "imx",
	legacyNot: true,
	compile:   compilePOSIX,
}

func compilePOSIX(pat, flags string) (*regexp.Regexp, error) {
	icase, extended, newline := true, true, false
	for _, f := range []byte(flags) {
		switch f {
		case 'i':
			icase = !icase
		case 'x':
			extended = !extended
		case 'm':
			newline = !newline
		}
	}
	if !extended {
		return nil, fmt.Errorf("the x flag selects POSIX basic regular expressions, which vlmtpd does not support: drop the x flag and write the pattern as an extended regular expression")
	}
	tr, err := translateERE(pat, newline)
	if err != nil {
		return nil, err
	}
	prefix := "(?s)" // without REG_NEWLINE, '.' and [^a] match a newline
	if newline {
		prefix = "(?m)" // ^ and $ match at line breaks, '.' does not match one
	}
	if icase {
		prefix += "(?i)"
	}
	re, err := regexp.Compile(prefix + bytePattern(tr)) // bytes, as Postfix (bytewise.go)
	if err != nil {
		return nil, fmt.Errorf("%v", describeRE2Error(err))
	}
	return re, nil
}

// posixClasses are the [:name:] classes of POSIX brackets; RE2 has them all.
var posixClasses = map[string]bool{
	"alnum": true, "alpha": true, "blank": true, "cntrl": true, "digit": true, "graph": true,
	"lower": true, "print": true, "punct": true, "space": true, "upper": true, "xdigit": true,
}

// translateERE rewrites a POSIX extended regular expression, with the GNU
// extensions glibc's regcomp accepts, into RE2 syntax with the same
// meaning, or says why it cannot:
//   - \w \W \s \S \b \B are the same in RE2; \< and \> (start and end of a
//     word) become \b, which is exact wherever a word character follows \<
//     or precedes \>, the way they are written in practice; \` and \' are
//     \A and \z.
//   - backreferences (\1..\9) have no RE2 equivalent: error.
//   - any other backslash-letter is an error: glibc would match the letter
//     itself (\d is "d"), which is never what the author meant.
//   - in brackets a backslash is an ordinary character (POSIX), '[' and
//     '^' are escaped for RE2, [=c=] and [.c.] of one character are that
//     character; with newline, a negated bracket does not match '\n'.
//   - "(?" is not POSIX: error, so that RE2's flag groups never sneak in.
func translateERE(pat string, newline bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(pat); {
		c := pat[i]
		switch c {
		case '\\':
			if i+1 >= len(pat) {
				return "", fmt.Errorf("trailing backslash")
			}
			n := pat[i+1]
			switch {
			case strings.IndexByte("wWsSbB", n) >= 0:
				b.WriteByte('\\')
				b.WriteByte(n)
			case n == '<' || n == '>':
				b.WriteString(`\b`)
			case n == '`':
				b.WriteString(`\A`)
			case n == '\'':
				b.WriteString(`\z`)
			case n >= '1' && n <= '9':
				return "", fmt.Errorf("backreference \\%c: Go's RE2 engine has no backreferences", n)
			case isAlnumByte(n):
				return "", fmt.Errorf("\\%c is not a POSIX or GNU escape (glibc matches a plain %q; write that, or a bracket expression such as [0-9])", n, n)
			case n >= utf8.RuneSelf:
				_, size := utf8.DecodeRuneInString(pat[i+1:])
				b.WriteString(regexp.QuoteMeta(pat[i+1 : i+1+size]))
				i += 1 + size
				continue
			default:
				b.WriteString(regexp.QuoteMeta(string(n)))
			}
			i += 2
		case '[':
			end, set, err := translateBracket(pat, i, newline)
			if err != nil {
				return "", err
			}
			b.WriteString(set)
			i = end
		case '(':
			if i+1 < len(pat) && pat[i+1] == '?' {
				return "", fmt.Errorf("\"(?\" is not POSIX regular expression syntax (it is Perl's; use a pcre: table)")
			}
			b.WriteByte(c)
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// translateBracket translates the bracket expression starting at pat[i]
// and returns the index after it.
func translateBracket(pat string, i int, newline bool) (int, string, error) {
	var b strings.Builder
	b.WriteByte('[')
	i++
	if i < len(pat) && pat[i] == '^' {
		b.WriteByte('^')
		if newline {
			b.WriteString(`\n`)
		}
		i++
	}
	first := true
	for {
		if i >= len(pat) {
			return 0, "", fmt.Errorf("unmatched [ in bracket expression")
		}
		c := pat[i]
		if c == ']' && !first {
			b.WriteByte(']')
			return i + 1, b.String(), nil
		}
		first = false
		if c == '[' && i+1 < len(pat) && strings.IndexByte(":=.", pat[i+1]) >= 0 {
			kind := pat[i+1]
			end := strings.Index(pat[i+2:], string([]byte{kind, ']'}))
			if end < 0 {
				return 0, "", fmt.Errorf("unterminated [%c in bracket expression", kind)
			}
			body := pat[i+2 : i+2+end]
			i += 2 + end + 2
			if kind == ':' {
				if !posixClasses[body] {
					return 0, "", fmt.Errorf("unknown character class [:%s:]", body)
				}
				b.WriteString("[:" + body + ":]")
				continue
			}
			if utf8.RuneCountInString(body) != 1 {
				return 0, "", fmt.Errorf("[%c%s%c] (a collating element or equivalence class) is not supported", kind, body, kind)
			}
			if len(body) == 1 && !isAlnumByte(body[0]) {
				b.WriteByte('\\') // RE2 accepts \ before any punctuation
			}
			b.WriteString(body)
			continue
		}
		switch c {
		case '\\', '[', ']', '^':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
		i++
	}
}

// describeRE2Error turns RE2's parse errors into advice for table authors.
func describeRE2Error(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "invalid or unsupported Perl syntax"):
		return msg + " (Go's RE2 engine has no lookahead, lookbehind, atomic groups or recursion)"
	case strings.Contains(msg, "invalid escape sequence") && regexp.MustCompile(`\\[1-9gk]`).MatchString(msg):
		return msg + " (backreferences are not supported by Go's RE2 engine)"
	case strings.Contains(msg, "invalid nested repetition operator"):
		return msg + " (possessive quantifiers and repeated repetitions are not supported by Go's RE2 engine)"
	case strings.Contains(msg, "invalid repeat count"):
		return msg + " (Go's RE2 engine allows at most {1000})"
	}
	return msg
}
