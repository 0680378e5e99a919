// Runs in: the front.

package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vlmtpd/vlmtpd/store"
)

// Scrape fetches and parses the metrics a running server serves on addr,
// the metrics_listen value (inet:host:port or unix:/path).
func Scrape(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	body, err := fetch(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	return fams, nil
}

// ScrapeRaw copies the metrics text served on addr to w.
func ScrapeRaw(ctx context.Context, addr string, w io.Writer) error {
	body, err := fetch(ctx, addr)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = io.Copy(w, body)
	return err
}

// scrapeTimeout bounds one scrape by `vlmtpd stats`.
const scrapeTimeout = 10 * time.Second

func fetch(ctx context.Context, addr string) (io.ReadCloser, error) {
	return fetchPath(ctx, addr, Path)
}

// Reservation is what the deliveries in flight to one mailbox hold in a
// running server (ReservationsPath).
type Reservation struct {
	Deliveries int   `json:"deliveries"`
	Bytes      int64 `json:"bytes"`
	Messages   int64 `json:"messages"`
}

// FetchReservation asks the server running on addr (metrics_listen) what
// its deliveries in flight hold against box, for `vlmtpd quota`.
func FetchReservation(ctx context.Context, addr string, box store.Recipient) (Reservation, error) {
	q := url.Values{"uid": {strconv.Itoa(box.UID)}, "gid": {strconv.Itoa(box.GID)}, "path": {box.Path}}
	body, err := fetchPath(ctx, addr, ReservationsPath+"?"+q.Encode())
	if err != nil {
		return Reservation{}, err
	}
	defer body.Close()
	var r Reservation
	if err := json.NewDecoder(body).Decode(&r); err != nil {
		return Reservation{}, fmt.Errorf("%s%s: %w", addr, ReservationsPath, err)
	}
	return r, nil
}

func fetchPath(ctx context.Context, addr, path string) (io.ReadCloser, error) {
	network, address := "tcp", strings.TrimPrefix(addr, "inet:")
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, address = "unix", p
	}
	// The URL's host does not matter: the dialer goes to addr.
	client := &http.Client{Timeout: scrapeTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, address)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://vlmtpd"+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s (metrics_listen): %w; is vlmtpd running with this configuration?", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("scrape %s (metrics_listen): %s", addr, resp.Status)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, 64<<20), resp.Body}, nil
}

// WriteSummary prints the vlmtpd_ counters of a scrape as `vlmtpd stats`
// shows them: one line per count, labelled values sorted.
func WriteSummary(w io.Writer, fams map[string]*dto.MetricFamily) {
	line := func(what, value string) { fmt.Fprintf(w, "%-26s %s\n", what, value) }
	total := func(name string, match func(map[string]string) bool) float64 {
		var n float64
		for _, m := range metricsOf(fams, name) {
			if match == nil || match(labels(m)) {
				n += value(m)
			}
		}
		return n
	}
	byLabel := func(name, label string, match func(map[string]string) bool) string {
		counts := map[string]float64{}
		for _, m := range metricsOf(fams, name) {
			l := labels(m)
			if match == nil || match(l) {
				counts[l[label]] += value(m)
			}
		}
		return joinCounts(counts)
	}
	status := func(s string) func(map[string]string) bool {
		return func(l map[string]string) bool { return l["status"] == s }
	}
	line("sessions open", num(total("vlmtpd_sessions", nil)))
	line("sessions since start", num(total("vlmtpd_sessions_total", nil)))
	for _, s := range []string{"sent", "deferred", "bounced"} {
		n := total("vlmtpd_deliveries_total", status(s))
		line("recipients "+s, num(n)+withDetail(n, byLabel("vlmtpd_deliveries_total", "dsn", status(s))))
	}
	n := total("vlmtpd_rcpt_rejections_total", nil)
	line("refused at RCPT", num(n)+withDetail(n, byLabel("vlmtpd_rcpt_rejections_total", "dsn", nil)))
	line("spool bytes in use", num(total("vlmtpd_spool_bytes", nil)))
	if fams["vlmtpd_workers"] != nil {
		line("workers", byLabel("vlmtpd_workers", "state", nil))
		line("worker starts, restarts", num(total("vlmtpd_worker_starts_total", nil))+", "+num(total("vlmtpd_worker_restarts_total", nil)))
	}
	if fams["vlmtpd_worker_cpu_seconds_total"] != nil {
		line("worker CPU, memory now", seconds(total("vlmtpd_worker_cpu_seconds_total", nil))+", "+
			num(total("vlmtpd_worker_resident_memory_bytes", nil))+" bytes")
	}
	tables := map[string]map[string]float64{}
	for _, m := range metricsOf(fams, "vlmtpd_table_lookups_total") {
		l := labels(m)
		if tables[l["table"]] == nil {
			tables[l["table"]] = map[string]float64{}
		}
		tables[l["table"]][l["result"]] += value(m)
	}
	for _, t := range sortedKeys(tables) {
		line("lookups "+t, joinCounts(tables[t]))
	}
	var phases []string
	for _, m := range metricsOf(fams, "vlmtpd_delivery_phase_seconds") {
		h := m.GetHistogram()
		if h == nil || h.GetSampleCount() == 0 {
			continue
		}
		mean := h.GetSampleSum() / float64(h.GetSampleCount())
		phases = append(phases, fmt.Sprintf("%s=%s (%d)", labels(m)["phase"], seconds(mean), h.GetSampleCount()))
	}
	sort.Strings(phases)
	if len(phases) > 0 {
		line("mean time per phase", strings.Join(phases, ", "))
	}
}

func metricsOf(fams map[string]*dto.MetricFamily, name string) []*dto.Metric {
	if f := fams[name]; f != nil {
		return f.GetMetric()
	}
	return nil
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%g", v)
}

func seconds(v float64) string {
	return (time.Duration(v * float64(time.Second))).Round(time.Microsecond).String()
}

func joinCounts(m map[string]float64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, k+" "+num(m[k]))
	}
	return strings.Join(parts, ", ")
}

func withDetail(n float64, detail string) string {
	if n == 0 || detail == "" {
		return ""
	}
	return " (" + detail + ")"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
