package testutil

import (
	"strings"
	"sync"
	"testing"
)

func TestSyncBufferConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if n, err := b.Write([]byte("ab\n")); n != 3 || err != nil {
					t.Errorf("Write = %d, %v", n, err)
				}
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	got := b.String()
	if n := strings.Count(got, "ab\n"); n != 800 || len(got) != 3*800 {
		t.Fatalf("got %d whole writes in %d bytes, want 800 in 2400", n, len(got))
	}
}
