package tests

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rest reads every line the server still sends until it closes the
// connection.
func (r *Raw) rest() []string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(r.r)
	if err != nil && !strings.Contains(err.Error(), "reset by peer") {
		r.t.Fatalf("reading to EOF: %v", err)
	}
	s := strings.TrimSuffix(string(b), "\r\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\r\n")
}

func mboxBytes(t *testing.T, in *Instance, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(in.Base, rel))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// A nested MAIL is refused and the transaction it tried to replace goes
// on: every recipient that got a 250 at RCPT gets a real delivery.
func TestNestedMailKeepsTransaction(t *testing.T) {
	in := StartInstance(t, Options{})
	c := in.Dial(t)
	c.lhlo()
	c.Send("MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.com>\r\nMAIL FROM:<b@remote.test>\r\nRCPT TO:<carol@example.com>\r\nDATA\r\n")
	c.Expect("250 2.1.0")
	c.Expect("250 2.1.5 <alice@example.com>")
	c.Expect("503 5.5.1 nested MAIL command")
	c.Expect("250 2.1.5 <carol@example.com>")
	c.Expect("354")
	c.Send("Subject: nested\r\n\r\nbody\r\n.\r\n")
	c.Expect("250 2.0.0 <alice@example.com> delivered")
	c.Expect("250 2.0.0 <carol@example.com> delivered")
	for _, box := range []string{"example.com/alice", "example.com/carol"} {
		files := maildirFiles(t, filepath.Join(in.Base, box))
		if len(files) != 1 || !strings.HasPrefix(readFile(t, files[0]), "Return-Path: <a@remote.test>\n") {
			t.Fatalf("%s: %d messages, want 1 from <a@remote.test>", box, len(files))
		}
	}
}

// A BDAT chunk cut short (close or shutdown of the client's side, LAST or
// not) stores nothing and answers no 250; the retry stores one copy.
func TestBDATCutShortStoresNothing(t *testing.T) {
	in := StartInstance(t, Options{})
	body := strings.Repeat("a line of the message\r\n", 4348) // ~100 KB
	for _, tc := range []struct {
		name     string
		last     string
		shutdown bool
	}{{"last-close", " LAST", false}, {"last-shutdown", " LAST", true}, {"chunk-shutdown", "", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := in.Dial(t)
			c.lhlo()
			c.Send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n")
			c.Expect("250")
			c.Expect("250")
			c.Expect("250")
			c.Send(fmt.Sprintf("BDAT %d%s\r\n%s", len(body), tc.last, body[:len(body)/2]))
			if tc.shutdown {
				c.c.(*net.UnixConn).CloseWrite()
				if got := c.rest(); len(got) != 0 {
					t.Fatalf("after a cut chunk the client read %q", got)
				}
			} else {
				c.Close()
			}
		})
	}
	// Give the server the moment it needs to see the close.
	time.Sleep(200 * time.Millisecond)
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 0 {
		t.Fatalf("alice has %d messages after cut chunks", n)
	}
	if mb := mboxBytes(t, in, "example.com/bob"); mb != "" {
		t.Fatalf("bob's mbox holds %d bytes after cut chunks", len(mb))
	}
	c := in.Dial(t)
	c.lhlo()
	c.Send(fmt.Sprintf("MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nBDAT %d LAST\r\n%s", len(body), body))
	c.Expect("250")
	c.Expect("250")
	c.Expect("250")
	c.Expect("250 2.0.0 <alice@example.com> delivered")
	c.Expect("250 2.0.0 <bob@example.com> delivered")
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 1 {
		t.Fatalf("alice has %d messages after the retry, want 1", n)
	}
	if n := len(mboxMessages(t, mboxBytes(t, in, "example.com/bob"))); n != 1 {
		t.Fatalf("bob has %d messages after the retry, want 1", n)
	}
}

// A message stalling past data_timeout, DATA or BDAT: one 4xx per
// recipient, 421, the connection closed, and the bytes sent afterwards —
// here a complete forged transaction — are never read as commands.
func TestStalledMessageNeverBecomesCommands(t *testing.T) {
	in := StartInstance(t, Options{Config: `data_timeout = "1s"`})
	forged := "\r\nMAIL FROM:<forged@remote.test>\r\nRCPT TO:<carol@example.com>\r\nDATA\r\nSubject: forged\r\n\r\n.\r\nQUIT\r\n"
	for _, bdat := range []bool{false, true} {
		c := in.Dial(t)
		c.lhlo()
		c.Send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n")
		c.Expect("250")
		c.Expect("250")
		c.Expect("250")
		if bdat {
			c.Send("BDAT 5000 LAST\r\nSubject: slow\r\n")
		} else {
			c.Send("DATA\r\n")
			c.Expect("354")
			c.Send("Subject: slow\r\n")
		}
		time.Sleep(1500 * time.Millisecond)
		c.c.Write([]byte(forged)) // the server may have hung up already
		got := c.rest()
		want := []string{"451 4.4.2 <alice@example.com> ", "451 4.4.2 <bob@example.com> ", "421 4.4.2 "}
		if len(got) != len(want) {
			t.Fatalf("bdat=%v: replies %q, want %q", bdat, got, want)
		}
		for i := range want {
			if !strings.HasPrefix(got[i], want[i]) {
				t.Fatalf("bdat=%v: replies %q, want %q", bdat, got, want)
			}
		}
	}
	for _, box := range []string{"example.com/alice", "example.com/carol"} {
		if n := len(maildirFiles(t, filepath.Join(in.Base, box))); n != 0 {
			t.Errorf("%s has %d messages", box, n)
		}
	}
	if mb := mboxBytes(t, in, "example.com/bob"); mb != "" {
		t.Errorf("bob's mbox holds %d bytes", len(mb))
	}
}

// A partial command line at idle_timeout is not run: 421 and close.
func TestPartialCommandAtIdleTimeout(t *testing.T) {
	in := StartInstance(t, Options{Config: `idle_timeout = "1s"`})
	c := in.Dial(t)
	c.lhlo()
	c.Send("NOOP")
	got := c.rest()
	if len(got) != 1 || !strings.HasPrefix(got[0], "421 4.4.2 ") {
		t.Fatalf("replies %q, want one 421 4.4.2", got)
	}
	// A client dripping a byte every 300 ms is cut off after idle_timeout
	// however long it keeps going.
	c = in.Dial(t)
	start := time.Now()
	go func() {
		for range 20 {
			if _, err := c.c.Write([]byte("N")); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	got = c.rest()
	if len(got) != 1 || !strings.HasPrefix(got[0], "421 4.4.2 ") || time.Since(start) > 3*time.Second {
		t.Fatalf("dripping client: replies %q after %v", got, time.Since(start))
	}
}

// Spool full: the body of a 5 MB message does not fit a 3 MB spool, with
// BDAT as with DATA: one 452 4.3.0 per recipient and the session goes on.
func TestSpoolFull(t *testing.T) {
	rootOrSkip(t, "mounting a small tmpfs")
	in := StartInstance(t, Options{
		Config: `message_size_limit = 10240000
virtual_mailbox_limit = 10240000`,
		Prepare: func(dir string) {
			spool := filepath.Join(dir, "spool")
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m,mode=0777", "tmpfs", spool).CombinedOutput(); err != nil {
				skipOrFail(t, "cannot mount tmpfs here: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", "-l", spool).Run() })
		},
	})
	body := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("b", 98)+"\r\n", 50000)
	c := in.Dial(t)
	c.lhlo()
	for _, bdat := range []bool{true, false} {
		c.Send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n")
		c.Expect("250")
		c.Expect("250")
		c.Expect("250")
		if bdat {
			half := len(body) / 2
			c.Send(fmt.Sprintf("BDAT %d\r\n%sBDAT %d LAST\r\n%s", half, body[:half], len(body)-half, body[half:]))
			c.Expect("250 2.0.0 ")
		} else {
			c.Send("DATA\r\n")
			c.Expect("354")
			c.Send(body + ".\r\n")
		}
		c.Expect("452 4.3.0 <alice@example.com> ")
		c.Expect("452 4.3.0 <bob@example.com> ")
	}
	c.Send("NOOP\r\n")
	c.Expect("250")
}

// Addresses and header values we write: controls and Unicode line
// separators never reach a header, and an address longer than RFC 5321
// allows is refused at once.
func TestAddressHygiene(t *testing.T) {
	in := StartInstance(t, Options{})
	// A CR in the LHLO argument is refused, and no reply echoes it.
	h := in.Dial(t)
	h.Send("LHLO evil\rinjected\r\nLHLO client.test\r\n")
	if got := h.Reply(); !strings.HasPrefix(got, "500 5.5.2 ") || strings.Contains(got, "evil") {
		t.Errorf("LHLO with a CR: %q", got)
	}
	if got := h.Reply(); !strings.HasPrefix(got, "250 ") || strings.Contains(got, "client.test") {
		t.Errorf("LHLO reply %q echoes the client's name or fails", got)
	}
	c := in.Dial(t)
	c.lhlo()
	c.Send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<" + strings.Repeat("x", 900000)[:3000] + "@example.com>\r\n" +
		"RCPT TO:<alice@example.com> ORCPT=utf-8;alice\u2028X-Injected:\\x{20}yes@example.com\r\n" +
		"RCPT TO:<carol@example.com> ORCPT=utf-8;carol\u0085@example.com\r\nDATA\r\n")
	c.Expect("250")
	c.Expect("501 5.1.3 recipient address too long")
	c.Expect("250 2.1.5 <alice@example.com>")
	c.Expect("250 2.1.5 <carol@example.com>")
	c.Expect("354")
	c.Send("Subject: x\r\n\r\nx\r\n.\r\n")
	c.Expect("250 2.0.0 <alice@example.com>")
	c.Expect("250 2.0.0 <carol@example.com>")
	for _, who := range []string{"alice", "carol"} {
		got := readFile(t, maildirFiles(t, filepath.Join(in.Base, "example.com", who))[0])
		if !strings.HasPrefix(got, "Return-Path: <s@remote.test>\nX-Original-To: "+who+"@example.com\nDelivered-To: "+who+"@example.com\n") {
			t.Errorf("%s's message starts %q", who, got[:min(len(got), 160)])
		}
	}
	// A 900 KB local part in one command line: refused, no header grows.
	c.Send("RSET\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<" + strings.Repeat("y", 900000) + "@example.com>\r\nNOOP\r\n")
	c.Expect("250")
	c.Expect("250")
	c.Expect("500 5.5.2 command line too long")
	c.Expect("250")
}

// lockedDelivery starts an instance whose mbox bob is dotlocked by
// someone else and sends it a message on a session of its own: that
// delivery then waits for the lock.
func lockedDelivery(t *testing.T, privsep bool, config string) (in *Instance, busy *Raw) {
	in = StartInstance(t, privsepOptions(Options{Config: "virtual_mailbox_lock = \"dotlock\"\ndeliver_lock_delay = \"100ms\"\n" + config,
		Prepare: func(dir string) {
			os.WriteFile(filepath.Join(dir, "mail/example.com/bob"), nil, 0o600)
			// A live pid (ours) in the lock: the worker reads it to see
			// whether the holder is gone, which tells us it has tried.
			os.WriteFile(filepath.Join(dir, "mail/example.com/bob.lock"), []byte(fmt.Sprintln(os.Getpid())), 0o600)
			chownTree(t, filepath.Join(dir, "mail"), testMailOwner(t))
		}}, privsep))
	tried := watchOpen(t, filepath.Join(in.Base, "example.com/bob.lock"))
	busy = in.Dial(t)
	busy.lhlo()
	busy.Send("MAIL FROM:<s@remote.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n")
	busy.Expect("250")
	busy.Expect("250")
	busy.Expect("354")
	busy.Send("Subject: locked\r\n\r\nx\r\n.\r\n")
	tried(10 * time.Second) // the delivery now waits for the lock
	return in, busy
}

// watchOpen starts watching path with inotify; the function it returns
// waits up to timeout for some process to have opened the file since.
func watchOpen(t *testing.T, path string) (wait func(timeout time.Duration)) {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	return func(timeout time.Duration) {
		t.Helper()
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(timeout/time.Millisecond))
		if err != nil || n == 0 {
			t.Fatalf("nothing opened %s within %v: %v", path, timeout, err)
		}
	}
}

// SIGTERM: idle sessions are told 421 4.3.2, a transaction in progress
// (here a delivery waiting for an mbox lock) finishes and gets its reply
// before the server exits 0, and nothing is written after.
func TestCleanStop(t *testing.T) {
	forModes(t, func(t *testing.T, privsep bool) {
		in, busy := lockedDelivery(t, privsep, "deliver_lock_attempts = 30")
		idle := in.Dial(t)
		idle.lhlo()
		in.cmd.Process.Signal(syscall.SIGTERM)
		if got := idle.rest(); len(got) != 1 || !strings.HasPrefix(got[0], "421 4.3.2 ") {
			t.Fatalf("idle session: %q, want 421 4.3.2", got)
		}
		// The lock goes away while the server is stopping: the delivery ends.
		os.Remove(filepath.Join(in.Base, "example.com/bob.lock"))
		busy.Expect("250 2.0.0 <bob@example.com> delivered")
		select {
		case <-in.done:
		case <-time.After(20 * time.Second):
			t.Fatal("server did not exit after its last transaction")
		}
		if code := in.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
		if n := len(mboxMessages(t, mboxBytes(t, in, "example.com/bob"))); n != 1 {
			t.Fatalf("bob has %d messages, want 1", n)
		}
	})
}

// shutdown_timeout reached: a delivery still waiting for its lock gives
// up, its client is told 4xx, and nothing is appended afterwards.
func TestStopTimeoutCancelsWaitingDelivery(t *testing.T) {
	forModes(t, func(t *testing.T, privsep bool) {
		in, busy := lockedDelivery(t, privsep, "deliver_lock_attempts = 100\nshutdown_timeout = \"1s\"")
		in.cmd.Process.Signal(syscall.SIGTERM)
		busy.Expect("451 4.")
		select {
		case <-in.done:
		case <-time.After(20 * time.Second):
			t.Fatal("server did not exit after shutdown_timeout")
		}
		if code := in.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
		os.Remove(filepath.Join(in.Base, "example.com/bob.lock"))
		time.Sleep(500 * time.Millisecond)
		if mb := mboxBytes(t, in, "example.com/bob"); mb != "" {
			t.Fatalf("bob's mbox got %d bytes after the stop", len(mb))
		}
	})
}
