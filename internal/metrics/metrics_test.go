package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
	"github.com/vlmtpd/vlmtpd/server"
	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/server/lmtp"
	"github.com/vlmtpd/vlmtpd/store"
)

// deferDeliverer delivers everything but a mailbox named "defer", which
// gets a temporary failure. It does not time itself: the server times it.
type deferDeliverer struct{}

func (deferDeliverer) Deliver(_ context.Context, _ *store.Message, rcpts []store.Recipient) []error {
	errs := make([]error, len(rcpts))
	for i, r := range rcpts {
		if strings.HasSuffix(r.Path, "defer") {
			errs[i] = &store.Error{Status: store.Temporary, Op: "write", Path: r.Path, Err: errors.New("disk on fire")}
		}
	}
	return errs
}

func (deferDeliverer) MailboxSize(context.Context, store.Recipient) (int64, error) { return 0, nil }
func (deferDeliverer) Permits(uid, gid int) error                                  { return nil }

func newServer(t *testing.T) (*server.Server, *Metrics) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "vlmtpd.toml"), []byte(`
hostname = "mx.test"
spool_directory = "spool"
virtual_mailbox_base = "mail"
virtual_mailbox_domains = ["example.com"]
virtual_mailbox_maps = ["inline:{ a@example.com=example.com/a/, d@example.com=example.com/defer }"]
virtual_uid_maps = ["static:5000"]
virtual_gid_maps = ["static:5000"]
`))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, deferDeliverer{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := New(Sources{Server: srv})
	srv.SetObserver(m)
	return srv, m
}

func addr(s string) lmtp.Address {
	local, domain, _ := strings.Cut(s, "@")
	return lmtp.Address{Raw: s, Local: local, Domain: domain}
}

// The metrics and Stats (systemd's status line) read the same counts, and
// every observation lands in its series.
func TestMetricsAndStatsAgree(t *testing.T) {
	srv, m := newServer(t)
	ctx := context.Background()
	ss := srv.NewSession(lmtp.ConnInfo{Hello: "client.test"})
	ss.Mail(addr("s@remote.test"), lmtp.MailOptions{})
	for _, rc := range []string{"a@example.com", "nobody@example.com", "d@example.com"} {
		ss.Rcpt(ctx, addr(rc), lmtp.RcptOptions{})
	}
	reps := ss.Data(ctx, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	if len(reps) != 2 || reps[0].Code != 250 || reps[1].Code != 451 || !strings.HasSuffix(reps[1].Text, ")") {
		t.Fatalf("replies %+v", reps)
	}
	ss.Close()

	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			key := f.GetName() + labelString(mt)
			switch {
			case mt.GetCounter() != nil:
				got[key] = mt.GetCounter().GetValue()
			case mt.GetGauge() != nil:
				got[key] = mt.GetGauge().GetValue()
			case mt.GetHistogram() != nil:
				got[key+"_count"] = float64(mt.GetHistogram().GetSampleCount())
			}
		}
	}
	st := srv.Stats()
	for key, want := range map[string]float64{
		`vlmtpd_deliveries_total{dsn="2.0.0",status="sent"}`:     float64(st.Sent),
		`vlmtpd_deliveries_total{dsn="4.3.0",status="deferred"}`: float64(st.Deferred),
		`vlmtpd_rcpt_rejections_total{dsn="5.1.1"}`:              float64(st.RcptRejections),
		`vlmtpd_sessions_total`:                                  float64(st.SessionsTotal),
		`vlmtpd_sessions`:                                        float64(st.Sessions),
	} {
		if got[key] != want || want == 0 && key != "vlmtpd_sessions" {
			t.Errorf("%s = %v, Stats says %v (%+v)", key, got[key], want, st)
		}
	}
	table := `inline:{ a@example.com=example.com/a/, d@example.com=example.com/defer }`
	for key, want := range map[string]float64{
		`vlmtpd_delivery_phase_seconds{phase="lookup"}_count`:              3,
		`vlmtpd_delivery_phase_seconds{phase="spool"}_count`:               1,
		`vlmtpd_delivery_phase_seconds{phase="write"}_count`:               2,
		`vlmtpd_delivery_phase_seconds{phase="total"}_count`:               2,
		`vlmtpd_table_lookups_total{result="found",table="` + table + `"}`: 2,
		`vlmtpd_spool_bytes`: 0,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
	if got[`vlmtpd_table_lookups_total{result="notfound",table="`+table+`"}`] < 1 {
		t.Errorf("nobody@'s notfound lookups not counted")
	}
	if _, ok := got["vlmtpd_workers"]; ok {
		t.Error("worker metrics without a pool")
	}
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// The endpoint's text passes promtool's checks before any delivery too
// (every phase series exists from the start), and the summary of a scrape
// prints the counts.
func TestEndpointPassesPromtoolAndSummarises(t *testing.T) {
	srv, m := newServer(t)
	hs := httptest.NewServer(m.Handler())
	defer hs.Close()
	resp, err := http.Get(hs.URL + Path)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(text, []byte(`vlmtpd_delivery_phase_seconds_count{phase="fsync"} 0`)) {
		t.Errorf("phase series missing before the first delivery:\n%s", text)
	}
	promtool(t, text)

	ss := srv.NewSession(lmtp.ConnInfo{})
	ss.Mail(addr("s@remote.test"), lmtp.MailOptions{})
	ss.Rcpt(context.Background(), addr("a@example.com"), lmtp.RcptOptions{})
	ss.Data(context.Background(), strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
	fams, err := Scrape(context.Background(), "inet:"+strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	WriteSummary(&out, fams)
	for _, want := range []string{"sessions open              1\n", "recipients sent            1 (2.0.0 1)\n", "recipients deferred        0\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	ss.Close()
}

// promtool runs `promtool check metrics`; without promtool the test skips,
// and fails under CI=true (the CI installs Debian's prometheus package).
func promtool(t *testing.T, text []byte) {
	t.Helper()
	path := testutil.Tool(t, "promtool (Debian package prometheus)", "promtool")
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, text)
	}
}
