// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"strings"
	"unicode/utf8"
)

// Postfix's regexp: and pcre: tables match bytes: glibc's regcomp runs in
// the C locale (Postfix never sets another) and Postfix compiles PCRE2
// patterns without PCRE2_UTF, so "." and "[^x]" match one byte of a
// UTF-8 character and "{6}" counts bytes. RE2 matches UTF-8 characters.
// To match what Postfix matches, both the pattern and the key are
// rewritten so that every byte is one character: a byte of 0x80 or more
// becomes the rune of the same number (U+0080..U+00FF, as in Latin-1).
// ASCII is unchanged, and so is the result of a match.
//
// One difference remains: with the i flag, RE2 folds the case of those
// runes (U+00C0..U+00DE with U+00E0..U+00FE) where the C locale folds
// only ASCII. Outside a bracket expression every such byte is wrapped in
// (?-i:…), so literal text matches exactly; inside a bracket expression
// a byte of 0xC0..0xDE also matches the byte 0x20 above it and back.
// Valid UTF-8 keys make that a match of a lead byte of a two-byte
// character for one of a three- or four-byte character, which a pattern
// meant for characters never relies on.

// byteKey is key with every byte of 0x80 or more made the rune of the
// same number.
func byteKey(key string) string {
	i := 0
	for i < len(key) && key[i] < utf8.RuneSelf {
		i++
	}
	if i == len(key) {
		return key
	}
	var b strings.Builder
	b.Grow(len(key) + len(key)/2)
	b.WriteString(key[:i])
	for ; i < len(key); i++ {
		if c := key[i]; c < utf8.RuneSelf {
			b.WriteByte(c)
		} else {
			b.WriteRune(rune(c))
		}
	}
	return b.String()
}

// bytePattern rewrites an RE2-syntax pattern in the same way: each byte
// of 0x80 or more becomes the rune of the same number; outside brackets
// it is wrapped in (?-i:…) (see above); a backslash before such a byte is
// dropped (it escapes nothing: PCRE and POSIX take the byte literally,
// RE2 would refuse it). \Q…\E is copied with its bytes made runes only.
func bytePattern(pat string) string {
	if byteKey(pat) == pat {
		return pat
	}
	var b strings.Builder
	inClass, classStart := false, false
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		first := classStart
		classStart = false
		switch {
		case c == '\\' && i+1 < len(pat) && pat[i+1] >= utf8.RuneSelf:
			continue // the next byte is written on its own
		case c == '\\' && i+1 < len(pat) && pat[i+1] == 'Q' && !inClass:
			end := strings.Index(pat[i+2:], `\E`)
			lit := pat[i:]
			if end >= 0 {
				lit = pat[i : i+2+end+2]
			}
			b.WriteString(byteKey(lit))
			i += len(lit) - 1
		case c == '\\' && i+1 < len(pat):
			b.WriteByte(c)
			b.WriteByte(pat[i+1])
			i++
		case c >= utf8.RuneSelf:
			if inClass {
				b.WriteRune(rune(c))
			} else {
				b.WriteString("(?-i:")
				b.WriteRune(rune(c))
				b.WriteByte(')')
			}
		case c == '[' && !inClass:
			inClass, classStart = true, true
			b.WriteByte(c)
			if i+1 < len(pat) && pat[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			// "[:alpha:]" style classes are inside brackets only
		case c == '[' && inClass && i+1 < len(pat) && pat[i+1] == ':':
			end := strings.Index(pat[i+2:], ":]")
			if end < 0 {
				b.WriteByte(c)
				continue
			}
			b.WriteString(pat[i : i+2+end+2])
			i += 2 + end + 1
		case c == ']' && inClass && !first:
			inClass = false
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
