package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/server/config"
)

// openResolver loads the configuration text as dir/v.toml and opens its
// tables; they close when the test ends.
func openResolver(t *testing.T, dir, cfgText string) *Resolver {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(dir, "v.toml"), []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func newTestResolver(t *testing.T, uidMaps string) *Resolver {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vmailbox"), []byte(`
alice@example.com      example.com/alice/
bob@example.com        example.com/bob
"odd local"@example.com example.com/odd/
@example.org           example.org/all/
lowuid@example.com     example.com/low/
gid0@example.com       example.com/gid0/
dots@example.com       example.com/../x/
`), 0o644)
	os.WriteFile(filepath.Join(dir, "uids"), []byte("lowuid@example.com 99\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "gids"), []byte("gid0@example.com 0\n"), 0o644)
	r := openResolver(t, dir, `
virtual_mailbox_base = "/var/mail/vhosts"
virtual_mailbox_domains = "example.com example.org"
virtual_mailbox_maps = "texthash:vmailbox"
virtual_uid_maps = "`+uidMaps+`"
virtual_gid_maps = "texthash:gids static:5000"
recipient_delimiter = "+-"
`)
	return r
}

func TestResolveVirtualOrder(t *testing.T) {
	r := newTestResolver(t, "texthash:uids static:5000")
	for _, tc := range []struct {
		rcpt, path, key string
		code            int
		enhanced        string
	}{
		{"alice@example.com", "example.com/alice/", "alice@example.com", 0, ""},
		{"Alice+Lists@EXAMPLE.com", "example.com/alice/", "alice@example.com", 0, ""},
		{"bob-news@example.com", "example.com/bob", "bob@example.com", 0, ""},
		{"odd local@example.com", "example.com/odd/", `"odd local"@example.com`, 0, ""},
		{"anyone@example.org", "example.org/all/", "@example.org", 0, ""},
		{"nobody@example.com", "", "", 550, "5.1.1"},
		{"postmaster+x@example.com", "", "", 550, "5.1.1"},
		{"alice@example.net", "", "", 550, "5.1.2"},
		{"lowuid@example.com", "", "", 451, "4.3.5"},
		{"gid0@example.com", "", "", 451, "4.3.5"},
		{"dots@example.com", "", "", 451, "4.3.5"},
	} {
		res := r.Resolve(context.Background(), tc.rcpt)
		if tc.code == 0 {
			if res.Err != nil {
				t.Errorf("%s: %v (%s)", tc.rcpt, res.Err, res.Err.Detail)
				continue
			}
			if res.Recipient.Path != tc.path || res.Mailbox.Key != tc.key || res.Recipient.UID != 5000 || res.Recipient.GID != 5000 {
				t.Errorf("%s: path %q key %q uid %d gid %d", tc.rcpt, res.Recipient.Path, res.Mailbox.Key, res.Recipient.UID, res.Recipient.GID)
			}
			if res.Recipient.Address != maybeQuoted(tc.rcpt) {
				t.Errorf("%s: Delivered-To would be %q", tc.rcpt, res.Recipient.Address)
			}
			continue
		}
		if res.Err == nil {
			t.Errorf("%s: resolved to %q, want %d", tc.rcpt, res.Recipient.Path, tc.code)
			continue
		}
		e := res.Err.Enhanced
		if got := res.Err.Code; got != tc.code || e[0] != int(tc.enhanced[0]-'0') || e[2] != int(tc.enhanced[4]-'0') {
			t.Errorf("%s: %v, want %d %s", tc.rcpt, res.Err, tc.code, tc.enhanced)
		}
	}
}

func maybeQuoted(a string) string {
	if a == "odd local@example.com" {
		return `"odd local"@example.com`
	}
	return a
}

// failingMap stands for a database that is down.
type failingMap struct{}

func (failingMap) Lookup(context.Context, string) (string, bool, error) {
	return "", false, errors.New("connection refused")
}
func (failingMap) Spec() string  { return "testfail:db" }
func (failingMap) Pattern() bool { return false }

func init() {
	maps.Register("testfail", func(string, maps.Options) (maps.Map, error) { return failingMap{}, nil })
}

func TestResolveLookupErrorDefers(t *testing.T) {
	r := newTestResolver(t, "texthash:uids testfail:db static:5000")
	// lowuid is answered by the first table; bob reaches the failing one,
	// and the search stops there instead of falling through to static.
	if res := r.Resolve(context.Background(), "lowuid@example.com"); res.Err == nil || res.UID.Value != "99" {
		t.Errorf("lowuid: %+v", res)
	}
	res := r.Resolve(context.Background(), "bob@example.com")
	if res.Err == nil || res.Err.Code != 451 || res.Err.Enhanced[2] != 5 {
		t.Fatalf("failing uid table: %v", res.Err)
	}
	if strings.Contains(res.Err.Text, "refused") || !strings.Contains(res.Err.Detail, "refused") {
		t.Errorf("internal error must be in the log detail only: text %q detail %q", res.Err.Text, res.Err.Detail)
	}
}

// TestResolveLikeVirtual8 covers the differences issue 9 found between
// virtual(8) and vlmtpd on the same tables.
func TestResolveLikeVirtual8(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vmailbox"), []byte(`
Mixed@plus.test       plus.test/mixed-key/
@plus.test            plus.test/catchall/
strasse@plus.test     plus.test/strasse/
σοφόσ@plus.test       plus.test/sigma/
double@plus.test      plus.test/double-split/
dotend@plus.test      plus.test/dotend/.
dotdir@plus.test      plus.test/dotdir/./
bigid@plus.test       plus.test/bigid/
maxid@plus.test       plus.test/maxid/
neg1@plus.test        plus.test/neg1/
bare                  local.test/bare/
bare+x                local.test/bare-x/
`), 0o644)
	os.WriteFile(filepath.Join(dir, "uids"), []byte("bigid@plus.test 3000000000\nmaxid@plus.test 4294967294\nneg1@plus.test 4294967295\n"), 0o644)
	r := openResolver(t, dir, `
hostname = "mx.local.test"
myorigin = "origin.test"
mydestination = "$mydomain"
virtual_mailbox_base = "/var/mail/vhosts"
virtual_mailbox_domains = "plus.test local.test origin.test"
virtual_mailbox_maps = "texthash:vmailbox"
virtual_uid_maps = "texthash:uids static:5000"
virtual_gid_maps = "static:5000"
recipient_delimiter = "+-"
`)
	for _, tc := range []struct {
		rcpt, path string
		uid        int
		reply      string // "" when deliverable
	}{
		// keys are not folded: Mixed@ never matches, the catch-all does
		{rcpt: "mixed@plus.test", path: "plus.test/catchall/"},
		{rcpt: "MIXED@plus.test", path: "plus.test/catchall/"},
		// full Unicode folding of the address
		{rcpt: "Straße@plus.test", path: "plus.test/strasse/"},
		{rcpt: "ΣΟΦΌΣ@plus.test", path: "plus.test/sigma/"},
		{rcpt: "σοφός@plus.test", path: "plus.test/sigma/"},
		// double_bounce_sender is never split, though '-' is a delimiter
		{rcpt: "double-bounce@plus.test", path: "plus.test/catchall/"},
		{rcpt: "double-x@plus.test", path: "plus.test/double-split/"},
		// a result ending in "/." names a directory: defer as virtual(8)
		{rcpt: "dotend@plus.test", reply: "451 4.2.0"},
		{rcpt: "dotdir@plus.test", path: "plus.test/dotdir/./"},
		// uids up to 2^32-2
		{rcpt: "bigid@plus.test", path: "plus.test/bigid/", uid: 3000000000},
		{rcpt: "maxid@plus.test", path: "plus.test/maxid/", uid: 4294967294},
		{rcpt: "neg1@plus.test", reply: "451 4.3.5"},
		// $mydestination ($mydomain = local.test) and $myorigin: the bare
		// localpart, with and then without its extension
		{rcpt: "bare@local.test", path: "local.test/bare/"},
		{rcpt: "bare+x@local.test", path: "local.test/bare-x/"},
		{rcpt: "bare-y@local.test", path: "local.test/bare/"},
		{rcpt: "bare@local.test.", reply: "550 5.1.2"}, // not a virtual domain
		{rcpt: "Bare@Origin.test", path: "local.test/bare/"},
		{rcpt: "bare@plus.test", path: "plus.test/catchall/"}, // not local
	} {
		res := r.Resolve(context.Background(), tc.rcpt)
		if tc.reply != "" {
			if res.Err == nil {
				t.Errorf("%s: resolved to %q, want %s", tc.rcpt, res.Recipient.Path, tc.reply)
				continue
			}
			e := res.Err.Enhanced
			if got := fmt.Sprintf("%d %d.%d.%d", res.Err.Code, e[0], e[1], e[2]); got != tc.reply {
				t.Errorf("%s: %v (%s), want %s", tc.rcpt, res.Err, res.Err.Detail, tc.reply)
			}
			continue
		}
		if res.Err != nil {
			t.Errorf("%s: %v (%s)", tc.rcpt, res.Err, res.Err.Detail)
			continue
		}
		uid := tc.uid
		if uid == 0 {
			uid = 5000
		}
		if res.Recipient.Path != tc.path || res.Recipient.UID != uid {
			t.Errorf("%s: path %q uid %d, want %q uid %d", tc.rcpt, res.Recipient.Path, res.Recipient.UID, tc.path, uid)
		}
	}
}

// sieve_script_maps is searched like virtual_mailbox_maps (extension
// stripped, @domain); no entry is no script; a path with ".." or a
// directory is a configuration error (4.3.5), as for mailboxes.
func TestResolveSieveScript(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vmailbox"), []byte("alice@example.com example.com/alice/\nbob@example.com example.com/bob/\ncarol@example.com example.com/carol/\ndave@example.com example.com/dave/\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "sieve"), []byte("alice@example.com example.com/alice/.dovecot.sieve\nbob@example.com example.com/../x.sieve\ncarol@example.com example.com/carol/\n"), 0o644)
	r := openResolver(t, dir, `
virtual_mailbox_base = "/var/mail/vhosts"
virtual_mailbox_domains = "example.com"
virtual_mailbox_maps = "texthash:vmailbox"
virtual_uid_maps = "static:5000"
virtual_gid_maps = "static:5000"
recipient_delimiter = "+"
sieve_script_maps = "texthash:sieve"
`)
	for _, tc := range []struct {
		rcpt, script string
		code         int
	}{
		{"alice@example.com", "example.com/alice/.dovecot.sieve", 0},
		{"alice+list@example.com", "example.com/alice/.dovecot.sieve", 0},
		{"dave@example.com", "", 0},
		{"bob@example.com", "", 451},
		{"carol@example.com", "", 451},
	} {
		res := r.Resolve(context.Background(), tc.rcpt)
		code := 0
		if res.Err != nil {
			code = res.Err.Code
		}
		if code != tc.code || res.Recipient.Sieve != tc.script {
			t.Errorf("%s: code %d script %q, want %d %q (%v)", tc.rcpt, code, res.Recipient.Sieve, tc.code, tc.script, res.Err)
		}
	}
}

// +detail goes to a folder only when the mailbox was found without the
// extension: a key that holds the extension, with its domain or (for a
// $mydestination domain) without, is a mailbox of its own.
func TestResolveDetailFolder(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vmailbox"), []byte("alice@plus.test plus.test/alice/\nbob+list@plus.test plus.test/boblist/\nbob plus.test/bob/\ncarol+x plus.test/carolx/\ncarol plus.test/carol/\n"), 0o644)
	r := openResolver(t, dir, `
hostname = "mx.plus.test"
mydestination = "plus.test"
virtual_mailbox_base = "/var/mail/vhosts"
virtual_mailbox_domains = "plus.test"
virtual_mailbox_maps = "texthash:vmailbox"
virtual_uid_maps = "static:5000"
virtual_gid_maps = "static:5000"
recipient_delimiter = "+"
save_to_detail_mailbox = true
`)
	for rcpt, want := range map[string][2]string{
		"alice+Work@plus.test": {"plus.test/alice/", "Work"},
		"bob+list@plus.test":   {"plus.test/boblist/", ""},
		"bob+other@plus.test":  {"plus.test/bob/", "other"},
		"carol+x@plus.test":    {"plus.test/carolx/", ""},
	} {
		res := r.Resolve(context.Background(), rcpt)
		if res.Err != nil || res.Recipient.Path != want[0] || res.Recipient.Folder != want[1] {
			t.Errorf("%s: path %q folder %q (%v), want %q %q", rcpt, res.Recipient.Path, res.Recipient.Folder, res.Err, want[0], want[1])
		}
	}
}
