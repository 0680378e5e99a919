// Runs in: a worker, as the mailbox owner.

package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Lock methods, the values of virtual_mailbox_lock.
const (
	LockFcntl   = "fcntl"
	LockFlock   = "flock"
	LockDotlock = "dotlock"
)

// LockMethods are all the lock methods, the one list that
// virtual_mailbox_lock is checked against (by server/config and NewWriter).
var LockMethods = []string{LockFcntl, LockFlock, LockDotlock}

var errLockBusy = errors.New("mailbox is locked by another process")

// mboxLock is the set of locks held on one mbox.
type mboxLock struct {
	dirfd   int    // the mbox's directory, for the dotlock
	dotlock string // the dotlock's name in dirfd, "" if none is held
	turn    func() // ends this writer's turn in the in-process queue
}

// lockMbox takes the configured locks on the open mbox fd (the file key,
// named name in dirfd), in the configured order, all before one deadline. Kernel locks
// are tried without blocking and retried with backoff: a blocking
// F_OFD_SETLKW would park an OS thread and could not honour the deadline.
// The returned lock is never nil: on failure it holds what was taken, and
// the caller closes fd and then calls release, as after success.
func (l *Writer) lockMbox(ctx context.Context, fd int, key inodeKey, dirfd int, name, path string) (*mboxLock, error) {
	deadline := time.Now().Add(l.opts.LockTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	lk := &mboxLock{dirfd: dirfd}
	turn, err := l.queue.wait(ctx, deadline, key)
	if err != nil {
		return lk, fail(Locked, "lock", path, err)
	}
	lk.turn = turn
	for _, m := range l.opts.LockMethods {
		var err error
		switch m {
		case LockFcntl:
			err = retryLock(ctx, deadline, func() error {
				// An OFD lock belongs to this open file description, not
				// to the process, so another goroutine closing its own
				// descriptor for the same file cannot drop it; it still
				// conflicts with the classic fcntl locks of other programs.
				flk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
				err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &flk)
				if err == unix.EAGAIN || err == unix.EACCES {
					return errLockBusy
				}
				return err
			})
		case LockFlock:
			err = retryLock(ctx, deadline, func() error {
				err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
				if err == unix.EWOULDBLOCK {
					return errLockBusy
				}
				return err
			})
		case LockDotlock:
			err = l.dotlock(ctx, deadline, lk, name)
		}
		if err != nil {
			if errors.Is(err, errLockBusy) {
				return lk, fail(Locked, m+" lock", path, err)
			}
			return lk, classify(m+" lock", path, err)
		}
	}
	return lk, nil
}

// dotlock creates <name>.lock in the mbox directory with O_EXCL and
// writes our pid into it ("12345\n", as liblockfile does). A lock whose
// writer's pid no longer exists on this host is removed at once; one
// without a readable pid (another program's, or on a network filesystem
// where the pid may be another host's) is taken to be left over by a
// crash once its ctime is older than StaleLockTime.
func (l *Writer) dotlock(ctx context.Context, deadline time.Time, lk *mboxLock, name string) error {
	lockName := name + ".lock"
	return retryLock(ctx, deadline, func() error {
		fd, err := openBeneath(lk.dirfd, lockName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o644)
		if err == nil {
			// A lock we could not write our pid into is still a lock; it
			// just ages out like other programs' empty ones.
			unix.Write(fd, []byte(l.pid+"\n"))
			unix.Close(fd)
			lk.dotlock = lockName
			dotlocksHeld.Add(1)
			return nil
		}
		if err != unix.EEXIST {
			return fmt.Errorf("create %s: %w", lockName, err)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(lk.dirfd, lockName, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				return errRetryNow
			}
			return fmt.Errorf("stat %s: %w", lockName, err)
		}
		age := time.Since(time.Unix(st.Ctim.Unix()))
		pid, dead := l.dotlockOwnerGone(lk.dirfd, lockName, &st)
		if !dead && (l.opts.StaleLockTime <= 0 || age <= l.opts.StaleLockTime) {
			return errLockBusy
		}
		// As with any dotlock breaking, another program could replace the
		// lock between our look and the unlink; the kernel locks, taken
		// first by default, keep vlmtpd's own writers out of that window.
		if err := unix.Unlinkat(lk.dirfd, lockName, 0); err != nil && err != unix.ENOENT {
			return fmt.Errorf("remove stale %s: %w", lockName, err)
		}
		if dead {
			l.log.Warn("removed the mailbox lock of a process that no longer exists", "lock", lockName, "pid", pid, "age", age.Round(time.Millisecond))
		} else {
			l.log.Warn("removed stale mailbox lock", "lock", lockName, "age", age.Round(time.Second))
		}
		return errRetryNow
	})
}

// dotlocksHeld counts the dotlocks this process holds, so that a lock
// file naming our own pid can be known to be left over when we hold none.
var dotlocksHeld atomic.Int64

// maxLockFile bounds what is read of a lock file: a pid and a newline.
const maxLockFile = 32

// dotlockOwnerGone reads the pid in the lock file lockName (whose lstat
// is st) and reports whether that process no longer exists. Anything
// unclear (unreadable or empty file, no number, a network filesystem, a
// live pid even if reused) counts as held.
func (l *Writer) dotlockOwnerGone(dirfd int, lockName string, st *unix.Stat_t) (int, bool) {
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size == 0 || st.Size > maxLockFile || networkFS(dirfd) {
		return 0, false
	}
	fd, err := openBeneath(dirfd, lockName, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	var fst unix.Stat_t
	if unix.Fstat(fd, &fst) != nil || fst.Dev != st.Dev || fst.Ino != st.Ino {
		return 0, false // replaced since the lstat: look again next time
	}
	var buf [maxLockFile + 1]byte
	n, err := unix.Pread(fd, buf[:], 0)
	if err != nil || n == 0 || n > maxLockFile {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if strconv.Itoa(pid) == l.pid {
		// Ours (or of an earlier process with our pid): left over unless
		// some delivery of this process holds a dotlock now.
		return pid, dotlocksHeld.Load() == 0
	}
	return pid, pidGone(pid)
}

// release removes a dotlock this delivery holds and ends its turn. It is
// called after the mbox is closed, so the kernel locks are gone first (as
// in Postfix).
func (lk *mboxLock) release() {
	if lk.dotlock != "" {
		unix.Unlinkat(lk.dirfd, lk.dotlock, 0)
		lk.dotlock = ""
		dotlocksHeld.Add(-1)
	}
	if lk.turn != nil {
		lk.turn()
		lk.turn = nil
	}
}

var errRetryNow = errors.New("retry now")

// Backoff between lock attempts: starts short because deliveries are
// short, grows to a cap, and is jittered ±25% so that waiting writers do
// not retry in lockstep.
const (
	lockBackoffMin = 2 * time.Millisecond
	lockBackoffMax = 100 * time.Millisecond
)

// retryLock calls try until it succeeds, fails with something other than
// errLockBusy, or the deadline passes (errLockBusy). It always tries once.
func retryLock(ctx context.Context, deadline time.Time, try func() error) error {
	wait := lockBackoffMin
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for quick := 0; ; {
		err := try()
		if err == errRetryNow && quick < 10 {
			quick++
			continue
		}
		if err != errLockBusy && err != errRetryNow {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return errLockBusy
		}
		d := time.Duration(float64(wait) * (0.75 + rand.Float64()/2))
		d = min(d, left)
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", errLockBusy, ctx.Err())
		case <-timer.C:
		}
		wait = min(2*wait, lockBackoffMax)
	}
}

// inodeKey names an mbox file for in-process serialisation.
type inodeKey struct{ dev, ino uint64 }

// inodeQueue serialises this process's writers of one mbox before they
// take the file locks. The file locks still guard against other
// processes; the queue spares the writers within this process from
// polling each other's locks with backoff, and serves them in order.
type inodeQueue struct {
	mu sync.Mutex
	m  map[inodeKey]*inodeTurn
}

type inodeTurn struct {
	ch   chan struct{} // holds a token while somebody writes
	refs int           // writers holding or waiting
}

// wait blocks until it is the caller's turn for key, or the deadline or
// ctx ends (errLockBusy). done must be called after the file locks are
// released.
func (q *inodeQueue) wait(ctx context.Context, deadline time.Time, key inodeKey) (done func(), err error) {
	q.mu.Lock()
	if q.m == nil {
		q.m = make(map[inodeKey]*inodeTurn)
	}
	t := q.m[key]
	if t == nil {
		t = &inodeTurn{ch: make(chan struct{}, 1)}
		q.m[key] = t
	}
	t.refs++
	q.mu.Unlock()
	leave := func() {
		q.mu.Lock()
		if t.refs--; t.refs == 0 {
			delete(q.m, key)
		}
		q.mu.Unlock()
	}
	done = func() { <-t.ch; leave() }
	select {
	case t.ch <- struct{}{}:
		return done, nil
	default:
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case t.ch <- struct{}{}:
		return done, nil
	case <-ctx.Done():
		leave()
		return nil, fmt.Errorf("%w: %w", errLockBusy, ctx.Err())
	case <-timer.C:
		leave()
		return nil, errLockBusy
	}
}
