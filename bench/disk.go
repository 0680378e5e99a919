// Runs in: make bench (a tool).

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// diskLimit is the rate of the bare durable Maildir write on the
// filesystem of dir: writers goroutines, all into one Maildir (as the
// cells' sessions all deliver to one mailbox), each repeating for about
// d what vlmtpd's worker does for one recipient and nothing else: create
// a file in tmp/, write size bytes, fdatasync it, link it into new/,
// unlink the tmp/ name, fsync new/. No LMTP, no spool, no processes. It
// returns deliveries per second.
//
// With group, the writers share the fsyncs of new/ (group commit): a
// writer whose link is covered by an fsync that started after the link
// returns without one of its own; while one fsync runs, the writers that
// link meanwhile wait and one of them runs the next fsync for all. This
// measures what group commit across concurrent deliveries into one
// Maildir could gain at best; vlmtpd's workers do not do it across
// processes.
//
// It also returns the CPU time (user+sys, this process) per write: the
// kernel's share of a durable delivery, which no server can go below.
func diskLimit(dir string, writers, size int, d time.Duration, group bool) (rate float64, cpuPer time.Duration, err error) {
	md, err := os.MkdirTemp(dir, "disklimit-")
	if err != nil {
		return 0, 0, err
	}
	// The files stay until the work directory goes: on ext4 without a
	// journal, inodes deleted in the last minute make every later inode
	// allocation scan past them (recently_deleted in ialloc.c), which
	// would slow the measurements that follow.
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.Mkdir(filepath.Join(md, sub), 0o700); err != nil {
			return 0, 0, err
		}
	}
	tmp, err := unix.Open(filepath.Join(md, "tmp"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(tmp)
	newDir, err := unix.Open(filepath.Join(md, "new"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(newDir)
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
		if i%64 == 63 {
			body[i] = '\n'
		}
	}
	syncNew := func() error { return unix.Fsync(newDir) }
	if group {
		syncNew = newGroupSync(func() error { return unix.Fsync(newDir) }).sync
	}
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(d)
	for w := range writers {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				name := fmt.Sprintf("%d.W%dN%d.bench", start.Unix(), w, i)
				if err := durableWrite(tmp, newDir, name, body, syncNew); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	if firstErr != nil {
		return 0, 0, firstErr
	}
	n := max(1, done.Load())
	return float64(n) / elapsed.Seconds(), cpu / time.Duration(n), nil
}

// processCPU is this process's user+sys time so far.
func processCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// durableWrite is one delivery of diskLimit.
func durableWrite(tmp, newDir int, name string, body []byte, syncNew func() error) error {
	fd, err := unix.Openat(tmp, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	for b := body; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			unix.Close(fd)
			return err
		}
		b = b[n:]
	}
	if err := unix.Fdatasync(fd); err != nil {
		unix.Close(fd)
		return err
	}
	if err := unix.Close(fd); err != nil {
		return err
	}
	if err := unix.Linkat(tmp, name, newDir, name+fmt.Sprintf(",S=%d", len(body)), 0); err != nil {
		return err
	}
	if err := unix.Unlinkat(tmp, name, 0); err != nil {
		return err
	}
	return syncNew()
}

// groupSync shares fsyncs of one directory among concurrent callers.
type groupSync struct {
	fsync   func() error
	mu      sync.Mutex
	cond    *sync.Cond
	running bool
	started uint64 // fsyncs started
	done    uint64 // fsyncs finished
	err     error  // of the last one
}

func newGroupSync(fsync func() error) *groupSync {
	g := &groupSync{fsync: fsync}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// sync returns once an fsync that started after the call has finished:
// that one covers the caller's link.
func (g *groupSync) sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	// An fsync running now may have started before our link: wait for
	// the next one, or start it.
	need := g.started + 1
	for g.done < need {
		if !g.running {
			g.running = true
			g.started++
			g.mu.Unlock()
			err := g.fsync()
			g.mu.Lock()
			g.running = false
			g.done++
			g.err = err
			g.cond.Broadcast()
			continue
		}
		g.cond.Wait()
	}
	return g.err
}

// multiLimit is diskLimit's loop for one message to rcpts recipients, each
// with its own Maildir, as vlmtpd delivers a transaction: the copies are
// written concurrently, then the new/ directories are fsynced
// concurrently. With links, one copy is written and hard-linked into
// every recipient's new/ (Dovecot's default, and the proposed opt-in
// single_instance_delivery: no per-recipient Delivered-To). It returns
// deliveries (recipients) per second and CPU per delivery.
func multiLimit(dir string, rcpts, size int, d time.Duration, links bool) (rate float64, cpuPer time.Duration, err error) {
	root, err := os.MkdirTemp(dir, "multilimit-")
	if err != nil {
		return 0, 0, err
	}
	tmps, news := make([]int, rcpts), make([]int, rcpts)
	for i := range rcpts {
		md := filepath.Join(root, fmt.Sprint(i))
		for _, sub := range []string{"", "tmp", "new", "cur"} {
			if err := os.Mkdir(filepath.Join(md, sub), 0o700); err != nil {
				return 0, 0, err
			}
		}
		for sub, fds := range map[string][]int{"tmp": tmps, "new": news} {
			fd, err := unix.Open(filepath.Join(md, sub), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return 0, 0, err
			}
			defer unix.Close(fd)
			fds[i] = fd
		}
	}
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	// all runs f(i) for every recipient at once and returns the first error.
	all := func(f func(i int) error) error {
		errs := make([]error, rcpts)
		var wg sync.WaitGroup
		for i := range rcpts {
			wg.Go(func() { errs[i] = f(i) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}
	noSync := func() error { return nil }
	cpu0 := processCPU()
	start := time.Now()
	n := 0
	for ; time.Since(start) < d; n++ {
		name := fmt.Sprintf("%d.M%d.bench", start.Unix(), n)
		if links {
			err = durableWrite(tmps[0], news[0], name, body, noSync)
			if err == nil {
				err = all(func(i int) error {
					if i == 0 {
						return nil
					}
					return unix.Linkat(news[0], name+fmt.Sprintf(",S=%d", size), news[i], name+fmt.Sprintf(",S=%d", size), 0)
				})
			}
		} else {
			err = all(func(i int) error { return durableWrite(tmps[i], news[i], name, body, noSync) })
		}
		if err == nil {
			err = all(func(i int) error { return unix.Fsync(news[i]) })
		}
		if err != nil {
			return 0, 0, err
		}
	}
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	deliveries := max(1, n*rcpts)
	return float64(deliveries) / elapsed.Seconds(), cpu / time.Duration(deliveries), nil
}
