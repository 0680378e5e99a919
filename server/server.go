// Runs in: the front.

// Package server is vlmtpd's front, the unprivileged process that speaks
// LMTP: sessions on the protocol engine (server/lmtp), recipient
// resolution through the configured tables, spooling, and one reply per
// recipient mapped from every outcome.
package server

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/server/lmtp"
	"github.com/vlmtpd/vlmtpd/store"
)

// Server is a running LMTP service.
type Server struct {
	log     *slog.Logger
	deliver store.Deliverer
	lmtp    *lmtp.Server
	// state is what new sessions start with; Reload replaces it, and a
	// session keeps the one it started with.
	state atomic.Pointer[state]
	book  book // deliveries in flight per mailbox

	conns chan struct{} // one token per open connection (max_connections)
	stats stats
	obs   atomic.Pointer[Observer]
}

// state is one loaded configuration with its tables and spool, shared by
// the sessions that started under it. The tables of a replaced state are
// closed once its last session ends.
type state struct {
	cfg      *config.Config
	resolver *Resolver
	spool    *Spool
	submit   *submitter // Sieve's redirects and vacation replies

	mu      sync.Mutex
	refs    int
	retired bool
}

func (s *Server) newState(cfg *config.Config) (*state, lmtp.Settings, error) {
	opts := cfg.MapOptions()
	opts.Observe = s.observeLookup
	res, err := newResolver(cfg, opts)
	if err != nil {
		return nil, lmtp.Settings{}, err
	}
	sp, err := NewSpool(cfg.SpoolDirectory)
	if err != nil {
		res.Close()
		return nil, lmtp.Settings{}, err
	}
	tc, err := tlsConfig(cfg)
	if err != nil {
		res.Close()
		return nil, lmtp.Settings{}, err
	}
	set := lmtp.Settings{
		Hostname:       cfg.Hostname,
		MaxMessageSize: cfg.MessageSizeLimit,
		MaxRecipients:  cfg.MaxRecipients,
		MaxLineLength:  cfg.LineLengthLimit,
		IdleTimeout:    cfg.IdleTimeout,
		DataTimeout:    cfg.DataTimeout,
		WriteTimeout:   time.Minute,
		TLSConfig:      tc,
		RequireTLS:     cfg.TLSSecurityLevel == "encrypt",
	}
	return &state{cfg: cfg, resolver: res, spool: sp, submit: newSubmitter(cfg)}, set, nil
}

// acquire takes a reference for a new session; false once retired.
func (st *state) acquire() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.retired {
		return false
	}
	st.refs++
	return true
}

func (st *state) release() {
	st.mu.Lock()
	st.refs--
	done := st.retired && st.refs == 0
	st.mu.Unlock()
	if done {
		st.resolver.Close()
	}
}

func (st *state) retire() {
	st.mu.Lock()
	st.retired = true
	done := st.refs == 0
	st.mu.Unlock()
	if done {
		st.resolver.Close()
	}
}

// New opens the tables and the spool. d does the mailbox writes.
func New(cfg *config.Config, d store.Deliverer, log *slog.Logger) (*Server, error) {
	s := &Server{log: log, deliver: d, conns: make(chan struct{}, cfg.MaxConnections), stats: stats{outcomes: map[Outcome]int64{}},
		book: book{m: map[string]*inflight{}}}
	st, set, err := s.newState(cfg)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	st.submit.warn(log)
	s.lmtp = &lmtp.Server{Settings: set, Backend: s, Log: log}
	return s, nil
}

// Reload makes sessions that start from now on use cfg: its tables,
// limits, timeouts and TLS settings. Sessions already open finish under
// the configuration they started with. On error nothing changes.
// Settings that need a restart (RestartOnly) are not applied.
func (s *Server) Reload(cfg *config.Config) error {
	st, set, err := s.newState(cfg)
	if err != nil {
		return err
	}
	st.submit.warn(s.log)
	old := s.state.Swap(st)
	s.lmtp.SetSettings(set)
	old.retire()
	return nil
}

// current is the state a new session starts with, referenced.
func (s *Server) current() *state {
	for {
		st := s.state.Load()
		if st.acquire() {
			return st
		}
	}
}

// Serve accepts LMTP connections on every listener until Shutdown.
func (s *Server) Serve(ls []net.Listener) error {
	errs := make(chan error, len(ls))
	for _, l := range ls {
		l := &gateListener{Listener: l, s: s}
		go func() { errs <- s.lmtp.Serve(l) }()
	}
	var first error
	for range ls {
		if err := <-errs; err != nil && !errors.Is(err, lmtp.ErrServerClosed) && first == nil {
			first = err
		}
	}
	return first
}

// Shutdown stops accepting connections, ends idle sessions with 421
// 4.3.2 and lets transactions in progress finish until ctx ends; then
// deliveries that have not started writing are cancelled, and those that
// have are waited for, so no message is written after its client can no
// longer hear the reply.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.lmtp.Shutdown(ctx)
	s.state.Load().retire()
	return err
}

// gateListener applies allowed_networks and max_connections before go-smtp
// sees a connection, answering refused clients with a greeting they
// understand.
type gateListener struct {
	net.Listener
	s *Server
}

func (g *gateListener) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cfg := g.s.state.Load().cfg
		if tcp, ok := c.RemoteAddr().(*net.TCPAddr); ok && !allowed(cfg, tcp) {
			g.s.log.Warn("connection refused: client not in allowed_networks", "client", tcp.String())
			refuse(c, "554 5.7.1 "+cfg.Hostname+" access denied")
			continue
		}
		select {
		case g.s.conns <- struct{}{}:
			return &countedConn{Conn: c, release: func() { <-g.s.conns }}, nil
		default:
			g.s.log.Warn("connection refused: max_connections reached", "limit", cap(g.s.conns))
			refuse(c, "421 4.4.5 "+cfg.Hostname+" too many connections, try again later")
		}
	}
}

func refuse(c net.Conn, line string) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "%s\r\n", line)
	c.Close()
}

func allowed(cfg *config.Config, a *net.TCPAddr) bool {
	ip := a.AddrPort().Addr().Unmap()
	for _, p := range cfg.AllowedNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

var idEncoding = base32.NewEncoding("0123456789BCDFGHJKLMNPQRSTVWXYZa").WithPadding(base32.NoPadding)

// newID returns a short random identifier for sessions and messages.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}
