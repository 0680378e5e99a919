package bdb

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The fixtures in testdata are small files for the fuzz seed corpus and
// for reading without postmap: made by postmap (little-endian, 4 KiB
// pages, NUL-terminated keys) and by db5.3_load (big-endian, 512-byte
// pages, so that a few dozen keys give overflow pages, several buckets and
// a btree with internal pages). TestFixtures -update rebuilds them.
var fixtures = []struct {
	file string
	kind Kind
	tool string // "postmap" or "db_load"
}{
	{"hash-postmap.db", Hash, "postmap"},
	{"btree-postmap.db", Btree, "postmap"},
	{"hash-be-512.db", Hash, "db_load"},
	{"btree-be-512.db", Btree, "db_load"},
}

// fixtureEntries is what every fixture holds (folded keys).
func fixtureEntries() map[string]string {
	m := map[string]string{}
	for i := range 60 {
		v := fmt.Sprintf("example.com/u%02d/", i)
		if i%20 == 0 {
			v += strings.Repeat("big", 400) // overflow pages at 512 and 4096 bytes
		}
		m[fmt.Sprintf("u%02d@example.com", i)] = v
	}
	m[strings.Repeat("long", 40)+"@example.com"] = "long-key/"
	return m
}

var update = os.Getenv("VLMTPD_UPDATE_FIXTURES") != ""

// TestFixtures reads every fixture (VLMTPD_UPDATE_FIXTURES=1 rebuilds
// them first with postmap and db5.3_load).
func TestFixtures(t *testing.T) {
	entries := fixtureEntries()
	if update {
		var src, dbl strings.Builder
		for k, v := range entries {
			fmt.Fprintf(&src, "%s %s\n", k, v)
			fmt.Fprintf(&dbl, "%s\\00\n%s\\00\n", k, v)
		}
		run := postmap(t)
		load := tool(t, "db5.3_load", "db5.3-util")
		dir := t.TempDir()
		for _, f := range fixtures {
			out := filepath.Join("testdata", f.file)
			os.Remove(out)
			if f.tool == "postmap" {
				s := filepath.Join(dir, f.kind.String())
				if err := os.WriteFile(s, []byte(src.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				if _, err := run(f.kind.String() + ":" + s); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(s+".db", out); err != nil {
					t.Fatal(err)
				}
				continue
			}
			cmd := exec.Command(load, "-T", "-t", f.kind.String(), "-c", "db_lorder=4321", "-c", "db_pagesize=512", out)
			cmd.Stdin = strings.NewReader(dbl.String())
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("db_load: %v: %s", err, b)
			}
		}
	}
	for _, f := range fixtures {
		name := strings.TrimSuffix(filepath.Join("testdata", f.file), ".db")
		tb := openT(t, f.kind, name)
		d := tb.current().db
		if tb.Len() != len(entries) || countOverflowPages(d) == 0 {
			t.Fatalf("%s: %d entries, %d overflow pages", f.file, tb.Len(), countOverflowPages(d))
		}
		if f.kind == Btree && f.tool == "db_load" {
			if root, err := d.page(d.root); err != nil || root.typ != pIBtree {
				t.Fatalf("%s: root is not an internal page: %v", f.file, err)
			}
		}
		for k, v := range entries {
			want(t, tb, k, v, true)
		}
		want(t, tb, "nobody@example.com", "", false)
	}
}

// FuzzDB feeds arbitrary bytes to the reader as a Berkeley DB file:
// parsing, lookups and the walk may fail but must never panic or hang,
// and when the walk succeeds every record it shows must be what a lookup
// of its key returns.
// Run: go test -run '^$' -fuzz FuzzDB -fuzzminimizetime 100x ./maps/bdb/
// (the default minimize budget of 60s per new input stalls this target).
func FuzzDB(f *testing.F) {
	for _, fx := range fixtures {
		b, err := os.ReadFile(filepath.Join("testdata", fx.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "u01@example.com\x00")
		f.Add(b[:len(b)/2], "u20@example.com\x00")
	}
	f.Add(make([]byte, 1024), "")
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		d, err := parse(data)
		if err != nil {
			return
		}
		d.get([]byte(key))
		type rec struct{ k, v []byte }
		var recs []rec
		err = d.each(func(k, v []byte) error {
			recs = append(recs, rec{k, v})
			return nil
		})
		if err != nil {
			return
		}
		for _, r := range recs {
			v, found, err := d.get(r.k)
			if err != nil || !found || !bytes.Equal(v, r.v) {
				t.Fatalf("walk shows %q=%q, lookup gives %q %v %v", r.k, r.v, v, found, err)
			}
		}
	})
}
