// Runs in: the front (and the lookup, check-config and makemap commands).

// Package sql provides the "mysql:", "pgsql:" and "sqlite:" lookup tables.
// Each reads a Postfix mysql_table(5), pgsql_table(5) or sqlite_table(5)
// configuration file unchanged and answers lookups with a prepared
// statement: the lookup key is always a parameter, never SQL text.
//
// Servers are reached through database/sql pools, one per configured host;
// hosts are tried in random order with unix sockets first, and a host that
// failed is skipped for retry_interval, as Postfix does.
package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/maps/internal/pfconf"
)

func init() {
	maps.Register("mysql", func(name string, opts maps.Options) (maps.Map, error) {
		return open("mysql", name, opts)
	})
	maps.Register("pgsql", func(name string, opts maps.Options) (maps.Map, error) {
		return open("pgsql", name, opts)
	})
	maps.Register("sqlite", func(name string, opts maps.Options) (maps.Map, error) {
		return open("sqlite", name, opts)
	})
}

// Defaults for the knobs Postfix hard-codes or leaves to the client library.
const (
	defaultConnectTimeout = 5 * time.Second
	defaultQueryTimeout   = 5 * time.Second
	defaultRetryInterval  = 60 * time.Second
	defaultIdleInterval   = 60 * time.Second
	maxOpenPerHost        = 8
)

// Table is one SQL lookup table.
type Table struct {
	spec    string
	log     *slog.Logger
	common  *pfconf.Common
	dialect dialect
	query   *compiledQuery
	timeout time.Duration
	retry   time.Duration

	mu    sync.Mutex // guards the hosts' state
	hosts []*host
}

// host is one server (or the SQLite file) with its own pool.
type host struct {
	name string
	unix bool
	db   *sql.DB

	stmtMu sync.Mutex
	stmt   *sql.Stmt

	downUntil time.Time // guarded by Table.mu
	lastErr   error     // guarded by Table.mu
}

func open(typ, name string, opts maps.Options) (*Table, error) {
	cfg, err := pfconf.OpenFile(name, opts.Dir)
	if err != nil {
		return nil, err
	}
	log := opts.Logger.With("table", typ+":"+cfg.Path)
	t := &Table{spec: typ + ":" + name, log: log}
	if t.common, err = pfconf.ReadCommon(cfg, "", opts); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			t.Close()
		}
	}()
	d := map[string]dialect{"mysql": mysqlDialect, "pgsql": pgsqlDialect, "sqlite": sqliteDialect}[typ]
	q, err := queryText(cfg)
	if err != nil {
		return nil, err
	}
	t.dialect = d
	if t.query, err = compileQuery(q, d); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	for _, p := range t.query.templates() {
		t.common.Exp.AddQuery(p)
	}
	connectTimeout, err := cfg.Duration("connect_timeout", defaultConnectTimeout, time.Second)
	if err != nil {
		return nil, err
	}
	if t.timeout, err = cfg.Duration("query_timeout", defaultQueryTimeout, time.Second); err != nil {
		return nil, err
	}
	if t.retry, err = cfg.Duration("retry_interval", defaultRetryInterval, time.Second); err != nil {
		return nil, err
	}
	idle, err := cfg.Duration("idle_interval", defaultIdleInterval, time.Second)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "mysql":
		err = t.openMySQL(cfg, connectTimeout)
	case "pgsql":
		err = t.openPgSQL(cfg, connectTimeout)
	case "sqlite":
		err = t.openSQLite(cfg, opts.Dir)
	}
	if err != nil {
		return nil, err
	}
	for _, h := range t.hosts {
		h.db.SetMaxOpenConns(maxOpenPerHost)
		h.db.SetMaxIdleConns(maxOpenPerHost)
		h.db.SetConnMaxIdleTime(idle)
	}
	// Postfix reads require_result_set (whether a statement without a
	// result set is an error); a statement here always has one.
	cfg.Ignore(log, slog.LevelDebug, "a prepared SELECT always has a result set", "require_result_set")
	cfg.WarnUnknown(log)
	ok = true
	return t, nil
}

// queryText is "query", or the statement built from the legacy
// select_field/table/where_field/additional_conditions parameters.
func queryText(cfg *pfconf.Config) (string, error) {
	q := cfg.Str("query", "")
	sel, tab, where := cfg.Str("select_field", ""), cfg.Str("table", ""), cfg.Str("where_field", "")
	extra := cfg.Str("additional_conditions", "")
	if q != "" {
		return q, nil
	}
	if sel == "" || tab == "" || where == "" {
		return "", fmt.Errorf("%s: no query (set query, or all of select_field, table and where_field)", cfg.Path)
	}
	q = fmt.Sprintf("SELECT %s FROM %s WHERE %s = '%%s'", sel, tab, where)
	if extra != "" {
		q += " " + extra
	}
	return q, nil
}

// Spec is the "type:name" the table was opened with.
func (t *Table) Spec() string { return t.spec }

// Pattern reports whether the query uses part of the key (%u, %d, %1..%9):
// such a table is asked only for full addresses.
func (t *Table) Pattern() bool { return t.common.Exp.Partial() }

// Close closes every pool.
func (t *Table) Close() error {
	var first error
	for _, h := range t.hosts {
		if h.stmt != nil {
			h.stmt.Close()
		}
		if err := h.db.Close(); err != nil && first == nil {
			first = err
		}
	}
	if err := t.common.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

// Lookup runs the query for key. A key the templates cannot fill, or one
// outside "domain", is not found without asking the server.
func (t *Table) Lookup(ctx context.Context, key string) (string, bool, error) {
	k, ask, err := t.common.Prepare(ctx, key)
	if err != nil || !ask {
		return "", false, err
	}
	args := t.query.args(k)
	if t.dialect.textOnly && !storable(args) {
		return "", false, nil // no text column holds invalid UTF-8, so no row can match
	}
	res := pfconf.NewResults(&t.common.Exp, t.common.Format, k, t.common.Limit, t.log, t.spec)
	if err := t.run(ctx, args, res); err != nil {
		return "", false, err
	}
	v, found := res.Value()
	return v, found, nil
}

// errAllDown is every host being within its retry_interval after a failure.
var errAllDown = errors.New("no database server available")

// run tries the hosts in Postfix's order until one answers.
func (t *Table) run(ctx context.Context, args []any, res *pfconf.Results) error {
	order, err := t.order()
	if err != nil {
		return err
	}
	var last error
	for _, h := range order {
		err := h.query(ctx, t.query, t.timeout, args, res)
		if err == nil || errors.Is(err, pfconf.ErrExpansionLimit) {
			t.mark(h, nil)
			return err
		}
		if ctx.Err() != nil {
			return err // the caller gave up; the host is not to blame
		}
		if !t.hostFailure(err) {
			// The server answered with an error about this query (a bad
			// statement, a value it cannot take): every host would say
			// the same, and the host must stay in use for other keys.
			return fmt.Errorf("%s: %w", h.name, err)
		}
		t.log.Warn("database query failed", "host", h.name, "err", err)
		t.mark(h, err)
		last = fmt.Errorf("%s: %w", h.name, err)
	}
	return last
}

// order lists the hosts to try: unix sockets first, each group shuffled,
// hosts that failed less than retry_interval ago left out.
func (t *Table) order() ([]*host, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	var unix, inet []*host
	var soonest *host
	for _, h := range t.hosts {
		if now.Before(h.downUntil) {
			if soonest == nil || h.downUntil.Before(soonest.downUntil) {
				soonest = h
			}
			continue
		}
		if h.unix {
			unix = append(unix, h)
		} else {
			inet = append(inet, h)
		}
	}
	if len(unix)+len(inet) == 0 {
		return nil, fmt.Errorf("%w (%s failed: %v; next try in %s)", errAllDown, soonest.name, soonest.lastErr,
			time.Until(soonest.downUntil).Round(time.Second))
	}
	rand.Shuffle(len(unix), func(i, j int) { unix[i], unix[j] = unix[j], unix[i] })
	rand.Shuffle(len(inet), func(i, j int) { inet[i], inet[j] = inet[j], inet[i] })
	return append(unix, inet...), nil
}

func (t *Table) mark(h *host, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h.lastErr = err
	if err == nil {
		h.downUntil = time.Time{}
		return
	}
	h.downUntil = time.Now().Add(t.retry)
}

// query runs the statement on one host and feeds every non-NULL column of
// every row to res.
func (h *host) query(ctx context.Context, q *compiledQuery, timeout time.Duration, args []any, res *pfconf.Results) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stmt, err := h.prepared(ctx, q)
	if err != nil {
		return err
	}
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for _, v := range vals {
			if !v.Valid {
				continue
			}
			if err := res.Add(v.String); err != nil {
				return err
			}
		}
	}
	return rows.Err()
}

// prepared returns the host's statement, preparing it on first use (and
// again after a failure): opening a table never needs the server up.
// database/sql re-prepares it on each new connection by itself.
func (h *host) prepared(ctx context.Context, q *compiledQuery) (*sql.Stmt, error) {
	h.stmtMu.Lock()
	defer h.stmtMu.Unlock()
	if h.stmt != nil {
		return h.stmt, nil
	}
	s, err := h.db.PrepareContext(ctx, q.text)
	if err != nil && q.typed != "" && isUntypedParam(err) {
		s, err = h.db.PrepareContext(ctx, q.typed)
	}
	if err != nil {
		return nil, err
	}
	h.stmt = s
	return s, nil
}

// storable reports whether every argument is valid UTF-8 (NULs never
// get this far).
func storable(args []any) bool {
	for _, a := range args {
		if !utf8.ValidString(a.(string)) {
			return false
		}
	}
	return true
}

// hostFailure tells a failing server (down, unreachable, refusing us,
// shutting down, out of resources) from an error about the query itself.
// Only the first makes the table skip the host for retry_interval.
func (t *Table) hostFailure(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code[:2] {
		case "08", "28", "3D", "53", "57", "58": // connection, authorization, database, resources, operator, system
			return true
		}
		return false
	}
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		switch my.Number {
		case 1040, 1044, 1045, 1049, 1053, 1129, 1130, 1203, 1226, 1251, 1927:
			// too many connections, access denied, unknown database,
			// shutdown, host blocked or not allowed, limits, killed
			return true
		}
		return false
	}
	// SQLite has one "host", the file: nothing to skip to.
	return t.dialect.name != "sqlite"
}

// isUntypedParam is PostgreSQL's "could not determine data type of parameter".
func isUntypedParam(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "42P18"
}

// hostList splits "hosts" (default localhost, as Postfix).
func hostList(cfg *pfconf.Config) []string {
	hs := maps.SplitList(cfg.Str("hosts", ""))
	if len(hs) == 0 {
		hs = []string{"localhost"}
	}
	return hs
}

// endpoint is one entry of "hosts".
type endpoint struct {
	unix       bool
	path       string // unix socket
	host, port string // inet
}

func (e endpoint) String() string {
	if e.unix {
		return "unix:" + e.path
	}
	return "inet:" + net.JoinHostPort(e.host, e.port)
}

// parseHost parses "unix:/path", "inet:host[:port]" or "host[:port]"
// ("[v6addr]:port" for IPv6).
func parseHost(s, defPort string) (endpoint, error) {
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		if p == "" {
			return endpoint{}, fmt.Errorf("hosts: %q: empty socket path", s)
		}
		return endpoint{unix: true, path: p}, nil
	}
	rest := strings.TrimPrefix(s, "inet:")
	e := endpoint{host: rest, port: defPort}
	if h, p, err := net.SplitHostPort(rest); err == nil {
		e.host, e.port = h, p
	} else if strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") {
		e.host = rest[1 : len(rest)-1]
	}
	if e.host == "" || e.port == "" || strings.ContainsAny(e.host, "[]/") {
		return endpoint{}, fmt.Errorf("hosts: %q: want unix:/path, inet:host[:port] or host[:port]", s)
	}
	return e, nil
}
