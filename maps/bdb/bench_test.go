package bdb

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
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

// benchTable opens a one-million-entry table built by postmap, once per
// test binary for each kind (b.Run calls a benchmark several times, and
// each open reads and checks 60 MB); reportOpen reports how long the open
// took (after the loop: ResetTimer drops metrics reported before it).
func benchTable(b *testing.B, kind Kind) (tb *Table, reportOpen func()) {
	run := postmap(b)
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "bdb-bench-")
		if benchErr != nil {
			return
		}
		f, err := os.Create(filepath.Join(benchDir, "big"))
		if err != nil {
			benchErr = err
			return
		}
		w := bufio.NewWriter(f)
		for i := range benchEntries {
			fmt.Fprintf(w, "%s example.com/user%07d/\n", benchKey(i), i)
		}
		if benchErr = w.Flush(); benchErr != nil {
			return
		}
		f.Close()
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	bt, ok := benchTables[kind]
	if !ok {
		path := filepath.Join(benchDir, "big")
		if _, err := run(kind.String() + ":" + path); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(path+".db", path+"-"+kind.String()+".db"); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		t, err := Open(kind, path+"-"+kind.String(), quietOpts(""))
		if err != nil {
			b.Fatal(err)
		}
		bt = benchOpen{t, time.Since(start)}
		benchTables[kind] = bt
	}
	return bt.t, func() { b.ReportMetric(bt.took.Seconds(), "open-s") }
}

type benchOpen struct {
	t    *Table
	took time.Duration
}

var benchTables = map[Kind]benchOpen{}

func benchKeys() []string {
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = benchKey(i * 7919 % benchEntries)
	}
	return keys
}

// BenchmarkLookup: go test -run '^$' -bench . ./maps/bdb/
func BenchmarkLookup(b *testing.B) {
	for _, kind := range []Kind{Hash, Btree} {
		b.Run(kind.String(), func(b *testing.B) {
			tb, reportOpen := benchTable(b, kind)
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
			reportOpen()
		})
	}
}

func BenchmarkLookupMiss(b *testing.B) {
	for _, kind := range []Kind{Hash, Btree} {
		b.Run(kind.String(), func(b *testing.B) {
			tb, _ := benchTable(b, kind)
			b.ResetTimer()
			for b.Loop() {
				// Not found: the latch set by a hit is not there yet, so
				// both forms are tried.
				if _, ok, err := tb.Lookup(ctx, "nobody@example.com"); ok || err != nil {
					b.Fatal(ok, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
		})
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	for _, kind := range []Kind{Hash, Btree} {
		b.Run(kind.String(), func(b *testing.B) {
			tb, _ := benchTable(b, kind)
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
		})
	}
}
