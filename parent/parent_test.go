package parent

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
	"github.com/vlmtpd/vlmtpd/internal/testutil"
	"github.com/vlmtpd/vlmtpd/privsep"
	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/worker"
	"golang.org/x/sys/unix"
)

// TestMain lets the test binary act as a worker and as a minimal front.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "worker":
			os.Exit(worker.Main(os.Args[2:]))
		case "test-front":
			os.Exit(testFront(os.Args[2:]))
		}
	}
	os.Exit(m.Run())
}

// testFront is what Run starts in TestRunStartsFront: it answers one
// connection on its first inherited listener with its uid, the number of
// listeners and the pid of a worker it got from the parent.
func testFront(args []string) int {
	fs := flag.NewFlagSet("test-front", flag.ContinueOnError)
	inherit := privsep.InheritFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 3
	}
	fr, err := inherit()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test-front:", err)
		return 3
	}
	c, err := fr.Listeners[0].Accept()
	if err != nil {
		return 4
	}
	defer c.Close()
	line, _ := bufio.NewReader(c).ReadString('\n')
	var uid, gid int
	fmt.Sscan(line, &uid, &gid)
	msg := fmt.Sprintf("uid=%d listeners=%d", os.Getuid(), len(fr.Listeners))
	p, err := fr.Control.Spawn(context.Background(), uid, gid)
	if err != nil {
		msg += " spawn-error=" + strings.ReplaceAll(err.Error(), " ", "_")
	} else {
		msg += " worker=" + strconv.Itoa(p.PID)
		// Wait for the test to look at the worker, then end it.
		io.ReadAll(c)
		p.Kill()
	}
	fmt.Fprintln(c, msg)
	return 7
}

func requireRoot(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t, "starting workers as other uids")
}

// controlPair starts p serving one end of a control socketpair and
// returns the other end as the front's raw descriptor and client.
func controlPair(t *testing.T, p *Parent) (int, *privsep.Client) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.ServeControl(os.NewFile(uintptr(fds[0]), "ctl")); close(done) }()
	c := privsep.NewClient(os.NewFile(uintptr(fds[1]), "front"))
	t.Cleanup(func() { c.Close(); <-done })
	return fds[1], c
}

func testParent(t *testing.T, base string, logs io.Writer) *Parent {
	if logs == nil {
		logs = io.Discard
	}
	p := &Parent{Policy: store.IDPolicy{MinUID: 1000}, Worker: worker.Config{Base: base, Writer: store.WriterOptions{Hostname: "test.example"}},
		Log: slog.New(slog.NewTextHandler(logs, nil))}
	t.Cleanup(func() { p.Wait(5 * time.Second) })
	return p
}

// The parent refuses forbidden ids whoever asks, even a front that
// writes raw packets; garbage gets no answer and does not stop it.
func TestParentRefusesForbiddenIDs(t *testing.T) {
	var logs testutil.SyncBuffer
	p := testParent(t, "/nonexistent", &logs)
	fd, c := controlPair(t, p)
	buf := make([]byte, privsep.MaxPacket)
	oob := make([]byte, unix.CmsgSpace(4))
	for i, ids := range [][2]int{{0, 1000}, {999, 1000}, {1000, 0}, {0, 0}} {
		if err := unix.Sendmsg(fd, privsep.Request{Op: privsep.OpSpawn, Seq: uint32(100 + i), UID: ids[0], GID: ids[1]}.Encode(), nil, nil, 0); err != nil {
			t.Fatal(err)
		}
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := privsep.DecodeReply(buf[:n])
		if err != nil || rep.Code != privsep.CodeRefused || rep.Seq != uint32(100+i) || oobn != 0 {
			t.Errorf("spawn %v: %+v, %v, %d bytes of rights", ids, rep, err, oobn)
		}
	}
	// Malformed packets: no reply, and the parent keeps serving.
	unix.Sendmsg(fd, []byte{privsep.OpSpawn, 0, 0}, nil, nil, 0)
	unix.Sendmsg(fd, append(privsep.Request{Op: privsep.OpSpawn, UID: 5000, GID: 5000}.Encode(), 0), nil, nil, 0)
	unix.Sendmsg(fd, []byte{9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}, nil, nil, 0)
	_, err := c.Spawn(context.Background(), 0, 5000)
	if store.StatusOf(err) != store.NotPermitted {
		t.Errorf("client: %v, want not-permitted", err)
	}
	if !strings.Contains(logs.String(), "malformed") {
		t.Errorf("malformed requests not logged: %s", logs.String())
	}
	p.mu.Lock()
	n := len(p.workers)
	p.mu.Unlock()
	if n != 0 {
		t.Errorf("%d workers started", n)
	}
}

// A worker from the parent runs as exactly its ids, delivers, and dies
// when the front asks.
func TestParentStartsAndKillsWorkers(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	base := filepath.Join(dir, "mail")
	os.MkdirAll(filepath.Join(base, "u5001"), 0o755)
	os.Chown(filepath.Join(base, "u5001"), 5001, 5002)
	p := testParent(t, base, nil)
	_, c := controlPair(t, p)
	pool := worker.NewPool(c, worker.PoolOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer pool.Close()

	f, _ := os.CreateTemp(dir, "spool")
	defer f.Close()
	f.WriteString("Subject: t\n\nbody\n")
	msg := &store.Message{Sender: "s@example.org", Body: f, Size: 17, Arrival: time.Now(), ID: "Q"}
	rc := store.Recipient{Address: "a@example.com", Path: "u5001/Maildir/", UID: 5001, GID: 5002}
	if errs := pool.Deliver(context.Background(), msg, []store.Recipient{rc}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	ents, _ := os.ReadDir(filepath.Join(base, "u5001/Maildir/new"))
	if len(ents) != 1 {
		t.Fatalf("new/: %v", ents)
	}
	var st syscall.Stat_t
	syscall.Stat(filepath.Join(base, "u5001/Maildir/new", ents[0].Name()), &st)
	if st.Uid != 5001 || st.Gid != 5002 || st.Mode&0o777 != 0o600 {
		t.Errorf("file %d:%d %o", st.Uid, st.Gid, st.Mode&0o777)
	}

	// A second worker straight from the client, to check and to kill.
	proc, err := c.Spawn(context.Background(), 5001, 5002)
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Conn.Close()
	// The worker re-execs once to drop everything and sends its hello only
	// after its own checks: read the hello's first bytes so the creds read
	// below are the serving worker's, not its first stage's.
	tv := unix.NsecToTimeval((10 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(int(proc.Conn.Fd()), unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(proc.Conn, make([]byte, 5)); err != nil {
		t.Fatalf("no hello from the worker: %v", err)
	}
	if cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(proc.PID) + "/cmdline"); !strings.Contains(string(cmd), "-dropped=") {
		t.Errorf("worker %d has not re-executed itself: %q", proc.PID, cmd)
	}
	cr, err := proctree.ReadCreds(proc.PID)
	if err != nil {
		t.Fatal(err)
	}
	if cr.UIDs != [4]int{5001, 5001, 5001, 5001} || cr.GIDs != [4]int{5002, 5002, 5002, 5002} || len(cr.Groups) != 0 ||
		cr.CapEff|cr.CapPrm|cr.CapAmb|cr.CapInh != 0 || !cr.NoNewPrivs {
		t.Errorf("worker creds %+v", cr)
	}
	if err := proc.Kill(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, proc.PID)
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("process %d still exists", pid)
}

func TestRunStartsFront(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "front.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(sock, 0o666)
	var logs testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(Options{User: "nobody", FrontArgs: []string{"test-front"}, Listeners: []net.Listener{l},
			SpoolDirectory: filepath.Join(dir, "spool"), Policy: store.IDPolicy{MinUID: 1000},
			Worker: worker.Config{Base: dir}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	}()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(c, "5001 5001")
	c.(*net.UnixConn).CloseWrite()
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	var code int
	select {
	case code = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return; logs:\n%s", logs.String())
	}
	if !strings.HasPrefix(line, "uid=65534 listeners=1 worker=") {
		t.Errorf("front said %q; logs:\n%s", line, logs.String())
	}
	if code != 7 {
		t.Errorf("Run returned %d, want the front's 7", code)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "spool"), &st); err != nil || st.Uid != 65534 || st.Mode&0o777 != 0o700 {
		t.Errorf("spool: %v uid %d mode %o", err, st.Uid, st.Mode&0o777)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestRunRefusesMissingUser(t *testing.T) {
	var logs testutil.SyncBuffer
	code := Run(Options{User: "no-such-user-vlmtpd", Worker: worker.Config{Base: "/"}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if code == 0 || !strings.Contains(logs.String(), `user \"no-such-user-vlmtpd\"`) || !strings.Contains(logs.String(), "does not exist") {
		t.Errorf("code %d, logs %s", code, logs.String())
	}
}

// FuzzDecodeRequest feeds the parent what a compromised front could send:
// only exact, known layouts with ids in range are accepted, and they
// encode back to the same bytes.
// FuzzDecodeReply feeds the front's decoder.
// FuzzControlFraming sends the parent what a compromised front could put
// on the control socket: any sequence of packets (empty ones, oversized
// ones, ones carrying descriptors), then closes its end or only shuts it
// for writing. The parent must answer a valid request sent after them,
// and stop serving, without an error, only at that end.
//
// Input: per packet one header byte (bit 0: attach a descriptor; bits
// 1-7: length, 127 meaning one byte over the largest packet) and that
// many bytes; a last odd byte picks shutdown instead of close.
func FuzzControlFraming(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})              // one empty packet
	f.Add([]byte{0, 0, 0, 1})     // empty packets, then shutdown
	f.Add([]byte{1})              // an empty packet with a descriptor
	f.Add([]byte{127 << 1, 1, 2}) // truncated
	f.Add(append([]byte{privsep.RequestLen << 1}, privsep.Request{Op: privsep.OpSpawn, Seq: 9, UID: 5000, GID: 5000}.Encode()...))
	f.Add(append([]byte{privsep.RequestLen<<1 | 1}, privsep.Request{Op: privsep.OpKill, Seq: 3, ID: 1}.Encode()...))
	f.Fuzz(func(t *testing.T, in []byte) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		front := fds[1]
		defer func() {
			if front >= 0 {
				unix.Close(front)
			}
		}()
		p := &Parent{Policy: store.IDPolicy{MinUID: math.MaxInt}, Log: slog.New(slog.DiscardHandler)}
		done := make(chan error, 1)
		go func() { done <- p.ServeControl(os.NewFile(uintptr(fds[0]), "ctl")) }()

		null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(null)
		shutdown := false
		sent := 0
		// Blocking sends with a bound: the parent reads while we write.
		tv := unix.NsecToTimeval((10 * time.Second).Nanoseconds())
		unix.SetsockoptTimeval(front, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
		unix.SetsockoptTimeval(front, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		for len(in) > 0 && sent < 64 {
			h := in[0]
			in = in[1:]
			if len(in) == 0 && h&1 == 1 && sent > 0 {
				shutdown = true
				break
			}
			n := int(h >> 1)
			var pkt []byte
			if n == 127 {
				pkt = make([]byte, privsep.MaxPacket+1)
				copy(pkt, in)
			} else {
				n = min(n, len(in))
				pkt, in = in[:n], in[n:]
			}
			var oob []byte
			if h&1 == 1 {
				oob = unix.UnixRights(null)
			}
			if err := unix.Sendmsg(front, pkt, oob, nil, 0); err != nil {
				t.Fatalf("send packet %d: %v", sent, err)
			}
			sent++
		}

		// The parent still serves: a kill of an unknown worker is answered.
		const probe = 0xfffffff0
		if err := unix.Sendmsg(front, privsep.Request{Op: privsep.OpKill, Seq: probe, ID: 1}.Encode(), nil, nil, 0); err != nil {
			t.Fatalf("send probe: %v", err)
		}
		buf := make([]byte, privsep.MaxPacket)
		oob := make([]byte, unix.CmsgSpace(4*8))
		for i := 0; ; i++ {
			n, oobn, _, _, err := unix.Recvmsg(front, buf, oob, unix.MSG_CMSG_CLOEXEC)
			if err != nil || n == 0 {
				t.Fatalf("no answer to the probe after %d packets (reply %d): %v", sent, i, err)
			}
			if oobn > 0 {
				t.Fatalf("descriptors in a reply to a refused request")
			}
			rep, err := privsep.DecodeReply(buf[:n])
			if err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			if rep.Seq == probe {
				break
			}
			if i > sent {
				t.Fatalf("more replies than requests")
			}
		}

		if shutdown {
			unix.Shutdown(front, unix.SHUT_WR)
		} else {
			unix.Close(front)
			front = -1
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("ServeControl at the end: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ServeControl did not notice the end of the stream")
		}
	})
}
