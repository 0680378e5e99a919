package main

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGroupSyncCovers: every caller returns only after an fsync that
// started after it called has finished, and concurrent callers share
// fsyncs.
func TestGroupSyncCovers(t *testing.T) {
	var started, done atomic.Int64
	g := newGroupSync(func() error {
		started.Add(1)
		time.Sleep(2 * time.Millisecond)
		done.Add(1)
		return nil
	})
	const callers, rounds = 20, 20
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range callers {
		wg.Go(func() {
			for range rounds {
				before := started.Load()
				if err := g.sync(); err != nil {
					t.Error(err)
				}
				// The fsyncs run one at a time, so number before+1, the
				// first to start after our call, must have finished.
				if done.Load() < before+1 {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d calls returned before an fsync that started after them had finished", bad.Load())
	}
	if n := started.Load(); n >= callers*rounds {
		t.Fatalf("%d fsyncs for %d calls: nothing shared", n, callers*rounds)
	}
}

// TestDiskLimitLoops: the loops deliver into new/ and leave nothing in tmp/.
func TestDiskLimitLoops(t *testing.T) {
	dir := t.TempDir()
	rate, cpu, err := diskLimit(dir, 4, 4096, 200*time.Millisecond, true)
	if err != nil || rate <= 0 || cpu <= 0 {
		t.Fatalf("diskLimit = %v, %v, %v", rate, cpu, err)
	}
	rate, _, err = multiLimit(dir, 3, 4096, 200*time.Millisecond, true)
	if err != nil || rate <= 0 {
		t.Fatalf("multiLimit = %v, %v", rate, err)
	}
	newFiles, tmpFiles := 0, 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			switch filepath.Base(filepath.Dir(p)) {
			case "new":
				newFiles++
			case "tmp":
				tmpFiles++
			}
		}
		return nil
	})
	if newFiles == 0 || tmpFiles != 0 {
		t.Fatalf("%d files in new/, %d left in tmp/", newFiles, tmpFiles)
	}
}

func TestFillMaildir(t *testing.T) {
	md := filepath.Join(t.TempDir(), "u", "Maildir")
	o := owner{UID: os.Getuid(), GID: os.Getgid()}
	if err := fillMaildir(md, 1000, 4096, o); err != nil {
		t.Fatal(err)
	}
	if n := countDir(filepath.Join(md, "new")); n != 1000 {
		t.Fatalf("%d messages in new/, want 1000", n)
	}
	for _, sub := range []string{"tmp", "cur"} {
		if fi, err := os.Stat(filepath.Join(md, sub)); err != nil || !fi.IsDir() {
			t.Fatalf("%s/: %v", sub, err)
		}
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Fatalf("median = %v", m)
	}
}
