package pfconf

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/maps"
)

func TestParse(t *testing.T) {
	src := `# postfixadmin's mysql_virtual_mailbox_maps.cf
user = postfix
password = p@ss = word  
hosts = localhost
   # a comment inside a continued entry is skipped
dbname=postfix
query = SELECT maildir
    FROM mailbox
	WHERE username='%s' AND active = '1'
password_with_dollar = $notexpanded
empty =
user = again
`
	c, err := Parse(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"user":                 "again", // the last setting wins, as in main.cf
		"password":             "p@ss = word",
		"hosts":                "localhost",
		"dbname":               "postfix",
		"query":                "SELECT maildir    FROM mailbox\tWHERE username='%s' AND active = '1'",
		"password_with_dollar": "$notexpanded",
		"empty":                "",
	}
	for k, v := range want {
		if got := c.Str(k, "default"); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if got := c.Str("missing", "default"); got != "default" {
		t.Errorf("missing = %q", got)
	}
	for _, bad := range []string{"  continuation first = x\n", "no equals sign\n", "two words = x\n", "= x\n"} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestTypedParameters(t *testing.T) {
	c, _ := Parse(strings.NewReader("a = 5\nb = yes\nc = 2m\nd = 30\ne = -1\nf = maybe\ng = 3x\n"))
	c.Path = "t.cf"
	if n, err := c.Int("a", 0, 0); n != 5 || err != nil {
		t.Errorf("Int a = %d, %v", n, err)
	}
	if _, err := c.Int("e", 0, 0); err == nil {
		t.Error("negative accepted")
	}
	if b, err := c.Bool("b", false); !b || err != nil {
		t.Errorf("Bool b = %v, %v", b, err)
	}
	if _, err := c.Bool("f", false); err == nil {
		t.Error("maybe accepted")
	}
	if d, err := c.Duration("c", 0, time.Second); d != 2*time.Minute || err != nil {
		t.Errorf("Duration c = %v, %v", d, err)
	}
	if d, err := c.Duration("d", 0, time.Second); d != 30*time.Second || err != nil {
		t.Errorf("Duration d = %v, %v", d, err)
	}
	if _, err := c.Duration("g", 0, time.Second); err == nil || !strings.Contains(err.Error(), "t.cf") {
		t.Errorf("3x: %v", err)
	}
}

func TestExpand(t *testing.T) {
	key := SplitKey("user+ext@mail.example.com")
	tmpl, err := ParseTemplate("%s|%u|%d|%1|%2|%3|%S|%U|%D|%%|100%%")
	if err != nil {
		t.Fatal(err)
	}
	got := Expand(tmpl, key, strings.ToUpper)
	want := "USER+EXT@MAIL.EXAMPLE.COM|USER+EXT|MAIL.EXAMPLE.COM|COM|EXAMPLE|MAIL|USER+EXT@MAIL.EXAMPLE.COM|USER+EXT|MAIL.EXAMPLE.COM|%|100%"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if u := SplitKey("nodomain").Field('u'); u != "nodomain" {
		t.Errorf("%%u of a key without @ = %q, want the whole key", u)
	}
	for _, bad := range []string{"%", "abc%", "%x", "%0", "%q"} {
		if _, err := ParseTemplate(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestSuppression(t *testing.T) {
	cases := []struct {
		query, result string
		partial       bool
		skip          map[string]bool
	}{
		{"%s", "%s", false, map[string]bool{"a@b.c": false, "a": false, "@b.c": false}},
		{"%u", "%s", true, map[string]bool{"a@b.c": false, "a": false, "@b.c": true}},
		{"%d", "%s", true, map[string]bool{"a@b.c": false, "a": true, "a@": true, "@b.c": false}},
		{"%2", "%s", true, map[string]bool{"a@b.c": false, "a@c": true, "a": true}},
		{"%s", "%D", true, map[string]bool{"a@b.c": false, "a": true}}, // %D in result_format is the key's domain
		{"%s", "%d", false, map[string]bool{"a@b.c": false, "a": false}},
	}
	for _, c := range cases {
		var e Expander
		q, _ := ParseTemplate(c.query)
		r, _ := ParseTemplate(c.result)
		e.AddQuery(q)
		e.AddResult(r)
		if e.Partial() != c.partial {
			t.Errorf("query %q result %q: Partial = %v", c.query, c.result, e.Partial())
		}
		for k, want := range c.skip {
			if got := e.Skip(SplitKey(k)); got != want {
				t.Errorf("query %q result %q key %q: Skip = %v, want %v", c.query, c.result, k, got, want)
			}
		}
	}
}

func TestResults(t *testing.T) {
	var e Expander
	f, _ := ParseTemplate("%d/%u/%U")
	e.AddResult(f)
	r := NewResults(&e, f, SplitKey("k@x.org"), 2, slog.New(slog.NewTextHandler(io.Discard, nil)), "t")
	for _, v := range []string{"a@one.org", "", "nodomain", "b@two.org"} {
		if err := r.Add(v); err != nil {
			t.Fatal(err)
		}
	}
	if v, ok := r.Value(); !ok || v != "one.org/a/k,two.org/b/k" {
		t.Errorf("Value = %q, %v", v, ok)
	}
	if err := r.Add("c@three.org"); err == nil {
		t.Error("third value accepted with expansion_limit = 2")
	}
	empty := NewResults(&e, f, SplitKey("k@x.org"), 0, slog.New(slog.NewTextHandler(io.Discard, nil)), "t")
	empty.Add("")
	if _, ok := empty.Value(); ok {
		t.Error("only empty values, yet found")
	}
}

func TestDomainList(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "domains")
	os.WriteFile(file, []byte("# hosted\nfile.example\n  other.example, !bad.file.example\n"), 0o600)
	opts := maps.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	d, err := ParseDomainList("!no.example, Example.COM "+file+" !"+file+" inline:{table.example=x}", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cases := map[string]bool{
		"u@example.com":      true,
		"u@EXAMPLE.com":      true,
		"u@sub.example.com":  false, // a string list: no subdomains
		"u@no.example":       false,
		"u@file.example":     true,
		"u@other.example":    true,
		"u@bad.file.example": false,
		"u@table.example":    true,
		"@example.com":       false, // empty localpart: never looked up
		"example.com":        false, // no domain
	}
	for k, want := range cases {
		got, err := d.Allows(context.Background(), SplitKey(k))
		if err != nil || got != want {
			t.Errorf("Allows(%q) = %v, %v; want %v", k, got, err, want)
		}
	}
	if ok, _ := (*DomainList)(nil).Allows(context.Background(), SplitKey("x")); !ok {
		t.Error("a nil list must allow every key")
	}
	if _, err := ParseDomainList("/no/such/file", opts); err == nil {
		t.Error("missing file accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("a = b\n  c\n# x\nd=e\n")
	f.Add("query = SELECT '%s'\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, n := range c.Names() {
			if strings.ContainsAny(n, " \t=") || n == "" {
				t.Errorf("bad name %q", n)
			}
		}
	})
}

func FuzzTemplate(f *testing.F) {
	f.Add("SELECT '%s' %% %u@%d %9")
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := ParseTemplate(s)
		if err != nil {
			return
		}
		var e Expander
		e.AddQuery(tmpl)
		k := SplitKey("a@b.c.d.e.f.g.h.i.j")
		_ = Expand(tmpl, k, nil)
	})
}
