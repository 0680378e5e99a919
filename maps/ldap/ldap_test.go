package ldap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/maps/internal/pfconf"
	"github.com/vlmtpd/vlmtpd/maps/internal/testserver"
)

const (
	suffix = "dc=example,dc=com"
	rootDN = "cn=admin,dc=example,dc=com"
	rootPW = "ldap-secret"
)

// hostileStored is a real address full of filter syntax.
const hostileStored = `o'brien(*)\x@example.com`

var ldif = `dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=domains,dc=example,dc=com
objectClass: organizationalUnit
ou: domains

dn: ou=example.net,ou=domains,dc=example,dc=com
objectClass: organizationalUnit
ou: example.net
` + entries

var entries = entry("user", "example.com/user/", "user@example.com", "user.alias@example.com") +
	entry("other", "example.com/other/", "other@example.com") +
	entry("third", "example.com/third/", "third@example.com") +
	entry("catchall", "example.com/catchall/", "@example.com") +
	entry("obrien", "example.com/obrien/", hostileStored) +
	`
dn: uid=bob,ou=example.net,ou=domains,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: posixAccount
uid: bob
cn: Bob
sn: Bob
mail: bob@example.net
homeDirectory: example.net/bob/
uidNumber: 5000
gidNumber: 5000
`

func entry(uid, home string, mails ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\ndn: uid=%s,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n", uid)
	fmt.Fprintf(&b, "uid: %s\ncn: %s\nsn: %s\nhomeDirectory: %s\nuidNumber: 5000\ngidNumber: 5000\n", uid, uid, uid, home)
	for _, m := range mails {
		fmt.Fprintf(&b, "mail: %s\n", m)
	}
	return b.String()
}

var (
	srvOnce sync.Once
	srv     *testserver.Server
	srvErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if srv != nil {
		srv.Close()
	}
	os.Exit(code)
}

func server(tb testing.TB) *testserver.Server {
	srvOnce.Do(func() {
		srv, srvErr = testserver.Slapd(testserver.SlapdConfig{Suffix: suffix, RootDN: rootDN, RootPW: rootPW, LDIF: ldif})
	})
	testserver.Require(tb, srvErr)
	return srv
}

func ldapURL(s *testserver.Server) string { return fmt.Sprintf("ldap://127.0.0.1:%d", s.Port) }

// The usual Postfix virtual mailbox table over LDAP.
const mailboxCF = `search_base = dc=example,dc=com
query_filter = (&(objectClass=inetOrgPerson)(mail=%s))
result_attribute = homeDirectory
version = 3
bind = no
`

func openCF(t testing.TB, text string, log io.Writer) maps.Map {
	t.Helper()
	m, err := tryOpen(t, text, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { maps.Close(m) })
	return m
}

func tryOpen(t testing.TB, text string, log io.Writer) (maps.Map, error) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ldap.cf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if log == nil {
		log = io.Discard
	}
	return maps.Open("ldap:"+path, maps.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(log, nil))})
}

func lookup(m maps.Map, key string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return m.Lookup(ctx, key)
}

func wantFound(t *testing.T, m maps.Map, key, want string) {
	t.Helper()
	v, found, err := lookup(m, key)
	if err != nil || !found || v != want {
		t.Errorf("Lookup(%q) = %q, %v, %v; want %q", key, v, found, err, want)
	}
}

func wantNotFound(t *testing.T, m maps.Map, key string) {
	t.Helper()
	v, found, err := lookup(m, key)
	if err != nil || found {
		t.Errorf("Lookup(%q) = %q, %v, %v; want not found", key, v, found, err)
	}
}

func wantError(t *testing.T, m maps.Map, key string) error {
	t.Helper()
	v, found, err := lookup(m, key)
	if err == nil || found {
		t.Errorf("Lookup(%q) = %q, %v, %v; want an error", key, v, found, err)
	}
	return err
}

func TestLDAP(t *testing.T) {
	s := server(t)
	base := "server_host = " + ldapURL(s) + "\n"
	mailbox := openCF(t, base+mailboxCF, nil)
	if mailbox.Pattern() {
		t.Errorf("a filter with only %%s must not be a pattern table")
	}

	t.Run("hit and miss", func(t *testing.T) {
		wantFound(t, mailbox, "user@example.com", "example.com/user/")
		wantFound(t, mailbox, "user.alias@example.com", "example.com/user/")
		wantNotFound(t, mailbox, "nobody@example.com")
		wantNotFound(t, mailbox, "user@example.org")
	})
	t.Run("catch-all and extension through FindAddress", func(t *testing.T) {
		list := maps.List{mailbox}
		for _, c := range []struct{ addr, value, key string }{
			{"user+tag@example.com", "example.com/user/", "user@example.com"},
			{"stranger@example.com", "example.com/catchall/", "@example.com"},
			{"stranger+x@example.com", "example.com/catchall/", "@example.com"},
		} {
			h, ok, err := list.FindAddress(context.Background(), maps.ParseAddress(c.addr), "+")
			if err != nil || !ok || h.Value != c.value || h.Key != c.key {
				t.Errorf("FindAddress(%q) = %+v, %v, %v; want %q via %q", c.addr, h, ok, err, c.value, c.key)
			}
		}
	})
	t.Run("hostile keys", func(t *testing.T) {
		for _, k := range []string{
			"*@example.com", // unescaped, a wildcard matching every mailbox
			"*",
			"user@example.com)(mail=*",
			"*)(objectclass=*",
			`\2a@example.com`,
			"x' or '1'='1@example.com",
			"üser@example.com",
			"user@example.com\x00",
			"o'brien(*)*@example.com",
		} {
			wantNotFound(t, mailbox, k)
		}
		wantFound(t, mailbox, hostileStored, "example.com/obrien/")
	})
	t.Run("search_base with %d, RFC 4514 escaped", func(t *testing.T) {
		m := openCF(t, base+"search_base = ou=%d,ou=domains,dc=example,dc=com\nquery_filter = (uid=%u)\nresult_attribute = homeDirectory\nbind = no\n", nil)
		if !m.Pattern() {
			t.Errorf("%%u and %%d must make a pattern table")
		}
		wantFound(t, m, "bob@example.net", "example.net/bob/")
		wantNotFound(t, m, "bob@example.org")            // no such base: not found, as Postfix
		wantNotFound(t, m, "bob@example.net,ou=domains") // would be a valid deeper base unescaped
		wantNotFound(t, m, "bob@x,ou=example.net")       // would be a valid base unescaped
		wantNotFound(t, m, "bob")                        // no domain: not asked
		wantNotFound(t, m, "@example.net")               // no localpart: not asked
	})
	t.Run("fixed search_base that does not exist is an error", func(t *testing.T) {
		m := openCF(t, base+strings.Replace(mailboxCF, "dc=example,dc=com", "dc=exmaple,dc=com", 1), nil)
		if err := wantError(t, m, "user@example.com"); err != nil && !strings.Contains(err.Error(), "No Such Object") {
			t.Errorf("want the server's No Such Object, got %v", err)
		}
	})
	t.Run("several values, result_format", func(t *testing.T) {
		m := openCF(t, base+"search_base = dc=example,dc=com\nquery_filter = uid=%u\nresult_attribute = MAIL, cn\nresult_format = <%s>\nbind = no\n", nil)
		wantFound(t, m, "user@example.com", "<user>,<user@example.com>,<user.alias@example.com>") // the entry's order
	})
	t.Run("expansion_limit", func(t *testing.T) {
		q := base + "search_base = dc=example,dc=com\nquery_filter = (&(objectClass=posixAccount)(mail=*@%d))\nresult_attribute = homeDirectory\nbind = no\n"
		err := wantError(t, openCF(t, q+"expansion_limit = 2\nsize_limit = 0\n", nil), "x@example.com")
		if !errors.Is(err, pfconf.ErrExpansionLimit) {
			t.Errorf("want ErrExpansionLimit, got %v", err)
		}
		// size_limit defaults to expansion_limit: the server stops the search.
		wantError(t, openCF(t, q+"expansion_limit = 2\n", nil), "x@example.com")
		wantFound(t, openCF(t, q+"expansion_limit = 2\n", nil), "x@example.net", "example.net/bob/")
	})
	t.Run("domain restriction", func(t *testing.T) {
		m := openCF(t, base+mailboxCF+"domain = example.com\n", nil)
		wantFound(t, m, "user@example.com", "example.com/user/")
		wantNotFound(t, m, "@example.com")
		wantNotFound(t, m, "bob@example.net")
	})
	t.Run("bind", func(t *testing.T) {
		// Postfix's default is bind = yes with no bind_dn: an anonymous bind.
		wantFound(t, openCF(t, base+strings.Replace(mailboxCF, "bind = no\n", "", 1), nil), "user@example.com", "example.com/user/")
		cf := strings.Replace(mailboxCF, "bind = no", "bind = yes\nbind_dn = "+rootDN+"\nbind_pw = "+rootPW, 1)
		wantFound(t, openCF(t, base+cf, nil), "user@example.com", "example.com/user/")
		bad := strings.Replace(mailboxCF, "bind = no", "bind = yes\nbind_dn = "+rootDN+"\nbind_pw = wrong", 1)
		wantError(t, openCF(t, base+bad, nil), "user@example.com")
		if _, err := tryOpen(t, base+strings.Replace(mailboxCF, "bind = no", "bind = sasl", 1), nil); err == nil || !strings.Contains(err.Error(), "sasl") {
			t.Errorf("bind = sasl: %v; want an open error", err)
		}
	})
	t.Run("ldapi and failover between server_host entries", func(t *testing.T) {
		ldapi := "ldapi://" + strings.ReplaceAll(url.PathEscape(s.Socket), "/", "%2F")
		wantFound(t, openCF(t, "server_host = "+ldapi+"\n"+mailboxCF, nil), "user@example.com", "example.com/user/")
		dead, _ := testserver.FreePort()
		wantError(t, openCF(t, fmt.Sprintf("server_host = 127.0.0.1:%d\n", dead)+mailboxCF, nil), "user@example.com")
		m := openCF(t, fmt.Sprintf("server_host = 127.0.0.1:%d, %s\n", dead, ldapURL(s))+mailboxCF, nil)
		wantFound(t, m, "user@example.com", "example.com/user/")
		m = openCF(t, fmt.Sprintf("server_host = 127.0.0.1 localhost\nserver_port = %d\n", s.Port)+mailboxCF, nil)
		wantFound(t, m, "user@example.com", "example.com/user/")
	})
	t.Run("concurrent lookups", func(t *testing.T) {
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					wantFound(t, mailbox, "user@example.com", "example.com/user/")
					wantNotFound(t, mailbox, "*@example.com")
				}
			}()
		}
		wg.Wait()
	})
	t.Run("TLS", func(t *testing.T) {
		ldaps := fmt.Sprintf("server_host = ldaps://127.0.0.1:%d\n", s.TLSPort)
		for _, tc := range []struct {
			name, cf string
			ok       bool
		}{
			{"ldaps, CA and name checked", ldaps + "tls_ca_cert_file = " + s.Certs.CA + "\ntls_require_cert = yes\n", true},
			{"ldaps, Postfix's default: nothing checked", ldaps, true},
			{"ldaps, another CA", ldaps + "tls_ca_cert_file = " + s.Certs.OtherCA + "\ntls_require_cert = yes\n", false},
			{"ldaps, another CA, name not checked", ldaps + "tls_ca_cert_file = " + s.Certs.OtherCA + "\n", false},
			{"start_tls", base + "start_tls = yes\ntls_ca_cert_file = " + s.Certs.CA + "\ntls_require_cert = yes\n", true},
			{"start_tls, another CA", base + "start_tls = yes\ntls_ca_cert_file = " + s.Certs.OtherCA + "\ntls_require_cert = yes\n", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m := openCF(t, tc.cf+mailboxCF, nil)
				if tc.ok {
					wantFound(t, m, "user@example.com", "example.com/user/")
				} else {
					t.Logf("error as expected: %v", wantError(t, m, "user@example.com"))
				}
			})
		}
	})
	t.Run("unknown parameter is logged", func(t *testing.T) {
		var log bytes.Buffer
		openCF(t, base+mailboxCF+"query_fliter = (uid=%s)\n", &log)
		if !strings.Contains(log.String(), "query_fliter") {
			t.Errorf("no warning for a misspelt parameter: %s", log.String())
		}
	})
	t.Run("server stopped and restarted", func(t *testing.T) {
		m := openCF(t, base+mailboxCF+"timeout = 2\n", nil)
		wantFound(t, m, "user@example.com", "example.com/user/")
		s.Outage(t, func() {
			for i := 0; i < 3; i++ {
				err := wantError(t, m, "user@example.com")
				if i == 0 {
					t.Logf("error while down: %v", err)
				}
			}
		})
		wantFound(t, m, "user@example.com", "example.com/user/")
	})
}

func BenchmarkLookup(b *testing.B) {
	s := server(b)
	m := openCF(b, "server_host = "+ldapURL(s)+"\n"+mailboxCF, nil)
	ctx := context.Background()
	check := func() {
		if v, ok, err := m.Lookup(ctx, "user@example.com"); err != nil || !ok || v == "" {
			b.Fatalf("lookup: %q %v %v", v, ok, err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			check()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				check()
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	})
}
