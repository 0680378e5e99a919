// Runs in: the front (its pool of workers).

package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/scmrights"
	"github.com/vlmtpd/vlmtpd/store"
)

// PoolOptions tune a Pool. The first four are settings: the caller passes
// the configuration's values (cmd/vlmtpd); a zero one gets the Default of
// the same name, the configuration's default (server/config's table;
// TestPackageDefaultsAgree there keeps them equal). The others are not
// settings and zero gets the default written beside them.
type PoolOptions struct {
	// IdleTimeout ends a worker nobody used for this long
	// (worker_idle_timeout).
	IdleTimeout time.Duration
	// MaxDeliveries is how many messages one worker delivers before it is
	// replaced (worker_max_use); a request of several counts each.
	MaxDeliveries int
	// MaxWorkers caps the worker processes alive at once, over all uids
	// (worker_limit). At the cap, an idle worker of another uid is ended
	// to make room, else the request waits.
	MaxWorkers int
	// OwnerWorkers caps the workers started for deliveries to one owner
	// (uid, gid) (worker_owner_limit). Deliveries beyond them wait, and
	// a worker that comes free takes all that waited for its owner (up to
	// maxBatch) in one request, which makes them durable together: one
	// fsync of each new/ for all of them.
	OwnerWorkers int
	// DeliveryTimeout bounds one delivery request (all recipients of a
	// uid group) when the context has no earlier deadline; a worker past it
	// is killed and its recipients get WorkerFailed (delivery_timeout, below
	// Postfix's lmtp_data_done_timeout of 600s).
	DeliveryTimeout time.Duration
	// QueryTimeout bounds a mailbox size query; default 30s.
	QueryTimeout time.Duration
	// StartTimeout bounds a worker's start and hello; default 10s.
	StartTimeout time.Duration
	// StopGrace is how long a worker past its deadline has, after SIGTERM,
	// to answer before it is killed; default 5s. A worker that answers
	// in time reports what it really did, and an mbox append in progress
	// is finished or truncated back by the writer, never cut off.
	StopGrace time.Duration
	Logger    *slog.Logger
}

// The configuration's defaults, for a PoolOptions field left zero.
const (
	DefaultIdleTimeout     = 60 * time.Second
	DefaultMaxDeliveries   = 10000
	DefaultMaxWorkers      = 64
	DefaultOwnerWorkers    = 64
	DefaultDeliveryTimeout = 300 * time.Second
)

func (o *PoolOptions) defaults() {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = DefaultMaxDeliveries
	}
	if o.MaxWorkers <= 0 {
		o.MaxWorkers = DefaultMaxWorkers
	}
	if o.OwnerWorkers <= 0 {
		o.OwnerWorkers = DefaultOwnerWorkers
	}
	if o.DeliveryTimeout <= 0 {
		o.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 30 * time.Second
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 10 * time.Second
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

type ids struct{ uid, gid int }

// Pool is a store.Deliverer that hands each message to long-lived worker
// processes, one request per (uid, gid) group of recipients, or one
// request for the groups of several messages that waited for the same
// owner (OwnerWorkers). It is safe for concurrent use.
//
// A started delivery runs until it finishes or its deadline passes; the
// cancellation of a context without a deadline does not interrupt it,
// because killing a worker in the middle of an mbox append is worse than
// finishing it.
type Pool struct {
	spawn Spawner
	opts  PoolOptions
	log   *slog.Logger

	mu     sync.Mutex
	idle   map[ids][]*proc    // most recently used last
	total  int                // workers alive or starting
	owned  map[ids]int        // the same, per owner
	queue  map[ids][]*pending // deliveries waiting for a worker, oldest first
	wake   chan struct{}      // closed and replaced whenever a slot may be free
	closed bool
	stop   chan struct{}
	warned bool // build mismatch logged

	// live are the pids (from their hello) of workers not yet exited.
	live map[int]bool

	// For Stats: workers being started, told to exit but not gone yet,
	// and counts since the pool was made.
	starting int
	started  int64
	exiting  atomic.Int64
	failed   atomic.Int64
}

// PoolStats is a snapshot of the pool's workers for metrics.
type PoolStats struct {
	// Workers by state: "idle" (waiting for a request), "busy" (serving
	// one), "starting" and "exiting".
	Idle, Busy, Starting, Exiting int
	// Started counts workers started; Failed counts those that ended
	// because they failed (crashed, hung past their deadline, broke the
	// protocol, died while idle, or failed to start after being spawned).
	// Each failed one is replaced by a new worker when next needed.
	Started, Failed int64
}

// Stats returns the pool's current counts.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle := 0
	for _, ws := range p.idle {
		idle += len(ws)
	}
	exiting := int(p.exiting.Load())
	return PoolStats{Idle: idle, Busy: max(p.total-idle-p.starting-exiting, 0), Starting: p.starting, Exiting: exiting,
		Started: p.started, Failed: p.failed.Load()}
}

// WorkerPIDs lists the process ids of the workers that said hello and
// have not exited yet (for their resource use in the metrics).
func (p *Pool) WorkerPIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := make([]int, 0, len(p.live))
	for pid := range p.live {
		pids = append(pids, pid)
	}
	return pids
}

var _ store.Deliverer = (*Pool)(nil)

// proc is one worker as the pool tracks it.
type proc struct {
	key      ids
	pid      int // from its hello
	p        *Process
	c        *conn
	seq      uint64
	served   int
	lastUsed time.Time
	stopped  bool // sent SIGTERM: it exits after its answer
}

// NewPool returns a pool that starts workers with spawn.
func NewPool(spawn Spawner, opts PoolOptions) *Pool {
	opts.defaults()
	p := &Pool{
		spawn: spawn,
		opts:  opts,
		log:   opts.Logger,
		idle:  map[ids][]*proc{},
		owned: map[ids]int{},
		queue: map[ids][]*pending{},
		live:  map[int]bool{},
		wake:  make(chan struct{}),
		stop:  make(chan struct{}),
	}
	go p.reapIdle()
	return p
}

// Close ends every idle worker and makes later requests fail; workers busy
// now end when their request is done.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.stop)
	var victims []*proc
	for k, ws := range p.idle {
		victims = append(victims, ws...)
		delete(p.idle, k)
	}
	p.signal() // waiters see closed
	p.mu.Unlock()
	for _, w := range victims {
		p.retire(w)
	}
	return nil
}

// signal wakes waiters; p.mu held.
func (p *Pool) signal() {
	close(p.wake)
	p.wake = make(chan struct{})
}

func (p *Pool) reapIdle() {
	t := time.NewTicker(max(p.opts.IdleTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			var victims []*proc
			p.mu.Lock()
			for k, ws := range p.idle {
				keep := ws[:0]
				for _, w := range ws {
					if now.Sub(w.lastUsed) >= p.opts.IdleTimeout {
						victims = append(victims, w)
					} else {
						keep = append(keep, w)
					}
				}
				if len(keep) == 0 {
					delete(p.idle, k)
				} else {
					p.idle[k] = keep
				}
			}
			p.mu.Unlock()
			for _, w := range victims {
				p.retire(w)
			}
		}
	}
}

var errPoolClosed = errors.New("worker pool is closed")

// tryGet takes an idle worker of key, or reserves the slot of a new one
// (start: the caller then calls startReserved) if fewer than OwnerWorkers
// workers of key and MaxWorkers in all are alive, or neither: the caller
// waits. At MaxWorkers it ends the least recently used idle worker (of
// another key) to make room. p.mu held.
func (p *Pool) tryGet(key ids) (w *proc, start bool, err error) {
	for {
		if p.closed {
			return nil, false, errPoolClosed
		}
		ws := p.idle[key]
		if len(ws) == 0 {
			break
		}
		w := ws[len(ws)-1]
		if len(ws) == 1 {
			delete(p.idle, key)
		} else {
			p.idle[key] = ws[:len(ws)-1]
		}
		if w.c.idleAndAlive() {
			return w, false, nil
		}
		p.log.Warn("an idle worker exited; replacing it", "worker_pid", w.p.PID, "uid", key.uid, "gid", key.gid)
		p.failed.Add(1)
		p.retire(w)
	}
	if p.owned[key] >= p.opts.OwnerWorkers {
		return nil, false, nil
	}
	if p.total < p.opts.MaxWorkers {
		p.total++
		p.owned[key]++
		p.starting++
		return nil, true, nil
	}
	if v := p.evictOldest(); v != nil {
		// Its slot frees up when it has exited: the caller waits for that.
		p.retire(v)
	}
	return nil, false, nil
}

// startReserved starts a worker in the slot tryGet reserved.
func (p *Pool) startReserved(ctx context.Context, key ids) (*proc, error) {
	w, spawned, err := p.start(ctx, key)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starting--
	if spawned {
		p.started++
	}
	if err != nil {
		if !spawned { // else start retired it
			p.release(key)
		}
		return nil, err
	}
	p.live[w.pid] = true
	return w, nil
}

// release gives back a worker's slot; p.mu held.
func (p *Pool) release(key ids) {
	p.total--
	if p.owned[key]--; p.owned[key] <= 0 {
		delete(p.owned, key)
	}
	p.signal()
}

// evictOldest removes the least recently used idle worker; p.mu held.
func (p *Pool) evictOldest() *proc {
	var victim *proc
	for _, ws := range p.idle {
		if len(ws) > 0 && (victim == nil || ws[0].lastUsed.Before(victim.lastUsed)) {
			victim = ws[0]
		}
	}
	if victim != nil {
		ws := p.idle[victim.key][1:]
		if len(ws) == 0 {
			delete(p.idle, victim.key)
		} else {
			p.idle[victim.key] = ws
		}
	}
	return victim
}

// put returns a worker after a request that delivered n messages (a
// query counts as none); broken ones and ones that served their share are
// ended. A delivery waiting for the worker's owner gets it straight away.
func (p *Pool) put(w *proc, broken bool, n int) {
	w.served += n
	w.lastUsed = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if broken || p.closed || w.served >= p.opts.MaxDeliveries {
		p.retire(w)
		return
	}
	if q := p.queue[w.key]; len(q) > 0 {
		next := q[0]
		p.dequeue(next)
		next.worker = w
		close(next.handed)
		return
	}
	p.idle[w.key] = append(p.idle[w.key], w)
	p.signal()
}

// retire ends a worker the pool no longer uses. Its slot counts against
// MaxWorkers until the worker has really exited (its end of the socket
// closed), so that worker_limit bounds processes, not pool entries: an
// evicted worker finishing its exit and its replacement are never alive
// at once beyond the limit. A worker that has not exited StopGrace after
// being told to is killed; one that still holds its socket StopGrace after
// that (stuck in the kernel) stops being counted, with an error logged.
// It does not block; p.mu may be held.
func (p *Pool) retire(w *proc) {
	p.exiting.Add(1) // p.mu may be held: an atomic
	go func() {
		if !w.c.waitExit(time.Now().Add(p.opts.StopGrace)) {
			p.log.Warn("worker did not exit when told to; killing it", "worker_pid", w.p.PID, "uid", w.key.uid, "gid", w.key.gid)
			if w.p.Kill != nil {
				w.p.Kill()
			}
			if !w.c.waitExit(time.Now().Add(p.opts.StopGrace)) {
				p.log.Error("killed worker has still not exited; no longer counting it against worker_limit",
					"worker_pid", w.p.PID, "uid", w.key.uid, "gid", w.key.gid)
			}
		}
		w.c.Close()
		p.mu.Lock()
		delete(p.live, w.pid)
		p.release(w.key)
		p.exiting.Add(-1)
		p.mu.Unlock()
	}()
}

// kill ends a worker that failed or hung; the caller then puts it back as
// broken.
func (p *Pool) kill(w *proc, why error) {
	p.failed.Add(1)
	p.log.Error("worker failed; killing it", "worker_pid", w.p.PID, "uid", w.key.uid, "gid", w.key.gid, "err", why)
	if w.p.Kill != nil {
		if err := w.p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.log.Warn("kill worker", "worker_pid", w.p.PID, "err", err)
		}
	}
}

// start spawns a worker and checks its hello. Once a process was spawned
// (spawned is true) a failure retires it, which frees its slot.
func (p *Pool) start(ctx context.Context, key ids) (_ *proc, spawned bool, _ error) {
	sctx, cancel := context.WithTimeout(ctx, p.opts.StartTimeout)
	defer cancel()
	pr, err := p.spawn.Spawn(sctx, key.uid, key.gid)
	if err != nil {
		return nil, false, err
	}
	w := &proc{key: key, p: pr, c: newConn(pr.Conn), lastUsed: time.Now()}
	fail := func(err error) (*proc, bool, error) {
		p.kill(w, err)
		p.retire(w)
		return nil, true, fmt.Errorf("worker for %d:%d: %w", key.uid, key.gid, err)
	}
	deadline, _ := sctx.Deadline()
	w.c.setDeadline(deadline)
	typ, payload, fds, err := w.c.readFrame()
	scmrights.Close(fds)
	if err == io.EOF {
		return fail(errors.New("exited before its hello (see its log line)"))
	}
	if err != nil {
		return fail(err)
	}
	if typ != frameHello {
		return fail(protoErr("first frame has type %d, not hello", typ))
	}
	h, err := decodeHello(payload)
	if err != nil {
		return fail(err)
	}
	if h.Version != ProtocolVersion {
		return fail(fmt.Errorf("worker binary speaks protocol %d, this process %d: the binary was upgraded, restart vlmtpd", h.Version, ProtocolVersion))
	}
	if h.UID != key.uid || h.GID != key.gid {
		return fail(fmt.Errorf("worker claims %d:%d", h.UID, h.GID))
	}
	if b := BuildID(); h.Build != b {
		p.mu.Lock()
		warn := !p.warned
		p.warned = true
		p.mu.Unlock()
		if warn {
			p.log.Warn("worker binary differs from this process; restart vlmtpd to finish an upgrade", "worker_build", h.Build, "build", b)
		}
	}
	w.c.setDeadline(time.Time{})
	w.pid = h.PID
	p.log.Debug("worker started", "worker_pid", h.PID, "uid", key.uid, "gid", key.gid)
	return w, true, nil
}

// roundTrip sends one request and reads its reply before the deadline.
func (p *Pool) roundTrip(w *proc, deadline time.Time, typ byte, payload []byte, fds []int, want byte) ([]byte, error) {
	// Every request sets its own deadline, so it is not cleared after.
	w.c.setDeadline(deadline)
	if err := w.c.writeFrame(typ, payload, fds); err != nil {
		return nil, err
	}
	rt, reply, fds, err := w.c.readFrame()
	if errors.Is(err, os.ErrDeadlineExceeded) && w.p.Stop != nil {
		// Past the deadline: ask the worker to wrap up rather than kill
		// it in the middle of a write.
		p.log.Warn("worker past its deadline; stopping it", "worker_pid", w.p.PID, "uid", w.key.uid, "gid", w.key.gid)
		w.stopped = true
		if serr := w.p.Stop(); serr == nil {
			w.c.setDeadline(time.Now().Add(p.opts.StopGrace))
			rt, reply, fds, err = w.c.readFrame()
		}
	}
	scmrights.Close(fds)
	if err != nil {
		if err == io.EOF {
			err = errors.New("worker exited")
		}
		return nil, err
	}
	if len(fds) > 0 {
		return nil, protoErr("descriptors in a reply")
	}
	if rt != want {
		return nil, protoErr("reply type %d, want %d", rt, want)
	}
	return reply, nil
}

// roundTripCancellable is roundTrip for a delivery whose client may stop
// waiting (the server is stopping): once ctx ends, the worker is asked to
// give up what it has not started writing, and its answer is still read,
// so the caller learns what was and was not delivered.
func (p *Pool) roundTripCancellable(ctx context.Context, w *proc, deadline time.Time, typ byte, payload []byte, fds []int, want byte) ([]byte, error) {
	var stopped atomic.Bool
	fdone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fdone)
		if w.p.Stop != nil && w.p.Stop() == nil {
			stopped.Store(true)
		}
	})
	reply, err := p.roundTrip(w, deadline, typ, payload, fds, want)
	if !stop() {
		<-fdone
	}
	if stopped.Load() {
		// A stopped worker exits once it has answered.
		w.stopped = true
	}
	return reply, err
}

func (p *Pool) deadline(ctx context.Context, d time.Duration) time.Time {
	t := time.Now().Add(d)
	if cd, ok := ctx.Deadline(); ok && cd.Before(t) {
		t = cd
	}
	return t
}

// failure is the error every recipient of a failed group gets.
func failure(err error, path string) error {
	var se *store.Error
	if errors.As(err, &se) {
		return &store.Error{Status: se.Status, Op: se.Op, Path: path, Err: se.Err}
	}
	return &store.Error{Status: store.WorkerFailed, Op: "worker", Path: path, Err: err}
}

// Deliver implements store.Deliverer: recipients are grouped by (uid, gid)
// and each group goes to one worker in one request, the groups in
// parallel. Nothing is submitted: see store.DeliverKeeping.
func (p *Pool) Deliver(ctx context.Context, msg *store.Message, rcpts []store.Recipient) []error {
	return store.DeliverKeeping(ctx, p, msg, rcpts)
}

var _ store.TimedDeliverer = (*Pool)(nil)

// DeliverTimed is Deliver with each recipient's wait for its worker and
// the write and fsync times and the submissions its worker reported.
func (p *Pool) DeliverTimed(ctx context.Context, msg *store.Message, rcpts []store.Recipient) ([]error, []store.Timing, []store.Outbound) {
	errs := make([]error, len(rcpts))
	times := make([]store.Timing, len(rcpts))
	outs := make([]store.Outbound, len(rcpts))
	if len(rcpts) == 0 {
		return errs, times, outs
	}
	fd, closeFd, err := readOnlyFd(msg.Body)
	if err != nil {
		for i, r := range rcpts {
			errs[i] = &store.Error{Status: store.Temporary, Op: "spool", Path: r.Path, Err: err}
		}
		return errs, times, outs
	}
	defer closeFd()

	groups := map[ids][]int{}
	var order []ids
	for i, r := range rcpts {
		k := ids{r.UID, r.GID}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	deadline := p.deadline(ctx, p.opts.DeliveryTimeout)
	group := func(k ids, idx []int) {
		res, ts, ob := p.deliverGroup(ctx, deadline, msg, fd, k, rcpts, idx)
		for j, i := range idx {
			errs[i], times[i], outs[i] = res[j], ts[j], ob[j]
		}
	}
	if len(order) == 1 {
		// The common case (one vmail uid): no goroutine hand-off.
		group(order[0], groups[order[0]])
		return errs, times, outs
	}
	var wg sync.WaitGroup
	for _, k := range order {
		wg.Go(func() { group(k, groups[k]) })
	}
	wg.Wait()
	return errs, times, outs
}

// pending is one delivery group (one message's recipients of one owner),
// or a query, from the moment it asks for a worker until its results are
// in. The fields under "p.mu" are the pool's to change.
type pending struct {
	query    bool // a size or quota query: it waits in the queue like a delivery but is never batched
	ctx      context.Context
	msg      *store.Message
	fd       int
	rcpts    []store.Recipient
	deadline time.Time
	asked    time.Time

	// p.mu
	taken  bool          // in another pending's request
	worker *proc         // handed over by put: it leads a request
	handed chan struct{} // closed when worker is set
	queued bool          // in p.queue

	// Set by the request's leader before it closes done.
	done  chan struct{}
	sent  time.Time
	errs  []error
	times []store.Timing
	outs  []store.Outbound
}

func (p *Pool) deliverGroup(ctx context.Context, deadline time.Time, msg *store.Message, fd int, k ids, all []store.Recipient, idx []int) ([]error, []store.Timing, []store.Outbound) {
	pd := &pending{ctx: ctx, msg: msg, fd: fd, deadline: deadline, asked: time.Now(), handed: make(chan struct{}), done: make(chan struct{})}
	for _, i := range idx {
		pd.rcpts = append(pd.rcpts, all[i])
	}
	if err := ctx.Err(); err != nil {
		// The server is stopping: nothing new is started.
		pd.fail(&store.Error{Status: store.Temporary, Op: "deliver", Err: err})
		return pd.errs, pd.times, pd.outs
	}
	// Waiting for a worker counts against the deadline too. A caller that
	// gives up while it waits leaves: nothing was started.
	gctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	w, err := p.join(gctx, k, pd)
	switch {
	case err != nil && ctx.Err() == context.Canceled:
		pd.fail(&store.Error{Status: store.Temporary, Op: "deliver", Err: err})
	case err != nil:
		p.logSpawnError(msg.ID, k, err)
		pd.fail(err)
	case w != nil:
		p.lead(k, w, pd)
	default:
		<-pd.done
	}
	return pd.errs, pd.times, pd.outs
}

// fail gives every recipient of pd the error err, and the time it waited.
func (pd *pending) fail(err error) {
	pd.errs = make([]error, len(pd.rcpts))
	pd.times = make([]store.Timing, len(pd.rcpts))
	pd.outs = make([]store.Outbound, len(pd.rcpts))
	for i, r := range pd.rcpts {
		pd.errs[i] = failure(err, r.Path)
		pd.times[i].WorkerWait = time.Since(pd.asked)
	}
}

// join waits until pd has a worker to lead a request with (w), or another
// pending's request took pd along (nil, nil: wait for pd.done), or it
// cannot have one before ctx ends.
func (p *Pool) join(ctx context.Context, k ids, pd *pending) (*proc, error) {
	p.mu.Lock()
	for {
		switch {
		case pd.taken:
			p.mu.Unlock()
			return nil, nil
		case pd.worker != nil:
			w := pd.worker
			p.mu.Unlock()
			return w, nil
		}
		w, start, err := p.tryGet(k)
		if err != nil {
			p.dequeue(pd)
			p.mu.Unlock()
			return nil, err
		}
		if w != nil || start {
			p.dequeue(pd)
			p.mu.Unlock()
			if start {
				w, err = p.startReserved(ctx, k)
			}
			return w, err
		}
		if !pd.queued {
			pd.queued = true
			p.queue[k] = append(p.queue[k], pd)
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-pd.handed:
		case <-ctx.Done():
			p.mu.Lock()
			switch {
			case pd.taken:
				p.mu.Unlock()
				return nil, nil
			case pd.worker != nil:
				// Handed a worker just too late: pass it on.
				w := pd.worker
				pd.worker = nil
				p.mu.Unlock()
				p.put(w, false, 0)
			default:
				p.dequeue(pd)
				p.mu.Unlock()
			}
			return nil, ctx.Err()
		}
		p.mu.Lock()
	}
}

// dequeue removes pd from its owner's queue if it is there; p.mu held.
func (p *Pool) dequeue(pd *pending) {
	if !pd.queued {
		return
	}
	pd.queued = false
	k := ids{pd.rcpts[0].UID, pd.rcpts[0].GID}
	q := p.queue[k]
	for i, o := range q {
		if o == pd {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(p.queue, k)
	} else {
		p.queue[k] = q
	}
}

// maxBatchRcpts bounds the recipients of one request over all its
// messages (a message with more still goes, alone).
const maxBatchRcpts = 1000

// takeBatch is lead and up to maxBatch-1 of the deliveries waiting for k,
// oldest first; p.mu held.
func (p *Pool) takeBatch(k ids, lead *pending) []*pending {
	batch := []*pending{lead}
	n := len(lead.rcpts)
	q := p.queue[k]
	rest := q[:0]
	for _, o := range q {
		if !o.query && len(batch) < maxBatch && n+len(o.rcpts) <= maxBatchRcpts {
			o.taken, o.queued = true, false
			n += len(o.rcpts)
			batch = append(batch, o)
		} else {
			rest = append(rest, o)
		}
	}
	clear(q[len(rest):])
	if len(rest) == 0 {
		delete(p.queue, k)
	} else {
		p.queue[k] = rest
	}
	return batch
}

// lead sends lead and the deliveries that waited for the same owner to w
// in one request and gives each its results. The request's deadline is
// the earliest of theirs; the worker is asked to stop early only when
// every one of them was cancelled.
func (p *Pool) lead(k ids, w *proc, lead *pending) {
	p.mu.Lock()
	batch := p.takeBatch(k, lead)
	p.mu.Unlock()
	now := time.Now()
	deadline := lead.deadline
	w.seq++
	req := &deliverRequest{Seq: w.seq, Msgs: make([]deliverMsg, len(batch))}
	fds := make([]int, len(batch))
	ctxs := make([]context.Context, len(batch))
	for i, pd := range batch {
		pd.sent = now
		if pd.deadline.Before(deadline) {
			deadline = pd.deadline
		}
		m := pd.msg
		req.Msgs[i] = deliverMsg{Sender: m.Sender, Size: m.Size, Arrival: m.Arrival, ID: m.ID, HasReturnPath: m.HasReturnPath, Rcpts: pd.rcpts}
		fds[i] = pd.fd
		ctxs[i] = pd.ctx
	}
	ctx, cancel := allDone(ctxs)
	payload, err := p.roundTripCancellable(ctx, w, deadline, frameDeliver, req.encode(), fds, frameDeliverReply)
	cancel()
	var rep *deliverReply
	if err == nil {
		rep, err = decodeDeliverReply(payload)
	}
	if n := req.rcptCount(); err == nil && (rep.Seq != req.Seq || len(rep.Results) != n) {
		err = protoErr("reply %d with %d results to request %d with %d recipients", rep.Seq, len(rep.Results), req.Seq, n)
	}
	if err != nil {
		p.kill(w, fmt.Errorf("queue id %s: %w", lead.msg.ID, err))
		p.put(w, true, len(batch))
		for _, pd := range batch {
			pd.fail(err)
			pd.finish(lead)
		}
		return
	}
	p.put(w, w.stopped, len(batch))
	off := 0
	for _, pd := range batch {
		n := len(pd.rcpts)
		pd.errs = make([]error, n)
		pd.times = make([]store.Timing, n)
		pd.outs = make([]store.Outbound, n)
		for j := range n {
			r := rep.Results[off+j]
			pd.errs[j] = r.err()
			pd.times[j] = store.Timing{WorkerWait: pd.sent.Sub(pd.asked),
				Write: time.Duration(min(rep.Timings[off+j].Write, math.MaxInt64)),
				Fsync: time.Duration(min(rep.Timings[off+j].Fsync, math.MaxInt64))}
			if pd.errs[j] == nil {
				pd.outs[j] = rep.Outbound[off+j]
			}
		}
		off += n
		pd.finish(lead)
	}
}

// finish hands pd its results: its caller, waiting in deliverGroup,
// returns them (the leader returns its own).
func (pd *pending) finish(lead *pending) {
	if pd != lead {
		close(pd.done)
	}
}

// allDone is a context that ends when every one of ctxs has ended; stop
// releases it.
func allDone(ctxs []context.Context) (context.Context, func()) {
	if len(ctxs) == 1 {
		return ctxs[0], func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var left atomic.Int64
	left.Store(int64(len(ctxs)))
	stops := make([]func() bool, len(ctxs))
	for i, c := range ctxs {
		stops[i] = context.AfterFunc(c, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}

func (p *Pool) logSpawnError(id string, k ids, err error) {
	if store.StatusOf(err) == store.NotPermitted {
		p.log.Warn("cannot deliver: privileges missing or uid refused", "queue_id", id, "uid", k.uid, "gid", k.gid, "err", err)
		return
	}
	p.log.Error("cannot start a worker", "queue_id", id, "uid", k.uid, "gid", k.gid, "err", err)
}

// Permits implements store.Deliverer, so that a uid the pool can never
// start a worker for is refused at RCPT: the spawner knows.
func (p *Pool) Permits(uid, gid int) error { return p.spawn.Permits(uid, gid) }

// MailboxSize implements store.Deliverer by asking a worker of the
// mailbox's owner, so the front never reads users' files.
func (p *Pool) MailboxSize(ctx context.Context, r store.Recipient) (int64, error) {
	rep, err := query(p, ctx, r, frameSize, frameSizeReply,
		func(seq uint64) []byte { return (&sizeRequest{Seq: seq, Rcpt: r}).encode() },
		func(b []byte) (*sizeReply, uint64, error) {
			rep, err := decodeSizeReply(b)
			if err != nil {
				return nil, 0, err
			}
			return rep, rep.Seq, nil
		})
	if err != nil {
		return 0, err
	}
	return rep.Size, rep.Result.err()
}

// query is one small request (size, quota) to a worker of r's owner and
// its decoded reply, within QueryTimeout. A broken exchange (the wrong
// frame, a reply to another request) kills the worker.
func query[R any](p *Pool, ctx context.Context, r store.Recipient, frame, replyFrame byte,
	encode func(seq uint64) []byte, decode func([]byte) (R, uint64, error)) (R, error) {
	var none R
	k := ids{r.UID, r.GID}
	deadline := p.deadline(ctx, p.opts.QueryTimeout)
	gctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	// In the owner's queue with its deliveries: a query waits its turn
	// rather than start a worker beyond OwnerWorkers.
	pd := &pending{query: true, rcpts: []store.Recipient{r}, asked: time.Now(), handed: make(chan struct{})}
	w, err := p.join(gctx, k, pd)
	if err != nil {
		p.logSpawnError("", k, err)
		return none, failure(err, r.Path)
	}
	w.seq++
	seq := w.seq
	payload, err := p.roundTrip(w, deadline, frame, encode(seq), nil, replyFrame)
	var rep R
	var got uint64
	if err == nil {
		rep, got, err = decode(payload)
	}
	if err == nil && got != seq {
		err = protoErr("reply %d to request %d", got, seq)
	}
	if err != nil {
		p.kill(w, err)
		p.put(w, true, 0)
		return none, failure(err, r.Path)
	}
	p.put(w, w.stopped, 0)
	return rep, nil
}

// readOnlyFd returns a read-only descriptor for the spool file: its own if
// it is open read-only, else a new read-only open of the same file.
func readOnlyFd(f *os.File) (int, func(), error) {
	if f == nil {
		return -1, nil, errors.New("message has no spool file")
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, nil, err
	}
	var fd int
	var asIs bool
	var ferr error
	if err := rc.Control(func(s uintptr) {
		fd = int(s)
		// A memfd sealed against writes (the usual spool) cannot be
		// changed through any descriptor, so it needs no read-only reopen
		// and no further question; on other files F_GET_SEALS is EINVAL.
		if seals, err := unix.FcntlInt(s, unix.F_GET_SEALS, 0); err == nil && seals&unix.F_SEAL_WRITE != 0 {
			asIs = true
			return
		}
		var flags int
		flags, ferr = unix.FcntlInt(s, unix.F_GETFL, 0)
		asIs = flags&unix.O_ACCMODE == unix.O_RDONLY
	}); err != nil {
		return -1, nil, err
	}
	if ferr != nil {
		return -1, nil, ferr
	}
	if asIs {
		// f stays open for the whole Deliver call, which is all we need.
		return fd, func() {}, nil
	}
	ro, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("reopen spool read-only: %w", err)
	}
	return ro, func() { unix.Close(ro) }, nil
}
