package maps

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzReadSource(f *testing.F) {
	f.Add([]byte("key1 value1\nkey2 value with  spaces\n  continued line\nk3 v3 # x\n\"a b\"@x  v5\nk5\n"))
	f.Add([]byte("  orphan\n# c\n\"unbalanced x\nback\\\\ slash v\r\nK v\nk w"))
	f.Add([]byte("a\x00b c\nd\xff e\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ReadSource(bytes.NewReader(data), "fuzz", func(string) {})
		if err != nil {
			t.Fatalf("ReadSource on a bytes.Reader failed: %v", err)
		}
		seen := map[string]bool{}
		last := 0
		for _, e := range entries {
			switch {
			case e.Key == "" || e.Value == "":
				t.Fatalf("empty key or value: %+v", e)
			case seen[e.Key]:
				t.Fatalf("duplicate key %q", e.Key)
			case e.Key != FoldKey(e.Key):
				t.Fatalf("key %q not folded", e.Key)
			case e.Line <= last:
				t.Fatalf("line %d after %d", e.Line, last)
			case !utf8.ValidString(e.Key) || !utf8.ValidString(e.Value):
				t.Fatalf("invalid UTF-8 in %+v", e)
			case strings.TrimFunc(e.Value, isSpaceRune) != e.Value:
				t.Fatalf("value %q not trimmed", e.Value)
			}
			seen[e.Key] = true
			last = e.Line
		}
	})
}

func FuzzRules(f *testing.F) {
	f.Add("/^a@/ r1\n!/b/ r2\n/^a/!/^ab/ r3\nif /x/\n/y/ r4\nendif\n/(a)/ $1\n/z/ $$\n", false)
	f.Add("/^(\\w+)@/ x\n/^a/A r\n/ a # c/x r\n/a/X r\nIF !/q/\nendif extra\n", true)
	f.Add("|a\\|b| r\n/[[:alpha:]][]x][^a]\\<\\>/m r\n/a/q r\n/unterminated\n", false)
	f.Add("/^u.{6}@é\\é[é-ü]\\Qü\\E/ r\n/[[:alpha:]é]ß+/ r\n", true)
	f.Add("/^u.{6}@é[^ü]ß+/ r\n", false)
	f.Fuzz(func(t *testing.T, data string, pcre bool) {
		d := regexpDialect
		if pcre {
			d = pcreDialect
		}
		rs, err := parseRules(d, strings.NewReader(data), "fuzz", func(string) {})
		if err != nil {
			return // a pattern RE2 rejects is an open error
		}
		for i, r := range rs {
			if r.op == opIf && (r.next <= i || r.next > len(rs)) {
				t.Fatalf("rule %d: if jumps to %d of %d", i, r.next, len(rs))
			}
			if r.op != opEndif && r.re == nil {
				t.Fatalf("rule %d has no regexp", i)
			}
		}
		for _, key := range []string{"a@b", "", "x\ny", data} {
			rs.lookup(key)
		}
	})
}

func FuzzInline(f *testing.F) {
	f.Add("{k1=v1, { k2 = v 2 }}")
	f.Add("{ {/a/ r1}, {/b/ r2} }")
	f.Add("{ text with spaces }")
	f.Add("{{ k 3 = v }}}{")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, name string) {
		opts := Options{Logger: logger}
		if m, err := openInline(name, opts); err == nil {
			for k, v := range m.(*inline).m {
				if k == "" || v == "" || k != FoldKey(k) {
					t.Fatalf("bad entry %q=%q from %q", k, v, name)
				}
				if got, ok, _ := m.Lookup(context.Background(), k); !ok || got != v {
					t.Fatalf("lookup %q = %q, %v", k, got, ok)
				}
			}
		}
		if m, err := openStatic(name, opts); err == nil {
			if v, ok, _ := m.Lookup(context.Background(), "x"); !ok || v == "" {
				t.Fatalf("static %q answered %q, %v", name, v, ok)
			}
		}
		for _, d := range []*dialect{regexpDialect, pcreDialect} {
			if rs, err := parseInlineRules(d, name, func(string) {}); err == nil {
				rs.lookup(name)
			}
		}
		if toks, err := splitBraced(name); err == nil {
			for _, tok := range toks {
				if tok == "" {
					t.Fatalf("empty token from %q", name)
				}
			}
		}
	})
}
