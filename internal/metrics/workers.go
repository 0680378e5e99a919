// Runs in: the front.

package metrics

// Run by the front: the delivery workers' resource use, from /proc.

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
)

var (
	descWorkerCPU = prometheus.NewDesc("vlmtpd_worker_cpu_seconds_total",
		"User and system CPU time used by the delivery workers, those running and those that have exited, programs they ran (sendmail for Sieve) included.", nil, nil)
	descWorkerRSS = prometheus.NewDesc("vlmtpd_worker_resident_memory_bytes",
		"Resident memory of the delivery workers running now, summed.", nil, nil)
)

// workerUsage is the workers' CPU time and memory, summed over all of
// them: a uid label would make one series per mailbox owner where every
// mailbox has its own uid, and which owner costs what is in the log.
//
// A worker's time is read from /proc/PID/stat while it runs; once it has
// exited and been reaped, its time is in its reaper's cutime and cstime:
// the privileged parent's (whose only other child is the front, which
// runs as long as it does) or, in single-user mode, the front's own. The
// sum of the two is the counter. A worker that has exited but is not yet
// reaped is briefly in neither: the counter keeps its highest value, so
// that it never goes down.
type workerUsage struct {
	pids   func() []int
	reaper int // 0: exited workers are not counted

	mu      sync.Mutex
	highest time.Duration // the counter's last value
}

func (u *workerUsage) Describe(ch chan<- *prometheus.Desc) {
	ch <- descWorkerCPU
	ch <- descWorkerRSS
}

func (u *workerUsage) Collect(ch chan<- prometheus.Metric) {
	cpu, rss := u.read()
	u.mu.Lock()
	u.highest = max(u.highest, cpu)
	cpu = u.highest
	u.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descWorkerCPU, prometheus.CounterValue, cpu.Seconds())
	ch <- prometheus.MustNewConstMetric(descWorkerRSS, prometheus.GaugeValue, float64(rss))
}

// read sums the running workers' use and adds the reaper's children's
// time (in whole ticks: sums of durations are exact, not floats). A
// worker reaped between the reaper's readings before and after the
// workers' would count twice or not at all: then it reads again.
func (u *workerUsage) read() (cpu time.Duration, rss int64) {
	reaped := func() time.Duration {
		if u.reaper == 0 {
			return 0
		}
		r, _ := proctree.Stat(u.reaper)
		return r.Children
	}
	for range 3 {
		before := reaped()
		cpu, rss = 0, 0
		for _, pid := range u.pids() {
			if w, ok := proctree.Stat(pid); ok {
				cpu += w.CPU
				rss += w.RSS
			}
		}
		if after := reaped(); after == before {
			return cpu + before, rss
		}
	}
	return cpu + reaped(), rss
}
