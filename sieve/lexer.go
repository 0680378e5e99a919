// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"fmt"
	"strings"
)

// Pos is a place in a script: 1-based line and column (in bytes).
type Pos struct {
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokIdent
	tokTag
	tokNumber
	tokString
	tokLBracket
	tokRBracket
	tokLParen
	tokRParen
	tokLBrace
	tokRBrace
	tokComma
	tokSemicolon
)

var tokenNames = [...]string{
	tokEOF: "end of script", tokIdent: "identifier", tokTag: "tag", tokNumber: "number",
	tokString: "string", tokLBracket: "'['", tokRBracket: "']'", tokLParen: "'('",
	tokRParen: "')'", tokLBrace: "'{'", tokRBrace: "'}'", tokComma: "','", tokSemicolon: "';'",
}

func (k tokenKind) String() string { return tokenNames[k] }

type token struct {
	kind tokenKind
	pos  Pos
	text string // identifier or tag name (without ':'), string value
	num  uint64
}

// lexer turns RFC 5228 section 8.1 tokens into a slice. Line ends may be
// CRLF or bare LF: scripts edited on Unix use LF, and Pigeonhole takes both.
type lexer struct {
	src       string
	off       int
	line, col int
}

// maxNumber bounds numbers after their quantifier so that size and :days
// arithmetic cannot overflow.
const maxNumber = 1<<63 - 1

func lex(src string) ([]token, error) {
	lx := &lexer{src: src, line: 1, col: 1}
	var toks []token
	for {
		t, err := lx.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tokEOF {
			return toks, nil
		}
	}
}

func (lx *lexer) pos() Pos { return Pos{lx.line, lx.col} }

func (lx *lexer) errorf(p Pos, format string, args ...any) error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// advance moves over n bytes, keeping line and column.
func (lx *lexer) advance(n int) {
	for i := 0; i < n; i++ {
		if lx.src[lx.off] == '\n' {
			lx.line++
			lx.col = 1
		} else {
			lx.col++
		}
		lx.off++
	}
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (lx *lexer) next() (token, error) {
	for lx.off < len(lx.src) {
		c := lx.src[lx.off]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			lx.advance(1)
		case c == '#':
			for lx.off < len(lx.src) && lx.src[lx.off] != '\n' {
				lx.advance(1)
			}
		case c == '/' && strings.HasPrefix(lx.src[lx.off:], "/*"):
			p := lx.pos()
			end := strings.Index(lx.src[lx.off+2:], "*/")
			if end < 0 {
				return token{}, lx.errorf(p, "unterminated comment")
			}
			lx.advance(end + 4)
		default:
			return lx.token()
		}
	}
	return token{kind: tokEOF, pos: lx.pos()}, nil
}

var punct = map[byte]tokenKind{'[': tokLBracket, ']': tokRBracket, '(': tokLParen, ')': tokRParen,
	'{': tokLBrace, '}': tokRBrace, ',': tokComma, ';': tokSemicolon}

func (lx *lexer) token() (token, error) {
	p := lx.pos()
	c := lx.src[lx.off]
	if k, ok := punct[c]; ok {
		lx.advance(1)
		return token{kind: k, pos: p}, nil
	}
	switch {
	case c == '"':
		return lx.quoted(p)
	case c == ':':
		lx.advance(1)
		if lx.off >= len(lx.src) || !(isAlpha(lx.src[lx.off]) || lx.src[lx.off] == '_') {
			return token{}, lx.errorf(p, "expected a tag name after ':'")
		}
		return token{kind: tokTag, pos: p, text: strings.ToLower(lx.ident())}, nil
	case isAlpha(c) || c == '_':
		id := lx.ident()
		if strings.EqualFold(id, "text") && lx.off < len(lx.src) && lx.src[lx.off] == ':' {
			lx.advance(1)
			return lx.multiline(p)
		}
		return token{kind: tokIdent, pos: p, text: strings.ToLower(id)}, nil
	case isDigit(c):
		return lx.number(p)
	}
	return token{}, lx.errorf(p, "unexpected character %q", c)
}

func (lx *lexer) ident() string {
	start := lx.off
	for lx.off < len(lx.src) {
		c := lx.src[lx.off]
		if !(isAlpha(c) || isDigit(c) || c == '_') {
			break
		}
		lx.advance(1)
	}
	return lx.src[start:lx.off]
}

func (lx *lexer) number(p Pos) (token, error) {
	var n uint64
	for lx.off < len(lx.src) && isDigit(lx.src[lx.off]) {
		d := uint64(lx.src[lx.off] - '0')
		if n > (maxNumber-d)/10 {
			return token{}, lx.errorf(p, "number is too large")
		}
		n = n*10 + d
		lx.advance(1)
	}
	if lx.off < len(lx.src) {
		var mult uint64 = 1
		switch lx.src[lx.off] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			if n > maxNumber/mult {
				return token{}, lx.errorf(p, "number is too large")
			}
			n *= mult
			lx.advance(1)
		}
	}
	if lx.off < len(lx.src) && (isAlpha(lx.src[lx.off]) || lx.src[lx.off] == '_') {
		return token{}, lx.errorf(p, "invalid character %q after number", lx.src[lx.off])
	}
	return token{kind: tokNumber, pos: p, num: n}, nil
}

// quoted reads a quoted string. RFC 5228 2.4.2: "\\" and "\"" are escapes;
// a backslash before any other character is dropped (as Pigeonhole does).
func (lx *lexer) quoted(p Pos) (token, error) {
	lx.advance(1)
	var b strings.Builder
	for {
		if lx.off >= len(lx.src) {
			return token{}, lx.errorf(p, "unterminated string")
		}
		c := lx.src[lx.off]
		switch c {
		case '"':
			lx.advance(1)
			return token{kind: tokString, pos: p, text: b.String()}, nil
		case '\\':
			if lx.off+1 >= len(lx.src) {
				return token{}, lx.errorf(p, "unterminated string")
			}
			b.WriteByte(lx.src[lx.off+1])
			lx.advance(2)
		case '\n':
			// A line break inside a string is CRLF (RFC 5228 2.4.2), even
			// when the script was saved with bare LFs, as in Pigeonhole.
			if !strings.HasSuffix(b.String(), "\r") {
				b.WriteByte('\r')
			}
			b.WriteByte('\n')
			lx.advance(1)
		default:
			b.WriteByte(c)
			lx.advance(1)
		}
	}
}

// multiline reads a "text:" string (RFC 5228 2.4.2): the rest of the
// "text:" line must be blank or a hash comment; lines up to one holding a
// lone "." form the value, with a leading ".." unstuffed to ".". Lines end
// in CRLF in the value, whatever the script used.
func (lx *lexer) multiline(p Pos) (token, error) {
	for lx.off < len(lx.src) && (lx.src[lx.off] == ' ' || lx.src[lx.off] == '\t') {
		lx.advance(1)
	}
	if lx.off < len(lx.src) && lx.src[lx.off] == '#' {
		for lx.off < len(lx.src) && lx.src[lx.off] != '\n' {
			lx.advance(1)
		}
	}
	if lx.off < len(lx.src) && lx.src[lx.off] == '\r' {
		lx.advance(1)
	}
	if lx.off >= len(lx.src) || lx.src[lx.off] != '\n' {
		return token{}, lx.errorf(p, "text: must be followed by a line break")
	}
	lx.advance(1)
	var b strings.Builder
	for {
		if lx.off >= len(lx.src) {
			return token{}, lx.errorf(p, "unterminated multi-line string (missing '.' line)")
		}
		end := strings.IndexByte(lx.src[lx.off:], '\n')
		var line string
		if end < 0 {
			line = lx.src[lx.off:]
			end = len(line)
		} else {
			line = lx.src[lx.off : lx.off+end]
			end++
		}
		line = strings.TrimSuffix(line, "\r")
		lx.advance(end)
		if line == "." {
			return token{kind: tokString, pos: p, text: b.String()}, nil
		}
		if strings.HasPrefix(line, "..") {
			line = line[1:]
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
}
