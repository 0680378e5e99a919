package tests

import (
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestParentIgnoresEmptyControlPacket sends, through the front's own
// control socket (fd 3, taken with pidfd_getfd), a zero-length packet: the
// parent used to read it as the front's EOF, stop serving and let the
// whole server exit 0. Afterwards the parent must still start workers.
func TestParentIgnoresEmptyControlPacket(t *testing.T) {
	in := privsepInstance(t)
	greeted(t, in) // the front is past its exec and serving
	front := frontOf(t, in)
	pidfd, err := unix.PidfdOpen(front, 0)
	if err != nil {
		t.Fatalf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	ctl, err := unix.PidfdGetfd(pidfd, 3, 0)
	if err != nil {
		t.Fatalf("pidfd_getfd: %v", err)
	}
	defer unix.Close(ctl)
	if typ, err := unix.GetsockoptInt(ctl, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_SEQPACKET {
		t.Fatalf("the front's fd 3 is not the control socket: type %d, %v", typ, err)
	}
	for range 3 {
		if err := unix.Sendmsg(ctl, nil, nil, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the parent read them
	// Every owner needs a worker the parent has to start now.
	r := in.Dial(t)
	r.lhlo()
	rcpts, data := r.txn("<sender@example.org>", []string{"<u1@example.com>", "<u2@example.com>", "<u3@example.com>"},
		"Subject: after garbage\n\nHello.\n")
	checkDelivered(t, rcpts, data, "u1@example.com", "u2@example.com", "u3@example.com")
	alive(t, in)
}

// TestFrontGoneIsAnErrorExit: a front that exits although nobody asked
// the server to stop (here: SIGTERM to the front alone, not to the
// parent) ends the server with a non-zero status, so that systemd's
// Restart=on-failure brings it back.
func TestFrontGoneIsAnErrorExit(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			in := privsepInstance(t)
			greeted(t, in)
			if err := syscall.Kill(frontOf(t, in), sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-in.done:
			case <-time.After(30 * time.Second):
				t.Fatal("the parent did not exit after its front")
			}
			if st := in.cmd.ProcessState; st == nil || st.ExitCode() == 0 {
				t.Fatalf("server exit status %v, want non-zero", st)
			}
		})
	}
	// The clean stop for comparison: SIGTERM to the parent is exit 0.
	in := privsepInstance(t)
	greeted(t, in)
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not stop on SIGTERM")
	}
	if st := in.cmd.ProcessState; st.ExitCode() != 0 {
		t.Fatalf("exit status after SIGTERM to the parent: %v, want 0", st)
	}
}

// greeted waits for the front's 220: it has set up its signal handlers
// then, so a SIGTERM is a request to stop, not a kill.
func greeted(t *testing.T, in *Instance) {
	t.Helper()
	r := in.Dial(t)
	r.Send("QUIT\r\n")
	r.Expect("221")
	r.Close()
}
