package worker

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/store"
)

// fakeStore is a store.Deliverer for the in-process fake workers.
type fakeStore struct {
	block chan struct{} // when non-nil, Deliver waits on it
	calls atomic.Int32
	body  atomic.Value // string: what the last Deliver read from the spool
}

func (f *fakeStore) Deliver(ctx context.Context, msg *store.Message, rcpts []store.Recipient) []error {
	f.calls.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			errs := make([]error, len(rcpts))
			for i := range errs {
				errs[i] = &store.Error{Status: store.Locked, Op: "lock", Err: ctx.Err()}
			}
			return errs
		}
	}
	b := make([]byte, msg.Size)
	msg.Body.ReadAt(b, 0)
	f.body.Store(string(b))
	errs := make([]error, len(rcpts))
	for i, r := range rcpts {
		if r.Path == "full" {
			errs[i] = &store.Error{Status: store.OverLimit, Op: "write", Path: r.Path}
		}
	}
	return errs
}

func (f *fakeStore) Permits(uid, gid int) error { return nil }

func (f *fakeStore) MailboxSize(ctx context.Context, r store.Recipient) (int64, error) {
	return int64(len(r.Path)), nil
}

// fakeSpawner runs the real worker server loop in a goroutine over a real
// socketpair, with a fake store: the pool's logic without processes.
type fakeSpawner struct {
	t          *testing.T
	st         *fakeStore
	version    uint32
	ignoreStop bool          // a worker too stuck to answer SIGTERM
	exitDelay  time.Duration // how long a worker takes to exit after EOF
	mu         sync.Mutex
	started    int
	maxLive    int // the most workers alive at once
	live       map[int]bool
	killed     int
	workers    map[int]*conn // the worker's end, by id
	running    sync.WaitGroup
}

func (s *fakeSpawner) Permits(uid, gid int) error { return nil }

func (s *fakeSpawner) Spawn(ctx context.Context, uid, gid int) (*Process, error) {
	front, wk := socketPair(s.t)
	s.mu.Lock()
	s.started++
	id := s.started
	if s.live == nil {
		s.live = map[int]bool{}
	}
	s.live[id] = true
	s.maxLive = max(s.maxLive, len(s.live))
	if s.workers == nil {
		s.workers = map[int]*conn{}
	}
	s.workers[id] = wk
	s.mu.Unlock()
	v := s.version
	if v == 0 {
		v = ProtocolVersion
	}
	ctx, cancel := context.WithCancel(context.Background())
	// The fake worker reads its raw descriptor in a goroutine: end it (a
	// shutdown wakes it with EOF) and wait for it before socketPair's
	// cleanup frees the descriptor numbers, or a lingering reader could
	// read a later test's socket that reuses the number.
	s.running.Add(1)
	s.t.Cleanup(func() {
		unix.Shutdown(wk.fd, unix.SHUT_RDWR)
		unix.Shutdown(front.fd, unix.SHUT_RDWR)
		s.running.Wait()
	})
	go func() {
		defer s.running.Done()
		defer func() {
			// A process is gone before the kernel closes its socket.
			time.Sleep(s.exitDelay)
			s.mu.Lock()
			delete(s.live, id)
			s.mu.Unlock()
			wk.Close()
		}()
		if wk.writeFrame(frameHello, hello{Version: v, Build: BuildID(), PID: id, UID: uid, GID: gid}.encode(), nil) != nil {
			return
		}
		srv := &server{cfg: Config{UID: uid, GID: gid}, c: wk, d: s.st}
		srv.serve(ctx)
	}()
	stop := func() error {
		if !s.ignoreStop {
			cancel()
		}
		return nil
	}
	kill := func() error {
		s.mu.Lock()
		s.killed++
		s.mu.Unlock()
		// Like a killed process: both ends see EOF, but the descriptors
		// stay their owners' to close.
		unix.Shutdown(wk.fd, unix.SHUT_RDWR)
		unix.Shutdown(front.fd, unix.SHUT_RDWR)
		return nil
	}
	return &Process{Conn: front.f, PID: id, Kill: kill, Stop: stop}, nil
}

func (s *fakeSpawner) counts() (started, live, killed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started, len(s.live), s.killed
}

func spoolFile(t testing.TB, body string) *store.Message {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.WriteString(body); err != nil {
		t.Fatal(err)
	}
	return &store.Message{Sender: "sender@example.org", Body: f, Size: int64(len(body)), Arrival: time.Now(), ID: "TESTQ"}
}

func quietLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestPoolGroupsByOwnerAndReusesWorkers(t *testing.T) {
	sp := &fakeSpawner{t: t, st: &fakeStore{}}
	p := NewPool(sp, PoolOptions{Logger: quietLogger(t)})
	defer p.Close()
	msg := spoolFile(t, "Subject: x\n\nbody\n")
	rcpts := []store.Recipient{
		{Path: "a", UID: 5001, GID: 5001},
		{Path: "full", UID: 5002, GID: 5002},
		{Path: "b", UID: 5001, GID: 5001},
		{Path: "c", UID: 5001, GID: 5003},
	}
	for round := 0; round < 3; round++ {
		errs := p.Deliver(context.Background(), msg, rcpts)
		if errs[0] != nil || errs[2] != nil || errs[3] != nil || store.StatusOf(errs[1]) != store.OverLimit {
			t.Fatalf("round %d: %v", round, errs)
		}
	}
	if got := sp.st.calls.Load(); got != 9 {
		t.Errorf("%d requests, want one per (uid, gid) group per message: 9", got)
	}
	if started, _, _ := sp.counts(); started != 3 {
		t.Errorf("%d workers started, want 3 reused", started)
	}
	if got := sp.st.body.Load(); got != "Subject: x\n\nbody\n" {
		t.Errorf("worker read %q", got)
	}
	n, err := p.MailboxSize(context.Background(), store.Recipient{Path: "abcd", UID: 5001, GID: 5001})
	if n != 4 || err != nil {
		t.Errorf("MailboxSize = %d, %v", n, err)
	}
}

func TestPoolCapsAndTimers(t *testing.T) {
	sp := &fakeSpawner{t: t, st: &fakeStore{}}
	p := NewPool(sp, PoolOptions{Logger: quietLogger(t), MaxWorkers: 1, MaxDeliveries: 2, IdleTimeout: 300 * time.Millisecond})
	defer p.Close()
	msg := spoolFile(t, "x\n")
	a := []store.Recipient{{Path: "a", UID: 5001, GID: 5001}}
	b := []store.Recipient{{Path: "b", UID: 5002, GID: 5002}}
	mustDeliver := func(r []store.Recipient) {
		t.Helper()
		if errs := p.Deliver(context.Background(), msg, r); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	mustDeliver(a)
	mustDeliver(b) // at the cap: a's idle worker makes room
	waitFor(t, "the evicted worker to end", func() bool { _, live, _ := sp.counts(); return live == 1 })
	mustDeliver(b) // second delivery: b's worker has served its share
	waitFor(t, "the used-up worker to end", func() bool { _, live, _ := sp.counts(); return live == 0 })
	if started, _, _ := sp.counts(); started != 2 {
		t.Errorf("%d workers started, want 2", started)
	}
	mustDeliver(a)
	waitFor(t, "the idle worker to time out", func() bool { _, live, _ := sp.counts(); return live == 0 })
	if started, _, killed := sp.counts(); started != 3 || killed != 0 {
		t.Errorf("started %d killed %d, want 3 and 0", started, killed)
	}
}

// worker_limit bounds processes: a worker evicted to make room, or retired
// after its share of deliveries, counts until it has exited, so its
// replacement starts only then.
func TestPoolCountsWorkersUntilTheyExit(t *testing.T) {
	sp := &fakeSpawner{t: t, st: &fakeStore{}, exitDelay: 200 * time.Millisecond}
	p := NewPool(sp, PoolOptions{Logger: quietLogger(t), MaxWorkers: 1, MaxDeliveries: 2})
	defer p.Close()
	msg := spoolFile(t, "x\n")
	for i, uid := range []int{5001, 5002, 5001, 5001, 5003} {
		if errs := p.Deliver(context.Background(), msg, []store.Recipient{{Path: "a", UID: uid, GID: uid}}); errs[0] != nil {
			t.Fatalf("delivery %d: %v", i, errs[0])
		}
	}
	sp.mu.Lock()
	maxLive, started := sp.maxLive, sp.started
	sp.mu.Unlock()
	if started != 4 {
		t.Errorf("%d workers started, want 4", started)
	}
	if maxLive != 1 {
		t.Fatalf("%d workers alive at once with worker_limit 1", maxLive)
	}
}

func TestPoolKillsHungWorker(t *testing.T) {
	st := &fakeStore{block: make(chan struct{})}
	defer close(st.block)
	sp := &fakeSpawner{t: t, st: st, ignoreStop: true}
	var logs bytes.Buffer
	p := NewPool(sp, PoolOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), DeliveryTimeout: 200 * time.Millisecond, StopGrace: 100 * time.Millisecond})
	defer p.Close()
	msg := spoolFile(t, "x\n")
	errs := p.Deliver(context.Background(), msg, []store.Recipient{{Path: "a", UID: 5001, GID: 5001}, {Path: "b", UID: 5001, GID: 5001}})
	for _, err := range errs {
		if store.StatusOf(err) != store.WorkerFailed {
			t.Errorf("got %v, want worker-failed", err)
		}
	}
	if _, _, killed := sp.counts(); killed != 1 {
		t.Errorf("%d kills, want 1", killed)
	}
	if !bytes.Contains(logs.Bytes(), []byte("TESTQ")) {
		t.Errorf("log does not name the queue id: %s", logs.String())
	}
}

func TestPoolRefusesOtherProtocolVersion(t *testing.T) {
	sp := &fakeSpawner{t: t, st: &fakeStore{}, version: ProtocolVersion + 1}
	var logs bytes.Buffer
	p := NewPool(sp, PoolOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer p.Close()
	errs := p.Deliver(context.Background(), spoolFile(t, "x\n"), []store.Recipient{{Path: "a", UID: 5001, GID: 5001}})
	if store.StatusOf(errs[0]) != store.WorkerFailed {
		t.Fatalf("got %v, want worker-failed", errs[0])
	}
	if !bytes.Contains(logs.Bytes(), []byte("upgraded")) {
		t.Errorf("log does not say why: %s", logs.String())
	}
	if sp.st.calls.Load() != 0 {
		t.Error("a worker of another version got the delivery")
	}
}

func TestPoolRefusesOtherUIDWithoutRoot(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("single-user mode needs a non-root uid; covered as root by tests/privsep_test.go")
	}
	var logs bytes.Buffer
	p := NewPool(&LocalSpawner{Config: Config{Base: t.TempDir()}}, PoolOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer p.Close()
	errs := p.Deliver(context.Background(), spoolFile(t, "x\n"), []store.Recipient{{Path: "a/", UID: os.Getuid() + 1, GID: os.Getgid()}})
	if store.StatusOf(errs[0]) != store.NotPermitted {
		t.Fatalf("got %v, want not-permitted", errs[0])
	}
	if !bytes.Contains(logs.Bytes(), []byte("privileges missing")) {
		t.Errorf("log does not say privileges are missing: %s", logs.String())
	}
}

func TestPoolReplacesWorkerThatDiedIdle(t *testing.T) {
	sp := &fakeSpawner{t: t, st: &fakeStore{}}
	p := NewPool(sp, PoolOptions{Logger: quietLogger(t)})
	defer p.Close()
	msg := spoolFile(t, "x\n")
	r := []store.Recipient{{Path: "a", UID: 5001, GID: 5001}}
	if errs := p.Deliver(context.Background(), msg, r); errs[0] != nil {
		t.Fatal(errs[0])
	}
	sp.mu.Lock()
	unix.Shutdown(sp.workers[1].fd, unix.SHUT_RDWR) // the idle worker dies
	sp.mu.Unlock()
	waitFor(t, "the worker to end", func() bool { _, live, _ := sp.counts(); return live == 0 })
	if errs := p.Deliver(context.Background(), msg, r); errs[0] != nil {
		t.Fatalf("the message after an idle worker's death: %v", errs[0])
	}
	if started, _, _ := sp.counts(); started != 2 {
		t.Errorf("%d workers started, want 2", started)
	}
}

// A worker past its deadline is asked to stop first; one that answers
// reports what really happened and is not killed.
func TestPoolStopsLateWorkerGracefully(t *testing.T) {
	st := &fakeStore{block: make(chan struct{})}
	defer close(st.block)
	sp := &fakeSpawner{t: t, st: st}
	p := NewPool(sp, PoolOptions{Logger: quietLogger(t), DeliveryTimeout: 200 * time.Millisecond})
	defer p.Close()
	errs := p.Deliver(context.Background(), spoolFile(t, "x\n"), []store.Recipient{{Path: "a", UID: 5001, GID: 5001}})
	if store.StatusOf(errs[0]) != store.Locked {
		t.Errorf("got %v, want the worker's own answer (locked)", errs[0])
	}
	waitFor(t, "the stopped worker to end", func() bool { _, live, _ := sp.counts(); return live == 0 })
	if _, _, killed := sp.counts(); killed != 0 {
		t.Errorf("%d kills, want 0", killed)
	}
}

func TestPoolPermits(t *testing.T) {
	p := NewPool(&LocalSpawner{Config: Config{Base: "/"}}, PoolOptions{Logger: quietLogger(t)})
	defer p.Close()
	if store.StatusOf(p.Permits(0, 5000)) != store.NotPermitted || store.StatusOf(p.Permits(5000, 0)) != store.NotPermitted {
		t.Error("uid or gid 0 permitted")
	}
	me, mygid := os.Getuid(), os.Getgid()
	if me == 0 {
		if err := p.Permits(5001, 5002); err != nil {
			t.Errorf("root may not deliver as 5001:5002: %v", err)
		}
		return
	}
	if err := p.Permits(me, mygid); err != nil {
		t.Errorf("own ids: %v", err)
	}
	if store.StatusOf(p.Permits(me+1, mygid)) != store.NotPermitted {
		t.Error("another uid permitted without root")
	}
}
