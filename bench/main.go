// Runs in: make bench (a tool).

// Command bench measures vlmtpd against Dovecot's LMTP server, side by side
// in one run: the same smtp-source load (1 and 20 sessions, 1 and 10
// recipients per message, 4 KB and 1 MB messages) into Maildirs under one
// temp dir, so both write to the same filesystem with their own default
// durability. For every cell it prints deliveries/s for each server and
// their ratio, the CPU time per delivery of each server's whole process
// tree, vlmtpd's front's peak RSS and both servers' peak PSS. Beside them:
// the disk's limit (a bare durable Maildir write loop on the same
// filesystem: 1 and 20 writers, with and without group commit, and a
// 10-recipient message by copies and by hard links), the rate into a
// Maildir already holding -fill messages against an empty one, and 100
// sessions sending 1 MB and 10 MB bodies at once (the front's memory). It fails if any delivery is
// missing. `make bench` runs it; docs/benchmarks.md records its tables.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// cell is one load shape.
type cell struct {
	Sessions, Rcpts, Size, Msgs int
	// Kind is "" for the matrix, "fill" for the full-mailbox comparison,
	// "mem" for the memory check.
	Kind string
}

func (c cell) deliveries() int { return c.Msgs * c.Rcpts }

func sizeName(size int) string {
	if size >= 1<<20 {
		return fmt.Sprintf("%dMB", size>>20)
	}
	return fmt.Sprintf("%dKB", size/1024)
}

func (c cell) name() string {
	n := fmt.Sprintf("s%d r%d %s", c.Sessions, c.Rcpts, sizeName(c.Size))
	if c.Kind != "" {
		n = c.Kind + " " + n
	}
	return n
}

// result is one server's run of one cell.
type result struct {
	Elapsed   time.Duration
	Delivered int
	PeakPSS   int64         // of the server's whole process tree
	MaxHWM    int64         // the largest peak RSS of one of its processes
	CPU       time.Duration // user+sys of the whole process tree during the run
	FrontRSS  int64         // vlmtpd: the front's peak RSS during the run
}

func (r result) rate() float64 { return float64(r.Delivered) / r.Elapsed.Seconds() }

// cpuPer is CPU time per delivery in milliseconds.
func (r result) cpuPer() float64 {
	return float64(r.CPU) / float64(time.Millisecond) / float64(max(1, r.Delivered))
}

// stats reduces the runs of one cell on one server.
type stats struct {
	Rate, CPUPer              float64 // medians over the runs, each on its own
	PeakPSS, FrontRSS, MaxHWM int64   // the highest
	Delivered                 int     // the lowest
}

func summarize(rs []result) stats {
	var st stats
	var rates, cpus []float64
	st.Delivered = math.MaxInt
	for _, r := range rs {
		rates, cpus = append(rates, r.rate()), append(cpus, r.cpuPer())
		st.PeakPSS, st.FrontRSS, st.MaxHWM = max(st.PeakPSS, r.PeakPSS), max(st.FrontRSS, r.FrontRSS), max(st.MaxHWM, r.MaxHWM)
		st.Delivered = min(st.Delivered, r.Delivered)
	}
	st.Rate, st.CPUPer = median(rates), median(cpus)
	return st
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func main() {
	var (
		dir       = flag.String("dir", "", "work directory (default: a new temp dir, removed afterwards); both mail bases live in it")
		scale     = flag.Float64("scale", 1, "multiply the message count of every matrix and fill cell by this")
		keep      = flag.Bool("keep", false, "keep the work directory")
		vlmtpdBin = flag.String("vlmtpd", "", "vlmtpd binary (default: build ./cmd/vlmtpd)")
		runAs     = flag.Int("uid", 5000, "uid and gid that own the mailboxes and run vlmtpd when started as root")
		only      = flag.String("only", "", "run only cells whose name contains this (e.g. \"s20 r1 4KB\", \"fill\", \"mem\"); \"disk\": only the disk's limit")
		runs      = flag.Int("runs", 3, "runs of each matrix and fill cell per server (alternating); the tables show medians")
		single    = flag.Bool("single", false, "run vlmtpd in single-user mode (as -uid) even when root; default as root: privilege separation")
		fill      = flag.Int("fill", 100000, "messages in the mailbox of the fill cell (0: no fill cell)")
		disk      = flag.Duration("disk", 3*time.Second, "how long each disk-limit loop runs (0: none)")
		sid       = flag.Bool("single-instance", false, "vlmtpd with single_instance_delivery = true (hard links, no per-recipient Delivered-To, as Dovecot)")
		set       settingLines
	)
	flag.Var(&set, "set", "a line added to vlmtpd's configuration, e.g. 'worker_owner_limit = 4' (repeatable)")
	flag.Parse()
	if *sid {
		set = append(set, "single_instance_delivery = true")
	}
	opts := options{dir: *dir, scale: *scale, keep: *keep, vlmtpdBin: *vlmtpdBin, runAs: *runAs, only: *only,
		privsep: os.Geteuid() == 0 && !*single, runs: max(1, *runs), fill: *fill, disk: *disk, settings: set}
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	dir, vlmtpdBin, only string
	scale                float64
	keep, privsep        bool
	settings             []string // added to vlmtpd's configuration
	runAs, runs, fill    int
	disk                 time.Duration
}

// cells is the whole load: the matrix, sized so each cell runs a few
// seconds per server; the fill cell; the memory cells, 100 sessions of one
// message each, not scaled.
func cells(scale float64, fill int) []cell {
	var out []cell
	for _, size := range []int{4 << 10, 1 << 20} {
		for _, rcpts := range []int{1, 10} {
			for _, sessions := range []int{1, 20} {
				deliveries := 4000
				if sessions == 1 {
					deliveries = 1000
				}
				if size >= 1<<20 {
					deliveries /= 10
				}
				msgs := int(math.Max(float64(sessions), math.Round(float64(deliveries/rcpts)*scale)))
				out = append(out, cell{Sessions: sessions, Rcpts: rcpts, Size: size, Msgs: msgs})
			}
		}
	}
	if fill > 0 {
		out = append(out, cell{Sessions: 1, Rcpts: 1, Size: 4 << 10, Msgs: int(math.Max(100, math.Round(1000*scale))), Kind: "fill"})
	}
	for _, size := range []int{1 << 20, 10 << 20} {
		out = append(out, cell{Sessions: 100, Rcpts: 1, Size: size, Msgs: 100, Kind: "mem"})
	}
	return out
}

// job is a selected cell with the recipient of each of its runs.
type job struct {
	c      cell
	locals []string
}

// limitKey names one disk-limit measurement.
type limitKey struct {
	writers, size, rcpts int
	group, links         bool
}

func (k limitKey) name() string {
	switch {
	case k.rcpts > 1 && k.links:
		return fmt.Sprintf("%d writer, %d rcpts: 1 copy + %d hard links", k.writers, k.rcpts, k.rcpts-1)
	case k.rcpts > 1:
		return fmt.Sprintf("%d writer, %d rcpts: %d copies", k.writers, k.rcpts, k.rcpts)
	case k.group:
		return fmt.Sprintf("%d writers, group commit of new/", k.writers)
	case k.writers == 1:
		return "1 writer"
	}
	return fmt.Sprintf("%d writers", k.writers)
}

// limitShapes are the disk-limit loops for one message size: 1 and 20
// writers, 20 with group commit, and one writer delivering to 10
// Maildirs by 10 copies and by 1 copy and 9 hard links.
func limitShapes(size int) []limitKey {
	return []limitKey{{1, size, 1, false, false}, {20, size, 1, false, false}, {20, size, 1, true, false},
		{1, size, 10, false, false}, {1, size, 10, false, true}}
}

func run(o options) error {
	smtpSource, err := exec.LookPath("smtp-source")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/smtp-source"); err2 != nil {
			return fmt.Errorf("smtp-source not found (Debian package postfix): %v", err)
		}
		smtpSource = "/usr/sbin/smtp-source"
	}
	dir := o.dir
	if dir == "" {
		dir, err = os.MkdirTemp("", "vlmtpd-bench-")
		if err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	load0 := loadavg()
	began := time.Now()
	owner := currentOwner(o.runAs)

	var jobs []job
	locals := []string{fullLocal}
	slot := 0
	for _, c := range cells(o.scale, o.fill) {
		if o.only != "" && !strings.Contains(c.name(), o.only) {
			continue
		}
		j := job{c: c}
		n := o.runs
		if c.Kind == "mem" {
			n = 1
		}
		for range n {
			l := cellLocal(slot)
			slot++
			j.locals = append(j.locals, l)
			locals = append(locals, recipients(l, c.Rcpts)...)
		}
		jobs = append(jobs, j)
	}
	doDisk := o.disk > 0 && (o.only == "" || o.only == "disk")

	limits := map[limitKey][]float64{}
	limitCPU := map[limitKey][]float64{} // ms per write
	measureLimits := func(when string) error {
		if !doDisk {
			return nil
		}
		for _, size := range []int{4 << 10, 1 << 20} {
			for _, k := range limitShapes(size) {
				var r float64
				var cpu time.Duration
				var err error
				if k.rcpts > 1 {
					r, cpu, err = multiLimit(dir, k.rcpts, k.size, o.disk, k.links)
				} else {
					r, cpu, err = diskLimit(dir, k.writers, k.size, o.disk, k.group)
				}
				if err != nil {
					return fmt.Errorf("disk limit: %w", err)
				}
				limits[k] = append(limits[k], r)
				limitCPU[k] = append(limitCPU[k], float64(cpu)/float64(time.Millisecond))
				fmt.Fprintf(os.Stderr, "disk limit %s, %-36s %s: %7.0f/s %5.2f ms CPU\n", when, k.name(), sizeName(size), r, float64(cpu)/float64(time.Millisecond))
			}
		}
		return nil
	}
	if err := measureLimits("before"); err != nil {
		return err
	}

	var v, d *server
	var version string
	mode := "single-user mode"
	if o.privsep {
		mode = "privilege separation"
	}
	for _, l := range o.settings {
		mode += ", " + l
	}
	if len(jobs) > 0 {
		vlmtpdBin := o.vlmtpdBin
		if vlmtpdBin == "" {
			vlmtpdBin = filepath.Join(dir, "vlmtpd.bin")
			fmt.Fprintln(os.Stderr, "building vlmtpd…")
			cmd := exec.Command("go", "build", "-o", vlmtpdBin, "./cmd/vlmtpd")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("go build: %w", err)
			}
		}
		v, err = startVlmtpd(vlmtpdBin, filepath.Join(dir, "vlmtpd"), owner, locals, o.privsep, o.settings)
		if err != nil {
			return err
		}
		defer v.stop()
		d, err = startDovecot(filepath.Join(dir, "dovecot"), owner)
		if err != nil {
			return err
		}
		defer d.stop()
		version = fmt.Sprintf("%s (%s) vs %s", v.version, mode, d.version)
		fmt.Fprintf(os.Stderr, "%s, work dir %s\n", version, dir)
	}

	type row struct {
		c            cell
		vs, ds       []result
		vFull, dFull []result // fill cell: runs into the full mailbox
	}
	var rows []row
	lost := false
	check := func(name string, c cell, r result) {
		if r.Delivered != c.deliveries() {
			fmt.Fprintf(os.Stderr, "LOST: %s delivered %d of %d in %s\n", name, r.Delivered, c.deliveries(), c.name())
			lost = true
		}
	}
	one := func(s *server, c cell, local string) (result, error) {
		r, err := measure(smtpSource, s, c, local)
		if err != nil {
			return r, fmt.Errorf("%s %s: %w", s.name, c.name(), err)
		}
		check(s.name, c, r)
		return r, nil
	}
	for _, j := range jobs {
		c := j.c
		if c.Kind == "fill" {
			t := time.Now()
			fmt.Fprintf(os.Stderr, "filling both full mailboxes with %d messages… ", o.fill)
			if err := fillMaildir(v.mailbox(fullLocal), o.fill, 4<<10, owner); err != nil {
				return err
			}
			if err := fillMaildir(d.mailbox(fullLocal), o.fill, 4<<10, owner); err != nil {
				return err
			}
			if err := syncFS(dir); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%.0f s\n", time.Since(t).Seconds())
		}
		r := row{c: c}
		for i, local := range j.locals {
			fmt.Fprintf(os.Stderr, "%-18s %6d msgs × %2d rcpts, run %d/%d: ", c.name(), c.Msgs, c.Rcpts, i+1, len(j.locals))
			for _, s := range []*server{v, d} {
				if c.Kind == "fill" && i%2 == 1 {
					// Odd runs deliver into the full mailbox first, so
					// that neither side always follows the other.
					local, full := fullLocal, local
					a, err := one(s, c, local)
					if err != nil {
						return err
					}
					b, err := one(s, c, full)
					if err != nil {
						return err
					}
					if s == v {
						r.vs, r.vFull = append(r.vs, b), append(r.vFull, a)
					} else {
						r.ds, r.dFull = append(r.ds, b), append(r.dFull, a)
					}
					fmt.Fprintf(os.Stderr, "%s full %6.0f/s %5.2f ms  empty %6.0f/s %5.2f ms  ", strings.Fields(s.name)[0], a.rate(), a.cpuPer(), b.rate(), b.cpuPer())
					continue
				}
				re, err := one(s, c, local)
				if err != nil {
					return err
				}
				if s == v {
					r.vs = append(r.vs, re)
				} else {
					r.ds = append(r.ds, re)
				}
				fmt.Fprintf(os.Stderr, "%s %6.0f/s %5.2f ms  ", strings.Fields(s.name)[0], re.rate(), re.cpuPer())
				if c.Kind != "fill" {
					continue
				}
				rf, err := one(s, c, fullLocal)
				if err != nil {
					return err
				}
				if s == v {
					r.vFull = append(r.vFull, rf)
				} else {
					r.dFull = append(r.dFull, rf)
				}
				fmt.Fprintf(os.Stderr, "full %6.0f/s %5.2f ms  ", rf.rate(), rf.cpuPer())
			}
			fmt.Fprintln(os.Stderr)
		}
		rows = append(rows, r)
	}
	if err := measureLimits("after"); err != nil {
		return err
	}
	load1 := loadavg()

	w := io.Writer(os.Stdout)
	fmt.Fprintf(w, "\n%s; smtp-source -L -d over unix sockets; Maildir on the same filesystem; median of %d runs (memory cells: 1 run)\n", version, o.runs)
	fmt.Fprintf(w, "load average (1, 5, 15 min) at the start %s, at the end %s; %.1f minutes\n\n", load0, load1, time.Since(began).Minutes())
	matrixRows := slices.ContainsFunc(rows, func(r row) bool { return r.c.Kind != "fill" })
	if matrixRows {
		fmt.Fprintln(w, "| sessions | rcpts/msg | size | messages | vlmtpd deliveries/s | Dovecot deliveries/s | vlmtpd/Dovecot | vlmtpd CPU/delivery | Dovecot CPU/delivery | CPU vlmtpd/Dovecot | vlmtpd front peak RSS | vlmtpd peak PSS | Dovecot peak PSS | all delivered |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
	}
	var peak, hwm int64
	var fillRow *row
	for i, r := range rows {
		if r.c.Kind == "fill" {
			fillRow = &rows[i]
			continue
		}
		sv, sd := summarize(r.vs), summarize(r.ds)
		ok := "yes"
		if sv.Delivered != r.c.deliveries() || sd.Delivered != r.c.deliveries() {
			ok = fmt.Sprintf("NO (%d, %d of %d)", sv.Delivered, sd.Delivered, r.c.deliveries())
		}
		sessions := fmt.Sprint(r.c.Sessions)
		if r.c.Kind == "mem" {
			sessions += " (mem)"
		}
		fmt.Fprintf(w, "| %s | %d | %s | %d | %.0f | %.0f | %.2f | %.2f ms | %.2f ms | %.2f | %.1f MB | %.1f MB | %.1f MB | %s |\n",
			sessions, r.c.Rcpts, sizeName(r.c.Size), r.c.Msgs, sv.Rate, sd.Rate, sv.Rate/sd.Rate,
			sv.CPUPer, sd.CPUPer, sv.CPUPer/sd.CPUPer, mb(sv.FrontRSS), mb(sv.PeakPSS), mb(sd.PeakPSS), ok)
		peak = max(peak, sv.PeakPSS)
		hwm = max(hwm, sv.MaxHWM)
	}
	if matrixRows {
		fmt.Fprintf(w, "\nCPU/delivery: user+sys of all of a server's processes (reaped ones included) during the run ÷ deliveries; median over the runs.\n")
		fmt.Fprintf(w, "Front peak RSS: vlmtpd's LMTP front alone (max of VmRSS sampled every 50 ms and VmHWM, reset before each run).\n")
		fmt.Fprintf(w, "Peak PSS: proportional set size summed over all of a server's processes (vlmtpd: front and delivery workers; Dovecot: master, auth, lmtp…).\n")
		fmt.Fprintf(w, "vlmtpd over the run: peak RSS (VmHWM) of its largest process %.1f MB, peak PSS of all its processes %.1f MB\n", mb(hwm), mb(peak))
	}
	if fillRow != nil {
		fmt.Fprintf(w, "\nFull mailbox: %d × %s messages from 1 session into a Maildir already holding %d messages in new/, against an empty one; runs alternate.\n\n",
			fillRow.c.Msgs, sizeName(fillRow.c.Size), o.fill)
		fmt.Fprintln(w, "| server | empty: deliveries/s | full: deliveries/s | full/empty | empty: CPU/delivery | full: CPU/delivery | CPU full/empty |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
		for _, x := range []struct {
			name        string
			empty, full []result
		}{{"vlmtpd", fillRow.vs, fillRow.vFull}, {"Dovecot", fillRow.ds, fillRow.dFull}} {
			e, f := summarize(x.empty), summarize(x.full)
			fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %.2f ms | %.2f ms | %.2f |\n", x.name, e.Rate, f.Rate, f.Rate/e.Rate, e.CPUPer, f.CPUPer, f.CPUPer/e.CPUPer)
		}
	}
	if len(limits) > 0 {
		fmt.Fprintf(w, "\nDisk limit: a Go loop doing only tmp/ create, write, fdatasync, link into new/, unlink, fsync new/ on the same filesystem, all writers into one Maildir, %s per measurement, before and after the cells. With group commit the concurrent writers share the fsyncs of new/ (what vlmtpd does not do across worker processes). The 10-recipient loops write one message into 10 Maildirs at once, then fsync the 10 new/ (deliveries = recipients): by 10 copies as vlmtpd does, or by 1 copy and 9 hard links as Dovecot does (no per-recipient header).\n\n", o.disk)
		fmt.Fprintln(w, "| loop | size | limit deliveries/s (before, after) | loop CPU/delivery (before, after) | vlmtpd, same shape | vlmtpd/limit | Dovecot/limit |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
		for _, size := range []int{4 << 10, 1 << 20} {
			for _, k := range limitShapes(size) {
				ls := limits[k]
				lim := slices.Max(ls)
				var parts, cpus []string
				for i, l := range ls {
					parts = append(parts, fmt.Sprintf("%.0f", l))
					cpus = append(cpus, fmt.Sprintf("%.2f", limitCPU[k][i]))
				}
				vr, vs, ds := "—", "—", "—"
				for _, r := range rows {
					if r.c.Kind == "" && r.c.Sessions == k.writers && r.c.Rcpts == k.rcpts && r.c.Size == size {
						sv, sd := summarize(r.vs), summarize(r.ds)
						vr = fmt.Sprintf("%.0f", sv.Rate)
						vs, ds = fmt.Sprintf("%.0f%%", 100*sv.Rate/lim), fmt.Sprintf("%.0f%%", 100*sd.Rate/lim)
					}
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s ms | %s | %s | %s |\n", k.name(), sizeName(size), strings.Join(parts, ", "), strings.Join(cpus, ", "), vr, vs, ds)
			}
		}
		fmt.Fprintln(w, "\n(The percentages use the higher of the two limit measurements: the disk can do at least that. Loop CPU/delivery: the loop process's user+sys per delivery; almost all of it is the kernel's.)")
	}
	if lost {
		return fmt.Errorf("deliveries missing")
	}
	return nil
}

// loadavg is /proc/loadavg's three averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], ", ")
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// settingLines is the repeatable -set flag.
type settingLines []string

func (s *settingLines) String() string     { return strings.Join(*s, "; ") }
func (s *settingLines) Set(v string) error { *s = append(*s, v); return nil }
