// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// Extensions lists every capability this package implements, for
// require and for the "sieve_extensions" setting of an administrator.
var Extensions = []string{
	"body", "comparator-i;ascii-casemap", "comparator-i;ascii-numeric", "comparator-i;octet",
	"copy", "date", "duplicate", "editheader", "encoded-character", "envelope", "environment",
	"ereject", "fileinto", "imap4flags", "include", "index", "mailbox", "regex", "reject",
	"relational", "subaddress", "vacation", "vacation-seconds", "variables",
}

// IncludeLocation says where an included script lives (RFC 6609 :personal
// or :global).
type IncludeLocation int

const (
	Personal IncludeLocation = iota
	Global
)

func (l IncludeLocation) String() string {
	if l == Global {
		return "global"
	}
	return "personal"
}

// IncludeLoader returns the source of an included script. It returns an
// error wrapping fs.ErrNotExist when there is no such script (so that
// include :optional can skip it).
type IncludeLoader func(loc IncludeLocation, name string) ([]byte, error)

// Options tune compilation. The zero value enables every extension and
// allows no include.
type Options struct {
	// Extensions, if not nil, is the set of capabilities require may name
	// (the rest are "unknown", as Pigeonhole's sieve_extensions does).
	Extensions []string
	// Include loads scripts named by include; nil makes include an error.
	Include IncludeLoader
	// MaxScriptSize bounds each script's source; 0 means
	// DefaultMaxScriptSize.
	MaxScriptSize int
	// Name is used in error messages.
	Name string
}

// Pigeonhole's defaults for include (sieve_include_max_nesting_depth,
// sieve_include_max_includes).
const (
	maxIncludeDepth = 10
	maxIncludes     = 255
)

// Script is a compiled Sieve script, safe for concurrent Run calls.
type Script struct {
	name string
	cmds []*cmd
	exts map[string]bool
}

// Compile parses and checks a script, with the scripts it includes. The
// first error found is returned, as an *Error with the script's name, line
// and column (Pigeonhole lists several; one is enough to fix and re-run).
func Compile(src []byte, opts *Options) (*Script, error) {
	if opts == nil {
		opts = &Options{}
	}
	c := &compiler{opts: opts, total: new(int)}
	return c.compile(src, opts.Name, nil)
}

type includeKey struct {
	loc  IncludeLocation
	name string
}

type compiler struct {
	opts   *Options
	name   string
	exts   map[string]bool
	stack  []includeKey // scripts being compiled, for loop detection
	vars   map[string]bool
	total  *int
	script *Script
}

func (c *compiler) compile(src []byte, name string, stack []includeKey) (*Script, error) {
	max := c.opts.MaxScriptSize
	if max <= 0 {
		max = DefaultMaxScriptSize
	}
	if len(src) > max {
		return nil, &Error{Script: name, Msg: fmt.Sprintf("script is larger than %d bytes", max)}
	}
	if !utf8.Valid(src) {
		// RFC 5228 2.4.2.4: scripts are UTF-8; find the offending line.
		line := 1 + strings.Count(string(src[:firstInvalidUTF8(src)]), "\n")
		return nil, &Error{Script: name, Pos: Pos{line, 1}, Msg: "script is not valid UTF-8"}
	}
	nodes, err := parse(string(src))
	if err != nil {
		err.(*Error).Script = name
		return nil, err
	}
	cc := &compiler{opts: c.opts, name: name, exts: map[string]bool{}, stack: stack, total: c.total}
	cc.script = &Script{name: name, exts: cc.exts}
	cmds, err := cc.commands(nodes, true, 0)
	if err != nil {
		if e, ok := err.(*Error); ok && e.Script == "" {
			e.Script = name
		}
		return nil, err
	}
	cc.script.cmds = cmds
	return cc.script, nil
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func (c *compiler) errorf(p Pos, format string, args ...any) error {
	return &Error{Script: c.name, Pos: p, Msg: fmt.Sprintf(format, args...)}
}

func (c *compiler) allowed(ext string) bool {
	if c.opts.Extensions == nil {
		return true
	}
	for _, e := range c.opts.Extensions {
		if strings.EqualFold(e, ext) {
			return true
		}
	}
	return false
}

func known(ext string) bool {
	i := sort.SearchStrings(Extensions, ext)
	return i < len(Extensions) && Extensions[i] == ext
}

// cmd is a bound command or test: its tags and positional arguments
// checked against its spec, plus what can be computed once.
type cmd struct {
	name  string
	pos   Pos
	tags  map[string]*arg // tag name → its argument (or the tag itself)
	args  []arg
	tests []*cmd
	block []*cmd
	next  *cmd // elsif / else following an if or elsif

	match   string // is, contains, matches, regex, value, count
	rel     string // relational operator for value/count
	cmpName string
	part    string  // address part
	include *Script // include: the compiled script, nil if :optional and absent
	inc     includeKey
	regexes []*regexp.Regexp // precompiled literal keys for :regex
}

func (c *cmd) has(tag string) bool { _, ok := c.tags[tag]; return ok }
func (c *cmd) tagStr(tag string) (string, bool) {
	a, ok := c.tags[tag]
	if !ok || a.kind == argTag {
		return "", false
	}
	return a.strs[0], true
}

type tagSpec struct {
	ext   string
	arg   argKind // argNone: the tag takes no argument
	group string
}

type spec struct {
	ext      string
	isTest   bool
	tags     map[string]tagSpec
	pos      []argKind // positional arguments in order
	optional int       // how many of pos may be left out
	optFirst bool      // the optional ones are the first, not the last
	tests    int       // 0 none, 1 exactly one, -1 a test list
	block    bool
	check    func(c *compiler, x *cmd) error
}

var (
	comparatorTag = map[string]tagSpec{"comparator": {arg: argString, group: "comparator"}}
	matchTags     = map[string]tagSpec{
		"is": {group: "match"}, "contains": {group: "match"}, "matches": {group: "match"},
		"regex": {ext: "regex", group: "match"},
		"value": {ext: "relational", arg: argString, group: "match"},
		"count": {ext: "relational", arg: argString, group: "match"},
	}
	addressPartTags = map[string]tagSpec{
		"all": {group: "part"}, "localpart": {group: "part"}, "domain": {group: "part"},
		"user": {ext: "subaddress", group: "part"}, "detail": {ext: "subaddress", group: "part"},
	}
	indexTags = map[string]tagSpec{
		"index": {ext: "index", arg: argNumber}, "last": {ext: "index"},
	}
	zoneTags = map[string]tagSpec{
		"zone": {arg: argString, group: "zone"}, "originalzone": {group: "zone"},
	}
)

func tags(groups ...map[string]tagSpec) map[string]tagSpec {
	m := map[string]tagSpec{}
	for _, g := range groups {
		for k, v := range g {
			m[k] = v
		}
	}
	return m
}

var matchAll = tags(comparatorTag, matchTags)

var specs map[string]*spec

func init() {
	S, L, N := argString, argStringList, argNumber
	specs = map[string]*spec{
		// RFC 5228 control commands.
		"require": {pos: []argKind{L}},
		"if":      {tests: 1, block: true},
		"elsif":   {tests: 1, block: true},
		"else":    {block: true},
		"stop":    {},
		// Actions.
		"keep":     {tags: map[string]tagSpec{"flags": {ext: "imap4flags", arg: L}}},
		"discard":  {},
		"redirect": {pos: []argKind{S}, tags: map[string]tagSpec{"copy": {ext: "copy"}}, check: checkRedirect},
		"fileinto": {ext: "fileinto", pos: []argKind{S}, tags: map[string]tagSpec{
			"copy": {ext: "copy"}, "flags": {ext: "imap4flags", arg: L}, "create": {ext: "mailbox"}}},
		"reject":  {ext: "reject", pos: []argKind{S}},
		"ereject": {ext: "ereject", pos: []argKind{S}},
		"vacation": {ext: "vacation", pos: []argKind{S}, check: checkVacation, tags: map[string]tagSpec{
			"days": {arg: N, group: "period"}, "seconds": {ext: "vacation-seconds", arg: N, group: "period"},
			"subject": {arg: S}, "from": {arg: S}, "addresses": {arg: L}, "mime": {}, "handle": {arg: S}}},
		// RFC 5229 variables.
		"set": {ext: "variables", pos: []argKind{S, S}, check: checkSet, tags: map[string]tagSpec{
			"lower": {group: "p40"}, "upper": {group: "p40"}, "lowerfirst": {group: "p30"},
			"upperfirst": {group: "p30"}, "quotewildcard": {group: "p20"},
			"quoteregex": {ext: "regex", group: "p15"}, "length": {group: "p10"}}},
		// RFC 5232 imap4flags.
		"setflag":    {ext: "imap4flags", pos: []argKind{S, L}, optional: 1, optFirst: true, check: checkFlagVar},
		"addflag":    {ext: "imap4flags", pos: []argKind{S, L}, optional: 1, optFirst: true, check: checkFlagVar},
		"removeflag": {ext: "imap4flags", pos: []argKind{S, L}, optional: 1, optFirst: true, check: checkFlagVar},
		// RFC 6609 include.
		"include": {ext: "include", pos: []argKind{S}, check: checkInclude, tags: map[string]tagSpec{
			"personal": {group: "location"}, "global": {group: "location"}, "once": {}, "optional": {}}},
		"return": {ext: "include"},
		"global": {ext: "include", pos: []argKind{L}, check: checkGlobal},
		// RFC 5293 editheader.
		"addheader": {ext: "editheader", pos: []argKind{S, S}, tags: map[string]tagSpec{"last": {}}, check: checkAddHeader},
		"deleteheader": {ext: "editheader", pos: []argKind{S, L}, optional: 1, check: checkDeleteHeader,
			tags: tags(matchAll, map[string]tagSpec{"index": {arg: N}, "last": {}})},

		// RFC 5228 tests.
		"true":    {isTest: true},
		"false":   {isTest: true},
		"not":     {isTest: true, tests: 1},
		"allof":   {isTest: true, tests: -1},
		"anyof":   {isTest: true, tests: -1},
		"exists":  {isTest: true, pos: []argKind{L}},
		"size":    {isTest: true, pos: []argKind{N}, check: checkSize, tags: map[string]tagSpec{"over": {group: "size"}, "under": {group: "size"}}},
		"header":  {isTest: true, pos: []argKind{L, L}, tags: tags(matchAll, indexTags), check: checkMatch(nil)},
		"address": {isTest: true, pos: []argKind{L, L}, tags: tags(matchAll, addressPartTags, indexTags), check: checkMatch(checkAddressHeaders)},
		"envelope": {ext: "envelope", isTest: true, pos: []argKind{L, L}, tags: tags(matchAll, addressPartTags),
			check: checkMatch(checkEnvelopeParts)},
		"string":        {ext: "variables", isTest: true, pos: []argKind{L, L}, tags: matchAll, check: checkMatch(nil)},
		"body":          {ext: "body", isTest: true, pos: []argKind{L}, check: checkMatch(nil), tags: tags(matchAll, map[string]tagSpec{"raw": {group: "transform"}, "content": {arg: L, group: "transform"}, "text": {group: "transform"}})},
		"hasflag":       {ext: "imap4flags", isTest: true, pos: []argKind{L, L}, optional: 1, optFirst: true, tags: matchAll, check: checkMatch(nil)},
		"environment":   {ext: "environment", isTest: true, pos: []argKind{S, L}, tags: matchAll, check: checkMatch(nil)},
		"mailboxexists": {ext: "mailbox", isTest: true, pos: []argKind{L}},
		"date": {ext: "date", isTest: true, pos: []argKind{S, S, L}, tags: tags(matchAll, zoneTags, indexTags),
			check: checkMatch(nil)},
		"currentdate": {ext: "date", isTest: true, pos: []argKind{S, L}, tags: tags(matchAll, map[string]tagSpec{"zone": {arg: S}}),
			check: checkMatch(nil)},
		"duplicate": {ext: "duplicate", isTest: true, tags: map[string]tagSpec{
			"handle": {arg: S}, "header": {arg: S, group: "id"}, "uniqueid": {arg: S, group: "id"},
			"seconds": {arg: N}, "last": {}}},
	}
}

func (c *compiler) commands(nodes []*node, top bool, depth int) ([]*cmd, error) {
	var out []*cmd
	requireOK := top
	for _, n := range nodes {
		if n.name == "require" {
			if !requireOK {
				return nil, c.errorf(n.pos, "require must come before any other command")
			}
		} else {
			requireOK = false
		}
		x, err := c.bind(n, false, depth)
		if err != nil {
			return nil, err
		}
		switch n.name {
		case "require":
			if err := c.require(x); err != nil {
				return nil, err
			}
			continue
		case "elsif", "else":
			prev := lastIf(out)
			if prev == nil {
				return nil, c.errorf(n.pos, "%s must follow if or elsif", n.name)
			}
			prev.next = x
			continue
		}
		out = append(out, x)
	}
	return out, nil
}

// lastIf returns the end of the if/elsif chain that ends out, if any.
func lastIf(out []*cmd) *cmd {
	if len(out) == 0 || out[len(out)-1].name != "if" {
		return nil
	}
	x := out[len(out)-1]
	for x.next != nil {
		if x.next.name == "else" {
			return nil
		}
		x = x.next
	}
	return x
}

func (c *compiler) require(x *cmd) error {
	for _, ext := range x.args[0].strs {
		// Capability names are case-sensitive (as in Pigeonhole): they are
		// registered in lower case.
		if !known(ext) || !c.allowed(ext) {
			return c.errorf(x.args[0].pos, "unknown Sieve capability %q in require", ext)
		}
		c.exts[ext] = true
	}
	return nil
}

func (c *compiler) bind(n *node, asTest bool, depth int) (*cmd, error) {
	sp := specs[n.name]
	if sp == nil || sp.isTest != asTest {
		what := "command"
		if asTest {
			what = "test"
		}
		if sp != nil {
			return nil, c.errorf(n.pos, "%s is a %s, not a %s", n.name, map[bool]string{true: "test", false: "command"}[sp.isTest], what)
		}
		return nil, c.errorf(n.pos, "unknown %s %q", what, n.name)
	}
	if sp.ext != "" && !c.exts[sp.ext] {
		return nil, c.errorf(n.pos, "%s needs require %q", n.name, sp.ext)
	}
	x := &cmd{name: n.name, pos: n.pos, tags: map[string]*arg{}}
	if c.exts["encoded-character"] {
		for i := range n.args {
			for j, s := range n.args[i].strs {
				n.args[i].strs[j] = decodeEncodedChars(s)
			}
		}
	}
	groups := map[string]string{}
	i := 0
	for ; i < len(n.args); i++ {
		a := &n.args[i]
		if a.kind != argTag {
			break
		}
		ts, ok := sp.tags[a.tag]
		if !ok || (ts.ext != "" && !c.exts[ts.ext]) {
			if ok {
				return nil, c.errorf(a.pos, "%s: tag :%s needs require %q", n.name, a.tag, ts.ext)
			}
			return nil, c.errorf(a.pos, "%s: unknown tag :%s", n.name, a.tag)
		}
		if _, dup := x.tags[a.tag]; dup {
			return nil, c.errorf(a.pos, "%s: tag :%s given twice", n.name, a.tag)
		}
		if ts.group != "" {
			if prev, dup := groups[ts.group]; dup {
				return nil, c.errorf(a.pos, "%s: tag :%s conflicts with :%s", n.name, a.tag, prev)
			}
			groups[ts.group] = a.tag
		}
		val := a
		if ts.arg != argNone {
			if i+1 >= len(n.args) || !kindFits(n.args[i+1].kind, ts.arg) {
				return nil, c.errorf(a.pos, "%s: tag :%s needs a %s argument", n.name, a.tag, kindName(ts.arg))
			}
			i++
			val = &n.args[i]
		}
		x.tags[a.tag] = val
	}
	rest := n.args[i:]
	for _, a := range rest {
		if a.kind == argTag {
			return nil, c.errorf(a.pos, "%s: tag :%s must come before the positional arguments", n.name, a.tag)
		}
	}
	if len(rest) > len(sp.pos) || len(rest) < len(sp.pos)-sp.optional {
		return nil, c.errorf(n.pos, "%s takes %s positional argument(s), not %d", n.name, countRange(sp), len(rest))
	}
	kinds := sp.pos
	if missing := len(sp.pos) - len(rest); missing > 0 {
		if sp.optFirst {
			kinds = sp.pos[missing:]
		} else {
			kinds = sp.pos[:len(rest)]
		}
	}
	for j, a := range rest {
		if !kindFits(a.kind, kinds[j]) {
			return nil, c.errorf(a.pos, "%s: argument %d must be a %s, not a %s", n.name, j+1, kindName(kinds[j]), a.describe())
		}
	}
	x.args = rest
	switch {
	case sp.tests == 0 && len(n.tests) > 0:
		return nil, c.errorf(n.tests[0].pos, "unexpected %q after the arguments of %s (missing ';' or '{'?)", n.tests[0].name, n.name)
	case sp.tests == 1 && (len(n.tests) != 1 || n.testList):
		return nil, c.errorf(n.pos, "%s needs exactly one test", n.name)
	case sp.tests == -1 && !n.testList:
		return nil, c.errorf(n.pos, "%s needs a test list in parentheses", n.name)
	}
	for _, t := range n.tests {
		bt, err := c.bind(t, true, depth)
		if err != nil {
			return nil, err
		}
		x.tests = append(x.tests, bt)
	}
	if sp.block != n.hasBlock {
		if sp.block {
			return nil, c.errorf(n.pos, "%s needs a block", n.name)
		}
		if !asTest {
			return nil, c.errorf(n.pos, "%s takes no block", n.name)
		}
	}
	if n.hasBlock {
		b, err := c.commands(n.block, false, depth+1)
		if err != nil {
			return nil, err
		}
		x.block = b
	}
	if sp.check != nil {
		if err := sp.check(c, x); err != nil {
			return nil, err
		}
	}
	return x, nil
}

func countRange(sp *spec) string {
	if sp.optional == 0 {
		return fmt.Sprint(len(sp.pos))
	}
	return fmt.Sprintf("%d to %d", len(sp.pos)-sp.optional, len(sp.pos))
}

func kindFits(have, want argKind) bool {
	return have == want || (want == argStringList && have == argString)
}

func kindName(k argKind) string {
	return [...]string{"nothing", "string", "string list", "number", "tag"}[k]
}

// literal reports whether s is the same at runtime as at compile time: no
// variable can change it.
func (c *compiler) literal(s string) bool {
	return !c.exts["variables"] || !strings.Contains(s, "${")
}

var relOps = map[string]bool{"gt": true, "ge": true, "lt": true, "le": true, "eq": true, "ne": true}

// checkMatch validates COMPARATOR and MATCH-TYPE, then runs more checks.
func checkMatch(more func(c *compiler, x *cmd) error) func(c *compiler, x *cmd) error {
	return func(c *compiler, x *cmd) error {
		x.match, x.cmpName, x.part = "is", "i;ascii-casemap", "all"
		for _, m := range []string{"is", "contains", "matches", "regex", "value", "count"} {
			if a, ok := x.tags[m]; ok {
				x.match = m
				if m == "value" || m == "count" {
					x.rel = strings.ToLower(a.strs[0])
					if !relOps[x.rel] {
						return c.errorf(a.pos, "%s: invalid relational match %q (want gt, ge, lt, le, eq or ne)", x.name, a.strs[0])
					}
				}
			}
		}
		for _, p := range []string{"all", "localpart", "domain", "user", "detail"} {
			if x.has(p) {
				x.part = p
			}
		}
		if a, ok := x.tags["comparator"]; ok {
			name := strings.ToLower(a.strs[0])
			if _, ok := comparators[name]; !ok {
				return c.errorf(a.pos, "%s: unknown comparator %q", x.name, a.strs[0])
			}
			if name == "i;ascii-numeric" && !c.exts["comparator-i;ascii-numeric"] {
				return c.errorf(a.pos, "%s: comparator i;ascii-numeric needs require \"comparator-i;ascii-numeric\"", x.name)
			}
			x.cmpName = name
			if name == "i;ascii-numeric" && (x.match == "contains" || x.match == "matches" || x.match == "regex") {
				return c.errorf(a.pos, "%s: comparator i;ascii-numeric cannot be used with :%s", x.name, x.match)
			}
		}
		if x.match == "regex" {
			keys := x.args[len(x.args)-1]
			for _, k := range keys.strs {
				if !c.literal(k) {
					x.regexes = nil
					break
				}
				re, err := compileRegex(k, x.cmpName)
				if err != nil {
					return c.errorf(keys.pos, "%s: invalid regular expression %q: %v", x.name, k, err)
				}
				x.regexes = append(x.regexes, re)
			}
		}
		if more != nil {
			return more(c, x)
		}
		return nil
	}
}

// validHeaderName is RFC 5322's field-name: printable ASCII but ':'.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 || s[i] == ':' {
			return false
		}
	}
	return true
}

// addressHeaders are the fields the address test may name (RFC 5228 5.1:
// "implementations MUST restrict the address test to headers that
// contain addresses"). The list is Pigeonhole's, found by probing its
// sieve-test, so that a script it refuses is refused here too.
var addressHeaders = map[string]bool{
	"from": true, "sender": true, "to": true, "cc": true, "bcc": true, "reply-to": true,
	"resent-from": true, "resent-sender": true, "resent-to": true, "resent-cc": true,
	"resent-bcc": true, "resent-reply-to": true, "return-receipt-to": true, "errors-to": true,
	"delivered-to": true, "x-original-to": true, "apparently-to": true,
	"mail-followup-to": true, "mail-reply-to": true, "x-beenthere": true,
}

func checkAddressHeaders(c *compiler, x *cmd) error {
	a := x.args[0]
	for _, h := range a.strs {
		if c.literal(h) && !addressHeaders[strings.ToLower(h)] {
			return c.errorf(a.pos, "address: header %q does not hold addresses", h)
		}
	}
	return nil
}

func checkEnvelopeParts(c *compiler, x *cmd) error {
	a := x.args[0]
	for _, p := range a.strs {
		if !c.literal(p) {
			continue
		}
		switch strings.ToLower(p) {
		case "from", "to", "auth":
		default:
			return c.errorf(a.pos, "envelope: unknown envelope part %q (want from, to or auth)", p)
		}
	}
	return nil
}

func checkSize(c *compiler, x *cmd) error {
	if !x.has("over") && !x.has("under") {
		return c.errorf(x.pos, "size needs :over or :under")
	}
	return nil
}

func checkRedirect(c *compiler, x *cmd) error {
	a := x.args[0]
	if c.literal(a.strs[0]) {
		if _, err := parseAddrSpec(a.strs[0]); err != nil {
			return c.errorf(a.pos, "redirect: invalid address %q: %v", a.strs[0], err)
		}
	}
	return nil
}

func checkVacation(c *compiler, x *cmd) error {
	if f, ok := x.tagStr("from"); ok && c.literal(f) {
		if _, err := parseMailbox(f); err != nil {
			return c.errorf(x.tags["from"].pos, "vacation: invalid :from address %q: %v", f, err)
		}
	}
	if a, ok := x.tags["addresses"]; ok {
		for _, s := range a.strs {
			if c.literal(s) {
				if _, err := parseAddrSpec(s); err != nil {
					return c.errorf(a.pos, "vacation: invalid address %q in :addresses: %v", s, err)
				}
			}
		}
	}
	return nil
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validVarName accepts "name" and "namespace.name" (RFC 5229 3); the only
// namespace that can be set is "global" (RFC 6609).
func validVarName(c *compiler, s string) bool {
	parts := strings.Split(s, ".")
	for _, p := range parts {
		if !identRE.MatchString(p) {
			return false
		}
	}
	return len(parts) == 1 || (len(parts) == 2 && strings.EqualFold(parts[0], "global") && c.exts["include"])
}

// maxVariables is Pigeonhole's sieve_variables_max_scope_size: it bounds
// the memory of a run (each value is at most maxVarSize).
const maxVariables = 255

func (c *compiler) declare(x *cmd, name string) error {
	if c.vars == nil {
		c.vars = map[string]bool{}
	}
	c.vars[strings.ToLower(name)] = true
	if len(c.vars) > maxVariables {
		return c.errorf(x.pos, "%s: more than %d variables", x.name, maxVariables)
	}
	return nil
}

func checkSet(c *compiler, x *cmd) error {
	if !validVarName(c, x.args[0].strs[0]) {
		return c.errorf(x.args[0].pos, "set: invalid variable name %q", x.args[0].strs[0])
	}
	return c.declare(x, x.args[0].strs[0])
}

func checkFlagVar(c *compiler, x *cmd) error {
	if len(x.args) == 2 {
		if !c.exts["variables"] {
			return c.errorf(x.args[0].pos, "%s: a variable name needs require \"variables\"", x.name)
		}
		if !validVarName(c, x.args[0].strs[0]) {
			return c.errorf(x.args[0].pos, "%s: invalid variable name %q", x.name, x.args[0].strs[0])
		}
		return c.declare(x, x.args[0].strs[0])
	}
	return nil
}

func checkGlobal(c *compiler, x *cmd) error {
	for _, v := range x.args[0].strs {
		if !identRE.MatchString(v) {
			return c.errorf(x.args[0].pos, "global: invalid variable name %q", v)
		}
	}
	return nil
}

func checkAddHeader(c *compiler, x *cmd) error {
	name := x.args[0].strs[0]
	if c.literal(name) && !validHeaderName(name) {
		return c.errorf(x.args[0].pos, "addheader: invalid header name %q", name)
	}
	return nil
}

func checkDeleteHeader(c *compiler, x *cmd) error {
	// :last without :index means nothing; Pigeonhole accepts it, so do we.
	if err := checkMatch(nil)(c, x); err != nil {
		return err
	}
	name := x.args[0].strs[0]
	if c.literal(name) && !validHeaderName(name) {
		return c.errorf(x.args[0].pos, "deleteheader: invalid header name %q", name)
	}
	return nil
}

// An invalid :zone, body :content type or duplicate :header name is
// only a warning in Pigeonhole, so none of them is a compile error here.

// checkInclude compiles the included script now (Pigeonhole does the
// same), so that a missing or broken include is a compile error.
func checkInclude(c *compiler, x *cmd) error {
	name := x.args[0].strs[0]
	if strings.Contains(name, "/") || name == "" || name == "." || name == ".." {
		return c.errorf(x.args[0].pos, "include: invalid script name %q", name)
	}
	loc := Personal
	if x.has("global") {
		loc = Global
	}
	key := includeKey{loc, name}
	x.inc = key
	if len(c.stack) >= maxIncludeDepth {
		return c.errorf(x.pos, "include: nested deeper than %d", maxIncludeDepth)
	}
	for _, k := range c.stack {
		if k == key {
			return c.errorf(x.pos, "include: %s script %q includes itself", loc, name)
		}
	}
	if c.opts.Include == nil {
		return c.errorf(x.pos, "include: no %s scripts are available", loc)
	}
	if *c.total++; *c.total > maxIncludes {
		return c.errorf(x.pos, "include: more than %d includes", maxIncludes)
	}
	src, err := c.opts.Include(loc, name)
	if err != nil {
		if x.has("optional") && isNotExist(err) {
			return nil
		}
		return c.errorf(x.pos, "include: %s script %q: %v", loc, name, err)
	}
	sub, err := c.compile(src, name, append(append([]includeKey{}, c.stack...), key))
	if err != nil {
		return err
	}
	x.include = sub
	return nil
}
