// Runs in: the front (and the lookup, check-config and makemap commands).

package sql

import (
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/vlmtpd/vlmtpd/maps/internal/pfconf"
)

func init() {
	// The driver prints connection trouble to stderr by default; the
	// table logs what matters itself.
	mysql.SetLogger(debugLogger{})
}

type debugLogger struct{}

func (debugLogger) Print(v ...any) { slog.Debug("mysql driver: " + fmt.Sprint(v...)) }

// mysqlLocalSocket is where Debian's MariaDB and MySQL listen; the client
// library reaches "localhost" through it, and so do we.
const mysqlLocalSocket = "/run/mysqld/mysqld.sock"

func (t *Table) openMySQL(cfg *pfconf.Config, connectTimeout time.Duration) error {
	user, pass, db := cfg.Str("user", ""), cfg.Str("password", ""), cfg.Str("dbname", "")
	charset := cfg.Str("charset", "utf8mb4")
	cfg.Ignore(t.log, slog.LevelDebug, "MySQL option files are not read; set user, password and dbname here", "option_file", "option_group")
	useTLS := false
	for _, n := range []string{"tls_cert_file", "tls_key_file", "tls_CAfile", "tls_CApath", "tls_ciphers"} {
		useTLS = useTLS || cfg.Str(n, "") != ""
	}
	verify, err := cfg.Bool("tls_verify_cert", false)
	if err != nil {
		return err
	}
	tlsParams := pfconf.TLSParams{CAFile: cfg.Str("tls_CAfile", ""), CADir: cfg.Str("tls_CApath", ""),
		Cert: cfg.Str("tls_cert_file", ""), Key: cfg.Str("tls_key_file", ""), Verify: verify}
	cfg.Ignore(t.log, slog.LevelDebug, "Go chooses the TLS cipher suites", "tls_ciphers")
	for _, hs := range hostList(cfg) {
		var e endpoint
		if hs == "localhost" || strings.HasPrefix(hs, "localhost:") || hs == "inet:localhost" {
			e = endpoint{unix: true, path: mysqlLocalSocket} // libmysqlclient's meaning of localhost
		} else {
			var err error
			if e, err = parseHost(hs, "3306"); err != nil {
				return fmt.Errorf("%s: %w", cfg.Path, err)
			}
		}
		mc := mysql.NewConfig()
		mc.User, mc.Passwd, mc.DBName = user, pass, db
		if e.unix {
			mc.Net, mc.Addr = "unix", e.path
		} else {
			mc.Net, mc.Addr = "tcp", net.JoinHostPort(e.host, e.port)
		}
		if useTLS && !e.unix {
			tc, err := tlsParams.Config(e.host)
			if err != nil {
				return fmt.Errorf("%s: %w", cfg.Path, err)
			}
			mc.TLS = tc
		}
		mc.Timeout = connectTimeout
		// The socket timeouts back up query_timeout; a fixed 5s here
		// would cut off a longer query_timeout.
		mc.ReadTimeout = t.timeout
		mc.WriteTimeout = t.timeout
		if err := mc.Apply(mysql.Charset(charset, "")); err != nil {
			return fmt.Errorf("%s: charset: %w", cfg.Path, err)
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return fmt.Errorf("%s: %w", cfg.Path, err)
		}
		t.hosts = append(t.hosts, &host{name: e.String(), unix: e.unix, db: sql.OpenDB(conn)})
	}
	return nil
}

func (t *Table) openPgSQL(cfg *pfconf.Config, connectTimeout time.Duration) error {
	user, pass, db := cfg.Str("user", ""), cfg.Str("password", ""), cfg.Str("dbname", "")
	if enc := cfg.Str("encoding", "UTF8"); !strings.EqualFold(strings.ReplaceAll(enc, "-", ""), "utf8") {
		t.log.Warn("table parameter ignored: pgx speaks UTF8 only", "file", cfg.Path, "parameter", "encoding", "value", enc)
	}
	for _, hs := range hostList(cfg) {
		var dsn, name string
		unix := false
		if strings.HasPrefix(hs, "postgresql://") || strings.HasPrefix(hs, "postgres://") {
			// Postfix: a URI carries everything; user, password, dbname are not used.
			dsn, name = hs, redactURI(hs)
		} else {
			e, err := parseHost(hs, "5432")
			if err != nil {
				return fmt.Errorf("%s: %w", cfg.Path, err)
			}
			h, port := e.host, e.port
			if e.unix {
				// libpq takes the socket's directory; accept the socket's own path too.
				h = e.path
				if b := filepath.Base(e.path); strings.HasPrefix(b, ".s.PGSQL.") {
					h, port = filepath.Dir(e.path), strings.TrimPrefix(b, ".s.PGSQL.")
				}
				unix = true
			}
			kv := []string{"host=" + pgQuote(h), "port=" + pgQuote(port)}
			if user != "" {
				kv = append(kv, "user="+pgQuote(user))
			}
			if pass != "" {
				kv = append(kv, "password="+pgQuote(pass))
			}
			if db != "" {
				kv = append(kv, "dbname="+pgQuote(db))
			}
			dsn, name = strings.Join(kv, " "), e.String()
		}
		pc, err := pgx.ParseConfig(dsn)
		if err != nil {
			return fmt.Errorf("%s: hosts %q: %v", cfg.Path, name, err)
		}
		if pc.ConnectTimeout == 0 {
			pc.ConnectTimeout = connectTimeout
		}
		if !unix && pc.Host != "" && strings.HasPrefix(pc.Host, "/") {
			unix = true
		}
		t.hosts = append(t.hosts, &host{name: name, unix: unix, db: stdlib.OpenDB(*pc)})
	}
	return nil
}

// pgQuote quotes a libpq keyword/value setting.
func pgQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// redactURI drops the password from a URI for logs.
func redactURI(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "postgresql://…"
	}
	return u.Redacted()
}

func (t *Table) openSQLite(cfg *pfconf.Config, dir string) error {
	p := cfg.Str("dbpath", "")
	if p == "" {
		return fmt.Errorf("%s: dbpath is not set", cfg.Path)
	}
	if !filepath.IsAbs(p) && dir != "" {
		p = filepath.Join(dir, p)
	}
	// Postfix refuses to start on a database it cannot open; so do we,
	// rather than let SQLite create an empty file.
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("%s: dbpath: %w", cfg.Path, err)
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: p,
		RawQuery: "mode=ro&_pragma=busy_timeout(5000)&_pragma=query_only(1)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Path, err)
	}
	t.hosts = append(t.hosts, &host{name: p, unix: true, db: db})
	return nil
}
