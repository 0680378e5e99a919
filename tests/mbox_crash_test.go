package tests

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
	"golang.org/x/sys/unix"
)

// workerFor returns the pid of the instance's worker running as uid.
func workerFor(t *testing.T, in *Instance, uid int) int {
	t.Helper()
	for _, c := range children(t, in.cmd.Process.Pid) {
		if c.role() != "worker" {
			continue
		}
		if wc, err := proctree.ReadCreds(c.pid); err == nil && wc.UIDs[0] == uid {
			return c.pid
		}
	}
	t.Fatalf("no worker for uid %d among %v", uid, children(t, in.cmd.Process.Pid))
	return 0
}

// A worker SIGKILLed in the middle of a large mbox delivery: the client
// gets a temporary failure, and the next delivery to that mbox, by a new
// worker, goes through at once (the dead worker's dotlock does not block
// it) and leaves no part of the interrupted message in the mbox.
func TestMboxWorkerKilledMidAppend(t *testing.T) {
	in := privsepInstance(t)
	mbox := filepath.Join(in.Base, "example.com/u2/mbox")
	deliverTo := func(subject string) string {
		r := in.Dial(t)
		defer r.Close()
		r.lhlo()
		_, data := r.txn("<sender@example.org>", []string{"<u2@example.com>"}, "Subject: "+subject+"\n\nintact\n")
		return strings.Join(data, "; ")
	}
	for _, s := range []string{"one", "two"} {
		if rep := deliverTo(s); !strings.HasPrefix(rep, "250") {
			t.Fatalf("delivery %s: %s", s, rep)
		}
	}
	before := readFile(t, mbox)

	// Just under the default message_size_limit: the append takes some
	// milliseconds, and the kill lands while it runs. A kill that comes
	// too late (the message already whole) is retried.
	big := "Subject: interrupted\n\n" + strings.Repeat("filler line of the message that is killed half way\n", 9_500_000/52)
	data := wire(big) + ".\r\n"
	killed := false
	for attempt := 0; attempt < 5 && !killed; attempt++ {
		pid := workerFor(t, in, 5002)
		st, err := os.Stat(mbox)
		if err != nil {
			t.Fatal(err)
		}
		size := st.Size()
		r := in.Dial(t)
		r.lhlo()
		r.Send("MAIL FROM:<big@example.org>\r\nRCPT TO:<u2@example.com>\r\nDATA\r\n")
		r.Expect("250")
		r.Expect("250")
		r.Expect("354")
		sent := make(chan error, 1)
		go func() {
			_, err := r.c.Write([]byte(data))
			sent <- err
		}()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if st, err := os.Stat(mbox); err == nil && st.Size() > size {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the big message never reached the mbox")
			}
			runtime.Gosched()
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		reply := r.Reply()
		r.Close()
		partial := readFile(t, mbox)
		_, xerr := unix.Getxattr(mbox, "user.vlmtpd.append", nil)
		if strings.HasPrefix(reply, "250") || xerr != nil || strings.HasSuffix(partial, "\n\n") {
			// Killed while the whole message was being synced: it is
			// complete (and will come again, as the client got a 4xx).
			// Take it out and let a small delivery start a new worker.
			t.Logf("attempt %d: the kill came too late (reply %q, record: %v)", attempt, reply, xerr)
			if err := os.Truncate(mbox, size); err != nil {
				t.Fatal(err)
			}
			if rep := deliverTo("warm"); !strings.HasPrefix(rep, "250") {
				t.Fatalf("delivery after attempt %d: %s", attempt, rep)
			}
			before = readFile(t, mbox)
			continue
		}
		if !strings.HasPrefix(reply, "451 4.3.0 <u2@example.com> ") {
			t.Fatalf("reply after the worker was killed: %s, want 451 4.3.0 <u2@example.com>", reply)
		}
		if len(partial) <= len(before) || !strings.HasPrefix(partial[len(before):], "From big@example.org  ") {
			t.Fatalf("no partial message after the kill: %d bytes, %d before", len(partial), len(before))
		}
		killed = true
	}
	if !killed {
		t.Fatal("could not kill the worker in the middle of an append")
	}
	// Without the dead worker's dotlock the next delivery would prove
	// nothing about it.
	if _, err := os.Lstat(mbox + ".lock"); err != nil {
		t.Fatalf("the killed worker left no dotlock: %v", err)
	}

	start := time.Now()
	if rep := deliverTo("after"); !strings.HasPrefix(rep, "250") {
		t.Fatalf("delivery after the kill: %s\n%s", rep, in.Logs())
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("the delivery after the kill took %v", waited)
	}
	after := readFile(t, mbox)
	msgs := mboxMessages(t, after)
	if len(msgs) != len(mboxMessages(t, before))+1 || !strings.HasPrefix(after, before) || strings.Contains(after, "filler") ||
		!strings.Contains(msgs[len(msgs)-1], "Subject: after\n") {
		t.Fatalf("mbox after the next delivery: %d messages, %d bytes:\n%.2000s", len(msgs), len(after), after)
	}
	if _, err := unix.Getxattr(mbox, "user.vlmtpd.append", nil); err != unix.ENODATA {
		t.Errorf("append record left: %v", err)
	}
	if _, err := os.Lstat(mbox + ".lock"); !os.IsNotExist(err) {
		t.Errorf("dotlock left: %v", err)
	}
	for _, want := range []string{"removed the mailbox lock of a process that no longer exists", "recovered interrupted append of"} {
		if !strings.Contains(in.Logs(), want) {
			t.Errorf("log lacks %q:\n%s", want, in.Logs())
		}
	}
}
