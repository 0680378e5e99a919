// Runs in: the front.

// Package metrics serves vlmtpd's Prometheus metrics from the front: the
// server's counts (read at every scrape from server.Server, the one place
// they are kept, so the metrics and systemd's status line never disagree),
// histograms of where deliveries spend their time and of table lookups,
// the worker pool's state and its workers' CPU time and memory, and the Go
// runtime and process collectors.
package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vlmtpd/vlmtpd/server"
	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/worker"
)

// Path is where the metrics are served.
const Path = "/metrics"

// Sources are what the metrics read at each scrape.
type Sources struct {
	Server *server.Server
	// Pool is the worker pool, nil if deliveries do not use one.
	Pool *worker.Pool
	// WorkerReaper is the process that reaps exited workers (the
	// privileged parent, or this process in single-user mode): its
	// children's CPU time counts in vlmtpd_worker_cpu_seconds_total. 0
	// counts only the workers running.
	WorkerReaper int
	// Log gets the errors of serving the metrics; default slog's.
	Log *slog.Logger
}

// Metrics is the front's registry. It implements server.Observer.
type Metrics struct {
	srv           *server.Server
	log           *slog.Logger
	reg           *prometheus.Registry
	phases        *prometheus.HistogramVec
	lookups       *prometheus.CounterVec
	lookupSeconds *prometheus.HistogramVec
	submissions   *prometheus.CounterVec
	http          *http.Server
}

var _ server.Observer = (*Metrics)(nil)

// Phases are the values of vlmtpd_delivery_phase_seconds's phase label.
var Phases = []string{"lookup", "spool", "worker_wait", "write", "fsync", "total"}

// SubmissionKinds and SubmissionResults are the values of
// vlmtpd_sieve_submissions_total's labels.
var (
	SubmissionKinds   = []string{"redirect", "vacation"}
	SubmissionResults = []string{"sent", "failed"}
)

// deliveryBuckets run from 100µs (a lookup in a cdb file) to a minute (a
// delivery waiting out mbox locks): seconds.
var deliveryBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// New builds the registry over src.
func New(src Sources) *Metrics {
	if src.Log == nil {
		src.Log = slog.Default()
	}
	m := &Metrics{
		srv: src.Server,
		log: src.Log,
		reg: prometheus.NewRegistry(),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vlmtpd_delivery_phase_seconds",
			Help:    "Time spent per recipient in each phase: lookup (resolving the RCPT), spool (receiving and spooling the body, per message), worker_wait (getting a delivery worker), write, fsync, and total (lookup plus DATA to reply).",
			Buckets: deliveryBuckets,
		}, []string{"phase"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vlmtpd_table_lookups_total",
			Help: "Lookups per table (its type:name as configured) and result: found, notfound or error.",
		}, []string{"table", "result"}),
		lookupSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vlmtpd_table_lookup_seconds",
			Help:    "Time one lookup of one table took.",
			Buckets: deliveryBuckets[:len(deliveryBuckets)-2],
		}, []string{"table"}),
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vlmtpd_sieve_submissions_total",
			Help: "Messages Sieve scripts asked the front to submit, by kind (redirect, vacation) and result: sent (the MTA accepted it) or failed (refused, not tried, or not accepted; a failed redirect's message is kept).",
		}, []string{"kind", "result"}),
	}
	// Every phase is there from the first scrape, so that rate() and
	// alerts see a zero rather than an absent series.
	for _, p := range Phases {
		m.phases.WithLabelValues(p)
	}
	for _, k := range SubmissionKinds {
		for _, r := range SubmissionResults {
			m.submissions.WithLabelValues(k, r)
		}
	}
	m.http = &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	m.reg.MustRegister(m.phases, m.lookups, m.lookupSeconds, m.submissions, &counts{src},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.Pool != nil {
		m.reg.MustRegister(&workerUsage{pids: src.Pool.WorkerPIDs, reaper: src.WorkerReaper})
	}
	return m
}

// Registry is the registry, for tests and other handlers.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObservePhase implements server.Observer.
func (m *Metrics) ObservePhase(phase string, d time.Duration) {
	m.phases.WithLabelValues(phase).Observe(d.Seconds())
}

// ObserveLookup implements server.Observer.
func (m *Metrics) ObserveLookup(table, result string, d time.Duration) {
	m.lookups.WithLabelValues(table, result).Inc()
	m.lookupSeconds.WithLabelValues(table).Observe(d.Seconds())
}

// ObserveSubmission implements server.Observer.
func (m *Metrics) ObserveSubmission(kind, result string) {
	m.submissions.WithLabelValues(kind, result).Inc()
}

// Handler serves the metrics in the Prometheus text format (or
// OpenMetrics when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Path, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slogErrors{m.log},
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	}))
	mux.HandleFunc(ReservationsPath, m.reservations)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("vlmtpd: metrics are at " + Path + "\n"))
	})
	return mux
}

// ReservationsPath answers, for one mailbox (uid, gid, path), what the
// deliveries in flight hold against its quota: JSON for `vlmtpd quota`.
const ReservationsPath = "/quota/reservations"

func (m *Metrics) reservations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	uid, err1 := strconv.Atoi(q.Get("uid"))
	gid, err2 := strconv.Atoi(q.Get("gid"))
	if err1 != nil || err2 != nil || q.Get("path") == "" || m.srv == nil {
		http.Error(w, "want uid, gid and path", http.StatusBadRequest)
		return
	}
	n, bytes, count := m.srv.Reservations(store.Recipient{UID: uid, GID: gid, Path: q.Get("path")})
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(Reservation{Deliveries: n, Bytes: bytes, Messages: count})
}

// Serve serves the metrics on l until Close; it returns nil after Close.
func (m *Metrics) Serve(l net.Listener) error {
	err := m.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving: scrapes in progress get a second to finish.
func (m *Metrics) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := m.http.Shutdown(ctx); err != nil {
		return m.http.Close()
	}
	return nil
}

// slogErrors is promhttp's error log on ours.
type slogErrors struct{ log *slog.Logger }

func (s slogErrors) Println(v ...any) { s.log.Warn("serving metrics", "error", fmt.Sprint(v...)) }

// counts exposes the server's and the pool's counts as they are at the
// scrape.
type counts struct{ src Sources }

var (
	descDeliveries = prometheus.NewDesc("vlmtpd_deliveries_total",
		"Recipient outcomes after DATA: status sent, deferred (4xx) or bounced (5xx), by enhanced status code.",
		[]string{"status", "dsn"}, nil)
	descRejections = prometheus.NewDesc("vlmtpd_rcpt_rejections_total",
		"Recipients refused at RCPT, by enhanced status code.", []string{"dsn"}, nil)
	descSessions      = prometheus.NewDesc("vlmtpd_sessions", "LMTP sessions open now.", nil, nil)
	descSessionsTotal = prometheus.NewDesc("vlmtpd_sessions_total", "LMTP sessions opened since start.", nil, nil)
	descSpool         = prometheus.NewDesc("vlmtpd_spool_bytes", "Bytes of message bodies spooled now (in memory or in spool_directory), waiting for or in delivery.", nil, nil)
	descWorkers       = prometheus.NewDesc("vlmtpd_workers", "Delivery worker processes by state: idle, busy, starting, exiting.", []string{"state"}, nil)
	descWorkerStarts  = prometheus.NewDesc("vlmtpd_worker_starts_total", "Delivery worker processes started.", nil, nil)
	descRestarts      = prometheus.NewDesc("vlmtpd_worker_restarts_total",
		"Delivery workers that failed (crashed, hung, broke the protocol, died while idle) and are replaced when next needed.", nil, nil)
)

func (c *counts) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDeliveries, descRejections, descSessions, descSessionsTotal, descSpool} {
		ch <- d
	}
	if c.src.Pool != nil {
		ch <- descWorkers
		ch <- descWorkerStarts
		ch <- descRestarts
	}
}

func (c *counts) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Server
	for o, n := range s.Outcomes() {
		if o.Status == "rejected" {
			ch <- prometheus.MustNewConstMetric(descRejections, prometheus.CounterValue, float64(n), o.DSN)
		} else {
			ch <- prometheus.MustNewConstMetric(descDeliveries, prometheus.CounterValue, float64(n), o.Status, o.DSN)
		}
	}
	st := s.Stats()
	ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(st.Sessions))
	ch <- prometheus.MustNewConstMetric(descSessionsTotal, prometheus.CounterValue, float64(st.SessionsTotal))
	ch <- prometheus.MustNewConstMetric(descSpool, prometheus.GaugeValue, float64(s.SpoolBytes()))
	if c.src.Pool == nil {
		return
	}
	ps := c.src.Pool.Stats()
	for state, n := range map[string]int{"idle": ps.Idle, "busy": ps.Busy, "starting": ps.Starting, "exiting": ps.Exiting} {
		ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(descWorkerStarts, prometheus.CounterValue, float64(ps.Started))
	ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(ps.Failed))
}
