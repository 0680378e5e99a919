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
func diskLimit(dir string, writers, size int, d time.Duration) (float64, error) {
	md, err := os.MkdirTemp(dir, "disklimit-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(md)
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.Mkdir(filepath.Join(md, sub), 0o700); err != nil {
			return 0, err
		}
	}
	tmp, err := unix.Open(filepath.Join(md, "tmp"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(tmp)
	newDir, err := unix.Open(filepath.Join(md, "new"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(newDir)
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
		if i%64 == 63 {
			body[i] = '\n'
		}
	}
	var done atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range writers {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				name := fmt.Sprintf("%d.W%dN%d.bench", start.Unix(), w, i)
				if err := durableWrite(tmp, newDir, name, body); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(done.Load()) / elapsed.Seconds(), nil
}

// durableWrite is one delivery of diskLimit.
func durableWrite(tmp, newDir int, name string, body []byte) error {
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
	return unix.Fsync(newDir)
}
