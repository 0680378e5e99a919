// Runs in: the front.

package lmtp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Backend starts a Session for each client that says LHLO.
type Backend interface {
	NewSession(info ConnInfo) Session
}

// ConnInfo describes the client of a session.
type ConnInfo struct {
	Remote net.Addr
	Hello  string // the LHLO argument
	// TLS is the connection's TLS state after STARTTLS, nil before.
	TLS *tls.ConnectionState
}

// Session answers one client's transactions. A nil *Reply from Mail or
// Rcpt accepts, and only nil does (a refusal must be a 4xx or 5xx); Data returns one reply per accepted recipient, in order
// (a missing one becomes a 451, never a success).
//
// Data must read body to io.EOF before it delivers anything: any other
// error means the message did not arrive whole (or broke a limit, then
// the error is that limit's *Reply), and nothing may be delivered. The
// body has the client's CRLF line ends; LF(body) reads it with LF ones
// in the same pass.
type Session interface {
	Mail(from Address, opts MailOptions) *Reply
	Rcpt(ctx context.Context, to Address, opts RcptOptions) *Reply
	Data(ctx context.Context, body io.Reader) []*Reply
	// Reset ends the transaction (RSET, LHLO, or after the message).
	Reset()
	// Close ends the session; it is called once.
	Close()
}

// MailOptions are MAIL's parameters.
type MailOptions struct {
	Size  int64 // SIZE=, 0 if absent
	Body  string
	UTF8  bool
	Ret   string
	EnvID string
}

// RcptOptions are RCPT's parameters.
type RcptOptions struct {
	// OriginalRecipient is ORCPT's decoded address, "" if absent or
	// malformed; OriginalRecipientType is "rfc822" or "utf-8".
	OriginalRecipient     string
	OriginalRecipientType string
	// ParamErrors says why DSN parameters were ignored (a malformed ORCPT
	// or NOTIFY): never a reason to refuse a recipient.
	ParamErrors []error
	Notify      string
}

// Settings are what a connection runs under. A connection keeps the
// settings it was accepted with; SetSettings changes them for the next.
type Settings struct {
	Hostname       string
	MaxMessageSize int64 // 0: none
	MaxRecipients  int   // 0: none
	MaxLineLength  int   // longest message line, 0: none
	// IdleTimeout bounds reading one command line in total, so a client
	// dripping a byte at a time cannot hold a connection longer.
	IdleTimeout time.Duration
	// DataTimeout bounds receiving one message, all its chunks included.
	DataTimeout  time.Duration
	WriteTimeout time.Duration
	// TLSConfig, when set, offers STARTTLS on TCP connections (never on
	// unix sockets: those are local). RequireTLS refuses a transaction
	// on TCP before STARTTLS.
	TLSConfig  *tls.Config
	RequireTLS bool
}

// Server serves LMTP on listeners.
type Server struct {
	Settings
	Backend Backend
	Log     *slog.Logger

	current  atomic.Pointer[Settings]
	once     sync.Once
	mu       sync.Mutex
	ls       []net.Listener
	conns    map[*conn]struct{}
	wg       sync.WaitGroup
	draining atomic.Bool
	// ctx is cancelled when Shutdown runs out of time: deliveries that
	// have not started writing give up.
	ctx    context.Context
	cancel context.CancelFunc
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("lmtp: server closed")

func (s *Server) init() {
	s.once.Do(func() {
		s.conns = map[*conn]struct{}{}
		s.ctx, s.cancel = context.WithCancel(context.Background())
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
	})
}

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.ls = append(s.ls, l)
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors and the like: wait, don't spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.Log.Warn("accept failed; retrying", "error", err, "in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.mu.Lock()
		if s.draining.Load() {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		c := newConn(s, nc)
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// afterCancelGrace bounds how long Shutdown waits, once out of time, for
// deliveries to answer their cancellation before closing connections.
const afterCancelGrace = 10 * time.Second

// Shutdown stops accepting, ends idle sessions with 421 4.3.2 and lets
// transactions in progress finish. When ctx ends first it cancels what
// has not started writing, stops reading from clients (a message still
// arriving is answered 4xx), waits for the deliveries in progress to
// answer, and closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.draining.Store(true)
	for _, l := range s.ls {
		l.Close()
	}
	for c := range s.conns {
		c.wakeIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.raw.SetReadDeadline(aLongTimeAgo)
	}
	s.mu.Unlock()
	select {
	case <-done:
	case <-time.After(afterCancelGrace):
		s.mu.Lock()
		for c := range s.conns {
			c.raw.Close()
		}
		s.mu.Unlock()
		<-done
	}
	return ctx.Err()
}

// SetSettings applies new settings to connections accepted from now on.
func (s *Server) SetSettings(st Settings) { s.current.Store(&st) }

// settings are those a new connection gets.
func (s *Server) settings() *Settings {
	if st := s.current.Load(); st != nil {
		return st
	}
	return &s.Settings
}

// Draining reports whether Shutdown has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

var aLongTimeAgo = time.Unix(1, 0)
