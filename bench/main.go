// Command bench measures vlmtpd against Dovecot's LMTP server, side by side
// in one run: the same smtp-source load (1 and 20 sessions, 1 and 10
// recipients per message, 4 KB and 1 MB messages) into Maildirs under one
// temp dir, so both write to the same filesystem with their own default
// durability. It prints deliveries/s for each server, the ratio
// vlmtpd/Dovecot and vlmtpd's peak memory (RSS of its main process, PSS of
// all its processes), and fails if any delivery is missing. `make bench` runs it; docs/benchmarks.md records its table.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// cell is one load shape of the matrix.
type cell struct {
	Sessions, Rcpts, Size, Msgs int
}

func (c cell) deliveries() int { return c.Msgs * c.Rcpts }

// result is one server's run of one cell.
type result struct {
	Elapsed   time.Duration
	Delivered int
	PeakPSS   int64 // of the server's whole process tree
	MaxHWM    int64 // the largest peak RSS of one of its processes
}

func (r result) rate() float64 { return float64(r.Delivered) / r.Elapsed.Seconds() }

func main() {
	var (
		dir       = flag.String("dir", "", "work directory (default: a new temp dir, removed afterwards); both mail bases live in it")
		scale     = flag.Float64("scale", 1, "multiply every message count by this")
		keep      = flag.Bool("keep", false, "keep the work directory")
		vlmtpdBin = flag.String("vlmtpd", "", "vlmtpd binary (default: build ./cmd/vlmtpd)")
		runAs     = flag.Int("uid", 5000, "uid and gid that own the mailboxes and run vlmtpd when started as root")
		only      = flag.String("only", "", "run only cells whose name contains this (e.g. \"s20 r1 4KB\")")
		runs      = flag.Int("runs", 3, "runs of each cell per server (alternating); the table shows the median rate")
		single    = flag.Bool("single", false, "run vlmtpd in single-user mode (as -uid) even when root; default as root: privilege separation")
	)
	flag.Parse()
	if err := run(*dir, *scale, *keep, *vlmtpdBin, *runAs, *only, os.Geteuid() == 0 && !*single, max(1, *runs)); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func (c cell) name() string {
	size := fmt.Sprintf("%dKB", c.Size/1024)
	if c.Size >= 1<<20 {
		size = fmt.Sprintf("%dMB", c.Size>>20)
	}
	return fmt.Sprintf("s%d r%d %s", c.Sessions, c.Rcpts, size)
}

// matrix is the load, sized so each cell runs a few seconds per server.
func matrix(scale float64) []cell {
	var cells []cell
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
				cells = append(cells, cell{Sessions: sessions, Rcpts: rcpts, Size: size, Msgs: msgs})
			}
		}
	}
	return cells
}

func run(dir string, scale float64, keep bool, vlmtpdBin string, runAs int, only string, privsep bool, runs int) error {
	smtpSource, err := exec.LookPath("smtp-source")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/smtp-source"); err2 != nil {
			return fmt.Errorf("smtp-source not found (Debian package postfix): %v", err)
		}
		smtpSource = "/usr/sbin/smtp-source"
	}
	if dir == "" {
		dir, err = os.MkdirTemp("", "vlmtpd-bench-")
		if err != nil {
			return err
		}
		if !keep {
			defer os.RemoveAll(dir)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	owner := currentOwner(runAs)
	if vlmtpdBin == "" {
		vlmtpdBin = filepath.Join(dir, "vlmtpd.bin")
		fmt.Fprintln(os.Stderr, "building vlmtpd…")
		cmd := exec.Command("go", "build", "-o", vlmtpdBin, "./cmd/vlmtpd")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	cells := matrix(scale)
	var selected []cell
	for _, c := range cells {
		if only == "" || strings.Contains(c.name(), only) {
			selected = append(selected, c)
		}
	}

	v, err := startVlmtpd(vlmtpdBin, filepath.Join(dir, "vlmtpd"), owner, selected, runs, privsep)
	if err != nil {
		return err
	}
	defer v.stop()
	d, err := startDovecot(filepath.Join(dir, "dovecot"), owner)
	if err != nil {
		return err
	}
	defer d.stop()

	mode := "single-user mode"
	if privsep {
		mode = "privilege separation"
	}
	fmt.Fprintf(os.Stderr, "%s (%s), %s, work dir %s\n", v.version, mode, d.version, dir)
	type row struct {
		c    cell
		v, d result // median rate over the runs; worst delivery count; peak memory
	}
	var rows []row
	lost := false
	for i, c := range selected {
		var vs, ds []result
		for r := 0; r < runs; r++ {
			fmt.Fprintf(os.Stderr, "%-14s %6d msgs × %2d rcpts, run %d/%d: ", c.name(), c.Msgs, c.Rcpts, r+1, runs)
			slot := i*runs + r
			rv, err := measure(smtpSource, v, c, slot)
			if err != nil {
				return fmt.Errorf("vlmtpd %s: %w", c.name(), err)
			}
			rd, err := measure(smtpSource, d, c, slot)
			if err != nil {
				return fmt.Errorf("dovecot %s: %w", c.name(), err)
			}
			fmt.Fprintf(os.Stderr, "vlmtpd %7.0f/s  dovecot %7.0f/s\n", rv.rate(), rd.rate())
			for _, x := range []struct {
				name string
				r    result
			}{{"vlmtpd", rv}, {"dovecot", rd}} {
				if x.r.Delivered != c.deliveries() {
					fmt.Fprintf(os.Stderr, "LOST: %s delivered %d of %d in %s\n", x.name, x.r.Delivered, c.deliveries(), c.name())
					lost = true
				}
			}
			vs, ds = append(vs, rv), append(ds, rd)
		}
		rows = append(rows, row{c, summarize(vs), summarize(ds)})
	}

	w := io.Writer(os.Stdout)
	fmt.Fprintf(w, "\n%s (%s) vs %s; smtp-source -L -d over unix sockets; Maildir on the same filesystem; median of %d runs\n\n", v.version, mode, d.version, runs)
	fmt.Fprintln(w, "| sessions | rcpts/msg | size | messages | vlmtpd deliveries/s | Dovecot deliveries/s | vlmtpd/Dovecot | vlmtpd peak PSS | Dovecot peak PSS | all delivered |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
	var peak, hwm int64
	for _, r := range rows {
		ok := "yes"
		if r.v.Delivered != r.c.deliveries() || r.d.Delivered != r.c.deliveries() {
			ok = fmt.Sprintf("NO (%d, %d of %d)", r.v.Delivered, r.d.Delivered, r.c.deliveries())
		}
		size := strings.Fields(r.c.name())[2]
		fmt.Fprintf(w, "| %d | %d | %s | %d | %.0f | %.0f | %.2f | %.1f MB | %.1f MB | %s |\n",
			r.c.Sessions, r.c.Rcpts, size, r.c.Msgs, r.v.rate(), r.d.rate(), r.v.rate()/r.d.rate(), mb(r.v.PeakPSS), mb(r.d.PeakPSS), ok)
		peak = max(peak, r.v.PeakPSS)
		hwm = max(hwm, r.v.MaxHWM)
	}
	fmt.Fprintf(w, "\nPeak PSS: proportional set size summed over all of a server's processes (vlmtpd: front and delivery workers; Dovecot: master, auth, lmtp…).\n")
	fmt.Fprintf(w, "vlmtpd over the run: peak RSS (VmHWM) of its largest process %.1f MB, peak PSS of all its processes %.1f MB\n", mb(hwm), mb(peak))
	if lost {
		return fmt.Errorf("deliveries missing")
	}
	return nil
}

// summarize reduces runs to one result: the run with the median rate, the
// lowest delivery count, the highest memory.
func summarize(rs []result) result {
	sorted := append([]result(nil), rs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].rate() < sorted[j].rate() })
	out := sorted[len(sorted)/2]
	for _, r := range rs {
		out.Delivered = min(out.Delivered, r.Delivered)
		out.PeakPSS = max(out.PeakPSS, r.PeakPSS)
		out.MaxHWM = max(out.MaxHWM, r.MaxHWM)
	}
	return out
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
