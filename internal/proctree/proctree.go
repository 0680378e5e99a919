// Package proctree finds a process's children and measures the memory of
// a process and all its descendants from Linux's /proc, for the tests that
// look at vlmtpd's delivery workers and for the load test and the
// benchmark that compare vlmtpd, which runs delivery workers as child
// processes, with other servers made of several processes.
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
	children := map[int][]int{}
	for _, p := range readProcs() {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		out = append(out, p)
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
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

// readStat reads /proc/PID/stat; false if the process is gone.
func readStat(pid int) (proc, bool) {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, false
	}
	// The command name may hold spaces and ")"; fields resume after the
	// last ")": state, then the parent's pid.
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return proc{}, false
	}
	f := strings.Fields(string(st[i+1:]))
	if len(f) < 2 {
		return proc{}, false
	}
	pp, _ := strconv.Atoi(f[1])
	return proc{pid: pid, ppid: pp, state: f[0]}, true
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
	quit, done := make(chan struct{}), make(chan struct{})
	var peak int64 // written by the sampler only, read after done
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			peak = max(peak, PSS(pid))
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
func processHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
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
