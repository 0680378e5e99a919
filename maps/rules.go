// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// This file is the parser and matcher shared by regexp: and pcre: tables
// (regexp_table(5), pcre_table(5)); the dialects differ only in their
// flags, the legacy "/p1/!/p2/" form, and how a pattern becomes a Go
// regexp (posix.go, pcre.go).

// dialect is what differs between regexp: and pcre:.
type dialect struct {
	typ       string // "regexp" or "pcre"
	flags     string // flag letters accepted after the closing delimiter
	ignored   string // flags accepted but ignored with a warning
	legacyNot bool   // whether "/p1/!/p2/ result" is understood
	// compile turns a pattern and its flag letters (in file order; each
	// toggles) into a Go regexp.
	compile func(pattern, flags string) (*regexp.Regexp, error)
}

type ruleOp uint8

const (
	opMatch ruleOp = iota
	opIf
	opEndif
)

type rule struct {
	op     ruleOp
	re     *regexp.Regexp
	want   bool           // the result of re.MatchString that counts as a match
	re2    *regexp.Regexp // legacy "/p1/!/p2/": the second pattern, or nil
	want2  bool
	result string // opMatch: the literal result, "$$" already made "$"
	next   int    // opIf: where to go when it does not match (after its endif)
	line   int
}

// ruleTable is a parsed regexp:/pcre: table.
type ruleTable []rule

// lookup evaluates the rules in file order; the first match wins.
func (rs ruleTable) lookup(key string) (string, bool) {
	key = byteKey(key) // match bytes, as Postfix does (bytewise.go)
	for i := 0; i < len(rs); {
		r := &rs[i]
		switch r.op {
		case opMatch:
			if r.re.MatchString(key) == r.want && (r.re2 == nil || r.re2.MatchString(key) == r.want2) {
				return r.result, true
			}
			i++
		case opIf:
			if r.re.MatchString(key) == r.want {
				i++
			} else {
				i = r.next
			}
		default:
			i++
		}
	}
	return "", false
}

// ruleParser turns logical lines into rules. Rules that Postfix skips
// with a warning are skipped with the same warning; a pattern that does
// not compile is an error, because silently skipping a rule an admin
// relies on (Postfix would have used it) routes mail wrongly.
type ruleParser struct {
	d     *dialect
	name  string // file name or "inline" for warnings and errors
	warn  Warn
	rules ruleTable
	open  []int // indexes of the if rules not yet closed
}

func (p *ruleParser) warnf(line int, format string, args ...any) {
	p.warn.at(p.name, line, "%s", fmt.Sprintf(format, args...))
}

// pattern is one "!/re/flags" as written.
type pattern struct {
	re    string
	flags string
	want  bool
}

// getPattern reads optional '!'s, a delimited pattern and its flags from
// the start of s. stopAtBang ends the flags at '!' (the legacy form). A
// non-empty skip says why the rule is skipped.
func (p *ruleParser) getPattern(s string, stopAtBang bool) (pat pattern, rest, skip string) {
	pat.want = true
	i := 0
	for ; i < len(s); i++ {
		if s[i] == '!' {
			pat.want = !pat.want
		} else if !isSpace(s[i]) {
			break
		}
	}
	if i == len(s) {
		return pat, "", "no regexp: skipping this rule"
	}
	delim := s[i]
	i++
	start := i
	for ; i < len(s); i++ {
		if s[i] == '\\' {
			if i+1 == len(s) {
				i = len(s)
				break
			}
			i++
		} else if s[i] == delim {
			break
		}
	}
	if i >= len(s) {
		return pat, "", fmt.Sprintf("no closing regexp delimiter %q: skipping this rule", delim)
	}
	pat.re = s[start:i]
	i++
	fstart := i
	for ; i < len(s) && !isSpace(s[i]) && !(stopAtBang && s[i] == '!'); i++ {
		c := s[i]
		switch {
		case strings.IndexByte(p.d.ignored, c) >= 0:
			// accepted; compile warns
		case strings.IndexByte(p.d.flags, c) < 0:
			return pat, "", fmt.Sprintf("unknown regexp option %q: skipping this rule", c)
		}
	}
	pat.flags = s[fstart:i]
	return pat, s[i:], ""
}

func (p *ruleParser) compile(line int, pat pattern) (*regexp.Regexp, error) {
	for _, c := range []byte(pat.flags) {
		if strings.IndexByte(p.d.ignored, c) >= 0 {
			p.warnf(line, "ignoring obsolete regexp option %q", c)
		}
	}
	re, err := p.d.compile(pat.re, pat.flags)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: %s map: pattern /%s/%s: %w", p.name, line, p.d.typ, pat.re, pat.flags, err)
	}
	return re, nil
}

// parseLine handles one logical line.
func (p *ruleParser) parseLine(line int, text string) error {
	text = strings.TrimRightFunc(text, isSpaceRune)
	if text == "" {
		return nil
	}
	c := text[0]
	isAlnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	switch {
	case !isAlnum:
		return p.parseMatch(line, text)
	case keyword(text, "if"):
		pat, rest, skip := p.getPattern(strings.TrimLeftFunc(text[2:], isSpaceRune), p.d.legacyNot)
		if skip != "" {
			p.warnf(line, "%s", skip)
			return nil
		}
		if rest = strings.TrimLeftFunc(rest, isSpaceRune); rest != "" {
			p.warnf(line, "ignoring extra text after IF statement: %q", rest)
			p.warnf(line, "do not prepend whitespace to statements between IF and ENDIF")
		}
		re, err := p.compile(line, pat)
		if err != nil {
			return err
		}
		p.open = append(p.open, len(p.rules))
		p.rules = append(p.rules, rule{op: opIf, re: re, want: pat.want, line: line})
	case keyword(text, "endif"):
		if len(p.open) == 0 {
			p.warnf(line, "ignoring ENDIF without matching IF")
			return nil
		}
		if strings.TrimLeftFunc(text[5:], isSpaceRune) != "" {
			p.warnf(line, "ignoring extra text after ENDIF")
		}
		p.rules[p.open[len(p.open)-1]].next = len(p.rules) + 1
		p.open = p.open[:len(p.open)-1]
		p.rules = append(p.rules, rule{op: opEndif, line: line})
	default:
		p.warnf(line, "ignoring unrecognized request")
	}
	return nil
}

// keyword reports whether text starts with kw (any case) followed by a
// character that is not alphanumeric.
func keyword(text, kw string) bool {
	if len(text) < len(kw) || !strings.EqualFold(text[:len(kw)], kw) {
		return false
	}
	if len(text) == len(kw) {
		return true
	}
	c := text[len(kw)]
	return !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z')
}

func (p *ruleParser) parseMatch(line int, text string) error {
	first, rest, skip := p.getPattern(text, p.d.legacyNot)
	if skip != "" {
		p.warnf(line, "%s", skip)
		return nil
	}
	var second *pattern
	if p.d.legacyNot && strings.HasPrefix(rest, "!") {
		sp, r, skip := p.getPattern(rest, true)
		if skip != "" {
			p.warnf(line, "%s", skip)
			return nil
		}
		second, rest = &sp, r
	}
	result := strings.TrimLeftFunc(rest, isSpaceRune)
	if result == "" {
		p.warnf(line, "no replacement text: using empty string")
	}
	lit, maxSub, bad := parseReplacement(result)
	switch {
	case bad != "":
		p.warnf(line, "%s", bad)
		p.warnf(line, "bad replacement syntax: skipping this rule")
		return nil
	case maxSub > 0 && !first.want:
		p.warnf(line, "$number found in negative match replacement text: skipping this rule")
		return nil
	case maxSub > 0:
		// virtual(8) opens its tables with DICT_FLAG_NO_REGSUB: putting
		// parts of the address into a path would be a security hole.
		p.warnf(line, "regular expression substitution is not allowed: skipping this rule")
		return nil
	}
	r := rule{op: opMatch, want: first.want, result: lit, line: line}
	var err error
	if r.re, err = p.compile(line, first); err != nil {
		return err
	}
	if second != nil {
		if r.re2, err = p.compile(line, *second); err != nil {
			return err
		}
		r.want2 = second.want
	}
	p.rules = append(p.rules, r)
	return nil
}

// parseReplacement scans a result for $ references the way Postfix's
// mac_parse does: "$$" is a literal '$'; "$name", "${name}" and "$(name)"
// are references, where name must be a positive number. It returns the
// literal text (valid when maxSub is 0), the highest $number, and a
// description of a syntax error.
func parseReplacement(s string) (lit string, maxSub int, bad string) {
	if strings.IndexByte(s, '$') < 0 {
		return s, 0, ""
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i += 2
			continue
		}
		i++
		var name string
		if i < len(s) && (s[i] == '{' || s[i] == '(') {
			open, close := s[i], byte('}')
			if open == '(' {
				close = ')'
			}
			level, j := 1, i+1
			for ; j < len(s) && level > 0; j++ {
				switch s[j] {
				case open:
					level++
				case close:
					level--
				}
			}
			if level > 0 {
				return "", 0, fmt.Sprintf("truncated macro reference: %q", s)
			}
			name, i = s[i+1:j-1], j
		} else {
			j := i
			for j < len(s) && (isAlnumByte(s[j]) || s[j] == '_') {
				j++
			}
			name, i = s[i:j], j
		}
		if name == "" {
			return "", 0, fmt.Sprintf("empty macro name: %q", s)
		}
		n := 0
		for _, c := range []byte(name) {
			if c < '0' || c > '9' {
				return "", 0, fmt.Sprintf("non-numeric replacement index %q", name)
			}
			if n < 1000 {
				n = n*10 + int(c-'0')
			}
		}
		if n < 1 {
			return "", 0, fmt.Sprintf("out of range replacement index %q", name)
		}
		maxSub = max(maxSub, n)
	}
	return b.String(), maxSub, ""
}

func isAlnumByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// finish closes the table: an IF without ENDIF skips to the end when it
// does not match, with a warning.
func (p *ruleParser) finish() ruleTable {
	for _, i := range p.open {
		p.warnf(p.rules[i].line, "IF has no matching ENDIF")
		p.rules[i].next = len(p.rules)
	}
	p.open = nil
	return p.rules
}

// parseRules reads a regexp:/pcre: table file.
func parseRules(d *dialect, r io.Reader, name string, warn Warn) (ruleTable, error) {
	p := &ruleParser{d: d, name: name, warn: warn}
	if err := ScanLines(r, name, warn, p.parseLine); err != nil {
		return nil, err
	}
	return p.finish(), nil
}

// parseInlineRules reads the inline form "{ {rule1}, {rule2}, ... }"; the
// n-th rule is reported as line n.
func parseInlineRules(d *dialect, text string, warn Warn) (ruleTable, error) {
	inner, braced, err := unbrace(text)
	if err == nil && !braced {
		err = fmt.Errorf("expected { {rule}, {rule}, ... }")
	}
	var toks []string
	if err == nil {
		toks, err = splitBraced(inner)
	}
	if err != nil {
		return nil, fmt.Errorf("bad inline %s table %q: %v", d.typ, text, err)
	}
	p := &ruleParser{d: d, name: "inline", warn: warn}
	for i, tok := range toks {
		r, braced, err := unbrace(tok)
		if err == nil && !braced {
			err = fmt.Errorf("each rule must be enclosed in { }, as in %s:{ {/pattern/ result}, ... }", d.typ)
		}
		if err != nil {
			return nil, fmt.Errorf("bad inline %s table: rule %d %q: %v", d.typ, i+1, tok, err)
		}
		if err := p.parseLine(i+1, r); err != nil {
			return nil, err
		}
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("bad inline %s table %q: no rules", d.typ, text)
	}
	return p.finish(), nil
}

// ruleMap is an open regexp: or pcre: table, from a file (followed for
// changes) or inline.
type ruleMap struct {
	spec   string
	file   *WatchedFile[ruleTable]
	inline ruleTable
}

func openRules(d *dialect, name string, opts Options) (Map, error) {
	m := &ruleMap{spec: d.typ + ":" + name}
	warn := Warn(func(msg string) { opts.Logger.Warn(msg, "table", m.spec) })
	if strings.HasPrefix(name, "{") {
		rs, err := parseInlineRules(d, name, warn)
		if err != nil {
			return nil, err
		}
		m.inline = rs
		return m, nil
	}
	path, err := FilePath(name, opts)
	if err != nil {
		return nil, err
	}
	load := func(r io.Reader, name string, warn Warn) (ruleTable, error) { return parseRules(d, r, name, warn) }
	if m.file, err = WatchFile(path, m.spec, opts.Logger, load, defaultWatch); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *ruleMap) Lookup(_ context.Context, key string) (string, bool, error) {
	if m.file != nil {
		return m.file.Lookup(func(rs ruleTable) (string, bool, error) {
			v, ok := rs.lookup(key)
			return v, ok, nil
		})
	}
	v, ok := m.inline.lookup(key)
	return v, ok, nil
}

func (m *ruleMap) Spec() string { return m.spec }

// Pattern is true: regexp and pcre tables only see the full address.
func (m *ruleMap) Pattern() bool { return true }
