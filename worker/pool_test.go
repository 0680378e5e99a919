package worker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/store"
)

// fakeStore is a store.Deliverer for the in-process fake workers.
type fakeStore struct {
	block  chan struct{} // when non-nil, Deliver waits on it
	tokens chan struct{} // when non-nil, each Deliver waits for one
	calls  atomic.Int32
	body   atomic.Value // string: what the last Deliver read from the spool

	mu        sync.Mutex
	batches   []int    // DeliverBatch calls: messages in each
	delivered []string // bodies delivered, in order
}

func (f *fakeStore) Deliver(ctx context.Context, msg *store.Message, rcpts []store.Recipient) []error {
	f.calls.Add(1)
	if f.block != nil || f.tokens != nil {
		select {
		case <-f.block:
		case <-f.tokens:
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
		switch {
		case r.Path == "full":
			errs[i] = &store.Error{Status: store.OverLimit, Op: "write", Path: r.Path}
		case bytes.HasPrefix(b, []byte("fail")):
			// A result that depends on the message: a reply routed to
			// the wrong caller shows.
			errs[i] = &store.Error{Status: store.Locked, Op: "lock", Path: r.Path}
		}
	}
	f.mu.Lock()
	f.delivered = append(f.delivered, string(b))
	f.mu.Unlock()
	return errs
}

// DeliverBatch records the batch's size and delivers each message.
func (f *fakeStore) DeliverBatch(ctx context.Context, ds []store.Delivery) []store.Delivered {
	f.mu.Lock()
	f.batches = append(f.batches, len(ds))
	f.mu.Unlock()
	out := make([]store.Delivered, len(ds))
	for i, d := range ds {
		out[i] = store.Delivered{Errs: f.Deliver(ctx, d.Msg, d.Rcpts), Times: make([]store.Timing, len(d.Rcpts)), Outs: make([]store.Outbound, len(d.Rcpts))}
	}
	return out
}

func (f *fakeStore) record() (batches []int, delivered []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches), slices.Clone(f.delivered)
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

// queued is how many deliveries wait for a worker of key.
func (p *Pool) queued(key ids) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue[key])
}

// waiting starts one delivery per body to its own recipient of 5001:5001
// (path "m<i>") and returns their results once all are done.
func waiting(t *testing.T, p *Pool, ctx context.Context, bodies ...string) func() []error {
	t.Helper()
	errs := make([]error, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		msg := spoolFile(t, b)
		wg.Go(func() {
			errs[i] = p.Deliver(ctx, msg, []store.Recipient{{Path: fmt.Sprintf("m%d", i), UID: 5001, GID: 5001}})[0]
		})
	}
	return func() []error { wg.Wait(); return errs }
}

// Deliveries that wait for a busy owner's worker go to the next free one
// in one request; each caller gets its own message's result.
func TestPoolBatchesWaitingDeliveries(t *testing.T) {
	st := &fakeStore{block: make(chan struct{})}
	sp := &fakeSpawner{t: t, st: st}
	p := NewPool(sp, PoolOptions{Logger: quietLogger(t), OwnerWorkers: 1})
	defer p.Close()
	k := ids{5001, 5001}
	first := waiting(t, p, context.Background(), "first")
	waitFor(t, "the first delivery to reach the store", func() bool { return st.calls.Load() == 1 })
	rest := waiting(t, p, context.Background(), "ok 1", "fail 2", "ok 3", "fail 4", "ok 5")
	waitFor(t, "five deliveries to wait", func() bool { return p.queued(k) == 5 })
	close(st.block)
	if errs := first(); errs[0] != nil {
		t.Fatalf("first: %v", errs[0])
	}
	for i, err := range rest() {
		want := store.OK
		if i%2 == 1 {
			want = store.Locked
		}
		if store.StatusOf(err) != want {
			t.Errorf("delivery %d: %v, want %v", i+1, err, want)
		}
	}
	batches, delivered := st.record()
	if !slices.Equal(batches, []int{1, 5}) {
		t.Errorf("requests of %v messages, want [1 5]", batches)
	}
	slices.Sort(delivered)
	if want := []string{"fail 2", "fail 4", "first", "ok 1", "ok 3", "ok 5"}; !slices.Equal(delivered, want) {
		t.Errorf("delivered %q, want each once: %q", delivered, want)
	}
	if started, _, _ := sp.counts(); started != 1 {
		t.Errorf("%d workers started with worker_owner_limit 1", started)
	}
	if st := p.Stats(); st.Idle != 1 || st.Busy != 0 {
		t.Errorf("after: %+v, want the one worker idle", st)
	}
}

// A worker killed in the middle of a request fails every message of it
// with a temporary error, never a success.
func TestPoolBatchWorkerKilled(t *testing.T) {
	st := &fakeStore{block: make(chan struct{})}
	defer close(st.block)
	sp := &fakeSpawner{t: t, st: st}
	p := NewPool(sp, PoolOptions{Logger: quietLogger(t), OwnerWorkers: 1})
	defer p.Close()
	k := ids{5001, 5001}
	killWorker := func(id int) {
		sp.mu.Lock()
		wk := sp.workers[id]
		sp.mu.Unlock()
		unix.Shutdown(wk.fd, unix.SHUT_RDWR)
	}
	first := waiting(t, p, context.Background(), "first")
	waitFor(t, "the first delivery to reach the store", func() bool { return st.calls.Load() == 1 })
	rest := waiting(t, p, context.Background(), "a", "b", "c")
	waitFor(t, "three deliveries to wait", func() bool { return p.queued(k) == 3 })
	killWorker(1)
	if errs := first(); store.StatusOf(errs[0]) != store.WorkerFailed {
		t.Fatalf("first: %v, want worker-failed", errs[0])
	}
	waitFor(t, "the three in one request", func() bool { b, _ := st.record(); return len(b) == 2 && b[1] == 3 })
	killWorker(2)
	for i, err := range rest() {
		if store.StatusOf(err) != store.WorkerFailed {
			t.Errorf("delivery %d: %v, want worker-failed", i, err)
		}
	}
	if _, delivered := st.record(); len(delivered) != 0 {
		t.Errorf("delivered %q", delivered)
	}
}

// A caller that gives up while waiting leaves the queue and is told its
// message was not delivered; the others are not affected. Once in a
// request, one caller's cancellation does not stop the worker; every
// caller's does.
func TestPoolBatchCancellation(t *testing.T) {
	st := &fakeStore{block: make(chan struct{})}
	sp := &fakeSpawner{t: t, st: st}
	p := NewPool(sp, PoolOptions{Logger: quietLogger(t), OwnerWorkers: 1})
	defer p.Close()
	k := ids{5001, 5001}
	first := waiting(t, p, context.Background(), "first")
	waitFor(t, "the first delivery to reach the store", func() bool { return st.calls.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	gone := waiting(t, p, ctx, "cancelled")
	stay := waiting(t, p, context.Background(), "stays")
	waitFor(t, "two deliveries to wait", func() bool { return p.queued(k) == 2 })
	cancel()
	if errs := gone(); store.StatusOf(errs[0]) != store.Temporary {
		t.Errorf("cancelled while waiting: %v, want temporary", errs[0])
	}
	if n := p.queued(k); n != 1 {
		t.Errorf("%d waiting after the cancellation, want 1", n)
	}
	close(st.block)
	if errs := first(); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if errs := stay(); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if _, delivered := st.record(); slices.Contains(delivered, "cancelled") {
		t.Error("the cancelled message was delivered")
	}

	// In a request: one caller's cancellation changes nothing, both
	// callers' stop the worker, which answers what it did.
	for _, both := range []bool{false, true} {
		st := &fakeStore{tokens: make(chan struct{})}
		sp := &fakeSpawner{t: t, st: st}
		p := NewPool(sp, PoolOptions{Logger: quietLogger(t), OwnerWorkers: 1})
		defer p.Close()
		first := waiting(t, p, context.Background(), "first")
		waitFor(t, "the first delivery to reach the store", func() bool { return st.calls.Load() == 1 })
		ctxA, cancelA := context.WithCancel(context.Background())
		ctxB, cancelB := context.WithCancel(context.Background())
		a := waiting(t, p, ctxA, "a")
		b := waiting(t, p, ctxB, "b")
		waitFor(t, "two deliveries to wait", func() bool { return p.queued(k) == 2 })
		st.tokens <- struct{}{}
		if errs := first(); errs[0] != nil {
			t.Fatal(errs[0])
		}
		waitFor(t, "the request of two", func() bool { b, _ := st.record(); return len(b) == 2 && b[1] == 2 })
		cancelA()
		want := store.OK
		if both {
			cancelB()
			want = store.Locked // the stopped fake's answer
		} else {
			time.Sleep(50 * time.Millisecond) // a stop would show now
			st.tokens <- struct{}{}
			st.tokens <- struct{}{}
		}
		ea, eb := a()[0], b()[0]
		if store.StatusOf(ea) != want || store.StatusOf(eb) != want {
			t.Errorf("both cancelled %v: %v, %v; want %v", both, ea, eb, want)
		}
		cancelB()
	}
}

// A size query at the owner's limit waits its turn with the deliveries
// rather than start another worker, and is never sent as part of a batch.
func TestPoolQueryWaitsInTheOwnersQueue(t *testing.T) {
	st := &fakeStore{tokens: make(chan struct{})}
	sp := &fakeSpawner{t: t, st: st}
	p := NewPool(sp, PoolOptions{Logger: quietLogger(t), OwnerWorkers: 1})
	defer p.Close()
	k := ids{5001, 5001}
	first := waiting(t, p, context.Background(), "first")
	waitFor(t, "the first delivery to reach the store", func() bool { return st.calls.Load() == 1 })
	type sized struct {
		n   int64
		err error
	}
	got := make(chan sized, 1)
	go func() {
		n, err := p.MailboxSize(context.Background(), store.Recipient{Path: "abcd", UID: 5001, GID: 5001})
		got <- sized{n, err}
	}()
	waitFor(t, "the query to wait", func() bool { return p.queued(k) == 1 })
	second := waiting(t, p, context.Background(), "second")
	waitFor(t, "a delivery to wait behind it", func() bool { return p.queued(k) == 2 })
	st.tokens <- struct{}{}
	if errs := first(); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if r := <-got; r.n != 4 || r.err != nil {
		t.Errorf("MailboxSize = %d, %v", r.n, r.err)
	}
	st.tokens <- struct{}{}
	if errs := second(); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if started, _, _ := sp.counts(); started != 1 {
		t.Errorf("%d workers started with worker_owner_limit 1", started)
	}
}
