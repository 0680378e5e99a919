package sql

import (
	"reflect"
	"testing"

	"github.com/vlmtpd/vlmtpd/maps/internal/pfconf"
)

func TestCompileQuery(t *testing.T) {
	key := pfconf.SplitKey("user@mail.example.com")
	cases := []struct {
		name, in string
		d        dialect
		text     string
		args     []any
	}{
		{"postfixadmin mailbox", "SELECT maildir FROM mailbox WHERE username='%s' AND active = '1'", mysqlDialect,
			"SELECT maildir FROM mailbox WHERE username=? AND active = '1'", []any{"user@mail.example.com"}},
		{"pgsql numbering", "SELECT a FROM t WHERE u='%u' AND d='%d' AND x=%s", pgsqlDialect,
			"SELECT a FROM t WHERE u=$1 AND d=$2 AND x=$3", []any{"user", "mail.example.com", "user@mail.example.com"}},
		{"mixed literal", "SELECT a FROM t WHERE u='%u@%d' OR u='prefix-%s' OR u=\"%1\"", sqliteDialect,
			"SELECT a FROM t WHERE u=? OR u=? OR u=?", []any{"user@mail.example.com", "prefix-user@mail.example.com", "com"}},
		{"doubled quote inside", "SELECT a FROM t WHERE u='it''s %u'", pgsqlDialect,
			"SELECT a FROM t WHERE u=$1", []any{"it's user"}},
		{"mysql backslash", `SELECT a FROM t WHERE u='a\'b%u'`, mysqlDialect,
			"SELECT a FROM t WHERE u=?", []any{"a'buser"}},
		{"literal percent", "SELECT a FROM t WHERE u LIKE '%%@%d' AND v LIKE '100%%' AND w = 7 %% 3", mysqlDialect,
			"SELECT a FROM t WHERE u LIKE ? AND v LIKE '100%' AND w = 7 % 3", []any{"%@mail.example.com"}},
		{"labels", "SELECT a FROM t WHERE d='%2.%1' AND h='%3'", mysqlDialect,
			"SELECT a FROM t WHERE d=? AND h=?", []any{"example.com", "mail"}},
		{"comments kept", "SELECT a -- it's '%s'\nFROM t /* '%u' */ WHERE u='%s'", mysqlDialect,
			"SELECT a -- it's '%s'\nFROM t /* '%u' */ WHERE u=?", []any{"user@mail.example.com"}},
		{"backtick identifier", "SELECT `it's` FROM t WHERE u='%s'", mysqlDialect,
			"SELECT `it's` FROM t WHERE u=?", []any{"user@mail.example.com"}},
		{"identifier without escapes", `SELECT "maildir" FROM "mailbox" WHERE "username"='%s'`, pgsqlDialect,
			`SELECT "maildir" FROM "mailbox" WHERE "username"=$1`, []any{"user@mail.example.com"}},
		{"upper case = lower case in query", "SELECT a FROM t WHERE u='%U' AND d='%D' AND s='%S'", mysqlDialect,
			"SELECT a FROM t WHERE u=? AND d=? AND s=?", []any{"user", "mail.example.com", "user@mail.example.com"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cq, err := compileQuery(c.in, c.d)
			if err != nil {
				t.Fatal(err)
			}
			if cq.text != c.text {
				t.Errorf("text\n got %q\nwant %q", cq.text, c.text)
			}
			if got := cq.args(key); !reflect.DeepEqual(got, c.args) {
				t.Errorf("args got %q want %q", got, c.args)
			}
		})
	}
}

func TestCompileQueryErrors(t *testing.T) {
	for _, q := range []string{
		"SELECT a FROM t WHERE u='%s",
		"SELECT a FROM t WHERE u=%x",
		"SELECT a FROM t WHERE u='%q'",
		"SELECT a FROM t WHERE u=%",
		"SELECT a /* x",
		"SELECT `a FROM t",
	} {
		if _, err := compileQuery(q, mysqlDialect); err == nil {
			t.Errorf("%q: no error", q)
		}
	}
}

func TestParseHost(t *testing.T) {
	cases := map[string]endpoint{
		"unix:/run/x.sock":      {unix: true, path: "/run/x.sock"},
		"inet:db.example:3307":  {host: "db.example", port: "3307"},
		"db.example":            {host: "db.example", port: "3306"},
		"10.0.0.1:1234":         {host: "10.0.0.1", port: "1234"},
		"inet:[2001:db8::1]:99": {host: "2001:db8::1", port: "99"},
		"[2001:db8::1]":         {host: "2001:db8::1", port: "3306"},
		"2001:db8::2":           {host: "2001:db8::2", port: "3306"}, // bare IPv6: the default port
	}
	for in, want := range cases {
		got, err := parseHost(in, "3306")
		if err != nil || got != want {
			t.Errorf("%q: got %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"unix:", "inet:", "host:", "[::1"} {
		if e, err := parseHost(bad, "3306"); err == nil {
			t.Errorf("%q: no error (%+v)", bad, e)
		}
	}
}
