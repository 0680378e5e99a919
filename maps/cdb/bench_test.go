package cdb

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

const benchEntries = 1_000_000

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchKey(i int) string { return fmt.Sprintf("user%07d@example.com", i) }

// benchTable builds the one-million-entry table once per test binary.
func benchTable(b *testing.B) *Table {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "cdb-bench-")
		if benchErr != nil {
			return
		}
		w, err := NewWriter(filepath.Join(benchDir, "big"), WriteOptions{})
		if err != nil {
			benchErr = err
			return
		}
		for i := range benchEntries {
			if err := w.Add(Entry{Key: benchKey(i), Value: fmt.Sprintf("example.com/user%07d/", i)}); err != nil {
				benchErr = err
				return
			}
		}
		benchErr = w.Commit()
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return openT(b, filepath.Join(benchDir, "big"))
}

func benchKeys() []string {
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = benchKey(i * 7919 % benchEntries)
	}
	return keys
}

// BenchmarkLookup: go test -run '^$' -bench Lookup ./maps/cdb/
func BenchmarkLookup(b *testing.B) {
	tb := benchTable(b)
	keys := benchKeys()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, ok, err := tb.Lookup(ctx, keys[i&4095]); !ok || err != nil {
			b.Fatal(ok, err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

func BenchmarkLookupMiss(b *testing.B) {
	tb := benchTable(b)
	b.ResetTimer()
	for b.Loop() {
		// Not found: tries the key and the key with a NUL.
		if _, ok, err := tb.Lookup(ctx, "nobody@example.com"); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

func BenchmarkLookupParallel(b *testing.B) {
	tb := benchTable(b)
	keys := benchKeys()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok, err := tb.Lookup(ctx, keys[i&4095]); !ok || err != nil {
				b.Error(ok, err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// BenchmarkOpen maps the million-entry file and checks it (header, then
// every key for case folding): what a reload costs the lookup that finds
// the file replaced.
func BenchmarkOpen(b *testing.B) {
	benchTable(b)
	path := filepath.Join(benchDir, "big")
	for b.Loop() {
		tb, err := Open(path, quietOpts(""))
		if err != nil {
			b.Fatal(err)
		}
		tb.Close()
	}
}
