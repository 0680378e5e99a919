package worker

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
	"github.com/vlmtpd/vlmtpd/store"
)

// sealedSpool holds body the way the server spools a message that fits in
// memory: a memfd sealed against writes, which the pool passes to the
// worker as is. A plain temporary file would add a read-only reopen per
// message that production does not do.
func sealedSpool(b *testing.B, body string) *store.Message {
	b.Helper()
	fd, err := unix.MemfdCreate("bench-spool", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		b.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "bench-spool")
	b.Cleanup(func() { f.Close() })
	if _, err := f.WriteString(body); err != nil {
		b.Fatal(err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE); err != nil {
		b.Fatal(err)
	}
	return &store.Message{Sender: "sender@example.org", Body: f, Size: int64(len(body)), Arrival: time.Now(), ID: "BENCHQ"}
}

// BenchmarkDeliver compares one-recipient Maildir deliveries of a 4 KiB
// message through a warm worker with the same deliveries in-process
// (store.Writer), on the same file system in one run. As root the workers
// run as uid 5001; otherwise both run as the caller.
func BenchmarkDeliver(b *testing.B) {
	body := "Subject: bench\n\n" + strings.Repeat(strings.Repeat("b", 63)+"\n", 64)
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 5001, 5001
	}
	b.Run("local", func(b *testing.B) {
		base := mailBase(b)
		ownedDir(b, base, "u", os.Getuid(), os.Getgid())
		l, err := store.NewWriter(base, store.WriterOptions{Hostname: "bench.example", Logger: quietLogger(b)})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		run(b, l, body, store.Recipient{Address: "a@example.com", Path: "u/Maildir/", UID: os.Getuid(), GID: os.Getgid()})
	})
	b.Run("workers", func(b *testing.B) {
		base := mailBase(b)
		ownedDir(b, base, "u", uid, gid)
		p := newRealPool(b, base, PoolOptions{MaxDeliveries: 1 << 30})
		run(b, p, body, store.Recipient{Address: "a@example.com", Path: "u/Maildir/", UID: uid, GID: gid})
	})
}

// BenchmarkDeliverConcurrent is 20 callers delivering 4 KiB messages at
// once through the pool to the same 1 or 10 Maildirs (20 LMTP sessions
// to one mailbox, or with 10 recipients each), at several OwnerWorkers: with fewer workers than callers the
// waiting deliveries go to a worker together and share the fsync of new/.
// owner=20 is one worker per caller, as before group commit.
func BenchmarkDeliverConcurrent(b *testing.B) {
	body := "Subject: bench\n\n" + strings.Repeat(strings.Repeat("b", 63)+"\n", 64)
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 5001, 5001
	}
	for _, tc := range []struct{ owner, rcpts int }{{1, 1}, {2, 1}, {4, 1}, {20, 1}, {4, 10}, {20, 10}} {
		b.Run(fmt.Sprintf("rcpts=%d/owner=%d", tc.rcpts, tc.owner), func(b *testing.B) {
			base := mailBase(b)
			ownedDir(b, base, "u", uid, gid)
			p := newRealPool(b, base, PoolOptions{MaxDeliveries: 1 << 30, OwnerWorkers: tc.owner})
			msg := sealedSpool(b, body)
			var rcpts []store.Recipient
			for i := range tc.rcpts {
				rcpts = append(rcpts, store.Recipient{Address: fmt.Sprintf("a%d@example.com", i), Path: fmt.Sprintf("u/%d/", i), UID: uid, GID: gid})
			}
			var wg sync.WaitGroup
			for range 20 { // warm up: start the workers
				wg.Go(func() { p.Deliver(context.Background(), msg, rcpts) })
			}
			wg.Wait()
			var left atomic.Int64
			left.Store(int64(b.N))
			cpu0 := proctree.CPU(os.Getpid())
			b.ResetTimer()
			for range 20 {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						for _, err := range p.Deliver(context.Background(), msg, rcpts) {
							if err != nil {
								b.Error(err)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*tc.rcpts)/b.Elapsed().Seconds(), "deliveries/s")
			// This process and its workers: the kernel's work is most of it.
			b.ReportMetric(float64(proctree.CPU(os.Getpid())-cpu0)/float64(time.Millisecond)/float64(b.N*tc.rcpts), "cpu-ms/delivery")
		})
	}
}

func run(b *testing.B, d store.Deliverer, body string, r store.Recipient) {
	msg := sealedSpool(b, body)
	rcpts := []store.Recipient{r}
	// Warm up: the worker's start is not what is measured.
	if errs := d.Deliver(context.Background(), msg, rcpts); errs[0] != nil {
		b.Fatal(errs[0])
	}
	for b.Loop() {
		if errs := d.Deliver(context.Background(), msg, rcpts); errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkMailboxSize shows the bare cost of a round trip to a worker:
// a size query does no disk write, so nothing hides the IPC.
func BenchmarkMailboxSize(b *testing.B) {
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 5001, 5001
	}
	query := func(b *testing.B, d store.Deliverer, r store.Recipient) {
		for b.Loop() {
			if _, err := d.MailboxSize(context.Background(), r); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("local", func(b *testing.B) {
		base := mailBase(b)
		ownedDir(b, base, "u", os.Getuid(), os.Getgid())
		l, err := store.NewWriter(base, store.WriterOptions{Logger: quietLogger(b)})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		query(b, l, store.Recipient{Path: "u/mbox", UID: os.Getuid(), GID: os.Getgid()})
	})
	b.Run("workers", func(b *testing.B) {
		base := mailBase(b)
		ownedDir(b, base, "u", uid, gid)
		p := newRealPool(b, base, PoolOptions{MaxDeliveries: 1 << 30})
		r := store.Recipient{Path: "u/mbox", UID: uid, GID: gid}
		if _, err := p.MailboxSize(context.Background(), r); err != nil {
			b.Fatal(err)
		}
		query(b, p, r)
	})
}

// BenchmarkWorkerOverhead alternates the two kinds of BenchmarkDeliver's
// deliveries, so disk noise hits both alike, and reports the time of a
// delivery through a worker relative to one in-process (the target is
// below 1.20).
func BenchmarkWorkerOverhead(b *testing.B) {
	body := "Subject: bench\n\n" + strings.Repeat(strings.Repeat("b", 63)+"\n", 64)
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 5001, 5001
	}
	base := mailBase(b)
	ownedDir(b, base, "l", os.Getuid(), os.Getgid())
	ownedDir(b, base, "w", uid, gid)
	l, err := store.NewWriter(base, store.WriterOptions{Hostname: "bench.example", Logger: quietLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	p := newRealPool(b, base, PoolOptions{MaxDeliveries: 1 << 30})
	msg := sealedSpool(b, body)
	lr := []store.Recipient{{Address: "a@example.com", Path: "l/Maildir/", UID: os.Getuid(), GID: os.Getgid()}}
	wr := []store.Recipient{{Address: "a@example.com", Path: "w/Maildir/", UID: uid, GID: gid}}
	deliver := func(d store.Deliverer, r []store.Recipient) time.Duration {
		t0 := time.Now()
		if errs := d.Deliver(context.Background(), msg, r); errs[0] != nil {
			b.Fatal(errs[0])
		}
		return time.Since(t0)
	}
	deliver(l, lr)
	deliver(p, wr)
	var tl, tw time.Duration
	for b.Loop() {
		tw += deliver(p, wr)
		tl += deliver(l, lr)
	}
	b.ReportMetric(float64(b.N)/tl.Seconds(), "local-deliveries/s")
	b.ReportMetric(float64(b.N)/tw.Seconds(), "worker-deliveries/s")
	b.ReportMetric(float64(tw)/float64(tl), "worker/local")
}

// BenchmarkWorkerStart is the cost of a cold worker: spawn, the re-exec
// that confines it, its checks and hello, and one delivery.
func BenchmarkWorkerStart(b *testing.B) {
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 5001, 5001
	}
	base := mailBase(b)
	ownedDir(b, base, "u", uid, gid)
	p := newRealPool(b, base, PoolOptions{MaxDeliveries: 1})
	msg := sealedSpool(b, "Subject: start\n\nx\n")
	r := []store.Recipient{{Address: "a@example.com", Path: "u/Maildir/", UID: uid, GID: gid}}
	for b.Loop() {
		if errs := p.Deliver(context.Background(), msg, r); errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
}
