// Runs in: the front.

package lmtp

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxPath is RFC 5321's limit on a path, brackets included (4.5.3.1.3).
const maxPath = 256

// Address is a parsed envelope address.
type Address struct {
	// Raw is the address as the client wrote it, without the brackets and
	// any source route: what replies echo.
	Raw string
	// Local is the local part with quoting removed; Domain is empty for
	// <postmaster> (RFC 5321 4.5.1) and for the null sender.
	Local, Domain string
}

// String is the internal (unquoted) form, local@domain.
func (a Address) String() string {
	if a.Domain == "" {
		return a.Local
	}
	return a.Local + "@" + a.Domain
}

var (
	errSyntax      = errors.New("syntax error in address")
	errPathTooLong = errors.New("address too long")
	errBadChars    = errors.New("address contains control characters or invalid UTF-8")
)

// splitCommand separates the verb from its argument.
func splitCommand(line string) (verb, arg string) {
	verb, arg, _ = strings.Cut(line, " ")
	return strings.ToUpper(verb), strings.TrimLeft(arg, " ")
}

// cutKeyword removes "FROM:" or "TO:" (any case, spaces allowed after the
// colon, as Postfix allows).
func cutKeyword(arg, kw string) (string, bool) {
	if len(arg) < len(kw) || !strings.EqualFold(arg[:len(kw)], kw) {
		return "", false
	}
	return strings.TrimLeft(arg[len(kw):], " "), true
}

// parsePath parses "<address> params…" and returns the address and the
// rest. nullOK allows "<>".
func parsePath(s string, nullOK bool) (Address, string, error) {
	if strings.HasPrefix(s, "<>") && nullOK {
		return Address{}, strings.TrimLeft(s[2:], " "), nil
	}
	if !strings.HasPrefix(s, "<") {
		return Address{}, "", errSyntax
	}
	end := closingBracket(s)
	if end < 0 {
		return Address{}, "", errSyntax
	}
	if end+1 > maxPath {
		return Address{}, "", errPathTooLong
	}
	inner, rest := s[1:end], s[end+1:]
	if rest != "" && rest[0] != ' ' {
		return Address{}, "", errSyntax
	}
	if strings.HasPrefix(inner, "@") {
		// A source route (<@a,@b:user@c>): obsolete, ignored.
		i := strings.IndexByte(inner, ':')
		if i < 0 {
			return Address{}, "", errSyntax
		}
		inner = inner[i+1:]
	}
	a, err := ParseMailbox(inner)
	return a, strings.TrimLeft(rest, " "), err
}

// closingBracket finds the '>' ending the path that s starts, skipping a
// quoted local part.
func closingBracket(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '>':
			return i
		}
	}
	return -1
}

// ParseMailbox parses local@domain, where the local part may be quoted
// (and may then be empty, as in ""@domain, which Postfix sends to a
// catch-all). A bare local part is allowed only for postmaster.
func ParseMailbox(s string) (Address, error) {
	if !utf8.ValidString(s) || HasControl(s) {
		return Address{}, errBadChars
	}
	a := Address{Raw: s}
	rest := s
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' {
				i++
				if i == len(s) {
					return Address{}, errSyntax
				}
			}
			b.WriteByte(s[i])
		}
		if i == len(s) {
			return Address{}, errSyntax
		}
		a.Local, rest = b.String(), s[i+1:]
	} else {
		i := strings.IndexByte(s, '@')
		if i < 0 {
			i = len(s)
		}
		a.Local, rest = s[:i], s[i:]
		if a.Local == "" || strings.ContainsAny(a.Local, " <>\"\\(),;:[]") {
			return Address{}, errSyntax
		}
	}
	if rest == "" {
		if strings.EqualFold(a.Local, "postmaster") {
			return a, nil
		}
		return Address{}, errSyntax
	}
	if rest[0] != '@' || len(rest) == 1 || strings.ContainsAny(rest[1:], " <>@\"\\") {
		return Address{}, errSyntax
	}
	a.Domain = rest[1:]
	return a, nil
}

// parseParams splits ESMTP parameters into upper-case keys and values.
func parseParams(s string) (map[string]string, error) {
	params := map[string]string{}
	// ASCII controls never belong in a parameter. Other oddities are left
	// to each parameter's decoder: a bad ORCPT is ignored, not refused.
	if strings.ContainsFunc(s, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return nil, errors.New("invalid characters in parameters")
	}
	// Only ASCII blanks separate parameters: strings.Fields would also
	// split at U+0085 and U+2028 inside a UTF-8 ORCPT.
	for _, p := range strings.FieldsFunc(s, func(c rune) bool { return c == ' ' || c == '\t' }) {
		k, v, _ := strings.Cut(p, "=")
		k = strings.ToUpper(k)
		if k == "" {
			return nil, errors.New("empty parameter name")
		}
		if _, dup := params[k]; dup {
			return nil, errors.New("duplicate parameter " + k)
		}
		params[k] = v
	}
	return params, nil
}

// decodeXtext decodes RFC 3461 xtext ("+HH" for each special octet).
// Lower-case hex is accepted too.
func decodeXtext(s string) (string, error) {
	if !strings.Contains(s, "+") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '+' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("truncated xtext escape")
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", errors.New("bad xtext escape")
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

// decodeUTF8Addr decodes RFC 6533's utf-8-addr-xtext and -unitext: raw
// UTF-8, with \x{HEX} for escaped code points.
func decodeUTF8Addr(s string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, `\x{`)
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		s = s[i+3:]
		j := strings.IndexByte(s, '}')
		if j < 1 || j > 6 {
			return "", errors.New(`bad \x{} escape`)
		}
		n, err := strconv.ParseUint(s[:j], 16, 32)
		if err != nil || !utf8.ValidRune(rune(n)) {
			return "", errors.New(`bad \x{} escape`)
		}
		b.WriteRune(rune(n))
		s = s[j+1:]
	}
}

// decodeORCPT decodes an ORCPT value (RFC 3461 "type;xtext"). Types other
// than rfc822 and utf-8 are reported as errors, which callers treat as an
// absent ORCPT: a bad ORCPT must never cost a recipient its mail.
func decodeORCPT(v string) (typ, addr string, err error) {
	typ, raw, ok := strings.Cut(v, ";")
	if !ok || raw == "" {
		return "", "", errors.New("ORCPT lacks type;address")
	}
	typ = strings.ToLower(typ)
	switch typ {
	case "rfc822":
		addr, err = decodeXtext(raw)
	case "utf-8":
		addr, err = decodeUTF8Addr(raw)
	default:
		return "", "", errors.New("ORCPT address type " + strconv.Quote(typ) + " not supported")
	}
	if err == nil && (!utf8.ValidString(addr) || HasControl(addr)) {
		err = errBadChars
	}
	if err == nil && len(addr) > maxPath {
		err = errPathTooLong
	}
	if err != nil {
		return "", "", err
	}
	return typ, addr, nil
}
