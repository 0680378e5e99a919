package maps

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func init() {
	// failing: opens a table whose every lookup fails (tests only).
	Register("failing", func(string, Options) (Map, error) { return &failingMap{}, nil })
}

func TestDomainList(t *testing.T) {
	opts, rec := testOptions(t)
	nested := writeFile(t, opts.Dir, "nested", "nested.test\n")
	file := writeFile(t, opts.Dir, "domains", strings.Join([]string{
		"# hosted domains",
		"a.test, b.test",
		"  c.test",
		"!excluded.test",
		nested,
	}, "\n")+"\n")
	negated := writeFile(t, opts.Dir, "negated", "neg1.test\n!unneg.test\n")
	writeFile(t, opts.Dir, "vdomains", "table.test anything\n@attable.test x\nUPPER.test y\n")
	l, err := NewDomainList([]string{
		"Example.COM",
		"!sub.example.net",
		"excluded.test", // listed before the file that excludes it: it wins
		file,
		"!" + negated,
		"unneg.test",
		"neg1.test",
		"texthash:vdomains",
		"!first.test", "first.test",
		"[192.0.2.1]",
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		domain string
		want   bool
		item   string
	}{
		{"example.com", true, "example.com"},
		{"EXAMPLE.com", true, "example.com"},
		{"sub.example.com", false, ""}, // no subdomain matching
		{"example.com.", false, ""},    // exact
		{"sub.example.net", false, "!sub.example.net"},
		{"excluded.test", true, "excluded.test"}, // first matching item decides
		{"a.test", true, "a.test (from " + file + ")"},
		{"b.test", true, "b.test (from " + file + ")"},
		{"c.test", true, "c.test (from " + file + ")"},
		{"nested.test", true, "nested.test (from " + nested + ")"},
		{"neg1.test", false, "!neg1.test (from " + negated + ")"}, // ! before the file
		{"unneg.test", true, "unneg.test (from " + negated + ")"}, // !! inside it
		{"table.test", true, "texthash:vdomains"},                 // the bare domain is looked up
		// a table key with upper case never matches: Postfix's
		// match_list folds the domain, never the keys (warned at load)
		{"upper.test", false, ""},
		{"attable.test", false, ""}, // ...not @domain
		{"first.test", false, "!first.test"},
		{"[192.0.2.1]", true, "[192.0.2.1]"},
		{"", false, ""},
		{"other.test", false, ""},
	} {
		got, item, err := l.Explain(ctx, tc.domain)
		if err != nil || got != tc.want || item != tc.item {
			t.Errorf("Explain(%q) = %v, %q, %v; want %v, %q", tc.domain, got, item, err, tc.want, tc.item)
		}
		if m, err := l.Match(ctx, tc.domain); m != tc.want || err != nil {
			t.Errorf("Match(%q) = %v, %v", tc.domain, m, err)
		}
	}
	if w := rec.warnings(); len(w) != 1 || !strings.Contains(w[0], `key "UPPER.test" is not case-folded`) {
		t.Errorf("warnings %q, want one about the key UPPER.test", w)
	}
	if !strings.HasPrefix(l.String(), "Example.COM, !sub.example.net") {
		t.Errorf("String() = %q", l.String())
	}
}

func TestDomainListLookupError(t *testing.T) {
	opts, _ := testOptions(t)
	l, err := NewDomainList([]string{"ok.test", "failing:x", "after.test"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := l.Match(ctx, "ok.test"); !ok || err != nil {
		t.Fatalf("ok.test: %v %v", ok, err)
	}
	// the failing table comes before after.test: a temporary error, not "no"
	ok, err := l.Match(ctx, "after.test")
	var le *LookupError
	if ok || !errors.As(err, &le) || !errors.Is(err, errDown) || le.Key != "after.test" {
		t.Fatalf("after.test: %v %v, want a LookupError", ok, err)
	}
}

func TestDomainListErrors(t *testing.T) {
	opts, _ := testOptions(t)
	for _, tc := range []struct {
		items []string
		want  string
	}{
		{[]string{"!"}, "nothing after '!'"},
		{[]string{"$virtual_mailbox_maps"}, "$parameter expansion"},
		{[]string{"/nonexistent/vlmtpd-domains"}, "no such file"},
		{[]string{"texthash:/nonexistent/vlmtpd-vdomains"}, "no such file"},
		{[]string{"nosuchtype:x"}, "unknown table type"},
	} {
		l, err := NewDomainList(tc.items, opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewDomainList(%q) = %v, %v; want error containing %q", tc.items, l, err, tc.want)
		}
	}
	// a file that includes itself
	self := writeFile(t, opts.Dir, "self", "")
	writeFile(t, opts.Dir, "self", self+"\n")
	if _, err := NewDomainList([]string{self}, opts); err == nil || !strings.Contains(err.Error(), "deep") {
		t.Errorf("self-including file: %v", err)
	}
	var nilList *DomainList
	if ok, err := nilList.Match(context.Background(), "x"); ok || err != nil || nilList.Close() != nil {
		t.Error("a nil list must match nothing and close cleanly")
	}
}
