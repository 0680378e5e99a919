package socketmap

import (
	"fmt"
	"testing"
)

// BenchmarkLookup is one query round trip to the test's server over a unix
// socket; the parallel form spreads over the pooled connections.
// go test -run '^$' -bench . ./maps/socketmap/
func BenchmarkLookup(b *testing.B) {
	s := startServer(b, "unix")
	tb := openT(b, s.spec())
	for b.Loop() {
		if _, ok, err := tb.Lookup(ctx, "user@example.com"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

func BenchmarkLookupParallel(b *testing.B) {
	s := startServer(b, "unix")
	tb := openT(b, s.spec())
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if _, ok, err := tb.Lookup(ctx, fmt.Sprint("u", i&63)); !ok || err != nil {
				b.Error(ok, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}
