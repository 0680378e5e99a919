package maps

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// failingMap is a table whose lookups fail, like a database that is down.
type failingMap struct{ calls int }

var errDown = errors.New("database is down")

func (f *failingMap) Lookup(context.Context, string) (string, bool, error) {
	f.calls++
	return "", false, errDown
}
func (f *failingMap) Spec() string  { return "failing:test" }
func (f *failingMap) Pattern() bool { return false }

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFindAddressOrder checks virtual(8)'s search order on a list that
// mixes a pattern table (regexp) with fixed-key tables (texthash, static).
func TestFindAddressOrder(t *testing.T) {
	opts, _ := testOptions(t)
	writeFile(t, opts.Dir, "vmailbox", strings.Join([]string{
		"user@d.test user/",
		"pos@d.test wrong-split/",
		"@d.test catchall/",
		`"a b"@d.test quoted/`,
		"a..b@d.test unquoted/",
		"owner-list@d.test owner/",
		"owner@d.test owner-split-wrongly/",
		"bare-local plain/",
	}, "\n")+"\n")
	list, err := OpenList([]string{
		`regexp:{ {/^full\+ext@d\.test$/ regexp-full}, {/^user@d\.test$/ regexp-partial}, {/^empty@/} }`,
		"texthash:vmailbox", // relative to opts.Dir
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer list.Close()

	ctx := context.Background()
	for _, tc := range []struct {
		addr, delims  string
		value, key    string
		table         string // prefix of the spec that answered
		wantNotFound  bool
		wantEmptyFail bool
	}{
		// the full address reaches the regexp table
		{addr: "full+ext@d.test", delims: "+", value: "regexp-full", key: "full+ext@d.test", table: "regexp:"},
		// the regexp table answers the full key only: user@d.test comes from texthash
		{addr: "user+ext@d.test", delims: "+", value: "user/", key: "user@d.test", table: "texthash:"},
		// but the same key asked in full does reach the regexp table first
		{addr: "user@d.test", delims: "+", value: "regexp-partial", key: "user@d.test", table: "regexp:"},
		// a delimiter set: the first delimiter found splits
		{addr: "user-a+b@d.test", delims: "+-", value: "user/", key: "user@d.test", table: "texthash:"},
		// no delimiter configured: straight to @domain
		{addr: "user+ext@d.test", delims: "", value: "catchall/", key: "@d.test", table: "texthash:"},
		// unknown user: @domain
		{addr: "nobody+x@d.test", delims: "+", value: "catchall/", key: "@d.test", table: "texthash:"},
		// postmaster is never split, even when a delimiter occurs in it
		{addr: "postmaster@d.test", delims: "t", value: "catchall/", key: "@d.test", table: "texthash:"},
		// with '-' in the set, owner-* and *-request are not split either
		{addr: "owner-list@d.test", delims: "-", value: "owner/", key: "owner-list@d.test", table: "texthash:"},
		{addr: "owner-other@d.test", delims: "-", value: "catchall/", key: "@d.test", table: "texthash:"},
		// a localpart that is not a dot-atom: quoted form first...
		{addr: "a b@d.test", delims: "+", value: "quoted/", key: `"a b"@d.test`, table: "texthash:"},
		// ...then the internal form
		{addr: "a..b@d.test", delims: "+", value: "unquoted/", key: "a..b@d.test", table: "texthash:"},
		// no domain, no catch-all step
		{addr: "bare-local", delims: "+", value: "plain/", key: "bare-local", table: "texthash:"},
		{addr: "other", delims: "+", wantNotFound: true},
		// another domain
		{addr: "user@other.test", delims: "+", wantNotFound: true},
		// a rule without result: an empty result is a configuration error
		{addr: "empty@d.test", delims: "+", wantEmptyFail: true},
	} {
		t.Run(tc.addr+"/"+tc.delims, func(t *testing.T) {
			h, ok, err := list.FindAddress(ctx, ParseAddress(tc.addr).Fold(), tc.delims)
			switch {
			case tc.wantEmptyFail:
				var le *LookupError
				if !errors.As(err, &le) || !errors.Is(err, ErrEmptyResult) || ok {
					t.Fatalf("got %+v %v %v, want a LookupError for an empty result", h, ok, err)
				}
				return
			case err != nil:
				t.Fatal(err)
			case tc.wantNotFound:
				if ok {
					t.Fatalf("found %+v, want not found", h)
				}
				return
			case !ok:
				t.Fatal("not found")
			}
			if h.Value != tc.value || h.Key != tc.key || !strings.HasPrefix(h.Table, tc.table) {
				t.Fatalf("hit %+v, want value %q key %q from %s", h, tc.value, tc.key, tc.table)
			}
		})
	}
}

// TestFindAddressErrorStops: an error in any table ends the search at
// once, even though a later key would have matched.
func TestFindAddressErrorStops(t *testing.T) {
	opts, _ := testOptions(t)
	writeFile(t, opts.Dir, "vmailbox", "known@d.test known/\n@d.test catchall/\n")
	th, err := Open("texthash:vmailbox", opts)
	if err != nil {
		t.Fatal(err)
	}
	fail := &failingMap{}
	list := List{th, fail}
	ctx := context.Background()

	// found in the first table: the failing one is never asked
	if h, ok, err := list.FindAddress(ctx, ParseAddress("known@d.test"), "+"); err != nil || !ok || h.Value != "known/" {
		t.Fatalf("known: %+v %v %v", h, ok, err)
	}
	if fail.calls != 0 {
		t.Fatalf("failing table asked %d times for a key found before it", fail.calls)
	}
	// not in the first table: the failing table's error stops the search
	// before @d.test is tried
	_, ok, err := list.FindAddress(ctx, ParseAddress("other+x@d.test"), "+")
	var le *LookupError
	if ok || !errors.As(err, &le) || !errors.Is(err, errDown) || le.Key != "other+x@d.test" || le.Table != "failing:test" {
		t.Fatalf("got ok=%v err=%v, want a LookupError from failing:test for the full address", ok, err)
	}
	if fail.calls != 1 {
		t.Fatalf("failing table asked %d times, want 1", fail.calls)
	}
}

// TestStaticAnswersPartialKeys: static: is a fixed-key table, so it
// answers every step of the search, including @domain.
func TestStaticAnswersPartialKeys(t *testing.T) {
	opts, _ := testOptions(t)
	list, err := OpenList([]string{`regexp:{{/^nomatch$/ x}}`, "static:5000"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, ok, err := list.Find(ctx, "@d.test", true)
	if err != nil || !ok || h.Value != "5000" || h.Table != "static:5000" {
		t.Fatalf("fixed-only find: %+v %v %v", h, ok, err)
	}
	h, ok, err = list.FindAddress(ctx, ParseAddress("u+x@d.test"), "+")
	if err != nil || !ok || h.Value != "5000" || h.Key != "u+x@d.test" {
		t.Fatalf("FindAddress: %+v %v %v", h, ok, err)
	}

	// The search goes key by key, each key through every table: with a
	// static: table last, the full address is answered by static: before
	// texthash is asked for user@d.test.
	writeFile(t, opts.Dir, "vmailbox", "user@d.test user/\n")
	mixed, err := OpenList([]string{`regexp:{{/^re@/ re/}}`, "texthash:vmailbox", "static:{ fallback }"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]Hit{
		"re@d.test":       {Value: "re/", Table: `regexp:{{/^re@/ re/}}`, Key: "re@d.test"},
		"user@d.test":     {Value: "user/", Table: "texthash:vmailbox", Key: "user@d.test"},
		"user+ext@d.test": {Value: "fallback", Table: "static:{ fallback }", Key: "user+ext@d.test"},
	} {
		h, ok, err := mixed.FindAddress(ctx, ParseAddress(addr), "+")
		if err != nil || !ok || h != want {
			t.Errorf("%s: %+v %v %v, want %+v", addr, h, ok, err, want)
		}
	}
}

// TestFoldIsPostfixCasefold: full Unicode case folding, as Postfix's
// casefold(3) with smtputf8_enable = yes, not strings.ToLower.
func TestFoldIsPostfixCasefold(t *testing.T) {
	for in, want := range map[string]string{
		"User@Example.COM":   "user@example.com",
		"Straße@Köln.test":   "strasse@köln.test",
		"ΣΟΦΌΣ@x.test":       "σοφόσ@x.test",
		"σοφός@x.test":       "σοφόσ@x.test", // final sigma
		"ﬁle@x.test":         "file@x.test",  // ligature: full folding
		"İstanbul@x.test":    "i̇stanbul@x.test",
		"plain-ascii@x.test": "plain-ascii@x.test",
	} {
		if got := ParseAddress(in).Fold().String(); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
		if Unfolded(want) {
			t.Errorf("Unfolded(%q) = true for a folded key", want)
		}
	}
	if !Unfolded("Straße@x") || !Unfolded("σοφός@x") || Unfolded("strasse@x") {
		t.Error("Unfolded misjudges a key")
	}
}

// TestSearchStrategy: double_bounce_sender is never split, and a local
// domain ($myorigin, $mydestination) also looks up the bare localpart,
// with and without its extension, before @domain, fixed-key tables only.
func TestSearchStrategy(t *testing.T) {
	opts, _ := testOptions(t)
	writeFile(t, opts.Dir, "vmailbox", strings.Join([]string{
		"double@d.test split-double/",
		"bounce@d.test wrong/",
		"@d.test catchall/",
		"bare+x bare-ext/",
		"bare bare/",
		"@l.test local-catchall/",
	}, "\n")+"\n")
	list, err := OpenList([]string{`regexp:{ {/^bare$/ regexp-bare} }`, "texthash:vmailbox"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer list.Close()
	local := func(_ context.Context, d string) (bool, error) { return d == "l.test", nil }
	ctx := context.Background()
	for _, tc := range []struct{ addr, delims, want string }{
		{"double-bounce@d.test", "-", "catchall/"},
		{"Double-Bounce@d.test", "-", "catchall/"},
		{"double-x@d.test", "-", "split-double/"},
		{"bare+x@l.test", "+", "bare-ext/"},
		{"bare+y@l.test", "+", "bare/"},
		{"bare@l.test", "+", "bare/"}, // regexp is not asked for the bare key
		{"other@l.test", "+", "local-catchall/"},
		{"bare+x@d.test", "+", "catchall/"}, // not a local domain
	} {
		h, ok, err := list.Search(ctx, ParseAddress(tc.addr).Fold(), Strategy{Delimiters: tc.delims, Local: local})
		if err != nil || !ok || h.Value != tc.want {
			t.Errorf("Search(%q) = %+v, %v, %v; want %q", tc.addr, h, ok, err, tc.want)
		}
	}
	boom := errors.New("mydestination table down")
	_, ok, err := list.Search(ctx, ParseAddress("x@l.test"), Strategy{Local: func(context.Context, string) (bool, error) { return false, boom }})
	if ok || !errors.Is(err, boom) {
		t.Errorf("a failing local-domain check: %v %v, want the error", ok, err)
	}
}
