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
}

var (
	mysqlDialect  = dialect{name: "mysql", placeholder: func(int) string { return "?" }, backslash: true, backticks: true}
	sqliteDialect = dialect{name: "sqlite", placeholder: func(int) string { return "?" }, backticks: true}
	pgsqlDialect  = dialect{name: "pgsql", placeholder: func(n int) string { return "$" + strconv.Itoa(n) }}
)

// compiledQuery is a Postfix query template turned into a statement with
// parameters: the lookup key never becomes part of the SQL text.
type compiledQuery struct {
	text   string
	params []pfconf.Template // the value of each parameter, in order
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
	var out strings.Builder
	addParam(cq, &out, d, nil)
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
				out.WriteByte('%')
			case pfconf.ValidEscape(e):
				addParam(cq, &out, d, pfconf.Template{{Esc: e}})
			default:
				return nil, fmt.Errorf("query: invalid escape %%%c", e)
			}
			i += 2
		default:
			out.WriteByte(c)
			i++
		}
	}
	cq.text = out.String()
	return cq, nil
}

func addParam(cq *compiledQuery, out *strings.Builder, d dialect, t pfconf.Template) {
	if t == nil {
		return
	}
	cq.params = append(cq.params, t)
	out.WriteString(d.placeholder(len(cq.params)))
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
