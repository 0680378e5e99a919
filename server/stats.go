// Runs in: the front.

package server

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vlmtpd/vlmtpd/server/lmtp"
)

// The server's counts are kept here once: Stats (systemd's status line)
// and the Prometheus metrics (internal/metrics, which reads Outcomes,
// Stats and SpoolBytes at every scrape) are both views of them.

// Outcome is one kind of recipient outcome.
type Outcome struct {
	// Status is "sent", "deferred" or "bounced" for a recipient's outcome
	// after the message, "rejected" for a refusal at RCPT.
	Status string
	// DSN is the reply's enhanced status code, e.g. "5.1.1".
	DSN string
}

// stats are the server's running counts.
type stats struct {
	sessions, sessionsTotal atomic.Int64
	spoolBytes              atomic.Int64 // message bodies spooled now

	mu       sync.Mutex
	outcomes map[Outcome]int64
}

func (st *stats) count(o Outcome) {
	st.mu.Lock()
	st.outcomes[o]++
	st.mu.Unlock()
}

// Outcomes returns how many recipients had each outcome since start.
func (s *Server) Outcomes() map[Outcome]int64 {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	out := make(map[Outcome]int64, len(s.stats.outcomes))
	for o, n := range s.stats.outcomes {
		out[o] = n
	}
	return out
}

// SpoolBytes is the size of the message bodies spooled now (received and
// being delivered), in memory or on disk.
func (s *Server) SpoolBytes() int64 { return s.stats.spoolBytes.Load() }

// Stats is a snapshot of the counts: sessions open and ever opened, and
// per-recipient outcomes after the message (sent, deferred, bounced) and
// refusals at RCPT.
type Stats struct {
	Sessions, SessionsTotal                 int64
	Sent, Deferred, Bounced, RcptRejections int64
}

func (s *Server) Stats() Stats {
	st := Stats{Sessions: s.stats.sessions.Load(), SessionsTotal: s.stats.sessionsTotal.Load()}
	for o, n := range s.Outcomes() {
		switch o.Status {
		case "sent":
			st.Sent += n
		case "deferred":
			st.Deferred += n
		case "bounced":
			st.Bounced += n
		case "rejected":
			st.RcptRejections += n
		}
	}
	return st
}

// String is the one-line status systemd shows.
func (st Stats) String() string {
	return fmt.Sprintf("%d sessions open; %d delivered, %d deferred, %d bounced, %d refused at RCPT",
		st.Sessions, st.Sent, st.Deferred, st.Bounced, st.RcptRejections)
}

// Observer receives the durations the server measures, for histograms;
// internal/metrics implements it. Calls come from many sessions at once.
type Observer interface {
	// ObservePhase: phase is "lookup" (resolving one RCPT), "spool"
	// (receiving and spooling one body), "worker_wait", "write", "fsync"
	// (one recipient's delivery) or "total" (one recipient, from its
	// lookup to its reply after DATA, less the client's time between).
	ObservePhase(phase string, d time.Duration)
	// ObserveLookup is one query of one table: result is "found",
	// "notfound" or "error".
	ObserveLookup(table, result string, d time.Duration)
	// ObserveSubmission is one submission a Sieve script asked for: kind
	// "redirect" or "vacation", result "sent" (the MTA accepted it) or
	// "failed" (refused here, not tried because the transport was down
	// for an earlier one, or not accepted).
	ObserveSubmission(kind, result string)
}

// SetObserver makes the server report to o from now on, tables already
// open included.
func (s *Server) SetObserver(o Observer) { s.obs.Store(&o) }

func (s *Server) observePhase(phase string, d time.Duration) {
	if o := s.obs.Load(); o != nil {
		(*o).ObservePhase(phase, d)
	}
}

func (s *Server) observeLookup(table, result string, d time.Duration) {
	if o := s.obs.Load(); o != nil {
		(*o).ObserveLookup(table, result, d)
	}
}

func (s *Server) observeSubmission(kind, result string) {
	if o := s.obs.Load(); o != nil {
		(*o).ObserveSubmission(kind, result)
	}
}

// outcomeOf sorts a reply after DATA into sent, deferred or bounced.
func outcomeOf(rep *Reply) Outcome {
	code, dsn := 250, "2.0.0"
	if rep != nil {
		code, dsn = rep.Code, dsnOf(rep)
	}
	switch code / 100 {
	case 2:
		return Outcome{"sent", dsn}
	case 4:
		return Outcome{"deferred", dsn}
	default:
		return Outcome{"bounced", dsn}
	}
}

// dsnOf is the reply's enhanced code; a reply without one gets the
// class's generic code (RFC 3463 X.0.0).
func dsnOf(rep *Reply) string {
	e := rep.Enhanced
	if e[0] == 0 {
		e = lmtp.EnhancedCode{rep.Code / 100, 0, 0}
	}
	switch e { // the common ones, without building a string per outcome
	case lmtp.EnhancedCode{2, 0, 0}:
		return "2.0.0"
	case lmtp.EnhancedCode{2, 1, 5}:
		return "2.1.5"
	}
	var b [16]byte
	return string(e.Append(b[:0]))
}
