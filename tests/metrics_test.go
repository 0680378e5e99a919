package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vlmtpd/vlmtpd/internal/metrics"
)

// metricsTables: a Maildir, an mbox, and an mbox whose directory does not
// exist (a 4xx after DATA: vlmtpd, like virtual(8), never creates it).
const metricsMailboxes = `
alice@example.com  example.com/alice/
bob@example.com    example.com/bob
dave@example.com   example.com/nodir/dave
`

// The mix's second session: a message that looped (alice's Delivered-To
// below a Received:) and one with a Message-ID.
const (
	mixLooped = "Received: from mx2.test by mx.test; Tue, 1 Dec 2026 21:00:00 +0000\nDelivered-To: alice@example.com\n" +
		"Received: from remote.test by mx2.test; Tue, 1 Dec 2026 20:00:00 +0000\nSubject: back\n\nbody\n"
	mixWithID = "Message-ID: <m1@remote.test>\n" + sampleBody
)

// deliverMetricsMix sends, in two sessions: 3 recipients delivered, 1
// deferred after DATA (4.2.0, as virtual(8)), 1 bounced after DATA (the Delivered-To
// loop, 5.4.6) and 1 refused at RCPT (5.1.1).
func deliverMetricsMix(t *testing.T, in *Instance) {
	t.Helper()
	c := in.Dial(t)
	c.lhlo()
	rr, dr := c.txn("<sender@remote.test>", []string{"<alice@example.com>", "<bob@example.com>", "<nobody@example.com>", "<dave@example.com>"}, sampleBody)
	if len(rr) != 4 || !strings.HasPrefix(rr[2], "550 5.1.1 ") || len(dr) != 3 {
		t.Fatalf("RCPT replies %q, DATA replies %q", rr, dr)
	}
	if !strings.HasPrefix(dr[0], "250 ") || !strings.HasPrefix(dr[1], "250 ") {
		t.Errorf("alice, bob: %q", dr[:2])
	}
	// The deferral names our id, the id the delivered recipients' replies
	// and our log lines carry.
	id := regexp.MustCompile(`delivered \((\S+)\)$`).FindStringSubmatch(dr[0])
	if id == nil || !strings.HasPrefix(dr[2], "451 4.2.0 ") || !strings.HasSuffix(dr[2], "("+id[1]+")") {
		t.Errorf("dave: %q, want 451 4.2.0 ending in the transaction id of %q", dr[2], dr[0])
	}
	c.Send("QUIT\r\n")
	c.Expect("221")
	c.Close()

	c = in.Dial(t)
	c.lhlo()
	_, dr = c.txn("<sender@remote.test>", []string{"<alice@example.com>"}, mixLooped)
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "554 5.4.6 ") {
		t.Fatalf("looped message: %q", dr)
	}
	_, dr = c.txn("<>", []string{"<alice@example.com>"}, mixWithID)
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250 ") {
		t.Fatalf("second message to alice: %q", dr)
	}
	c.Send("QUIT\r\n")
	c.Expect("221")
	c.Close()
}

// TestMetricsAfterDeliveries scrapes a running server after known
// deliveries and checks each counter's value, then that promtool accepts
// the output and that `vlmtpd stats` prints the same counts (as root,
// privilege-separated: see startMetricsInstance).
func TestMetricsAfterDeliveries(t *testing.T) {
	in, addr := startMetricsInstance(t, metricsMailboxes, "")
	deliverMetricsMix(t, in)
	// The RCPT refusal names the session and the transaction.
	if m := regexp.MustCompile(`msg="recipient refused" session=(\S+) id=(\S+) rcpt=nobody@example.com code=550 dsn=5.1.1`).FindStringSubmatch(in.Logs()); m == nil || m[2] != m[1]+".1" {
		t.Errorf("RCPT refusal log line: %q; want session=S id=S.1", m)
	}

	var fams map[string]*dto.MetricFamily
	// Sessions close after QUIT asynchronously: wait for the gauge.
	pollUntil(t, 5*time.Second, "vlmtpd_sessions to drop to 0", func() bool {
		var err error
		fams, err = metrics.Scrape(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		return sample(fams, "vlmtpd_sessions", nil) == 0
	})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"vlmtpd_deliveries_total", map[string]string{"status": "sent", "dsn": "2.0.0"}, 3},
		{"vlmtpd_deliveries_total", map[string]string{"status": "deferred", "dsn": "4.2.0"}, 1},
		{"vlmtpd_deliveries_total", map[string]string{"status": "bounced", "dsn": "5.4.6"}, 1},
		{"vlmtpd_rcpt_rejections_total", map[string]string{"dsn": "5.1.1"}, 1},
		{"vlmtpd_sessions_total", nil, 2},
		{"vlmtpd_spool_bytes", nil, 0},
		{"vlmtpd_worker_restarts_total", nil, 0},
		// Six RCPTs resolved, each a mailbox-map lookup of the full address
		// first: five found, nobody@ not (its partial-key steps count too).
		{"vlmtpd_table_lookups_total", map[string]string{"table": "texthash:vmailbox", "result": "found"}, 5},
	} {
		if got := sample(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := sample(fams, "vlmtpd_table_lookups_total", map[string]string{"table": "texthash:vmailbox", "result": "notfound"}); n < 1 {
		t.Errorf("no notfound lookup for nobody@example.com counted")
	}
	// Phases: 6 lookups; 3 messages spooled; the 4 recipients handed to a
	// worker (alice twice, bob, dave) have write and fsync times, dave's
	// failed write included; the 5 outcomes after DATA have a total.
	for phase, want := range map[string]uint64{"lookup": 6, "spool": 3, "worker_wait": 4, "write": 4, "fsync": 4, "total": 5} {
		h := histogram(fams, "vlmtpd_delivery_phase_seconds", map[string]string{"phase": phase})
		if h == nil || h.GetSampleCount() != want {
			t.Errorf("phase %s: %v observations, want %d", phase, h.GetSampleCount(), want)
		}
	}
	if h := histogram(fams, "vlmtpd_delivery_phase_seconds", map[string]string{"phase": "fsync"}); h.GetSampleSum() <= 0 {
		t.Errorf("fsync time sum %v: the worker's timings did not arrive", h.GetSampleSum())
	}
	if sample(fams, "vlmtpd_worker_starts_total", nil) < 1 || sample(fams, "vlmtpd_workers", map[string]string{"state": "idle"}) < 1 {
		t.Errorf("workers: starts %v, idle %v", sample(fams, "vlmtpd_worker_starts_total", nil), sample(fams, "vlmtpd_workers", map[string]string{"state": "idle"}))
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "vlmtpd_table_lookup_seconds"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}

	var raw bytes.Buffer
	if err := metrics.ScrapeRaw(context.Background(), addr, &raw); err != nil {
		t.Fatal(err)
	}
	promtoolCheck(t, raw.Bytes())

	out, err := exec.Command(vlmtpdBinary(t), "stats", "-config", in.Config).CombinedOutput()
	if err != nil {
		t.Fatalf("vlmtpd stats: %v\n%s", err, out)
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		// The parent created the socket; it removes it at exit.
		in.Stop(t)
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("metrics socket %s left after exit: %v", path, err)
		}
	}
	for _, want := range []string{
		`(?m)^recipients sent +3 \(2\.0\.0 3\)$`,
		`(?m)^recipients deferred +1 \(4\.2\.0 1\)$`,
		`(?m)^recipients bounced +1 \(5\.4\.6 1\)$`,
		`(?m)^refused at RCPT +1 \(5\.1\.1 1\)$`,
		`(?m)^sessions since start +2$`,
		`(?m)^lookups texthash:vmailbox +found 5, notfound \d+$`,
		`(?m)^mean time per phase .*fsync=`,
		`(?m)^worker CPU, memory now +\S+, \d+ bytes$`,
	} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("vlmtpd stats lacks %s:\n%s", want, out)
		}
	}
}

// startMetricsInstance starts a server with metrics_listen and returns it
// and the metrics address. As root it runs privilege-separated with the
// metrics socket in a directory only root may write to: that works only
// if the parent opened it for the front.
func startMetricsInstance(t *testing.T, mailboxes, config string) (*Instance, string) {
	t.Helper()
	privsep := os.Geteuid() == 0
	var addr string
	if privsep {
		config += "user = \"nobody\"\n"
	}
	in := StartInstance(t, Options{
		Privileged: privsep,
		Tables:     map[string]string{"vmailbox": mailboxes},
		Config:     config + "metrics_listen = \"METRICS\"\n",
		Prepare: func(dir string) {
			if privsep {
				os.Chown(filepath.Join(dir, "spool"), 65534, 65534)
				rootDir := filepath.Join(dir, "root-only")
				if err := os.Mkdir(rootDir, 0o755); err != nil {
					t.Fatal(err)
				}
				addr = "unix:" + filepath.Join(rootDir, "metrics.sock")
			} else {
				addr = fmt.Sprintf("inet:127.0.0.1:%d", freePort(t))
			}
			cfgPath := filepath.Join(dir, "vlmtpd.toml")
			cfg, err := os.ReadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cfgPath, bytes.Replace(cfg, []byte("METRICS"), []byte(addr), 1), 0o644); err != nil {
				t.Fatal(err)
			}
		},
	})
	return in, addr
}

// TestWorkerResourceMetrics: deliveries through a real worker (as root,
// of another uid than the front, started by the privileged parent) show
// in vlmtpd_worker_cpu_seconds_total and, while the worker runs, in
// vlmtpd_worker_resident_memory_bytes; once it has exited, its memory is
// gone and its CPU time still counted. (internal/metrics tests that the
// time of exited workers comes from their reaper.)
func TestWorkerResourceMetrics(t *testing.T) {
	in, addr := startMetricsInstance(t, metricsMailboxes, "worker_idle_timeout = \"3s\"\n")
	scrape := func() (cpu, rss, idle float64) {
		t.Helper()
		fams, err := metrics.Scrape(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		return sample(fams, "vlmtpd_worker_cpu_seconds_total", nil), sample(fams, "vlmtpd_worker_resident_memory_bytes", nil),
			sample(fams, "vlmtpd_workers", map[string]string{"state": "idle"})
	}
	if cpu, rss, _ := scrape(); cpu != 0 || rss != 0 {
		t.Fatalf("before any delivery: cpu %v, rss %v", cpu, rss)
	}
	// CPU time is counted in 10 ms ticks: deliver until the worker has
	// used one, a bounded number of times.
	body := "Subject: big\n\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 16<<10)
	c := in.Dial(t)
	defer c.Close()
	c.lhlo()
	var cpu, rss, idle float64
	for n := 1; cpu <= 0; n++ {
		if n > 200 {
			t.Fatalf("200 deliveries of 1 MiB: worker CPU %v s", cpu)
		}
		_, dr := c.txn("<sender@remote.test>", []string{"<alice@example.com>"}, body)
		if len(dr) != 1 || !strings.HasPrefix(dr[0], "250 ") {
			t.Fatalf("delivery %d: %q\n%s", n, dr, in.Logs())
		}
		cpu, rss, idle = scrape()
	}
	if idle != 1 || rss < 1<<20 {
		t.Errorf("%v idle workers, worker RSS %v bytes", idle, rss)
	}
	c.Send("QUIT\r\n")
	c.Expect("221")
	pollUntil(t, 15*time.Second, "the worker to exit", func() bool {
		_, rss, idle := scrape()
		return rss == 0 && idle == 0
	})
	if after, _, _ := scrape(); after < cpu {
		t.Errorf("worker CPU %v s once the worker has exited, %v s before", after, cpu)
	}
	var raw bytes.Buffer
	if err := metrics.ScrapeRaw(context.Background(), addr, &raw); err != nil {
		t.Fatal(err)
	}
	promtoolCheck(t, raw.Bytes())
}

// promtoolCheck runs `promtool check metrics` (Debian's prometheus
// package) on an exposition: it parses it and lints names, types, units
// and help texts.
func promtoolCheck(t *testing.T, exposition []byte) {
	t.Helper()
	promtool := toolOrSkip(t, "promtool (Debian package prometheus)", "promtool", "/usr/bin/promtool")
	if promtool == "" {
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestStatsWithoutMetricsListen: a configuration without metrics_listen
// gets a clear error naming the setting, not a connection failure.
func TestStatsWithoutMetricsListen(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vlmtpd.toml")
	writeTestFile(t, cfg, "virtual_mailbox_base = \"/tmp\"\nvirtual_mailbox_maps = \"static:x/\"\nvirtual_uid_maps = \"static:5000\"\nvirtual_gid_maps = \"static:5000\"\n")
	out, err := exec.Command(vlmtpdBinary(t), "stats", "-config", cfg).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "metrics_listen is not set in "+cfg) {
		t.Errorf("stats without metrics_listen: %v\n%s", err, out)
	}
	// Set but nothing listening: the address and a hint.
	writeTestFile(t, cfg, "metrics_listen = \"inet:127.0.0.1:"+fmt.Sprint(freePort(t))+"\"\nvirtual_mailbox_base = \"/tmp\"\nvirtual_mailbox_maps = \"static:x/\"\nvirtual_uid_maps = \"static:5000\"\nvirtual_gid_maps = \"static:5000\"\n")
	out, err = exec.Command(vlmtpdBinary(t), "stats", "-config", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is vlmtpd running") {
		t.Errorf("stats with nothing listening: %v\n%s", err, out)
	}
}

// sample is the value of the metric with exactly these labels (all of a
// family's samples summed when labels is nil), -1 if there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	found, sum := false, 0.0
	for _, m := range f.GetMetric() {
		if labels != nil && !hasLabels(m, labels) {
			continue
		}
		found = true
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	if !found {
		return -1
	}
	return sum
}

func histogram(fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Histogram {
	if f := fams[name]; f != nil {
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				return m.GetHistogram()
			}
		}
	}
	return nil
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}
