// Runs in: the front (and the lookup, check-config and makemap commands).

// Package socketmap implements the "socketmap:" table type: lookups sent
// to a server as netstrings over a unix or TCP socket, with Postfix's
// socketmap_table(5) protocol. Connections are persistent and reused, one
// query at a time each.
package socketmap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vlmtpd/vlmtpd/maps"
)

func init() {
	maps.Register("socketmap", func(name string, opts maps.Options) (maps.Map, error) {
		return Open(name, opts)
	})
}

// Limits and timeouts. Postfix waits 100s for connect and I/O; a mail
// server that defers a recipient should give up much sooner, so vlmtpd
// waits 5s to connect and 10s for a whole lookup, waiting for a
// connection and the one retry on a new connection included (or less if
// the caller's context ends first). Idle and age limits are Postfix's.
const (
	MaxQuery       = 10_000  // larger queries are "not found" without asking
	MaxReply       = 100_000 // larger replies are an error
	ConnectTimeout = 5 * time.Second
	QueryTimeout   = 10 * time.Second
	IdleTimeout    = 10 * time.Second
	MaxAge         = 100 * time.Second
	MaxConns       = 4 // connections per table; queries beyond wait their turn
)

// ReplyError is a TEMP, TIMEOUT or PERM answer, or a reply vlmtpd cannot
// parse. The caller defers the recipient in every case.
type ReplyError struct {
	Status string // TEMP, TIMEOUT, PERM, or "" for a malformed reply
	Reason string
}

func (e *ReplyError) Error() string {
	if e.Status == "" {
		return fmt.Sprintf("malformed socketmap reply %q", e.Reason)
	}
	return fmt.Sprintf("socketmap server answered %s: %s", e.Status, e.Reason)
}

// Table is an open socketmap: table. It is safe for concurrent use.
type Table struct {
	spec     string
	network  string // "unix" or "tcp"
	address  string
	mapName  string
	dialer   net.Dialer
	timeouts timeouts

	slots chan struct{} // one token per connection that may be in use

	mu     sync.Mutex
	idle   []*conn // most recently used last
	sweep  *time.Timer
	closed bool
}

type timeouts struct{ connect, query, idle, age time.Duration }

type conn struct {
	net.Conn
	r          *bufio.Reader
	born, used time.Time
}

// Open parses name, "unix:/path:mapname" or "inet:host:port:mapname" (the
// last ':' starts the map name). It does not connect: as in Postfix the
// first lookup does, so a server that is down only defers mail. A relative
// unix path is taken from opts.Dir.
func Open(name string, opts maps.Options) (*Table, error) {
	i := strings.LastIndexByte(name, ':')
	if i < 0 {
		return nil, fmt.Errorf("socketmap: %q: expected unix:PATH:MAPNAME or inet:HOST:PORT:MAPNAME", name)
	}
	endpoint, mapName := name[:i], name[i+1:]
	if mapName == "" || strings.ContainsAny(mapName, " \t\r\n") {
		return nil, fmt.Errorf("socketmap: %q: bad map name %q", name, mapName)
	}
	typ, addr, _ := strings.Cut(endpoint, ":")
	t := &Table{
		spec: "socketmap:" + name, mapName: mapName,
		timeouts: timeouts{connect: ConnectTimeout, query: QueryTimeout, idle: IdleTimeout, age: MaxAge},
		slots:    make(chan struct{}, MaxConns),
	}
	switch typ {
	case "unix":
		if addr == "" {
			return nil, fmt.Errorf("socketmap: %q: missing socket path", name)
		}
		if !filepath.IsAbs(addr) && opts.Dir != "" {
			addr = filepath.Join(opts.Dir, addr)
		}
		t.network, t.address = "unix", addr
	case "inet":
		host, port, err := net.SplitHostPort(addr)
		if err != nil || port == "" {
			return nil, fmt.Errorf("socketmap: %q: expected inet:HOST:PORT:MAPNAME: %v", name, err)
		}
		t.network, t.address = "tcp", net.JoinHostPort(host, port)
	default:
		return nil, fmt.Errorf("socketmap: %q: unknown endpoint type %q (want unix or inet)", name, typ)
	}
	t.dialer.Timeout = t.timeouts.connect
	return t, nil
}

func (t *Table) Spec() string { return t.spec }

// Pattern is true: Postfix registers socketmap as a pattern table, so it
// is asked only for full keys.
func (t *Table) Pattern() bool { return true }

// Lookup sends "mapname key" and interprets the reply. OK with empty data
// is found with an empty value (maps.List makes that an error).
func (t *Table) Lookup(ctx context.Context, key string) (string, bool, error) {
	query := t.mapName + " " + key
	if len(query) > MaxQuery {
		return "", false, nil
	}
	// One deadline for the whole lookup, the retry on a new connection
	// included: a server that drips a reply and then closes must not get
	// a second full query timeout.
	deadline := time.Now().Add(t.timeouts.query)
	wait := time.NewTimer(t.timeouts.query)
	select {
	case t.slots <- struct{}{}:
		wait.Stop()
	case <-ctx.Done():
		wait.Stop()
		return "", false, ctx.Err()
	case <-wait.C:
		return "", false, fmt.Errorf("socketmap %s %s: all %d connections busy for the whole query timeout (%v)", t.network, t.address, MaxConns, t.timeouts.query)
	}
	defer func() { <-t.slots }()

	var reply string
	for attempt := 0; ; attempt++ {
		c, err := t.get(ctx, attempt > 0, deadline)
		if err != nil {
			return "", false, err
		}
		reply, err = t.exchange(ctx, c, query, deadline)
		if err == nil {
			t.put(c)
			break
		}
		c.Close()
		if brokenConn(err) {
			if attempt == 0 {
				continue // the server closed or reset it; try once on a new one
			}
			err = fmt.Errorf("server closed the connection, also on a retry: %w", err)
		}
		return "", false, fmt.Errorf("socketmap %s %s: %w", t.network, t.address, err)
	}
	return parseReply(reply)
}

func parseReply(reply string) (string, bool, error) {
	status, data, _ := strings.Cut(reply, " ")
	switch status {
	case "OK":
		return data, true, nil
	case "NOTFOUND":
		return "", false, nil
	case "TEMP", "TIMEOUT", "PERM":
		return "", false, &ReplyError{Status: status, Reason: data}
	}
	return "", false, &ReplyError{Reason: reply}
}

// exchange sends one query and reads its reply before the lookup's
// deadline (or the context's, if earlier).
func (t *Table) exchange(ctx context.Context, c *conn, query string, deadline time.Time) (string, error) {
	ctxDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxDeadline = d, true
	}
	if err := c.SetDeadline(deadline); err != nil {
		return "", err
	}
	// Cancel a blocked read or write when ctx ends.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(appendNetstring(nil, query)); err != nil {
		return "", err
	}
	reply, err := readNetstring(c.r, MaxReply)
	if err != nil && ctx.Err() != nil {
		return "", ctx.Err()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if ctxDeadline {
			return "", fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return "", fmt.Errorf("no reply within %v: %w", t.timeouts.query, err)
	}
	return reply, err
}

// brokenConn reports whether err means the peer closed or reset the
// connection, the case worth one retry. Timeouts are not retried.
func brokenConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// get returns an idle connection that is neither too old nor idle too
// long, or dials a new one (always, with fresh: a retry after a broken
// connection should not meet another stale one), before deadline.
func (t *Table) get(ctx context.Context, fresh bool, deadline time.Time) (*conn, error) {
	now := time.Now()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, errors.New("socketmap table is closed")
	}
	for len(t.idle) > 0 && !fresh {
		c := t.idle[len(t.idle)-1]
		t.idle = t.idle[:len(t.idle)-1]
		if now.Sub(c.used) < t.timeouts.idle && now.Sub(c.born) < t.timeouts.age {
			t.mu.Unlock()
			return c, nil
		}
		c.Close()
	}
	t.mu.Unlock()
	d := t.dialer
	d.Deadline = deadline // the connect timeout, or less if the lookup has less left
	nc, err := d.DialContext(ctx, t.network, t.address)
	if err != nil {
		return nil, fmt.Errorf("socketmap: %w", err)
	}
	return &conn{Conn: nc, r: bufio.NewReader(nc), born: now}, nil
}

// put makes c idle again and makes sure a sweep will close it if it stays
// unused.
func (t *Table) put(c *conn) {
	c.used = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || c.used.Sub(c.born) >= t.timeouts.age {
		c.Close()
		return
	}
	t.idle = append(t.idle, c)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.timeouts.idle, t.sweepIdle)
	}
}

func (t *Table) sweepIdle() {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep = nil
	keep := t.idle[:0]
	for _, c := range t.idle {
		if now.Sub(c.used) >= t.timeouts.idle {
			c.Close()
		} else {
			keep = append(keep, c)
		}
	}
	clear(t.idle[len(keep):])
	t.idle = keep
	if len(t.idle) > 0 && !t.closed {
		t.sweep = time.AfterFunc(t.timeouts.idle, t.sweepIdle)
	}
}

// Close closes idle connections; busy ones close when their query ends.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, c := range t.idle {
		c.Close()
	}
	t.idle = nil
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	return nil
}
