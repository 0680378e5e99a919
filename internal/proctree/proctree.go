// Runs in: a worker (its credentials), the tests and the benchmark.

// Package proctree reads processes from Linux's /proc: their identity
// (credentials, start time), their children, and the memory and CPU time
// of a process and all its descendants. It only reads /proc, so any
// process may use it: the worker checks its own credentials with it, the
// store names processes by start time, the front's metrics measure its
// delivery workers, and the tests, the load test and the benchmark (which
// compares vlmtpd with servers made of several processes) measure with it.
package proctree

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Pids lists pid and all its descendants, pid first. Processes that exit
// while /proc is read are left out.
func Pids(pid int) []int {
	var out []int
	for _, p := range tree(pid) {
		out = append(out, p.pid)
	}
	return out
}

// Children lists the direct children of pid that are still running (not
// zombies waiting to be reaped), in pid order.
func Children(pid int) []int {
	var out []int
	for _, p := range readProcs() {
		if p.ppid == pid && p.state != "Z" {
			out = append(out, p.pid)
		}
	}
	return out
}

// proc is one process as /proc/PID/stat shows it.
type proc struct {
	pid, ppid int
	state     string
	// cpu is utime+stime+cutime+cstime in clock ticks: the process's own
	// CPU time and that of the children it has reaped, so that a worker
	// that exits between two readings still counts, in its parent;
	// children is cutime+cstime alone.
	cpu, children int64
	rss           int64 // resident set size in pages
}

// Usage is what /proc/PID/stat says one process has used.
type Usage struct {
	// CPU is its user and system time, its reaped children's included;
	// Children is its reaped children's alone. Both are whole clock ticks
	// (10 ms).
	CPU, Children time.Duration
	RSS           int64 // resident set size, bytes
}

// Stat is pid's usage; false if the process is gone.
func Stat(pid int) (Usage, bool) {
	p, ok := readStat(pid)
	if !ok {
		return Usage{}, false
	}
	return Usage{CPU: time.Duration(p.cpu) * clockTick, Children: time.Duration(p.children) * clockTick,
		RSS: p.rss * int64(os.Getpagesize())}, true
}

// Running reports whether pid exists and is not a zombie.
func Running(pid int) bool {
	p, ok := readStat(pid)
	return ok && p.state != "Z"
}

// readProcs reads every process's stat, in pid order.
func readProcs() []proc {
	var out []proc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readStat(pid); ok {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b proc) int { return a.pid - b.pid })
	return out
}

// statFields reads /proc/PID/stat from field 3 (the state) on; false if
// the process is gone or the line is short of want fields.
func statFields(pid, want int) ([]string, bool) {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	// The command name may hold spaces and ")"; fields resume after the
	// last ")".
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return nil, false
	}
	f := strings.Fields(string(st[i+1:]))
	return f, len(f) >= want
}

// readStat reads /proc/PID/stat; false if the process is gone.
func readStat(pid int) (proc, bool) {
	f, ok := statFields(pid, 22)
	if !ok {
		return proc{}, false
	}
	// Field n of proc(5) is f[n-3]: f[0] is the state (field 3).
	num := func(n int) int64 { v, _ := strconv.ParseInt(f[n-3], 10, 64); return v }
	p := proc{pid: pid, ppid: int(num(4)), state: f[0],
		children: num(16) + num(17), rss: num(24)}
	p.cpu = num(14) + num(15) + p.children
	return p, true
}

// StartTime is when pid started, in clock ticks after boot (field 22 of
// /proc/PID/stat). It fails when /proc is not mounted or hides other
// users' processes (hidepid, systemd's ProtectProc=invisible).
func StartTime(pid int) (uint64, bool) {
	f, ok := statFields(pid, 20)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo).
const clockTick = 10 * time.Millisecond

// CPU is the user+system CPU time pid and all its descendants have used
// so far, including descendants that have exited and been reaped inside
// the tree (the kernel adds their time to the parent's cutime/cstime). A
// child that exits between two calls therefore still counts; one whose
// parent is outside the tree, or that is reaped by init, does not. Each
// process's times are in whole clock ticks (10 ms), so a difference of
// two readings is exact to about 10 ms per process.
func CPU(pid int) time.Duration {
	var ticks int64
	for _, p := range tree(pid) {
		ticks += p.cpu
	}
	return time.Duration(ticks) * clockTick
}

// tree is pid and its descendants, pid first, as read in one pass.
func tree(pid int) []proc {
	procs := readProcs()
	byPid := map[int]proc{}
	children := map[int][]int{}
	for _, p := range procs {
		byPid[p.pid] = p
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []proc
	var walk func(int)
	walk = func(p int) {
		pr, ok := byPid[p]
		if !ok {
			return
		}
		out = append(out, pr)
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
	return out
}

// Cmdline is pid's argument vector, nil if it cannot be read.
func Cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// HWM is pid's own peak resident set size (VmHWM) in bytes, 0 if it
// cannot be read. The kernel records the peak when memory is unmapped
// but not when it is dropped with madvise(MADV_DONTNEED), as Go's
// runtime returns memory, so for a Go process sample RSS as well.
func HWM(pid int) int64 { return processHWM(pid) }

// ResetHWM sets pid's peak resident set size (VmHWM) back to its current
// RSS (clear_refs value 5, Linux 4.0+), so that a later HWM is the peak of
// what happened in between. It needs the right to write
// /proc/PID/clear_refs: the process's owner or root.
func ResetHWM(pid int) error {
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
}

// PSS is the proportional set size of pid and its descendants, in bytes.
// Processes of one binary share most pages; RSS would count them again for
// each process, PSS splits them among the processes sharing them.
func PSS(pid int) int64 {
	var total int64
	for _, p := range Pids(pid) {
		total += processPSS(p)
	}
	return total
}

// PeakPSS samples PSS(pid) every interval from now until the returned stop
// is called; stop returns the largest sample.
func PeakPSS(pid int, every time.Duration) (stop func() int64) {
	return Peak(every, func() int64 { return PSS(pid) })
}

// Peak samples measure every interval from now until the returned stop is
// called; stop returns the largest sample.
func Peak(every time.Duration, measure func() int64) (stop func() int64) {
	quit, done := make(chan struct{}), make(chan struct{})
	var peak int64 // written by the sampler only, read after done
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			peak = max(peak, measure())
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		close(quit)
		<-done
		return peak
	}
}

// RSS is pid's own resident set size (VmRSS) in bytes, 0 if it cannot be
// read.
func RSS(pid int) int64 { return statusField(pid, "VmRSS:") }

// MaxHWM is the largest peak resident set size (VmHWM) among pid and its
// descendants, in bytes.
func MaxHWM(pid int) int64 {
	var m int64
	for _, p := range Pids(pid) {
		m = max(m, processHWM(p))
	}
	return m
}

// processPSS is one process's proportional set size in bytes, 0 if it
// cannot be read (the process has exited).
func processPSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			return kiB(v)
		}
	}
	return 0
}

// processHWM is one process's peak resident set size in bytes, 0 if it
// cannot be read.
func processHWM(pid int) int64 { return statusField(pid, "VmHWM:") }

// statusField is a size field of /proc/PID/status in bytes, 0 if it cannot
// be read.
func statusField(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			return kiB(v)
		}
	}
	return 0
}

// kiB converts a /proc value such as "  1234 kB" to bytes.
func kiB(v string) int64 {
	kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
	return kb * 1024
}
