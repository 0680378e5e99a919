package tests

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// logModes runs fn in single-user mode and, as root, in the
// privilege-separated mode (parent, front and workers all log to the same
// stderr).
func logModes(t *testing.T, fn func(t *testing.T, privileged bool)) {
	t.Run("single-user", func(t *testing.T) { fn(t, false) })
	t.Run("privsep", func(t *testing.T) {
		rootOrSkip(t, "privilege separation")
		fn(t, true)
	})
}

// logInstance starts a server whose stdout and stderr are w, logging at
// debug level (many lines).
func logInstance(t *testing.T, privileged bool, w *os.File) *Instance {
	o := Options{Stderr: w, Privileged: privileged, Config: `log_level = "debug"`}
	if privileged {
		o.Config += "\nuser = \"nobody\""
		// The front (nobody) writes the spool.
		o.Prepare = func(dir string) { os.Chown(filepath.Join(dir, "spool"), 65534, 65534) }
	}
	return StartInstance(t, o)
}

// deliverAlice sends n messages to alice, each on its own connection,
// and checks each gets its 250 and is stored.
func deliverAlice(t *testing.T, in *Instance, n int) {
	t.Helper()
	md := filepath.Join(in.Base, "example.com/alice")
	before := 0
	if _, err := os.Stat(md); err == nil {
		before = len(maildirFiles(t, md))
	}
	for i := range n {
		c := in.Dial(t)
		c.lhlo()
		rr, dr := c.txn("<sender@remote.test>", []string{"<alice@example.com>"}, "Subject: log test\n\nmessage\n")
		checkDelivered(t, rr, dr, "alice@example.com")
		c.Send("QUIT\r\n")
		c.Expect("221")
		c.Close()
		if got := len(maildirFiles(t, md)); got != before+i+1 {
			t.Fatalf("after message %d alice holds %d messages, want %d", i, got, before+i+1)
		}
	}
}

func alive(t *testing.T, in *Instance) {
	t.Helper()
	select {
	case <-in.done:
		t.Fatalf("vlmtpd exited: %v", in.cmd.ProcessState)
	default:
	}
}

// TestLogReaderGoneDoesNotStopDelivery: the reader of the server's stderr
// exits (a journal restart, a `vlmtpd serve | tee` whose tee died). Go's
// default is to die of SIGPIPE at the next log line, in the middle of a
// session; vlmtpd must keep answering and delivering.
func TestLogReaderGoneDoesNotStopDelivery(t *testing.T) {
	logModes(t, func(t *testing.T, privileged bool) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		in := logInstance(t, privileged, w)
		w.Close()
		r.Close() // the reader is gone: every later log write meets EPIPE
		deliverAlice(t, in, 3)
		alive(t, in)
	})
}

// TestStalledLogReaderDoesNotDelayReplies: the reader of stderr stops
// reading (a hung log shipper). Once the pipe is full a blocking log write
// would hold the session forever; replies must still come.
func TestStalledLogReaderDoesNotDelayReplies(t *testing.T) {
	logModes(t, func(t *testing.T, privileged bool) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		// The smallest pipe: a few debug lines fill it.
		if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 4096); err != nil {
			t.Fatal(err)
		}
		in := logInstance(t, privileged, w)
		w.Close()
		// Never read r: 20 sessions log far more than 4 KB.
		deliverAlice(t, in, 20)
		alive(t, in)
	})
}
