package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
	"github.com/vlmtpd/vlmtpd/internal/testutil"
)

// crashHelperEnv makes the test binary a helper process (see init):
// "crash:<base>" appends a large message to <base>/mbox through Writer and
// SIGKILLs itself after the first write reached the file; "wait" says
// "ready" and lives until its stdin closes; "exit" exits at once.
const crashHelperEnv = "STORE_TEST_CRASH_HELPER"

// An init, not TestMain (kernel_test.go has that), so the helper runs
// before the test framework starts.
func init() {
	if spec := os.Getenv(crashHelperEnv); spec != "" {
		os.Exit(crashHelper(spec))
	}
}

// crashBody is large enough that the killed append is left half-written.
var crashBody = "Subject: never whole\n\n" + strings.Repeat("a line of a message that never arrives whole\n", 8000)

func crashHelper(spec string) int {
	mode, base, _ := strings.Cut(spec, ":")
	switch mode {
	case "exit":
		return 0
	case "wait":
		fmt.Println("ready")
		bufio.NewReader(os.Stdin).ReadString('\n')
		return 0
	case "crash":
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		return 2
	}
	l, err := NewWriter(base, WriterOptions{Hostname: testHost, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := os.CreateTemp("", "crash-spool")
	if err == nil {
		os.Remove(f.Name())
		_, err = f.WriteString(crashBody)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testHookMboxWrite = func() {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
	}
	msg := &Message{Sender: "crash@example.org", Body: f, Size: int64(len(crashBody)), Arrival: time.Now(), ID: "CRASH"}
	r := Recipient{Address: "User@example.com", Path: "mbox", UID: os.Getuid(), GID: os.Getgid()}
	fmt.Fprintln(os.Stderr, "not killed:", l.Deliver(context.Background(), msg, []Recipient{r})[0])
	return 1
}

// helperCmd returns the test binary started as a helper in mode.
func helperCmd(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), crashHelperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}

// runCrash runs the crash helper on base and returns its pid once it has
// died of SIGKILL and been reaped.
func runCrash(t *testing.T, base string) int {
	t.Helper()
	cmd := helperCmd("crash:" + base)
	must(t, cmd.Start())
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("crash helper did not die of SIGKILL: %v", err)
	}
	return cmd.Process.Pid
}

// deadPid returns the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := helperCmd("exit")
	must(t, cmd.Run())
	return cmd.Process.Pid
}

// livePid starts a process that lives until the test ends.
func livePid(t *testing.T) int {
	t.Helper()
	cmd := helperCmd("wait")
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper: %q", line)
	}
	return cmd.Process.Pid
}

// testLogger logs to the test's output and to the returned buffer, whose
// lines the test can check.
func testLogger(t *testing.T) (*slog.Logger, *testutil.SyncBuffer) {
	logs := &testutil.SyncBuffer{}
	return slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logs), nil)), logs
}

func loggedWriter(t *testing.T, opts WriterOptions) (*Writer, string, *testutil.SyncBuffer) {
	var logs *testutil.SyncBuffer
	opts.Logger, logs = testLogger(t)
	l, base := newTestWriter(t, opts)
	return l, base, logs
}

func getRecord(t *testing.T, path string) []byte {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(path, appendXattr, buf)
	if err == unix.ENODATA {
		return nil
	}
	must(t, err)
	return buf[:n]
}

// A writer SIGKILLed in the middle of an append leaves a partial message,
// its append record and its dotlock. The next delivery removes the dead
// writer's dotlock at once (not after StaleLockTime), cuts the partial
// message off and appends its own.
func TestMboxCrashRecovered(t *testing.T) {
	// One lock attempt per delivery (retryLock always tries once): the
	// dead writer's dotlock must be removed in it, not after waiting.
	l, base, logs := loggedWriter(t, WriterOptions{LockMethods: []string{LockFcntl, LockDotlock}, LockTimeout: time.Nanosecond})
	path := filepath.Join(base, "mbox")
	for i := range 2 {
		must(t, deliver(t, l, spool(t, "a@b", fmt.Sprintf("Subject: %d\n\nintact\n", i)), rcpt("mbox")))
	}
	before := readFile(t, path)

	pid := runCrash(t, base)
	if got := readFile(t, path+".lock"); got != strconv.Itoa(pid)+"\n" {
		t.Errorf("dead writer's dotlock holds %q, want its pid %d", got, pid)
	}
	rec, err := decodeRecord(getRecord(t, path))
	if err != nil {
		t.Fatalf("append record after the kill: %v", err)
	}
	if rec.size != int64(len(before)) || rec.writer.pid != pid {
		t.Errorf("record: size %d pid %d, want %d and %d", rec.size, rec.writer.pid, len(before), pid)
	}
	partial := readFile(t, path)
	if !strings.HasPrefix(partial, before) || len(partial) <= len(before)+rec.plen || len(partial) >= len(before)+len(crashBody) {
		t.Fatalf("the kill did not leave a partial message: %d bytes after %d", len(partial), len(before))
	}
	if !strings.HasPrefix(partial[len(before):], "From crash@example.org  ") {
		t.Fatalf("partial message starts %q", partial[len(before):len(before)+40])
	}

	must(t, deliver(t, l, spool(t, "a@b", "Subject: after\n\nnew\n"), rcpt("mbox")))
	after := readFile(t, path)
	if !strings.HasPrefix(after, before) {
		t.Fatal("earlier messages changed")
	}
	msgs := parseMbox(t, after)
	if len(msgs) != 3 || strings.Contains(after, "never") || !strings.HasSuffix(msgs[2].Text, "Subject: after\n\nnew\n") {
		t.Fatalf("mbox after recovery: %d messages\n%s", len(msgs), after)
	}
	if getRecord(t, path) != nil {
		t.Error("append record left after the delivery")
	}
	if _, err := os.Lstat(path + ".lock"); !os.IsNotExist(err) {
		t.Errorf("dotlock left: %v", err)
	}
	want := fmt.Sprintf("recovered interrupted append of %d bytes", len(partial)-len(before))
	for _, s := range []string{want, "removed the mailbox lock of a process that no longer exists"} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("no log line %q", s)
		}
	}
}

// During an append the dotlock holds our pid and the record is set; after
// it neither is left.
func TestMboxRecordDuringAppend(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{LockMethods: []string{LockFcntl, LockDotlock}})
	path := filepath.Join(base, "mbox")
	must(t, os.WriteFile(path, []byte(oldMbox), 0o600))
	var lock string
	var rec *appendRecord
	var recErr error
	testHookMboxWrite = func() {
		if rec == nil && recErr == nil {
			b, _ := os.ReadFile(path + ".lock")
			lock = string(b)
			buf := make([]byte, 4096)
			n, err := unix.Getxattr(path, appendXattr, buf)
			if recErr = err; err == nil {
				rec, recErr = decodeRecord(buf[:n])
			}
		}
	}
	defer func() { testHookMboxWrite = nil }()
	must(t, deliver(t, l, spool(t, "a@b", crashBody), rcpt("mbox")))
	testHookMboxWrite = nil
	if want := strconv.Itoa(os.Getpid()) + "\n"; lock != want {
		t.Errorf("dotlock holds %q, want %q", lock, want)
	}
	if recErr != nil {
		t.Fatalf("no record during the append: %v", recErr)
	}
	data := readFile(t, path)
	want := recordOf(int64(len(oldMbox)), self(), data[len(oldMbox):][:rec.plen])
	if *rec != *want {
		t.Errorf("record %+v does not describe the append, want %+v", rec, want)
	}
	if p := data[len(oldMbox):][:rec.plen]; !strings.HasPrefix(p, "From a@b  ") || !strings.HasSuffix(p, "\nDelivered-To: User@example.com\n") {
		t.Errorf("record covers %q, want the From_ line and trace headers", p)
	}
	if n := len(rec.encode(nil)); n > 56 {
		t.Errorf("record of %d bytes does not fit in an ext4 inode", n)
	}
	if getRecord(t, path) != nil {
		t.Error("record left after a delivery")
	}
	if n := len(parseMbox(t, data)); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}

// A failed append cuts its bytes off and removes its record.
func TestMboxRecordRemovedOnFailure(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	path := filepath.Join(base, "mbox")
	must(t, os.WriteFile(path, []byte(oldMbox), 0o600))
	r := rcpt("mbox")
	r.Limit = int64(len(oldMbox) + len(crashBody)/2)
	wantStatus(t, deliver(t, l, spool(t, "a@b", crashBody), r), OverLimit)
	if got := readFile(t, path); got != oldMbox {
		t.Errorf("mbox not truncated back: %d bytes", len(got))
	}
	if getRecord(t, path) != nil {
		t.Error("record left after a failed append")
	}
}

// recordOf is the record of an append at size that starts with prefix.
func recordOf(size int64, w processID, prefix string) *appendRecord {
	return newRecord(size, []byte(prefix), nil).with(w)
}

// with sets the writer, its start time cut to the 32 bits a record keeps.
func (r *appendRecord) with(w processID) *appendRecord {
	w.start = uint64(uint32(w.start))
	r.writer = w
	return r
}

// Records left by hand: each case says whether the delivery must cut the
// mailbox back to the recorded size before appending.
func TestAppendRecordCases(t *testing.T) {
	const prefix = "From gone@example.org  Sat Nov 21 12:00:00 2026\nReturn-Path: <gone@example.org>\n"
	const foreign = "From other@example.net  Mon Jan  2 15:04:05 2006\nSubject: another agent's\n\nbody\n\n"
	dead := deadPid(t)
	live := livePid(t)
	liveStart, ok := proctree.StartTime(live)
	if !ok {
		t.Fatal("cannot read a child's start time")
	}
	me := self()
	who := func(pid int, start uint64) processID {
		return processID{host: me.host, boot: me.boot, pid: pid, start: start}
	}
	for _, tc := range []struct {
		name    string
		tail    string // after oldMbox
		writer  processID
		size    int    // recorded size minus len(oldMbox)
		recover bool   // cut back to the recorded size
		log     string // a log line to expect
	}{
		{"dead writer", prefix + "half a li", who(dead, 0), 0, true, "recovered interrupted append of"},
		{"killed within the prefix", prefix[:10], who(dead, 0), 0, true, "recovered interrupted append of 10 bytes"},
		{"killed within the prefix, other bytes", "From other", who(dead, 0), 0, false, "changed by another program"},
		{"nothing written", "", who(dead, 0), 0, true, ""},
		{"our pid, no append of ours", prefix + "half", me, 0, true, "recovered"},
		{"pid reused", prefix + "half", who(live, liveStart+1), 0, true, "recovered"},
		{"earlier boot", prefix + "half", processID{host: me.host, boot: hash32("an-earlier-boot"), pid: live, start: liveStart}, 0, true, "recovered"},
		{"live writer", prefix + "half", who(live, liveStart), 0, false, "may still be running"},
		{"live writer, start unknown", prefix + "half", who(live, 0), 0, false, "may still be running"},
		{"another host", prefix + "half", processID{host: hash32("elsewhere.test"), boot: me.boot, pid: dead}, 0, false, "may still be running"},
		{"rewritten", "From someone@else  Sat Nov 21 12:00:00 2026\nhalf", who(dead, 0), 0, false, "changed by another program"},
		{"appended after, same line", prefix + "half a line" + foreign, who(dead, 0), 0, false, "changed by another program"},
		{"appended after, new line", prefix + "half a line\n\n" + foreign, who(dead, 0), 0, false, "changed by another program"},
		{"shrunk", "", who(dead, 0), 100, false, "shrank"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, base, logs := loggedWriter(t, WriterOptions{})
			path := filepath.Join(base, "mbox")
			before := oldMbox + tc.tail
			must(t, os.WriteFile(path, []byte(before), 0o600))
			rec := recordOf(int64(len(oldMbox)+tc.size), tc.writer, prefix)
			must(t, unix.Setxattr(path, appendXattr, rec.encode(nil), 0))
			must(t, deliver(t, l, spool(t, "a@b", "Subject: new\n\nnew\n"), rcpt("mbox")))
			after := readFile(t, path)
			if tc.recover {
				if msgs := parseMbox(t, after); !strings.HasPrefix(after, oldMbox) || len(msgs) != 2 || strings.Contains(after, "half") {
					t.Errorf("not recovered:\n%s", after)
				}
			} else if !strings.HasPrefix(after, before) || len(after) <= len(before) {
				t.Errorf("mailbox changed:\n%s", after)
			}
			if getRecord(t, path) != nil {
				t.Error("record left after the delivery")
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("no log line %q", tc.log)
			}
		})
	}
}

// A dotlock holding the pid of a process that no longer exists is removed
// at once; a live pid's lock, or one we cannot read a pid from, is held
// until StaleLockTime.
func TestDotlockOwner(t *testing.T) {
	dead := deadPid(t)
	live := livePid(t)
	for _, tc := range []struct {
		name    string
		content string
		removed bool
	}{
		{"dead pid", strconv.Itoa(dead) + "\n", true},
		{"dead pid without newline", strconv.Itoa(dead), true},
		{"our pid, no dotlock held", strconv.Itoa(os.Getpid()) + "\n", true},
		{"live pid", strconv.Itoa(live) + "\n", false},
		{"not a pid", "hello\n", false},
		{"zero", "0\n", false},
		{"negative", "-1\n", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One attempt (retryLock always tries once): a dead owner's
			// lock must be removed in it, not after waiting.
			const timeout = time.Nanosecond
			l, base := newTestWriter(t, WriterOptions{LockMethods: []string{LockDotlock}, LockTimeout: timeout})
			path := filepath.Join(base, "mbox")
			must(t, os.WriteFile(path, []byte(oldMbox), 0o600))
			must(t, os.WriteFile(path+".lock", []byte(tc.content), 0o644))
			err := deliver(t, l, spool(t, "a@b", "x\n"), rcpt("mbox"))
			if !tc.removed {
				wantStatus(t, err, Locked)
				if got := readFile(t, path+".lock"); got != tc.content {
					t.Errorf("lock changed to %q", got)
				}
				return
			}
			must(t, err)
			if _, err := os.Lstat(path + ".lock"); !os.IsNotExist(err) {
				t.Errorf("dotlock left: %v", err)
			}
		})
	}
}

// On a filesystem without user extended attributes (ramfs) deliveries go
// on as before, with one warning per process.
func TestMboxWithoutXattrs(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("none", dir, "ramfs", 0, "mode=0755"); err != nil {
		testutil.SkipOrFail(t, "cannot mount a ramfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	log, logs := testLogger(t)
	noXattrWarning = sync.Once{}
	l, err := NewWriter(dir, WriterOptions{Hostname: testHost, Logger: log})
	must(t, err)
	t.Cleanup(func() { l.Close() })
	for range 3 {
		must(t, deliver(t, l, spool(t, "a@b", "x\n"), rcpt("mbox")))
	}
	if n := len(parseMbox(t, readFile(t, filepath.Join(dir, "mbox")))); n != 3 {
		t.Errorf("%d messages, want 3", n)
	}
	if n := strings.Count(logs.String(), "no user extended attributes"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs)
	}
}
