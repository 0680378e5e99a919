package store

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchBody is a 4 kB message with a few lines the mbox writer quotes.
var benchBody = func() string {
	var b strings.Builder
	b.WriteString("Subject: benchmark\nFrom: a@example.org\nTo: b@example.com\n\n")
	for i := 0; b.Len() < 4096; i++ {
		if i%10 == 0 {
			b.WriteString("From the body, a line that needs quoting in an mbox\n")
		} else {
			b.WriteString("An ordinary line of text in the message body, about seventy bytes.\n")
		}
	}
	return b.String()[:4096-1] + "\n"
}()

func benchWriter(b *testing.B, opts WriterOptions) *Writer {
	opts.Logger = slog.New(slog.DiscardHandler)
	l, _ := newTestWriter(b, opts)
	return l
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	b.SetBytes(int64(len(benchBody)))
}

// benchDeliver delivers the bench message to the mailbox at path, one
// delivery after another.
func benchDeliver(b *testing.B, opts WriterOptions, path string) {
	l := benchWriter(b, opts)
	msg := spool(b, "a@example.org", benchBody)
	rcpts := []Recipient{rcpt(path)}
	ctx := context.Background()
	for b.Loop() {
		if err := l.Deliver(ctx, msg, rcpts)[0]; err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// benchDeliverParallel delivers the bench message from parallelism
// goroutines per CPU, each to its own one of 64 mailboxes: pathFormat
// with the mailbox's number.
func benchDeliverParallel(b *testing.B, parallelism int, pathFormat string) {
	l := benchWriter(b, WriterOptions{})
	msg := spool(b, "a@example.org", benchBody)
	var user atomic.Int64
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rcpts := []Recipient{rcpt(fmt.Sprintf(pathFormat, user.Add(1)%64))}
		ctx := context.Background()
		for pb.Next() {
			if err := l.Deliver(ctx, msg, rcpts)[0]; err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b)
}

// Each delivery is durable: the file fdatasynced and new/ fsynced.
func BenchmarkMaildir(b *testing.B) {
	benchDeliver(b, WriterOptions{}, "dom/user/Maildir/")
}

// The same from a memfd spool, as the server passes most messages: the
// spool and the Maildir are on different filesystems.
func BenchmarkMaildirMemfdSpool(b *testing.B) {
	l := benchWriter(b, WriterOptions{})
	fd, err := unix.MemfdCreate("bench-spool", unix.MFD_CLOEXEC)
	if err != nil {
		b.Skipf("no memfd: %v", err)
	}
	f := os.NewFile(uintptr(fd), "bench-spool")
	b.Cleanup(func() { f.Close() })
	if _, err := f.WriteString(benchBody); err != nil {
		b.Fatal(err)
	}
	msg := &Message{Sender: "a@example.org", Body: f, Size: int64(len(benchBody)), Arrival: time.Now(), ID: "BENCH"}
	rcpts := []Recipient{rcpt("dom/user/Maildir/")}
	ctx := context.Background()
	for b.Loop() {
		if err := l.Deliver(ctx, msg, rcpts)[0]; err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// Concurrent single-recipient deliveries, as from many LMTP sessions,
// each to its own Maildir (of 64 users).
func BenchmarkMaildirParallel(b *testing.B) {
	benchDeliverParallel(b, 8, "dom/u%d/Maildir/") // sessions per CPU: deliveries wait on the disk, not the CPU
}

func BenchmarkMbox(b *testing.B) {
	for _, method := range []string{LockFcntl, LockFlock, LockDotlock} {
		b.Run(method, func(b *testing.B) {
			benchDeliver(b, WriterOptions{LockMethods: []string{method}}, "mbox")
		})
	}
}

// Concurrent deliveries into 64 mboxes with the default locks.
func BenchmarkMboxParallel(b *testing.B) {
	benchDeliverParallel(b, 32, "u%d")
}

// The writers alone, without the disk: quoting and copying cost per
// message (no fsync is skipped in the code; the spool is in the page cache).
func BenchmarkFromQuoter(b *testing.B) {
	q := newFromQuoter(discard{})
	p := []byte(benchBody)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		q.Write(p)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// One message to 10 recipients in 10 Maildirs, as a worker receives it,
// written as 10 copies (the default) or as one file hard-linked 10 times
// (single_instance_delivery); the rate counts recipients.
func BenchmarkMaildir10Recipients(b *testing.B) {
	for _, size := range []struct {
		name   string
		copies int
	}{{"4KB", 1}, {"1MB", 256}} {
		body := strings.Repeat(benchBody, size.copies)
		for _, single := range []bool{false, true} {
			name := size.name + "/copies"
			if single {
				name = size.name + "/single-instance"
			}
			b.Run(name, func(b *testing.B) {
				l := benchWriter(b, WriterOptions{SingleInstance: single})
				msg := spool(b, "a@example.org", body)
				var rcpts []Recipient
				for i := 0; i < 10; i++ {
					rcpts = append(rcpts, rcpt(fmt.Sprintf("dom/u%d/Maildir/", i)))
				}
				ctx := context.Background()
				for b.Loop() {
					for _, err := range l.Deliver(ctx, msg, rcpts) {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N*len(rcpts))/b.Elapsed().Seconds(), "deliveries/s")
				b.SetBytes(int64(len(body) * len(rcpts)))
			})
		}
	}
}
