package sieve

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func addCorpus(f *testing.F) {
	files, _ := filepath.Glob("testdata/oracle/*.sieve")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("text:\r\n..x\r\n.\r\n")
	f.Add(`if anyof(not true, (false)) {}`)
}

// FuzzLexer: the lexer never panics and positions stay inside the input.
func FuzzLexer(f *testing.F) {
	addCorpus(f)
	f.Fuzz(func(t *testing.T, src string) {
		toks, err := lex(src)
		if err != nil {
			return
		}
		lines := 1
		for _, c := range src {
			if c == '\n' {
				lines++
			}
		}
		for _, tk := range toks {
			if tk.pos.Line < 1 || tk.pos.Line > lines || tk.pos.Col < 1 {
				t.Fatalf("token %v at %v outside the %d-line input", tk.kind, tk.pos, lines)
			}
		}
	})
}

// FuzzCompileRun: parsing and compiling never panic, and what compiles
// runs on a message within a deadline without panicking.
func FuzzCompileRun(f *testing.F) {
	addCorpus(f)
	m, _ := ParseMessage([]byte(testMsg))
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Compile([]byte(src), nil)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("compile error of type %T: %v", err, err)
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, _ := s.Run(ctx, &Env{Message: m, Envelope: Envelope{From: "a@example.com", To: "b@example.net"}})
		if res == nil {
			t.Fatal("nil result")
		}
	})
}

// FuzzWildcard checks :matches against Go's regexp with lazy quantifiers,
// which finds the same leftmost-shortest assignment of the wildcards.
func FuzzWildcard(f *testing.F) {
	for _, c := range [][2]string{{"[acme-users] [fwd] version 1.0", "[*] *"}, {"aaab", "*a?b"}, {"abc", "**?"}, {"a*b", `a\*?`}, {"", "*"}} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, s, pattern string) {
		if !utf8.ValidString(s) || !utf8.ValidString(pattern) || len(pattern) > 64 {
			return
		}
		var re strings.Builder
		re.WriteString(`(?s)^`)
		for i := 0; i < len(pattern); {
			r, n := utf8.DecodeRuneInString(pattern[i:])
			i += n
			switch r {
			case '*':
				re.WriteString("(.*?)")
			case '?':
				re.WriteString("(.)")
			case '\\':
				if i < len(pattern) {
					r, n = utf8.DecodeRuneInString(pattern[i:])
					i += n
					re.WriteString(regexp.QuoteMeta(string(r)))
				}
			default:
				re.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		re.WriteString("$")
		want := regexp.MustCompile(re.String()).FindStringSubmatch(s)
		got, ok, _ := comparators["i;octet"].wildcard(s, pattern, nil)
		if ok != (want != nil) || (ok && strings.Join(got, "\x00") != strings.Join(want, "\x00")) {
			t.Fatalf("%q :matches %q: got %q %v, regexp %q", s, pattern, got, ok, want)
		}
	})
}
