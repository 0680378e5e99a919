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
	"time"

	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/server/lmtp"
	"github.com/vlmtpd/vlmtpd/store"
)

// Server is a running LMTP service.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	resolver *Resolver
	spool    *Spool
	deliver  store.Deliverer
	lmtp     *lmtp.Server
	book     book // deliveries in flight per mailbox

	conns chan struct{} // one token per open connection
}

// New opens the tables and the spool. d does the mailbox writes.
func New(cfg *config.Config, d store.Deliverer, log *slog.Logger) (*Server, error) {
	res, err := NewResolver(cfg)
	if err != nil {
		return nil, err
	}
	sp, err := NewSpool(cfg.SpoolDirectory)
	if err != nil {
		res.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, resolver: res, spool: sp, deliver: d,
		conns: make(chan struct{}, cfg.MaxConnections), book: book{m: map[string]*inflight{}}}
	tc, err := tlsConfig(cfg)
	if err != nil {
		res.Close()
		return nil, err
	}
	s.lmtp = &lmtp.Server{
		TLSConfig:      tc,
		RequireTLS:     cfg.TLSSecurityLevel == "encrypt",
		Hostname:       cfg.Hostname,
		Backend:        s,
		MaxMessageSize: cfg.MessageSizeLimit,
		MaxRecipients:  cfg.MaxRecipients,
		MaxLineLength:  cfg.LineLengthLimit,
		IdleTimeout:    cfg.IdleTimeout,
		DataTimeout:    cfg.DataTimeout,
		WriteTimeout:   time.Minute,
		Log:            log,
	}
	return s, nil
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
	return errors.Join(err, s.resolver.Close())
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
		if tcp, ok := c.RemoteAddr().(*net.TCPAddr); ok && !g.s.allowed(tcp) {
			g.s.log.Warn("connection refused: client not in allowed_networks", "client", tcp.String())
			refuse(c, "554 5.7.1 "+g.s.cfg.Hostname+" access denied")
			continue
		}
		select {
		case g.s.conns <- struct{}{}:
			return &countedConn{Conn: c, release: func() { <-g.s.conns }}, nil
		default:
			g.s.log.Warn("connection refused: max_connections reached", "limit", g.s.cfg.MaxConnections)
			refuse(c, "421 4.4.5 "+g.s.cfg.Hostname+" too many connections, try again later")
		}
	}
}

func refuse(c net.Conn, line string) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "%s\r\n", line)
	c.Close()
}

func (s *Server) allowed(a *net.TCPAddr) bool {
	ip := a.AddrPort().Addr().Unmap()
	for _, p := range s.cfg.AllowedNetworks {
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
