// Runs in: the front (and the lookup, check-config and makemap commands).

package sql

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vlmtpd/vlmtpd/maps/internal/pfconf"
)

// dialect is what differs between the SQL servers in query text.
type dialect struct {
	name string
	// placeholder returns the n-th (1-based) parameter marker.
	placeholder func(n int) string
	// backslash: "\" escapes inside quoted strings (MySQL's default mode).
	backslash bool
	// backticks: `name` quotes an identifier (MySQL, SQLite).
	backticks bool
	// textOnly: the server stores only valid UTF-8 in text, so a key that
	// is not cannot match anything (PostgreSQL).
	textOnly bool
	// typedPlaceholder is a marker with an explicit text type, for servers
	// that cannot always infer a parameter's type where they would accept
	// a quoted literal (PostgreSQL: CONCAT($1, ...)).
	typedPlaceholder func(n int) string
}

var (
	mysqlDialect  = dialect{name: "mysql", placeholder: func(int) string { return "?" }, backslash: true, backticks: true}
	sqliteDialect = dialect{name: "sqlite", placeholder: func(int) string { return "?" }, backticks: true}
	pgsqlDialect  = dialect{name: "pgsql", placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
		typedPlaceholder: func(n int) string { return "$" + strconv.Itoa(n) + "::text" }, textOnly: true}
)

// compiledQuery is a Postfix query template turned into a statement with
// parameters: the lookup key never becomes part of the SQL text.
type compiledQuery struct {
	text   string
	params []pfconf.Template // the value of each parameter, in order
	// typed is text with every parameter cast to text, or "" when the
	// dialect has no such form. It is tried when the server cannot infer
	// a parameter's type: a quoted literal, which Postfix would have
	// pasted, is text in exactly those places.
	typed string
}

// compileQuery converts a Postfix query template. Postfix pastes the
// escaped key between the quotes the template provides; here a quoted
// string that contains %-escapes ('%s', "%u@%d", 'prefix-%s') becomes a
// single parameter whose value is the string's text with the escapes
// expanded, and an unquoted escape becomes a parameter of its own. Quoted
// strings without escapes, identifiers and comments are kept as written
// (with "%%" turned into "%", as Postfix does everywhere).
func compileQuery(q string, d dialect) (*compiledQuery, error) {
	cq := &compiledQuery{}
	var out output
	out.typed = d.typedPlaceholder != nil
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			end, content, err := scanQuoted(q, i, d)
			if err != nil {
				return nil, err
			}
			t, err := pfconf.ParseTemplate(content)
			if err != nil {
				return nil, err
			}
			if t.HasEscapes() {
				addParam(cq, &out, d, t)
			} else {
				out.WriteString(strings.ReplaceAll(q[i:end], "%%", "%"))
			}
			i = end
		case c == '`' && d.backticks:
			j := strings.IndexByte(q[i+1:], '`')
			if j < 0 {
				return nil, fmt.Errorf("query: unterminated ` quote")
			}
			out.WriteString(q[i : i+j+2])
			i += j + 2
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			out.WriteString(q[i : i+j])
			i += j
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return nil, fmt.Errorf("query: unterminated /* comment")
			}
			out.WriteString(q[i : i+j+4])
			i += j + 4
		case c == '%':
			if i+1 >= len(q) {
				return nil, fmt.Errorf("query ends with a lone %%")
			}
			e := q[i+1]
			switch {
			case e == '%':
				out.byte('%')
			case pfconf.ValidEscape(e):
				addParam(cq, &out, d, pfconf.Template{{Esc: e}})
			default:
				return nil, fmt.Errorf("query: invalid escape %%%c", e)
			}
			i += 2
		default:
			out.byte(c)
			i++
		}
	}
	cq.text = out.plain.String()
	if out.typed {
		cq.typed = out.withType.String()
	}
	return cq, nil
}

// output builds the statement text, plain and with typed placeholders.
type output struct {
	plain, withType strings.Builder
	typed           bool
}

func (o *output) WriteString(s string) {
	o.plain.WriteString(s)
	o.withType.WriteString(s)
}

func (o *output) byte(c byte) {
	o.plain.WriteByte(c)
	o.withType.WriteByte(c)
}

func addParam(cq *compiledQuery, out *output, d dialect, t pfconf.Template) {
	cq.params = append(cq.params, t)
	n := len(cq.params)
	out.plain.WriteString(d.placeholder(n))
	if out.typed {
		out.withType.WriteString(d.typedPlaceholder(n))
	}
}

// scanQuoted reads the quoted string that starts at q[start] and returns
// the index after its closing quote and its text with the SQL quoting
// undone (doubled quotes, and MySQL's backslash escapes) but the
// %-escapes still in place.
func scanQuoted(q string, start int, d dialect) (int, string, error) {
	quote := q[start]
	var b strings.Builder
	for i := start + 1; i < len(q); i++ {
		c := q[i]
		switch {
		case c == quote:
			if i+1 < len(q) && q[i+1] == quote {
				b.WriteByte(quote)
				i++
				continue
			}
			return i + 1, b.String(), nil
		case c == '\\' && d.backslash && i+1 < len(q):
			i++
			switch n := q[i]; n {
			case '0':
				b.WriteByte(0)
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'b':
				b.WriteByte('\b')
			case 'Z':
				b.WriteByte(0x1a)
			case '_':
				b.WriteString(`\_`) // MySQL keeps these two for LIKE patterns
			case '%':
				b.WriteString(`\%%`) // "\%" stays "\%"; "%%" so the template keeps it literal
			default:
				b.WriteByte(n)
			}
		default:
			b.WriteByte(c)
		}
	}
	return 0, "", fmt.Errorf("query: unterminated %c quote", quote)
}

// args expands the parameters for key.
func (cq *compiledQuery) args(key pfconf.Key) []any {
	out := make([]any, len(cq.params))
	for i, t := range cq.params {
		out[i] = pfconf.Expand(t, key, nil)
	}
	return out
}

// templates lists every parameter template, for the Expander.
func (cq *compiledQuery) templates() []pfconf.Template { return cq.params }
