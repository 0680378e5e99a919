// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodeEncodedChars expands RFC 5228 2.4.2.4 "${hex:...}" and
// "${unicode:...}" sequences; a malformed sequence stays as written.
func decodeEncodedChars(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		end := strings.IndexByte(rest, '}')
		colon := strings.IndexByte(rest, ':')
		if end < 0 || colon < 0 || colon > end {
			b.WriteString("${")
			s = rest
			continue
		}
		kind := strings.ToLower(rest[:colon])
		if out, ok := decodeSeq(kind, rest[colon+1:end]); ok {
			b.WriteString(out)
			s = rest[end+1:]
		} else {
			b.WriteString("${")
			s = rest
		}
	}
}

func decodeSeq(kind, body string) (string, bool) {
	fields := strings.Fields(body)
	if len(fields) == 0 || (kind != "hex" && kind != "unicode") {
		return "", false
	}
	var b strings.Builder
	for _, f := range fields {
		if kind == "hex" {
			if len(f)%2 != 0 {
				return "", false
			}
			for j := 0; j < len(f); j += 2 {
				v, err := strconv.ParseUint(f[j:j+2], 16, 8)
				if err != nil {
					return "", false
				}
				b.WriteByte(byte(v))
			}
			continue
		}
		v, err := strconv.ParseUint(f, 16, 32)
		if err != nil || len(f) > 6 || !utf8.ValidRune(rune(v)) {
			return "", false
		}
		b.WriteRune(rune(v))
	}
	return b.String(), true
}
