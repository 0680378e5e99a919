package proctree

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// startChild runs sleep under a name holding ") " so that Pids must find
// the parent pid after the last ")" of /proc/PID/stat.
func startChild(t *testing.T) int {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(t.TempDir(), "a) 1 2 x")
	if err := os.WriteFile(odd, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func TestPidsFindsChildren(t *testing.T) {
	child := startChild(t)
	pids := Pids(os.Getpid())
	if len(pids) == 0 || pids[0] != os.Getpid() {
		t.Fatalf("Pids = %v, want our pid %d first", pids, os.Getpid())
	}
	if !slices.Contains(pids, child) {
		t.Fatalf("Pids = %v, want child %d among them", pids, child)
	}
	if got := Pids(child); !slices.Equal(got, []int{child}) {
		t.Fatalf("Pids(child) = %v, want just %d", got, child)
	}
}

func TestChildren(t *testing.T) {
	child := startChild(t)
	if got := Children(os.Getpid()); !slices.Contains(got, child) {
		t.Fatalf("Children = %v, want child %d among them", got, child)
	}
	if got := Children(child); len(got) != 0 {
		t.Fatalf("Children(child) = %v, want none", got)
	}
	// A child that has exited but is not reaped yet is a zombie: not
	// among the children, still among Pids.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	zombie := cmd.Process.Pid
	defer cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for slices.Contains(Children(os.Getpid()), zombie) {
		if time.Now().After(deadline) {
			t.Fatalf("exited child %d still listed by Children", zombie)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if Running(zombie) || !Running(child) {
		t.Fatalf("Running: zombie %v, sleeping child %v", Running(zombie), Running(child))
	}
	if !slices.Contains(Pids(os.Getpid()), zombie) {
		t.Fatalf("Pids = %v, want the unreaped child %d among them", Pids(os.Getpid()), zombie)
	}
}

func TestMemory(t *testing.T) {
	child := startChild(t)
	self := os.Getpid()
	own, kid := processPSS(self), processPSS(child)
	if own <= 0 || kid <= 0 {
		t.Fatalf("PSS of self %d, of child %d: want both > 0", own, kid)
	}
	// The tree holds at least both; processes may come and go meanwhile,
	// so no exact sum.
	if tree := PSS(self); tree < kid || tree <= 0 {
		t.Fatalf("PSS(tree) = %d, child alone %d", tree, kid)
	}
	hwm := processHWM(self)
	if hwm <= 0 || hwm%1024 != 0 {
		t.Fatalf("VmHWM of self = %d, want a positive multiple of 1024", hwm)
	}
	if m := MaxHWM(self); m < hwm {
		t.Fatalf("MaxHWM = %d, below our own VmHWM %d", m, hwm)
	}
}

func TestPeakPSS(t *testing.T) {
	child := startChild(t)
	stop := PeakPSS(child, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if peak, kid := stop(), processPSS(child); peak <= 0 || peak < kid/2 {
		t.Fatalf("PeakPSS = %d, child's PSS now %d", peak, kid)
	}
}

func TestGoneProcess(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if p, m := PSS(pid), MaxHWM(pid); p != 0 || m != 0 {
		t.Fatalf("exited process: PSS %d, MaxHWM %d, want 0", p, m)
	}
}

func TestKiB(t *testing.T) {
	for in, want := range map[string]int64{"   1234 kB": 1234 * 1024, "0 kB": 0, "garbage": 0} {
		if got := kiB(in); got != want {
			t.Errorf("kiB(%q) = %d, want %d", in, got, want)
		}
	}
}

// burnChild runs a bounded busy loop in a shell, well over the 10 ms
// resolution, and returns it, reaped, with the CPU time it used.
func burnChild(t *testing.T) (*exec.Cmd, time.Duration) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if child < 50*time.Millisecond {
		t.Skipf("the child used only %v of CPU; too little to tell", child)
	}
	return cmd, child
}

// TestCPUCountsReapedChildren: a child that burns CPU and exits before
// the second reading still counts, through our cutime/cstime.
func TestCPUCountsReapedChildren(t *testing.T) {
	before := CPU(os.Getpid())
	_, child := burnChild(t)
	got := CPU(os.Getpid()) - before
	if got < child-2*clockTick {
		t.Fatalf("CPU grew by %v, want at least the reaped child's %v", got, child)
	}
}

func TestCmdlineAndHWM(t *testing.T) {
	child := startChild(t)
	// Start returns once exec began (its close-on-exec pipe closed), a
	// moment before the kernel has set up the new argument area: until
	// then cmdline reads empty.
	var argv []string
	for deadline := time.Now().Add(5 * time.Second); len(argv) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		argv = Cmdline(child)
	}
	if len(argv) != 2 || filepath.Base(argv[0]) != "a) 1 2 x" || argv[1] != "60" {
		t.Fatalf("Cmdline = %q", argv)
	}
	if Cmdline(-1) != nil {
		t.Fatal("Cmdline of no process is not nil")
	}
	// VmHWM survives an munmap (the kernel saves the peak first) but not
	// madvise(MADV_DONTNEED), which is how Go's runtime returns memory;
	// hence the mmap here, and the sampled RSS beside HWM in the bench.
	mem, err := syscall.Mmap(-1, 0, 64<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	if rss := RSS(os.Getpid()); rss < 64<<20 {
		t.Fatalf("RSS = %d with 64 MiB touched", rss)
	}
	if err := syscall.Munmap(mem); err != nil {
		t.Fatal(err)
	}
	peak := HWM(os.Getpid())
	if peak < 64<<20 {
		t.Fatalf("HWM = %d after touching 64 MiB", peak)
	}
	if err := ResetHWM(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if after := HWM(os.Getpid()); after > peak-32<<20 {
		t.Fatalf("HWM after reset %d, want well under the %d before", after, peak)
	}
}

// TestStat: Children grows by what a reaped child used and is part of
// CPU; RSS agrees with /proc/PID/status's VmRSS; a gone process is false.
func TestStat(t *testing.T) {
	before, ok := Stat(os.Getpid())
	if !ok || before.RSS <= 0 || before.Children > before.CPU {
		t.Fatalf("Stat(self) = %+v, %v", before, ok)
	}
	if vm := RSS(os.Getpid()); before.RSS < vm/2 || before.RSS > vm*2 {
		t.Errorf("RSS %d bytes, VmRSS %d", before.RSS, vm)
	}
	cmd, child := burnChild(t)
	after, _ := Stat(os.Getpid())
	if got := after.Children - before.Children; got < child-2*clockTick {
		t.Errorf("Children grew by %v, want at least the reaped child's %v", got, child)
	}
	if _, ok := Stat(cmd.Process.Pid); ok {
		t.Errorf("Stat of a reaped child: true")
	}
}
