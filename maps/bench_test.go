package maps

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkTextHashLookup looks up keys in a texthash: table of one
// million entries, half of them hits. Run:
//
//	go test ./maps/ -run '^$' -bench TextHash -benchmem
func BenchmarkTextHashLookup(b *testing.B) {
	const n = 1_000_000
	path := filepath.Join(b.TempDir(), "vmailbox")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, "user%d@example%d.com\texample%d.com/user%d/\n", i, i%1000, i%1000, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()

	start := time.Now()
	m, err := Open("texthash:"+path, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	loadTime := time.Since(start)

	keys := make([]string, 4096)
	for i := range keys {
		j := (i * 7919) % n
		if i%2 == 0 {
			keys[i] = fmt.Sprintf("user%d@example%d.com", j, j%1000)
		} else {
			keys[i] = fmt.Sprintf("nobody%d@example%d.com", j, j%1000)
		}
	}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		_, ok, _ := m.Lookup(ctx, keys[i%len(keys)])
		if ok != (i%2 == 0) {
			b.Fatalf("key %q: found=%v", keys[i%len(keys)], ok)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	b.ReportMetric(loadTime.Seconds(), "load-s")
}

// BenchmarkRegexpLookup evaluates a small regexp: table whose last rule
// matches, the usual shape of a catch-all table.
func BenchmarkRegexpLookup(b *testing.B) {
	m, err := Open(`regexp:{ {/^postmaster@/ pm/}, {/^abuse@/ abuse/}, {/^(sales|info)@example\.net$/ net/}, {/@example\.com$/ com/} }`,
		Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, ok, _ := m.Lookup(ctx, "someone+ext@example.com"); !ok {
			b.Fatal("not found")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}
