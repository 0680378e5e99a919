package maps

import (
	"strings"
	"testing"
)

func TestTranslateERE(t *testing.T) {
	for _, tc := range []struct {
		in, out, err string
		newline      bool
	}{
		{in: `^a.b$`, out: `^a.b$`},
		{in: `\w+\W\s\S\bx\B`, out: `\w+\W\s\S\bx\B`},
		{in: `\<word\>`, out: `\bword\b`},
		{in: "\\`a\\'", out: `\Aa\z`},
		{in: `a\.b\/c\|d`, out: `a\.b/c\|d`},
		{in: `[]a]`, out: `[\]a]`},
		{in: `[^]a]`, out: `[^\]a]`},
		{in: `[a\]`, out: `[a\\]`},
		{in: `[[:digit:][:alpha:]_-]`, out: `[[:digit:][:alpha:]_-]`},
		{in: `[[=e=][.-.]]`, out: `[e\-]`},
		{in: `[^a]`, out: `[^\na]`, newline: true},
		{in: `[a^[]`, out: `[a\^\[]`},
		{in: `(a|b){2,3}`, out: `(a|b){2,3}`},
		{in: `\ä`, out: `ä`},
		{in: `(a)\1`, err: "backreference"},
		{in: `\d`, err: `\d is not a POSIX or GNU escape`},
		{in: `(?i)a`, err: `"(?" is not POSIX`},
		{in: `[[:word:]]`, err: "unknown character class"},
		{in: `[[.space.]]`, err: "collating element"},
		{in: `[abc`, err: "unmatched ["},
		{in: `a\`, err: "trailing backslash"},
	} {
		got, err := translateERE(tc.in, tc.newline)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("translateERE(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
		case err != nil || got != tc.out:
			t.Errorf("translateERE(%q) = %q, %v; want %q", tc.in, got, err, tc.out)
		}
	}
}

// TestPatternSemantics checks matches that differ between POSIX, PCRE and
// Go's defaults.
func TestPatternSemantics(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pat   string
		flags string
		in    string
		want  bool
	}{
		{name: "regexp: . matches newline without m", pat: `^a.b$`, in: "a\nb", want: true},
		{name: "regexp: m: . does not match newline", pat: `^a.b$`, flags: "m", in: "a\nb", want: false},
		{name: "regexp: m: ^ at line start", pat: `^b`, flags: "m", in: "a\nb", want: true},
		{name: "regexp: no m: ^ only at start", pat: `^b`, in: "a\nb", want: false},
		{name: "regexp: m: [^a] excludes newline", pat: `x[^a]y`, flags: "m", in: "x\ny", want: false},
		{name: "regexp: no m: [^a] matches newline", pat: `x[^a]y`, in: "x\ny", want: true},
		{name: "regexp: i on by default", pat: `ABC`, in: "abc", want: true},
		{name: "regexp: i toggled off", pat: `ABC`, flags: "i", in: "abc", want: false},
		{name: "regexp: backslash literal in brackets", pat: `^[\]$`, in: `\`, want: true},
		{name: "pcre: s on by default", pat: `^a.b$`, in: "a\nb", want: true},
		{name: "pcre: s toggled off", pat: `^a.b$`, flags: "s", in: "a\nb", want: false},
		{name: "pcre: A anchors", pat: `b`, flags: "A", in: "ab", want: false},
		{name: "pcre: A anchors at start only", pat: `a`, flags: "A", in: "ab", want: true},
		{name: "pcre: A with m is still the string start", pat: `b`, flags: "Am", in: "a\nb", want: false},
		{name: "pcre: x strips space and comments", pat: `a b  c # comment`, flags: "x", in: "abc", want: true},
		{name: "pcre: x keeps escaped space and classes", pat: `a\ b[ ]c`, flags: "x", in: "a b c", want: true},
		{name: "pcre: \\d", pat: `^\d+$`, in: "123", want: true},
	} {
		var err error
		var ok bool
		if strings.HasPrefix(tc.name, "regexp") {
			re, e := compilePOSIX(tc.pat, tc.flags)
			err = e
			ok = e == nil && re.MatchString(tc.in)
		} else {
			re, e := compilePCRE(tc.pat, tc.flags)
			err = e
			ok = e == nil && re.MatchString(tc.in)
		}
		if err != nil || ok != tc.want {
			t.Errorf("%s: /%s/%s on %q = %v, %v; want %v", tc.name, tc.pat, tc.flags, tc.in, ok, err, tc.want)
		}
	}
}

func TestParseReplacement(t *testing.T) {
	for _, tc := range []struct {
		in, lit string
		max     int
		bad     bool
	}{
		{in: "plain", lit: "plain"},
		{in: "cost $$5", lit: "cost $5"},
		{in: "x${1}y$(2)z$$", max: 2},
		{in: "$12", max: 12},
		{in: "$2z", bad: true},
		{in: "$0", bad: true},
		{in: "a$", bad: true},
		{in: "a$ b", bad: true},
		{in: "${1", bad: true},
		{in: "${a}", bad: true},
	} {
		lit, max, bad := parseReplacement(tc.in)
		if (bad != "") != tc.bad || max != tc.max || tc.max == 0 && !tc.bad && lit != tc.lit {
			t.Errorf("parseReplacement(%q) = %q, %d, %q", tc.in, lit, max, bad)
		}
	}
}
