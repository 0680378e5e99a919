// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
)

// Entry is one key/value pair of a postmap(1) source file.
type Entry struct {
	Key   string
	Value string
	Line  int // first physical line of the entry, 1-based
}

// Warn receives a load warning, already prefixed with "name:line: ". A nil
// Warn discards warnings.
type Warn func(msg string)

func (w Warn) at(name string, line int, format string, args ...any) {
	if w == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	switch {
	case name == "" && line == 0:
		w(msg)
	case line == 0:
		w(name + ": " + msg)
	default:
		w(fmt.Sprintf("%s:%d: %s", name, line, msg))
	}
}

// FoldKey is Postfix's casefold(3) with smtputf8_enable = yes: full
// Unicode case folding (ICU's default, not Turkic), so "Straße" is
// "strasse" and a final sigma "ς" is "σ". virtual(8) folds the recipient
// with it before any lookup, and postmap(1) folds the keys of the files it
// builds (`vlmtpd makemap` does the same). Table keys are never folded at
// lookup time: a key that is not already folded can never match.
func FoldKey(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] >= utf8.RuneSelf {
			// A Caser keeps state between calls: one per call.
			return cases.Fold().String(key)
		}
	}
	return strings.ToLower(key)
}

// Unfolded reports whether key differs from its case-folded form, i.e. a
// lookup of a (folded) address can never find it.
func Unfolded(key string) bool {
	for i := 0; i < len(key); i++ {
		if c := key[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return FoldKey(key) != key
		}
	}
	return false
}

// UnfoldedWarning is the warning for a table key that is not case-folded.
// Postfix folds the address, not the keys (virtual(8) opens its tables
// without DICT_FLAG_FOLD_FIX), so such an entry is dead, in vlmtpd as in
// Postfix; the warning says so instead of leaving the admin to wonder
// why the mail went to the catch-all.
func UnfoldedWarning(key string) string {
	return fmt.Sprintf("key %q is not case-folded: addresses are folded before the lookup, so it can never match (write %q)", key, FoldKey(key))
}

// MaxUnfoldedWarnings bounds the key warnings one load of a large table
// logs; a count follows.
const MaxUnfoldedWarnings = 5

// UnfoldedKeys collects, while a table that holds its keys (cdb, hash,
// btree) is walked, those that can never match, to warn about them once
// per version of the file.
type UnfoldedKeys struct {
	first []string
	n     int
}

// Add notes key if it is not case-folded.
func (u *UnfoldedKeys) Add(key string) {
	if Unfolded(key) {
		if u.n++; u.n <= MaxUnfoldedWarnings {
			u.first = append(u.first, key)
		}
	}
}

// AddStored notes a key as a table file stores it, if it is not
// case-folded; a trailing NUL (`postmap -N`) is not part of the key. The
// key is copied only if it is kept for the warning, so that a walk over a
// large file does not allocate for every key.
func (u *UnfoldedKeys) AddStored(key []byte) {
	key = bytes.TrimSuffix(key, []byte{0})
	if Unfolded(string(key)) { // not kept: no copy for the common short key
		u.Add(string(key))
	}
}

// Warn logs the first keys, then how many there were in all.
func (u *UnfoldedKeys) Warn(log *slog.Logger, spec string) {
	for _, k := range u.first {
		log.Warn(UnfoldedWarning(k), "table", spec)
	}
	if u.n > MaxUnfoldedWarnings {
		log.Warn(fmt.Sprintf("%d keys in all are not case-folded and can never match", u.n), "table", spec)
	}
}

// ScanLines reads r as Postfix's logical lines (readllines(3)) and calls fn
// with each one and the number of its first physical line:
//   - a line that starts with white space continues the previous line (the
//     newline is dropped, the continuation's leading white space is kept);
//   - empty lines, white-space-only lines and lines whose first non-blank
//     character is '#' are ignored, even in the middle of a continued line;
//   - a continuation with nothing before it is ignored with a warning.
//
// A trailing CR is removed from each physical line. Trailing white space of
// the logical line is left to the caller. fn's error stops the scan and is
// returned; so is a read error.
func ScanLines(r io.Reader, name string, warn Warn, fn func(line int, text string) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		cur     []byte // the logical line being built
		curLine int    // its first physical line; 0 when none is open
		long    []byte // a physical line longer than br's buffer
		lineNo  int
	)
	flush := func() error {
		if curLine == 0 {
			return nil
		}
		l := curLine
		curLine = 0
		return fn(l, string(cur))
	}
	for {
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, raw...)
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(long) > 0 {
			long = append(long, raw...)
			raw = long
		}
		if len(raw) > 0 {
			lineNo++
			phys := bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte{'\n'}), []byte{'\r'})
			first := bytes.TrimLeft(phys, " \t\v\f\r")
			switch {
			case len(first) == 0 || first[0] == '#':
				// blank or comment: ignored, does not end a logical line
			case len(first) != len(phys): // starts with white space
				if curLine == 0 {
					warn.at(name, lineNo, "logical line must not start with whitespace: ignoring this line")
				} else {
					cur = append(cur, phys...)
				}
			default:
				if ferr := flush(); ferr != nil {
					return ferr
				}
				cur = append(cur[:0], phys...)
				curLine = lineNo
			}
		}
		long = long[:0]
		if cap(long) > 1<<20 {
			long = nil // don't pin a huge buffer
		}
		if err != nil { // io.EOF
			return flush()
		}
	}
}

// isSpace is C's isspace in the "C" locale, which Postfix uses to split
// keys from values.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// ScanSource reads a postmap(1) source file and calls fn with each entry in
// file order, keys as written (not folded) and duplicates included. Lines
// that postmap would skip are skipped with a warning that names name:line:
// a missing key or value ("expected format: key whitespace value"), an
// unbalanced '"' in the key, a NUL byte, or text that is not UTF-8. A key
// ending in ':' is kept with a warning (it looks like an aliases(5) file).
//
// The key ends at the first white space outside double quotes; a backslash
// protects the next character but stays in the key, as do the quotes. The
// value is the rest of the line with surrounding white space trimmed; there
// are no trailing comments.
func ScanSource(r io.Reader, name string, warn Warn, fn func(Entry) error) error {
	return ScanLines(r, name, warn, func(line int, text string) error {
		e, msg := ParseSourceLine(text)
		if msg != "" {
			warn.at(name, line, "%s", msg)
			return nil
		}
		if strings.HasSuffix(e.Key, ":") {
			warn.at(name, line, "record is in \"key: value\" format; is this an alias file?")
		}
		e.Line = line
		return fn(e)
	})
}

// ParseSourceLine splits one logical line of a postmap(1) source file into
// key and value. When the line must be skipped it returns a non-empty
// explanation instead.
func ParseSourceLine(text string) (e Entry, skip string) {
	if strings.IndexByte(text, 0) >= 0 {
		return Entry{}, "record contains a NUL byte: skipping this line"
	}
	if !utf8.ValidString(text) {
		return Entry{}, "record is not valid UTF-8: skipping this line"
	}
	i := 0
	for i < len(text) && isSpace(text[i]) {
		i++
	}
	start := i
	inQuotes := false
scan:
	for ; i < len(text); i++ {
		switch c := text[i]; {
		case c == '\\':
			if i+1 >= len(text) {
				i = len(text)
				break scan
			}
			i++
		case c == '"':
			inQuotes = !inQuotes
		case isSpace(c) && !inQuotes:
			break scan
		}
	}
	if inQuotes {
		return Entry{}, fmt.Sprintf("unbalanced '\"' in %q: skipping this line", text)
	}
	key := text[start:i]
	value := strings.TrimFunc(text[i:], func(r rune) bool { return r < utf8.RuneSelf && isSpace(byte(r)) })
	if key == "" || value == "" {
		return Entry{}, "expected format: key whitespace value: skipping this line"
	}
	return Entry{Key: key, Value: value}, ""
}

// ReadSource reads a whole postmap(1) source file the way postmap builds a
// table from it: entries in file order with keys folded by FoldKey; for a
// key seen twice the first entry wins and the later one is dropped with a
// "duplicate entry" warning. Only I/O errors are returned; bad lines are
// warnings. (texthash: builds its map straight from ScanSource, and
// `vlmtpd makemap` deduplicates in cdb.Writer because -f keeps case; an
// entry slice plus a second key map would double a large table's load.)
func ReadSource(r io.Reader, name string, warn Warn) ([]Entry, error) {
	var out []Entry
	first := map[string]int{}
	err := ScanSource(r, name, warn, func(e Entry) error {
		e.Key = FoldKey(e.Key)
		if l, dup := first[e.Key]; dup {
			warn.at(name, e.Line, "duplicate entry: %q (keeping line %d)", e.Key, l)
			return nil
		}
		first[e.Key] = e.Line
		out = append(out, e)
		return nil
	})
	return out, err
}
