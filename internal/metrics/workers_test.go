package metrics

import (
	"bufio"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
)

// TestWorkerUsageCountsExitedWorkers: a "worker" (a shell that burns CPU,
// then waits) counts while it runs, with its memory; once it has exited
// and been reaped by its reaper (this process), its time is still in the
// sum, through the reaper's children's time, and its memory is gone.
func TestWorkerUsageCountsExitedWorkers(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo done; read x; exit 0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	st, ok := proctree.Stat(pid)
	if !ok {
		t.Fatal("no /proc/PID/stat for the running shell")
	}
	if st.CPU < 50*time.Millisecond {
		t.Skipf("the shell used only %v of CPU; too little to tell", st.CPU)
	}
	u := &workerUsage{pids: func() []int { return []int{pid} }, reaper: os.Getpid()}
	running, rss := u.read()
	if running < st.CPU || rss <= 0 {
		t.Fatalf("while it runs: %v, %d bytes; it used %v", running, rss, st.CPU)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	exited, rss := u.read()
	if exited < running || rss != 0 {
		t.Fatalf("once exited and reaped: %v, %d bytes; %v while it ran", exited, rss, running)
	}
	noReaper := &workerUsage{pids: u.pids}
	if alone, _ := noReaper.read(); alone != 0 {
		t.Fatalf("without a reaper, a gone worker counts %v", alone)
	}
}
