// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"fmt"
	"strings"
)

// Error is a compile or runtime error at a place in a script.
type Error struct {
	Script string // name of the script (include name), "" for the main one
	Pos    Pos
	Msg    string
}

func (e *Error) Error() string {
	name := e.Script
	if name == "" {
		name = "script"
	}
	if e.Pos.Line == 0 {
		return name + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d:%d: %s", name, e.Pos.Line, e.Pos.Col, e.Msg)
}

type argKind int

const (
	argNone   argKind = iota // in a tag spec: the tag takes no argument
	argString                // a single string (not in brackets)
	argStringList
	argNumber
	argTag
)

// arg is one argument as written; a single string is also a string list.
type arg struct {
	kind argKind
	pos  Pos
	strs []string
	num  uint64
	tag  string
}

func (a *arg) describe() string {
	switch a.kind {
	case argString:
		return "string"
	case argStringList:
		return "string list"
	case argNumber:
		return "number"
	}
	return "tag :" + a.tag
}

// node is a command or a test as parsed (RFC 5228 section 8.2).
type node struct {
	name     string
	pos      Pos
	args     []arg
	tests    []*node
	testList bool // tests were written as a "( ... )" list
	block    []*node
	hasBlock bool
}

// Limits on nesting and size keep a hostile script from exhausting the
// worker's stack or memory during parsing.
const (
	maxNesting = 64
	maxListLen = 1 << 14
)

type parser struct {
	toks  []token
	i     int
	depth int
}

func parse(src string) ([]*node, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	cmds, err := p.commands()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errorf(t.pos, "unexpected %s", t.kind)
	}
	return cmds, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) take() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) errorf(pos Pos, format string, args ...any) error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) commands() ([]*node, error) {
	var cmds []*node
	for {
		t := p.peek()
		if t.kind != tokIdent {
			return cmds, nil
		}
		c, err := p.command()
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, c)
	}
}

func (p *parser) command() (*node, error) {
	id := p.take()
	n := &node{name: id.text, pos: id.pos}
	if err := p.arguments(n); err != nil {
		return nil, err
	}
	t := p.take()
	switch t.kind {
	case tokSemicolon:
		return n, nil
	case tokLBrace:
		if p.depth++; p.depth > maxNesting {
			return nil, p.errorf(t.pos, "blocks nested too deeply")
		}
		block, err := p.commands()
		if err != nil {
			return nil, err
		}
		p.depth--
		if e := p.take(); e.kind != tokRBrace {
			return nil, p.errorf(e.pos, "expected '}' to end the block of %s (line %d), found %s", n.name, t.pos.Line, e.kind)
		}
		n.block, n.hasBlock = block, true
		return n, nil
	}
	return nil, p.errorf(t.pos, "expected ';' or '{' after the arguments of %s, found %s", n.name, t.kind)
}

// arguments reads "*argument [test / test-list]" into n.
func (p *parser) arguments(n *node) error {
	for {
		t := p.peek()
		switch t.kind {
		case tokTag:
			p.take()
			n.args = append(n.args, arg{kind: argTag, pos: t.pos, tag: t.text})
		case tokNumber:
			p.take()
			n.args = append(n.args, arg{kind: argNumber, pos: t.pos, num: t.num})
		case tokString:
			p.take()
			n.args = append(n.args, arg{kind: argString, pos: t.pos, strs: []string{t.text}})
		case tokLBracket:
			a, err := p.stringList()
			if err != nil {
				return err
			}
			n.args = append(n.args, a)
		case tokIdent:
			test, err := p.test()
			if err != nil {
				return err
			}
			n.tests = []*node{test}
			return nil
		case tokLParen:
			p.take()
			n.testList = true
			if p.depth++; p.depth > maxNesting {
				return p.errorf(t.pos, "tests nested too deeply")
			}
			for {
				if tt := p.peek(); tt.kind != tokIdent {
					return p.errorf(tt.pos, "expected a test, found %s", tt.kind)
				}
				test, err := p.test()
				if err != nil {
					return err
				}
				n.tests = append(n.tests, test)
				sep := p.take()
				if sep.kind == tokRParen {
					break
				}
				if sep.kind != tokComma {
					return p.errorf(sep.pos, "expected ',' or ')' in the test list, found %s", sep.kind)
				}
			}
			p.depth--
			return nil
		default:
			return nil
		}
	}
}

func (p *parser) test() (*node, error) {
	id := p.take()
	n := &node{name: id.text, pos: id.pos}
	if p.depth++; p.depth > maxNesting {
		return nil, p.errorf(id.pos, "tests nested too deeply")
	}
	defer func() { p.depth-- }()
	return n, p.arguments(n)
}

func (p *parser) stringList() (arg, error) {
	open := p.take()
	a := arg{kind: argStringList, pos: open.pos}
	for {
		t := p.take()
		if t.kind != tokString {
			return a, p.errorf(t.pos, "expected a string in the string list, found %s", t.kind)
		}
		if len(a.strs) >= maxListLen {
			return a, p.errorf(t.pos, "string list too long")
		}
		a.strs = append(a.strs, t.text)
		sep := p.take()
		if sep.kind == tokRBracket {
			return a, nil
		}
		if sep.kind != tokComma {
			return a, p.errorf(sep.pos, "expected ',' or ']' in the string list, found %s", sep.kind)
		}
	}
}

// lowerASCII folds ASCII letters only, as i;ascii-casemap does.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.Map(func(r rune) rune {
				if r >= 'A' && r <= 'Z' {
					return r + 32
				}
				return r
			}, s)
		}
	}
	return s
}
