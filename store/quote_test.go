package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// quoteLines is the obvious line-by-line mboxo quoting, the reference the
// streaming writer must match.
func quoteLines(in string) string {
	if in == "" {
		return ""
	}
	var b strings.Builder
	for _, ln := range strings.SplitAfter(in, "\n") {
		if strings.HasPrefix(ln, "From ") {
			b.WriteByte('>')
		}
		b.WriteString(ln)
	}
	if !strings.HasSuffix(in, "\n") {
		b.WriteByte('\n')
	}
	return b.String()
}

// quoteChunks quotes in, written in pieces of the given sizes (cycled).
func quoteChunks(t testing.TB, in string, sizes []int) string {
	var out bytes.Buffer
	q := newFromQuoter(&out)
	for i := 0; len(in) > 0; i++ {
		n := len(in)
		if len(sizes) > 0 {
			n = min(n, max(1, sizes[i%len(sizes)]))
		}
		if k, err := q.Write([]byte(in[:n])); k != n || err != nil {
			t.Fatalf("Write = %d, %v", k, err)
		}
		in = in[n:]
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if q.n != int64(out.Len()) {
		t.Fatalf("counted %d bytes, wrote %d", q.n, out.Len())
	}
	return out.String()
}

func TestFromQuoter(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "",
		"From x":                    ">From x\n",
		"From ":                     ">From \n",
		"From":                      "From\n",
		"Fro":                       "Fro\n",
		"\nFrom \n":                 "\n>From \n",
		">From x\n":                 ">From x\n",
		"a From x\nFrom\tx\n":       "a From x\nFrom\tx\n",
		"FROM x\nfrom x\n From x\n": "FROM x\nfrom x\n From x\n",
		"From a\nFrom b\n\nFrom c":  ">From a\n>From b\n\n>From c\n",
		"FromFrom \nFr\nFrom":       "FromFrom \nFr\nFrom\n",
		"x\r\nFrom \r\n":            "x\r\n>From \r\n",
	} {
		if ref := quoteLines(in); ref != want {
			t.Fatalf("reference quoteLines(%q) = %q, want %q", in, ref, want)
		}
		// Every split point, one byte at a time, and whole.
		for _, sizes := range [][]int{nil, {1}, {2}, {3}, {4}, {5}, {1, 4}, {3, 1, 7}} {
			if got := quoteChunks(t, in, sizes); got != want {
				t.Errorf("quote(%q) in chunks %v = %q, want %q", in, sizes, got, want)
			}
		}
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.after {
		n := w.after
		w.after = 0
		return n, errors.New("disk on fire")
	}
	w.after -= len(p)
	return len(p), nil
}

func TestFromQuoterWriteError(t *testing.T) {
	q := newFromQuoter(&failWriter{after: 3})
	if _, err := q.Write([]byte("hello\nFrom x\n")); err == nil {
		t.Fatal("write error not reported")
	}
	if q.n != 3 {
		t.Errorf("counted %d bytes written, want 3", q.n)
	}
}

// FuzzFromQuoter checks the streaming writer against the line-by-line
// reference for any input and any split, and that the output parses back:
// no line starts with "From ", and removing the added ">" gives the input
// (plus a final LF). mboxo cannot tell an added ">" from one that was
// there, so parsing back strips it only where the writer added it.
func FuzzFromQuoter(f *testing.F) {
	for _, s := range []string{"", "From x\n", ">From x", "a\nFrom b\nFromc\nFro", "From\n\nFrom \n>>From "} {
		f.Add(s, []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, in string, split []byte) {
		sizes := make([]int, len(split))
		for i, b := range split {
			sizes[i] = int(b)
		}
		got := quoteChunks(t, in, sizes)
		if want := quoteLines(in); got != want {
			t.Fatalf("quote(%q) split %v = %q, want %q", in, sizes, got, want)
		}
		if in == "" {
			return
		}
		inLines := strings.SplitAfter(strings.TrimSuffix(in, "\n")+"\n", "\n")
		outLines := strings.SplitAfter(got, "\n")
		if len(inLines) != len(outLines) {
			t.Fatalf("%d lines in, %d out", len(inLines), len(outLines))
		}
		for i, ln := range outLines {
			if strings.HasPrefix(ln, "From ") {
				t.Fatalf("unquoted From_ line %q", ln)
			}
			back := ln
			if strings.HasPrefix(ln, ">From ") && strings.HasPrefix(inLines[i], "From ") {
				back = ln[1:]
			}
			if back != inLines[i] {
				t.Fatalf("line %d: %q does not parse back to %q", i, ln, inLines[i])
			}
		}
	})
}
