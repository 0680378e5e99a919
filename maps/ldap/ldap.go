// Runs in: the front (and the lookup, check-config and makemap commands).

// Package ldap provides the "ldap:" lookup table: it reads a Postfix
// ldap_table(5) configuration file unchanged and answers lookups with an
// LDAP search whose filter and base carry the key escaped (RFC 4515 in
// the filter, RFC 4514 in the base), so a key can never change the search.
package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/maps/internal/pfconf"
)

func init() {
	maps.Register("ldap", func(name string, opts maps.Options) (maps.Map, error) {
		return open(name, opts)
	})
}

// maxIdle is how many connections are kept open between lookups.
const maxIdle = 4

// Table is one LDAP lookup table.
type Table struct {
	spec   string
	log    *slog.Logger
	common *pfconf.Common

	urls      []string
	timeout   time.Duration
	startTLS  bool
	tlsConfig *tls.Config
	bind      bool
	bindDN    string
	bindPW    string

	base      pfconf.Template
	filter    pfconf.Template
	attrs     []string
	scope     int
	deref     int
	sizeLimit int

	mu   sync.Mutex
	idle []*goldap.Conn
}

func open(name string, opts maps.Options) (*Table, error) {
	cfg, err := pfconf.OpenFile(name, opts.Dir)
	if err != nil {
		return nil, err
	}
	t := &Table{spec: "ldap:" + name, log: opts.Logger.With("table", "ldap:"+cfg.Path)}
	if t.common, err = pfconf.ReadCommon(cfg, "result_filter", opts); err != nil {
		return nil, err
	}
	if err := t.configure(cfg); err != nil {
		t.common.Close()
		return nil, err
	}
	cfg.WarnUnknown(t.log)
	return t, nil
}

func (t *Table) configure(cfg *pfconf.Config) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{cfg.Path}, a...)...)
	}
	port, err := cfg.Int("server_port", 389, 1)
	if err != nil {
		return err
	}
	for _, h := range maps.SplitList(cfg.Str("server_host", "localhost")) {
		if strings.Contains(h, "://") {
			u := strings.ToLower(h[:strings.Index(h, "://")])
			if u != "ldap" && u != "ldaps" && u != "ldapi" {
				return bad("server_host %q: want ldap://, ldaps:// or ldapi:// URLs or host names", h)
			}
			t.urls = append(t.urls, h)
			continue
		}
		host, p := h, strconv.Itoa(port)
		if hh, pp, err := net.SplitHostPort(h); err == nil {
			host, p = hh, pp
		}
		t.urls = append(t.urls, "ldap://"+net.JoinHostPort(host, p))
	}
	if t.timeout, err = cfg.Duration("timeout", 10*time.Second, time.Second); err != nil {
		return err
	}
	switch v := cfg.Str("version", "2"); v {
	case "2", "3":
		// go-ldap speaks LDAPv3 only; every server that speaks v2 also speaks v3.
	default:
		return bad("version: want 2 or 3, got %q", v)
	}
	base := cfg.Str("search_base", "")
	if base == "" && !cfg.Has("search_base") {
		return bad("search_base is not set")
	}
	if t.base, err = pfconf.ParseTemplate(base); err != nil {
		return bad("search_base: %v", err)
	}
	f := cfg.Str("query_filter", "mailacceptinggeneralid=%s")
	if !strings.HasPrefix(strings.TrimSpace(f), "(") {
		f = "(" + f + ")" // OpenLDAP accepts a filter without the outer parentheses
	}
	if t.filter, err = pfconf.ParseTemplate(f); err != nil {
		return bad("query_filter: %v", err)
	}
	t.common.Exp.AddQuery(t.base)
	t.common.Exp.AddQuery(t.filter)
	t.attrs = maps.SplitList(cfg.Str("result_attribute", "maildrop"))
	if len(t.attrs) == 0 {
		return bad("result_attribute is empty")
	}
	for _, p := range []string{"special_result_attribute", "terminal_result_attribute", "leaf_result_attribute"} {
		if cfg.Str(p, "") != "" {
			return bad("%s: DN and URL recursion is not supported; list the attributes in result_attribute", p)
		}
	}
	switch s := strings.ToLower(cfg.Str("scope", "sub")); s {
	case "sub":
		t.scope = goldap.ScopeWholeSubtree
	case "one":
		t.scope = goldap.ScopeSingleLevel
	case "base":
		t.scope = goldap.ScopeBaseObject
	default:
		return bad("scope: want sub, one or base, got %q", s)
	}
	if t.deref, err = cfg.Int("dereference", 0, 0); err != nil {
		return err
	}
	if t.deref > 3 {
		return bad("dereference: want 0..3, got %d", t.deref)
	}
	if t.sizeLimit, err = cfg.Int("size_limit", t.common.Limit, 0); err != nil {
		return err
	}
	switch b := strings.ToLower(cfg.Str("bind", "yes")); b {
	case "yes", "true":
		t.bind = true
	case "no", "false":
	case "sasl":
		return bad("bind = sasl is not supported (use bind = yes with bind_dn and bind_pw, or bind = no)")
	default:
		return bad("bind: want yes, no or sasl, got %q", b)
	}
	t.bindDN, t.bindPW = cfg.Str("bind_dn", ""), cfg.Str("bind_pw", "")
	if t.startTLS, err = cfg.Bool("start_tls", false); err != nil {
		return err
	}
	if t.tlsConfig, err = tlsConfig(cfg); err != nil {
		return err
	}
	cfg.Ignore(t.log, slog.LevelDebug, "not implemented", "chase_referrals", "recursion_limit",
		"debuglevel", "cache", "cache_expiry", "cache_size", "tls_random_file", "tls_cipher_suite")
	cfg.IgnorePrefix(t.log, slog.LevelDebug, "not implemented", "sasl_")
	return nil
}

// tlsConfig builds the settings for ldaps:// and start_tls from the tls_*
// parameters. As in Postfix, the server's name is checked only with
// tls_require_cert = yes; a configured CA must still sign its chain.
func tlsConfig(cfg *pfconf.Config) (*tls.Config, error) {
	verify, err := cfg.Bool("tls_require_cert", false)
	if err != nil {
		return nil, err
	}
	tc, err := pfconf.TLSParams{
		CAFile: cfg.Str("tls_ca_cert_file", ""), CADir: cfg.Str("tls_ca_cert_dir", ""),
		Cert: cfg.Str("tls_cert", ""), Key: cfg.Str("tls_key", ""), Verify: verify,
	}.Config("")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	return tc, nil
}

// Spec is the "type:name" the table was opened with.
func (t *Table) Spec() string { return t.spec }

// Pattern reports whether the filter, base or result_format use part of
// the key (%u, %d, %1..%9).
func (t *Table) Pattern() bool { return t.common.Exp.Partial() }

// Close closes the idle connections.
func (t *Table) Close() error {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
	return t.common.Close()
}

// Lookup searches for key; every value of every result attribute of every
// matching entry is returned, comma-joined.
func (t *Table) Lookup(ctx context.Context, key string) (string, bool, error) {
	k, ask, err := t.common.Prepare(ctx, key)
	if err != nil || !ask {
		return "", false, err
	}
	req := goldap.NewSearchRequest(
		pfconf.Expand(t.base, k, goldap.EscapeDN),
		t.scope, t.deref, t.sizeLimit, int((t.timeout+time.Second-1)/time.Second), false,
		pfconf.Expand(t.filter, k, goldap.EscapeFilter),
		t.attrs, nil)
	sr, err := t.search(ctx, req)
	if err != nil {
		if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) && t.base.HasEscapes() {
			return "", false, nil // a key-dependent base that does not exist: not found, as Postfix
		}
		// A fixed base that does not exist is a configuration mistake:
		// deferring, as Postfix does, keeps it from bouncing every recipient.
		return "", false, err
	}
	res := pfconf.NewResults(&t.common.Exp, t.common.Format, k, t.common.Limit, t.log, t.spec)
	// Values in the order the server sent them, as Postfix walks each
	// entry's attributes; attribute names compare case-insensitively.
	for _, e := range sr.Entries {
		for _, a := range e.Attributes {
			if !t.isResultAttr(a.Name) {
				continue
			}
			for _, v := range a.Values {
				if err := res.Add(v); err != nil {
					return "", false, err
				}
			}
		}
	}
	v, found := res.Value()
	return v, found, nil
}

func (t *Table) isResultAttr(name string) bool {
	for _, a := range t.attrs {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// search runs req on a pooled connection; a connection that fails is
// dropped and the search is tried once more on a new one, so a restarted
// server is used again without reopening the table.
func (t *Table) search(ctx context.Context, req *goldap.SearchRequest) (*goldap.SearchResult, error) {
	var last error
	for attempt := 0; attempt < 2; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, fresh, err := t.get()
		if err != nil {
			return nil, err
		}
		// The pool hands out each connection to one search at a time, so
		// its request timeout can follow the caller's deadline.
		timeout := t.timeout
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
			timeout = max(time.Until(dl), time.Millisecond)
		}
		c.SetTimeout(timeout)
		sr, err := c.Search(req)
		if err == nil {
			t.put(c)
			return sr, nil
		}
		if !isConnError(err) && !c.IsClosing() {
			t.put(c) // an LDAP result (bad filter, size limit…): the connection is fine
			return nil, err
		}
		c.Close()
		last = err
		if fresh {
			break // a new connection failed too: the server is down
		}
	}
	return nil, last
}

func isConnError(err error) bool {
	return goldap.IsErrorAnyOf(err, goldap.ErrorNetwork, goldap.ErrorUnexpectedResponse) || errors.Is(err, net.ErrClosed)
}

// get returns an idle connection, or dials a new one (fresh = true).
func (t *Table) get() (*goldap.Conn, bool, error) {
	t.mu.Lock()
	for len(t.idle) > 0 {
		c := t.idle[len(t.idle)-1]
		t.idle = t.idle[:len(t.idle)-1]
		if !c.IsClosing() {
			t.mu.Unlock()
			return c, false, nil
		}
		c.Close()
	}
	t.mu.Unlock()
	c, err := t.dial()
	return c, true, err
}

func (t *Table) put(c *goldap.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle) < maxIdle {
		t.idle = append(t.idle, c)
		return
	}
	c.Close()
}

// dial tries the servers in the order listed, as the OpenLDAP library
// does, and binds.
func (t *Table) dial() (*goldap.Conn, error) {
	var errs []error
	for _, u := range t.urls {
		c, err := t.dialOne(u)
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
	}
	return nil, errors.Join(errs...)
}

func (t *Table) dialOne(rawURL string) (*goldap.Conn, error) {
	tc := t.tlsConfig.Clone()
	if u, err := url.Parse(rawURL); err == nil && tc.ServerName == "" {
		tc.ServerName = u.Hostname()
	}
	c, err := goldap.DialURL(rawURL,
		goldap.DialWithDialer(&net.Dialer{Timeout: t.timeout}),
		goldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(t.timeout)
	if t.startTLS && strings.HasPrefix(strings.ToLower(rawURL), "ldap://") {
		if err := c.StartTLS(tc); err != nil {
			c.Close()
			return nil, fmt.Errorf("start_tls: %w", err)
		}
	}
	if t.bind {
		_, err := c.SimpleBind(&goldap.SimpleBindRequest{Username: t.bindDN, Password: t.bindPW, AllowEmptyPassword: true})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("bind as %q: %w", t.bindDN, err)
		}
	}
	return c, nil
}
