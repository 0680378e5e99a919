package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/maps/internal/pfconf"
	"github.com/vlmtpd/vlmtpd/maps/internal/testserver"
)

// The servers are started once for the package, on first use, and stopped
// by TestMain.
var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	cleanupMu.Lock()
	for _, f := range cleanups {
		f()
	}
	cleanupMu.Unlock()
	os.Exit(code)
}

func atExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

// backend is one database loaded with the postfixadmin schema.
type backend struct {
	typ    string
	conn   string // the connection lines of a table's .cf file
	server *testserver.Server
	// tcpHost is "inet:127.0.0.1:port", for the failover test.
	tcpHost string
}

const dbPassword = "pf-secret"

// Schema and data as postfixadmin lays them out (trimmed to the columns
// the Postfix queries use, plus a few for realism).
func schema(activeType string) []string {
	return []string{
		`CREATE TABLE domain (domain VARCHAR(255) NOT NULL PRIMARY KEY, description VARCHAR(255) NOT NULL DEFAULT '',
			transport VARCHAR(255), active ` + activeType + ` NOT NULL DEFAULT '1')`,
		`CREATE TABLE mailbox (username VARCHAR(255) NOT NULL PRIMARY KEY, password VARCHAR(255) NOT NULL DEFAULT '',
			name VARCHAR(255), maildir VARCHAR(255) NOT NULL DEFAULT '', quota BIGINT NOT NULL DEFAULT 0,
			local_part VARCHAR(255) NOT NULL, domain VARCHAR(255) NOT NULL, active ` + activeType + ` NOT NULL DEFAULT '1')`,
		`CREATE TABLE alias (address VARCHAR(255) NOT NULL PRIMARY KEY, goto TEXT NOT NULL, domain VARCHAR(255) NOT NULL,
			active ` + activeType + ` NOT NULL DEFAULT '1')`,
		`CREATE TABLE alias_domain (alias_domain VARCHAR(255) NOT NULL PRIMARY KEY, target_domain VARCHAR(255) NOT NULL,
			active ` + activeType + ` NOT NULL DEFAULT '1')`,
	}
}

// hostileStored is a real mailbox whose localpart is full of SQL syntax:
// found exactly, it shows the key travels as data.
const hostileStored = `o'brien"\%_;--ü@example.com`

type mailboxRow struct {
	username, maildir string
	name              any
	active            string
}

var mailboxes = []mailboxRow{
	{"user@example.com", "example.com/user/", "User One", "1"},
	{"other@example.com", "example.com/other/", nil, "1"},
	{"inactive@example.com", "example.com/inactive/", "Gone", "0"},
	{"empty@example.com", "", "No maildir", "1"},
	{"bob@example.net", "example.net/bob/", "Bob", "1"},
	{hostileStored, "example.com/obrien/", "Hostile", "1"},
}

// load creates the schema and rows through db (an admin connection).
func load(db *sql.DB, activeType, ph string) error {
	p := func(n int) string {
		if ph == "$" {
			return fmt.Sprintf("$%d", n)
		}
		return "?"
	}
	stmts := schema(activeType)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	exec := func(q string, args ...any) error {
		_, err := db.Exec(q, args...)
		if err != nil {
			err = fmt.Errorf("%s: %w", q, err)
		}
		return err
	}
	for _, d := range [][2]string{{"example.com", "1"}, {"example.net", "1"}, {"disabled.example", "0"}} {
		if err := exec(fmt.Sprintf("INSERT INTO domain (domain, description, active) VALUES (%s, 'test', %s)", p(1), p(2)), d[0], d[1]); err != nil {
			return err
		}
	}
	for _, m := range mailboxes {
		local, dom, _ := strings.Cut(m.username, "@")
		if i := strings.LastIndexByte(m.username, '@'); i >= 0 {
			local, dom = m.username[:i], m.username[i+1:]
		}
		if err := exec(fmt.Sprintf("INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain, active) VALUES (%s, '{CRYPT}x', %s, %s, 0, %s, %s, %s)",
			p(1), p(2), p(3), p(4), p(5), p(6)), m.username, m.name, m.maildir, local, dom, m.active); err != nil {
			return err
		}
	}
	for _, a := range [][3]string{
		{"@example.com", "catchall@example.com", "example.com"},
		{"info@example.com", "user@example.com,other@example.com", "example.com"},
	} {
		if err := exec(fmt.Sprintf("INSERT INTO alias (address, goto, domain, active) VALUES (%s, %s, %s, '1')", p(1), p(2), p(3)), a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	return exec("INSERT INTO alias_domain (alias_domain, target_domain, active) VALUES ('alias.example', 'example.com', '1')")
}

// lazyBackend starts its backend on first use; it then serves every test
// of the package.
type lazyBackend struct {
	once  sync.Once
	start func() (*backend, error)
	be    *backend
	err   error
}

func (l *lazyBackend) get(tb testing.TB) *backend {
	l.once.Do(func() { l.be, l.err = l.start() })
	testserver.Require(tb, l.err)
	return l.be
}

var sqliteLazy = lazyBackend{start: func() (*backend, error) {
	dir, err := os.MkdirTemp("", "vlmtpd-sqlite-")
	if err != nil {
		return nil, err
	}
	atExit(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "postfix.sqlite")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := load(db, "INTEGER", "?"); err != nil {
		return nil, err
	}
	return &backend{typ: "sqlite", conn: "dbpath = " + path + "\n"}, nil
}}

func sqliteBackend(tb testing.TB) *backend { return sqliteLazy.get(tb) }

var mysqlLazy = lazyBackend{start: func() (*backend, error) {
	s, err := testserver.MariaDB()
	if err != nil {
		return nil, err
	}
	atExit(s.Close)
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", s.Socket
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	root := sql.OpenDB(conn)
	defer root.Close()
	root.SetMaxOpenConns(1)
	for _, q := range []string{
		"CREATE DATABASE postfix CHARACTER SET utf8mb4",
		"CREATE USER 'postfix'@'localhost' IDENTIFIED BY '" + dbPassword + "'",
		"CREATE USER 'postfix'@'127.0.0.1' IDENTIFIED BY '" + dbPassword + "'",
		"GRANT SELECT ON postfix.* TO 'postfix'@'localhost'",
		"GRANT SELECT ON postfix.* TO 'postfix'@'127.0.0.1'",
		"CREATE USER 'postfix_tls'@'127.0.0.1' IDENTIFIED BY '" + dbPassword + "' REQUIRE SSL",
		"GRANT SELECT ON postfix.* TO 'postfix_tls'@'127.0.0.1'",
		"USE postfix",
	} {
		if _, err := root.Exec(q); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	if err := load(root, "TINYINT(1)", "?"); err != nil {
		return nil, err
	}
	return &backend{typ: "mysql", server: s,
		conn:    fmt.Sprintf("hosts = unix:%s\nuser = postfix\npassword = %s\ndbname = postfix\n", s.Socket, dbPassword),
		tcpHost: fmt.Sprintf("inet:127.0.0.1:%d", s.Port)}, nil
}}

func mysqlBackend(tb testing.TB) *backend { return mysqlLazy.get(tb) }

var pgsqlLazy = lazyBackend{start: func() (*backend, error) {
	s, err := testserver.Postgres()
	if err != nil {
		return nil, err
	}
	atExit(s.Close)
	admin := func(db string) (*sql.DB, error) {
		pc, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=postgres dbname=%s", filepath.Dir(s.Socket), s.Port, db))
		if err != nil {
			return nil, err
		}
		return stdlib.OpenDB(*pc), nil
	}
	root, err := admin("postgres")
	if err != nil {
		return nil, err
	}
	defer root.Close()
	for _, q := range []string{
		"CREATE ROLE postfix LOGIN PASSWORD '" + dbPassword + "'",
		"CREATE DATABASE postfix",
	} {
		if _, err := root.Exec(q); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	db, err := admin("postfix")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := load(db, "BOOLEAN", "$"); err != nil {
		return nil, err
	}
	if _, err := db.Exec("GRANT SELECT ON ALL TABLES IN SCHEMA public TO postfix"); err != nil {
		return nil, err
	}
	return &backend{typ: "pgsql", server: s,
		conn:    fmt.Sprintf("hosts = inet:127.0.0.1:%d\nuser = postfix\npassword = %s\ndbname = postfix\n", s.Port, dbPassword),
		tcpHost: fmt.Sprintf("inet:127.0.0.1:%d", s.Port)}, nil
}}

func pgsqlBackend(tb testing.TB) *backend { return pgsqlLazy.get(tb) }

// openTable writes a .cf file (the backend's connection lines plus body)
// and opens it through the registry, as the server would.
func (be *backend) openTable(t testing.TB, body string, log io.Writer) maps.Map {
	t.Helper()
	return openCF(t, be.typ, be.conn+body, log)
}

func openCF(t testing.TB, typ, text string, log io.Writer) maps.Map {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, typ+".cf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if log == nil {
		log = io.Discard
	}
	m, err := maps.Open(typ+":"+path, maps.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { maps.Close(m) })
	return m
}

func lookup(t *testing.T, m maps.Map, key string) (string, bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return m.Lookup(ctx, key)
}

func wantFound(t *testing.T, m maps.Map, key, want string) {
	t.Helper()
	v, found, err := lookup(t, m, key)
	if err != nil || !found || v != want {
		t.Errorf("Lookup(%q) = %q, %v, %v; want %q, true, nil", key, v, found, err, want)
	}
}

func wantNotFound(t *testing.T, m maps.Map, key string) {
	t.Helper()
	v, found, err := lookup(t, m, key)
	if err != nil || found {
		t.Errorf("Lookup(%q) = %q, %v, %v; want not found", key, v, found, err)
	}
}

// The queries postfixadmin's documentation gives Postfix admins.
const (
	mailboxQuery     = "query = SELECT maildir FROM mailbox WHERE username='%s' AND active = '1'\n"
	domainQuery      = "query = SELECT domain FROM domain WHERE domain='%s' AND active = '1'\n"
	aliasQuery       = "query = SELECT goto FROM alias WHERE address='%s' AND active = '1'\n"
	aliasDomainQuery = "query = SELECT maildir FROM mailbox, alias_domain\n" +
		"  WHERE alias_domain.alias_domain = '%d'\n" +
		"  AND mailbox.username = CONCAT('%u', '@', alias_domain.target_domain)\n" +
		"  AND mailbox.active = '1' AND alias_domain.active = '1'\n"
)

// hostileKeys must all be "not found" without an error: none of them may
// change what the query selects.
var hostileKeys = []string{
	"x' or '1'='1@example.com",
	"x' or 'a'<>'b' or 'a'='@example.com", // pasted, this would select every row
	"x' or 1=1 -- @example.com",
	`x\' or 1=1 -- @example.com`,
	`x\\' or '1'='1@example.com`,
	"'; drop table mailbox; --@example.com",
	"%s@example.com",
	"%' or username like '%@example.com",
	`x" or "1"="1@example.com`,
	"x'||'@example.com",
	"user@example.com' or '1'='1",
	"ü' or 'ü'='ü@example.com",
	"x\x00' or '1'='1@example.com",
	"\xff\xfe' or '1'='1@example.com", // not UTF-8
	"@example.com' union select password from mailbox where '1'='1",
}

func suite(t *testing.T, be *backend) {
	mailbox := be.openTable(t, mailboxQuery, nil)
	if mailbox.Pattern() {
		t.Errorf("a query with only %%s is a pattern table")
	}

	t.Run("hit", func(t *testing.T) {
		wantFound(t, mailbox, "user@example.com", "example.com/user/")
		wantFound(t, mailbox, "bob@example.net", "example.net/bob/")
	})
	t.Run("miss", func(t *testing.T) {
		wantNotFound(t, mailbox, "nobody@example.com")
		wantNotFound(t, mailbox, "inactive@example.com")
		wantNotFound(t, mailbox, "user@example.org")
	})
	t.Run("domains", func(t *testing.T) {
		d := be.openTable(t, domainQuery, nil)
		wantFound(t, d, "example.com", "example.com")
		wantNotFound(t, d, "disabled.example")
		wantNotFound(t, d, "example.org")
	})
	t.Run("catch-all and extension through FindAddress", func(t *testing.T) {
		list := maps.List{mailbox, be.openTable(t, aliasQuery, nil)}
		ctx := context.Background()
		cases := []struct{ addr, value, key string }{
			{"user@example.com", "example.com/user/", "user@example.com"},
			{"user+tag@example.com", "example.com/user/", "user@example.com"},
			{"stranger@example.com", "catchall@example.com", "@example.com"},
			{"stranger+tag@example.com", "catchall@example.com", "@example.com"},
			{"info@example.com", "user@example.com,other@example.com", "info@example.com"},
		}
		for _, c := range cases {
			h, ok, err := list.FindAddress(ctx, maps.ParseAddress(c.addr), "+")
			if err != nil || !ok || h.Value != c.value || h.Key != c.key {
				t.Errorf("FindAddress(%q) = %+v, %v, %v; want %q via key %q", c.addr, h, ok, err, c.value, c.key)
			}
		}
		if _, ok, err := list.FindAddress(ctx, maps.ParseAddress("someone@example.net"), "+"); ok || err != nil {
			t.Errorf("someone@example.net: found %v, err %v; want not found", ok, err)
		}
	})
	t.Run("alias domain query is a pattern table", func(t *testing.T) {
		ad := be.openTable(t, aliasDomainQuery, nil)
		if !ad.Pattern() {
			t.Fatalf("a query with %%u and %%d must be a pattern table")
		}
		wantFound(t, ad, "user@alias.example", "example.com/user/")
		wantNotFound(t, ad, "user@example.com")
		wantNotFound(t, ad, "user")           // no domain: suppressed
		wantNotFound(t, ad, "@alias.example") // empty localpart: suppressed
		// Postfix asks a pattern table only for the full address.
		if _, ok, err := (maps.List{ad}).FindAddress(context.Background(), maps.ParseAddress("user+x@alias.example"), "+"); ok || err != nil {
			t.Errorf("extension through a pattern table: found %v, err %v", ok, err)
		}
	})
	t.Run("text and escapes in one quoted string", func(t *testing.T) {
		m := be.openTable(t, "query = SELECT maildir FROM mailbox WHERE username='%u@%d' AND active = '1'\n", nil)
		if !m.Pattern() {
			t.Errorf("'%%u@%%d' must make a pattern table")
		}
		wantFound(t, m, "user@example.com", "example.com/user/")
		wantFound(t, m, hostileStored, "example.com/obrien/")
		wantNotFound(t, m, "user")
	})
	t.Run("hostile keys", func(t *testing.T) {
		for _, k := range hostileKeys {
			wantNotFound(t, mailbox, k)
		}
		// The one that exists is found exactly, and the table is intact.
		wantFound(t, mailbox, hostileStored, "example.com/obrien/")
		wantFound(t, mailbox, "user@example.com", "example.com/user/")
	})
	t.Run("every column of every row, NULL and empty skipped", func(t *testing.T) {
		var log testutil.SyncBuffer
		m := be.openTable(t, "query = SELECT maildir, name FROM mailbox WHERE domain='%d' AND username IN ('other@example.com', 'user@example.com', 'empty@example.com') ORDER BY username\n", &log)
		wantFound(t, m, "x@example.com", "No maildir,example.com/other/,example.com/user/,User One")
		if !strings.Contains(log.String(), "empty value") {
			t.Errorf("no warning for the empty maildir; log: %s", log.String())
		}
		wantNotFound(t, be.openTable(t, mailboxQuery, nil), "empty@example.com")
	})
	t.Run("result_format", func(t *testing.T) {
		m := be.openTable(t, "query = SELECT username FROM mailbox WHERE domain='%d' AND active='1' AND maildir <> '' AND maildir <> 'example.com/obrien/' ORDER BY username\nresult_format = %u/%D/%S/%%\n", nil)
		wantFound(t, m, "k@example.com", "other/example.com/k@example.com/%,user/example.com/k@example.com/%")
	})
	t.Run("expansion_limit", func(t *testing.T) {
		q := "query = SELECT maildir FROM mailbox WHERE domain='%d' AND active='1' AND maildir <> ''\n"
		m := be.openTable(t, q+"expansion_limit = 1\n", nil)
		_, found, err := lookup(t, m, "x@example.com")
		if !errors.Is(err, pfconf.ErrExpansionLimit) || found {
			t.Errorf("3 rows with expansion_limit = 1: found %v, err %v; want ErrExpansionLimit", found, err)
		}
		wantFound(t, m, "x@example.net", "example.net/bob/") // one row is fine
		// The error is no host failure: the next lookup still works.
		wantFound(t, m, "x@example.net", "example.net/bob/")
	})
	t.Run("domain restriction", func(t *testing.T) {
		m := be.openTable(t, mailboxQuery+"domain = example.com, !example.net\n", nil)
		wantFound(t, m, "user@example.com", "example.com/user/")
		wantNotFound(t, m, "bob@example.net")
		wantNotFound(t, m, "@example.com")
		wantNotFound(t, m, "user")
	})
	t.Run("legacy select_field/table/where_field", func(t *testing.T) {
		m := be.openTable(t, "select_field = maildir\ntable = mailbox\nwhere_field = username\nadditional_conditions = AND active = '1'\n", nil)
		wantFound(t, m, "user@example.com", "example.com/user/")
		wantNotFound(t, m, "inactive@example.com")
		wantNotFound(t, m, hostileKeys[0])
	})
	t.Run("concurrent lookups", func(t *testing.T) {
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					wantFound(t, mailbox, "user@example.com", "example.com/user/")
					wantNotFound(t, mailbox, hostileKeys[i%len(hostileKeys)])
				}
			}()
		}
		wg.Wait()
	})
	t.Run("query error is an error", func(t *testing.T) {
		m := be.openTable(t, "query = SELECT maildir FROM no_such_table WHERE username='%s'\n", nil)
		if _, found, err := lookup(t, m, "user@example.com"); err == nil || found {
			t.Errorf("query on a missing table: found %v, err %v; want an error", found, err)
		}
	})
}

func TestSQLite(t *testing.T) {
	be := sqliteBackend(t)
	suite(t, be)
	t.Run("missing database file", func(t *testing.T) {
		dir := t.TempDir()
		cf := filepath.Join(dir, "x.cf")
		os.WriteFile(cf, []byte("dbpath = "+filepath.Join(dir, "nope.sqlite")+"\n"+mailboxQuery), 0o600)
		if _, err := maps.Open("sqlite:"+cf, maps.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err == nil {
			t.Error("opened a table whose database does not exist")
		}
		if _, err := os.Stat(filepath.Join(dir, "nope.sqlite")); err == nil {
			t.Error("opening created the database file")
		}
	})
}

func TestMySQL(t *testing.T) {
	be := mysqlBackend(t)
	suite(t, be)
	t.Run("tcp with password and failover", func(t *testing.T) {
		failover(t, be, func(hosts string) string {
			return fmt.Sprintf("hosts = %s\nuser = postfix\npassword = %s\ndbname = postfix\nretry_interval = 60\n", hosts, dbPassword)
		})
	})
	t.Run("wrong password is an error", func(t *testing.T) {
		m := openCF(t, "mysql", fmt.Sprintf("hosts = %s\nuser = postfix\npassword = wrong\ndbname = postfix\n", be.tcpHost)+mailboxQuery, nil)
		if _, found, err := lookup(t, m, "user@example.com"); err == nil || found {
			t.Errorf("found %v, err %v; want an error", found, err)
		}
	})
	t.Run("TLS", func(t *testing.T) {
		c := be.server.Certs
		conn := fmt.Sprintf("hosts = %s\nuser = postfix_tls\npassword = %s\ndbname = postfix\n", be.tcpHost, dbPassword)
		for _, tc := range []struct {
			name, tls string
			ok        bool
		}{
			{"CA and name checked", "tls_CAfile = " + c.CA + "\ntls_verify_cert = yes\n", true},
			{"CA checked", "tls_CAfile = " + c.CA + "\n", true},
			{"CA directory", "tls_CApath = " + filepath.Dir(c.CA) + "\ntls_verify_cert = yes\n", true},
			{"no TLS for a user that requires it", "", false},
			{"server signed by another CA", "tls_CAfile = " + c.OtherCA + "\n", false},
			{"server signed by another CA, name checked", "tls_CAfile = " + c.OtherCA + "\ntls_verify_cert = yes\n", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m := openCF(t, "mysql", conn+tc.tls+mailboxQuery, nil)
				if tc.ok {
					wantFound(t, m, "user@example.com", "example.com/user/")
				} else if _, found, err := lookup(t, m, "user@example.com"); err == nil || found {
					t.Errorf("found %v, err %v; want an error", found, err)
				} else {
					t.Logf("error as expected: %v", err)
				}
			})
		}
	})
	queryTimeout(t, be, "query = SELECT maildir FROM mailbox WHERE username='%s' AND SLEEP(3) = 0\n")
	restart(t, be)
}

func TestPgSQL(t *testing.T) {
	be := pgsqlBackend(t)
	suite(t, be)
	s := be.server
	conn := func(hosts string) string {
		return fmt.Sprintf("hosts = %s\nuser = postfix\npassword = %s\ndbname = postfix\n", hosts, dbPassword)
	}
	t.Run("unix socket and URI", func(t *testing.T) {
		for _, hosts := range []string{
			"unix:" + s.Socket, // the socket file itself
			fmt.Sprintf("postgresql://postfix:%s@127.0.0.1:%d/postfix", dbPassword, s.Port),
		} {
			m := openCF(t, "pgsql", conn(hosts)+mailboxQuery, nil)
			for i := 0; i < 5; i++ {
				wantFound(t, m, "user@example.com", "example.com/user/")
			}
		}
	})
	t.Run("failover", func(t *testing.T) { failover(t, be, conn) })
	t.Run("wrong password is an error", func(t *testing.T) {
		m := openCF(t, "pgsql", fmt.Sprintf("hosts = %s\nuser = postfix\npassword = wrong\ndbname = postfix\n", be.tcpHost)+mailboxQuery, nil)
		if _, found, err := lookup(t, m, "user@example.com"); err == nil || found {
			t.Errorf("found %v, err %v; want an error", found, err)
		}
	})
	queryTimeout(t, be, "query = SELECT maildir FROM mailbox, pg_sleep(3) WHERE username='%s'\n")
	restart(t, be)
}

// failover checks that a table listing a dead host and be's TCP host
// answers. Hosts are tried in random order, so tables are opened until
// one has tried the dead host first (it is then marked down): only that
// proves the lookup went on to the next host.
func failover(t *testing.T, be *backend, conn func(hosts string) string) {
	dead, _ := testserver.FreePort()
	deadHost := fmt.Sprintf("inet:127.0.0.1:%d", dead)
	if _, found, err := lookup(t, openCF(t, be.typ, conn(deadHost)+mailboxQuery, nil), "user@example.com"); err == nil || found {
		t.Fatalf("the dead host alone: found %v, err %v; want an error", found, err)
	}
	for try := 1; ; try++ {
		m := openCF(t, be.typ, conn(deadHost+", "+be.tcpHost)+mailboxQuery, nil)
		wantFound(t, m, "user@example.com", "example.com/user/")
		tbl := m.(*Table)
		tbl.mu.Lock()
		triedDead := false
		for _, h := range tbl.hosts {
			triedDead = triedDead || (h.name == deadHost && !h.downUntil.IsZero())
		}
		tbl.mu.Unlock()
		if triedDead {
			for i := 0; i < 5; i++ { // the dead host is skipped now
				wantFound(t, m, "user@example.com", "example.com/user/")
			}
			return
		}
		if try == 30 {
			t.Fatalf("%s was never tried first in %d tables", deadHost, try)
		}
		maps.Close(m)
	}
}

// queryTimeout runs a query that takes 3s with query_timeout = 1.
func queryTimeout(t *testing.T, be *backend, slowQuery string) {
	t.Run("query_timeout", func(t *testing.T) {
		m := be.openTable(t, slowQuery+"query_timeout = 1\n", nil)
		start := time.Now()
		_, found, err := lookup(t, m, "user@example.com")
		if err == nil || found {
			t.Errorf("slow query: found %v, err %v; want an error", found, err)
		}
		if d := time.Since(start); d > 2500*time.Millisecond {
			t.Errorf("gave up after %v; want about 1s", d)
		}
		t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	})
}

// restart stops the server under an open table: lookups must fail (not
// "not found"), and work again once the server is back, without reopening.
func restart(t *testing.T, be *backend) {
	t.Run("server stopped and restarted", func(t *testing.T) {
		m := be.openTable(t, mailboxQuery+"retry_interval = 1\n", nil)
		wantFound(t, m, "user@example.com", "example.com/user/")
		be.server.Outage(t, func() {
			for i := 0; i < 3; i++ {
				v, found, err := lookup(t, m, "user@example.com")
				if err == nil || found {
					t.Fatalf("server down: Lookup = %q, %v, %v; want an error", v, found, err)
				}
				if i == 0 {
					t.Logf("error while down: %v", err)
				}
			}
		})
		deadline := time.Now().Add(30 * time.Second)
		for {
			v, found, err := lookup(t, m, "user@example.com")
			if err == nil && found && v == "example.com/user/" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("server back for 30s, lookup still %q, %v, %v", v, found, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

func BenchmarkLookup(b *testing.B) {
	for _, name := range []string{"sqlite", "mysql", "pgsql"} {
		b.Run(name, func(b *testing.B) {
			var be *backend
			switch name {
			case "sqlite":
				be = sqliteBackend(b)
			case "mysql":
				be = mysqlBackend(b)
			case "pgsql":
				be = pgsqlBackend(b)
			}
			m := be.openTable(b, mailboxQuery, nil)
			ctx := context.Background()
			run := func(b *testing.B, parallel bool) {
				check := func() {
					if v, ok, err := m.Lookup(ctx, "user@example.com"); err != nil || !ok || v == "" {
						b.Fatalf("lookup: %q %v %v", v, ok, err)
					}
				}
				b.ResetTimer()
				if parallel {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							check()
						}
					})
				} else {
					for i := 0; i < b.N; i++ {
						check()
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
			}
			b.Run("serial", func(b *testing.B) { run(b, false) })
			b.Run("parallel", func(b *testing.B) { run(b, true) })
		})
	}
}
