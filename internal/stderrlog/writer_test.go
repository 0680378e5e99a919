package stderrlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lines is a fake syslog.
type lines struct {
	mu  sync.Mutex
	got []string
}

func (l *lines) WriteLine(b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, string(b))
	return nil
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// within fails the test if fn does not return in time: a Write that
// blocks is the defect these tests look for.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

func TestWriterHealthyStreamIsSynchronous(t *testing.T) {
	var b syncBuf
	log := New(NewWriter(&b, WriterOptions{Wait: 5 * time.Second}), "info", "text")
	for i := range 100 {
		log.Info("line", "n", i)
		// Written before Info returns: nothing is lost when the process
		// exits right after its last line.
		if got := strings.Count(b.String(), "\n"); got != i+1 {
			t.Fatalf("after line %d the stream holds %d lines", i, got)
		}
	}
	if !strings.Contains(b.String(), "n=99\n") {
		t.Fatalf("stream: %q", b.String())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestWriterFallsBackWhenTheReaderIsGone(t *testing.T) {
	r, w := pipe(t)
	r.Close()
	fb := &lines{}
	dials := 0
	wr := NewWriter(w, WriterOptions{Fallback: func() (LineWriter, error) { dials++; return fb, nil }})
	log := New(wr, "info", "json")
	within(t, 5*time.Second, "logging to a closed pipe", func() {
		for i := range 10 {
			log.Info("delivered", "n", i)
		}
	})
	got := fb.all()
	if len(got) != 11 || dials != 1 {
		t.Fatalf("fallback got %d lines after %d dials, want the notice and 10 lines after 1: %q", len(got), dials, got)
	}
	if !strings.Contains(got[0], "logging to syslog from now on") || !strings.Contains(got[0], "broken pipe") || levelOf([]byte(got[0])).String() != "ERROR" {
		t.Errorf("notice %q", got[0])
	}
	for i, l := range got[1:] {
		if !strings.Contains(l, fmt.Sprintf(`"n":%d`, i)) {
			t.Errorf("line %d: %q", i, l)
		}
	}
}

func TestWriterDropsWithoutFallback(t *testing.T) {
	r, w := pipe(t)
	r.Close()
	wr := NewWriter(w, WriterOptions{Fallback: func() (LineWriter, error) { return nil, errors.New("no syslog") }})
	log := New(wr, "info", "text")
	within(t, 5*time.Second, "logging with nowhere to log", func() {
		for range 5 {
			log.Info("x")
		}
	})
	if d := wr.Dropped(); d != 5 {
		t.Fatalf("dropped %d, want 5", d)
	}
}

// A reader that stops reading must not hold up the logging goroutines:
// the lines beyond the queue are dropped, and once the reader catches up
// one line says how many.
func TestWriterStalledReaderDoesNotBlock(t *testing.T) {
	r, w := pipe(t)
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 4096); err != nil {
		t.Fatal(err)
	}
	wr := NewWriter(w, WriterOptions{Queue: 16, Wait: 10 * time.Millisecond})
	log := New(wr, "info", "text")
	const n = 2000 // ~200 KB: fifty times what the pipe holds
	within(t, 20*time.Second, "logging to a stalled pipe", func() {
		for i := range n {
			log.Info("delivered", "n", i, "pad", strings.Repeat("x", 50))
		}
	})
	if wr.Dropped() == 0 {
		t.Fatal("nothing dropped, yet the pipe holds far less than was logged")
	}
	sc := bufio.NewScanner(r)
	var last string
	sawReport := false
	within(t, 20*time.Second, "reading the backlog", func() {
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, "log lines were dropped") {
				sawReport = true
				break
			}
			last = l
		}
	})
	if !sawReport {
		t.Fatalf("no line reports the dropped lines (last %q)", last)
	}
}

// TestOpenSurvivesBrokenStderr runs a child that logs with Open on a
// stderr whose reader has exited: by default Go dies of SIGPIPE there.
func TestOpenSurvivesBrokenStderr(t *testing.T) {
	if os.Getenv("STDERRLOG_CHILD") == "1" {
		log := Open("info", "text")
		for range 3 {
			log.Info("into a closed pipe")
		}
		fmt.Fprintln(os.Stderr, "and a direct write")
		os.Stdout.WriteString("survived\n")
		os.Exit(0)
	}
	r, w := pipe(t)
	r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenSurvivesBrokenStderr$")
	cmd.Env = append(os.Environ(), "STDERRLOG_CHILD=1")
	cmd.Stderr = w
	out, err := cmd.Output()
	if err != nil || string(out) != "survived\n" {
		t.Fatalf("child: %v, stdout %q", err, out)
	}
}
