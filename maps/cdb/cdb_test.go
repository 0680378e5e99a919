package cdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
	"github.com/vlmtpd/vlmtpd/maps"
)

var ctx = context.Background()

func quietOpts(dir string) maps.Options {
	return maps.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)}
}

func build(t testing.TB, path string, opts WriteOptions, kv ...string) {
	t.Helper()
	var es []Entry
	for i := 0; i+1 < len(kv); i += 2 {
		es = append(es, Entry{Key: kv[i], Value: kv[i+1]})
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := Write(path, es, opts); err != nil {
		t.Fatal(err)
	}
}

func openT(t testing.TB, path string) *Table {
	t.Helper()
	tb, err := Open(path, quietOpts(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	return tb
}

func want(t testing.TB, tb maps.Map, key, value string, found bool) {
	t.Helper()
	v, ok, err := tb.Lookup(ctx, key)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", key, err)
	}
	if ok != found || v != value {
		t.Fatalf("Lookup(%q) = %q, %v; want %q, %v", key, v, ok, value, found)
	}
}

func TestHash(t *testing.T) {
	// Reference values worked out by hand from h = 5381; h = h*33 ^ c.
	if got := hash(""); got != 5381 {
		t.Fatalf("hash(\"\") = %d", got)
	}
	if got, w := hash("a"), uint32(5381*33^'a'); got != w {
		t.Fatalf("hash(a) = %d, want %d", got, w)
	}
	if got := hash("x_kbhba"); got != 0 {
		t.Fatalf("hash(x_kbhba) = %d, want 0", got)
	}
}

func TestEmptyTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty")
	build(t, path, WriteOptions{})
	st, err := os.Stat(path + ".cdb")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != headerSize {
		t.Fatalf("empty cdb is %d bytes, want %d", st.Size(), headerSize)
	}
	tb := openT(t, path)
	want(t, tb, "anything", "", false)
	want(t, tb, "", "", false)
}

func TestRoundTripAndOptions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vmailbox")
	build(t, path, WriteOptions{},
		"User@Example.COM", "example.com/user/",
		`"a b"@example.com`, "quoted/",
		"üser@exämple.de", "utf/",
		"user@example.com", "second-wins?",
		"empty@example.com", "",
	)
	tb := openT(t, path)
	if tb.Spec() != "cdb:"+path || tb.Pattern() {
		t.Fatalf("Spec %q Pattern %v", tb.Spec(), tb.Pattern())
	}
	want(t, tb, "user@example.com", "example.com/user/", true) // folded, first wins
	want(t, tb, `"a b"@example.com`, "quoted/", true)
	want(t, tb, "üser@exämple.de", "utf/", true)
	want(t, tb, "empty@example.com", "", true) // maps.List turns this into an error
	want(t, tb, "User@Example.COM", "", false) // callers fold; the file holds folded keys
	want(t, tb, "nobody@example.com", "", false)

	// KeepCase and AppendNUL: keys stored as given, with NULs.
	build(t, path, WriteOptions{KeepCase: true, AppendNUL: true}, "MiXed", "v1")
	var raw []string
	if err := Dump(path+".cdb", func(k, v []byte) error {
		raw = append(raw, fmt.Sprintf("%q=%q", k, v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(raw, ","); got != `"MiXed\x00"="v1\x00"` {
		t.Fatalf("stored %s", got)
	}
	tb2 := openT(t, path)
	want(t, tb2, "MiXed", "v1", true) // NUL form found, NUL cut from the value
	want(t, tb2, "mixed", "", false)

	// Relative names come from opts.Dir; the registry opens "cdb:".
	m, err := maps.Open("cdb:vmailbox", quietOpts(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close(m)
	want(t, m, "MiXed", "v1", true)
	if _, err := maps.Open("cdb:missing", quietOpts(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestDuplicateWarning(t *testing.T) {
	var logs bytes.Buffer
	path := filepath.Join(t.TempDir(), "d")
	w, err := NewWriter(path, WriteOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{{Key: "K", Value: "1"}, {Key: "k", Value: "2", Where: "src:7"}} {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if w.Len() != 1 || w.Duplicates() != 1 {
		t.Fatalf("Len %d Duplicates %d", w.Len(), w.Duplicates())
	}
	if s := logs.String(); !strings.Contains(s, `duplicate entry: \"k\"`) || !strings.Contains(s, "src:7") {
		t.Fatalf("log: %s", s)
	}
	want(t, openT(t, path), "k", "1", true)
}

func TestCollisionsAndHashZero(t *testing.T) {
	// uaa-@x and uaco@x have the same 32-bit hash, so they share a table
	// and a first slot and are told apart by the key comparison.
	coll := []string{"uaa-@x", "uaco@x", "uaa2@x", "uacp@x"}
	if hash(coll[0]) != hash(coll[1]) || hash(coll[2]) != hash(coll[3]) {
		t.Fatal("test keys do not collide")
	}
	// A key whose hash is 0 has a slot (0, offset): the slot is taken
	// because its offset is non-zero, whatever its hash.
	zero := "x_kbhba"
	path := filepath.Join(t.TempDir(), "c")
	var kv []string
	for _, k := range append(coll, zero) {
		kv = append(kv, k, "v-"+k)
	}
	build(t, path, WriteOptions{}, kv...)
	tb := openT(t, path)
	for _, k := range append(coll, zero) {
		want(t, tb, k, "v-"+k, true)
	}
	want(t, tb, "uacq@x", "", false)  // collides with uaa3@x, which is absent
	want(t, tb, "x_kbhbb", "", false) // same table as nothing stored

	// Only the zero-hash key in table 0: two slots, and the key sits in
	// slot 0 with stored hash 0.
	build(t, path, WriteOptions{}, zero, "z")
	data, _ := os.ReadFile(path + ".cdb")
	tpos, n := binary.LittleEndian.Uint32(data[0:]), binary.LittleEndian.Uint32(data[4:])
	if n != 2 || binary.LittleEndian.Uint32(data[tpos:]) != 0 || binary.LittleEndian.Uint32(data[tpos+4:]) != headerSize {
		t.Fatalf("table 0: %d slots, first slot % x", n, data[tpos:tpos+8])
	}
	want(t, openT(t, path), zero, "z", true)
}

// TestProbeWrap fills one table so probing wraps from its last slot to its
// first, including a completely full table, which a lookup must still end.
func TestProbeWrap(t *testing.T) {
	// Hand-built file: table 0 with 2 slots, both used by records with
	// hash 0x00000100 and 0x00000200 stored wrapped.
	var f bytes.Buffer
	f.Write(make([]byte, headerSize))
	rec := func(k, v string) uint32 {
		pos := uint32(f.Len())
		binary.Write(&f, binary.LittleEndian, [2]uint32{uint32(len(k)), uint32(len(v))})
		f.WriteString(k + v)
		return pos
	}
	k1, k2 := "x_kbhba", "uaa-@x"
	p1, p2 := rec(k1, "one"), rec(k2, "two")
	h1, h2 := hash(k1), hash(k2)
	tpos := uint32(f.Len())
	// One table holding both keys no matter their bucket: point every
	// header entry at it, 2 slots, full.
	slots := [2][2]uint32{{h2, p2}, {h1, p1}}
	binary.Write(&f, binary.LittleEndian, slots)
	data := f.Bytes()
	for i := 0; i < 256; i++ {
		binary.LittleEndian.PutUint32(data[i*8:], tpos)
		binary.LittleEndian.PutUint32(data[i*8+4:], 2)
	}
	r, err := newReader(data)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{k1: "one", k2: "two"} {
		got, ok, err := r.get(k)
		if err != nil || !ok || string(got) != v {
			t.Fatalf("get(%q) = %q %v %v", k, got, ok, err)
		}
	}
	if _, ok, err := r.get("absent"); ok || err != nil {
		t.Fatalf("absent key in a full table: %v %v", ok, err)
	}
}

func TestCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c")
	build(t, path, WriteOptions{}, "a", "1", "b", "2")
	good, _ := os.ReadFile(path + ".cdb")

	write := func(b []byte) {
		if err := os.WriteFile(path+".cdb", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Too short, and a header pointing past the end: refused at open.
	for _, b := range [][]byte{nil, good[:100], good[:headerSize+10]} {
		write(b)
		if _, err := Open(path, quietOpts("")); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d bytes: Open error %v, want ErrCorrupt", len(b), err)
		}
	}
	// A slot pointing past the end: the lookup fails, temporarily.
	bad := bytes.Clone(good)
	h := hash("a")
	tpos, n := binary.LittleEndian.Uint32(bad[(h&255)*8:]), binary.LittleEndian.Uint32(bad[(h&255)*8+4:])
	for i := uint32(0); i < n; i++ {
		if binary.LittleEndian.Uint32(bad[tpos+i*8:]) == h {
			binary.LittleEndian.PutUint32(bad[tpos+i*8+4:], 1<<30)
		}
	}
	write(bad)
	tb := openT(t, path)
	if _, _, err := tb.Lookup(ctx, "a"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("lookup through a bad slot: %v", err)
	}
	want(t, tb, "b", "2", true)
}

// TestTruncatedInPlace rewrites the open file in place (not the atomic
// rename postmap and makemap do): touching the mapping past the new end
// faults, and that must be a lookup error, not a crash.
func TestTruncatedInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t")
	build(t, path, WriteOptions{}, "a", "1")
	tb := openT(t, path)
	want(t, tb, "a", "1", true)
	if err := os.Truncate(path+".cdb", 0); err != nil {
		t.Fatal(err)
	}
	_, _, err := tb.Lookup(ctx, "a")
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("lookup in a truncated mapping: %v", err)
	}
	// Repaired by an atomic rebuild: the next stat picks it up.
	build(t, path, WriteOptions{}, "a", "2")
	waitFor(t, func() bool { v, _, _ := tb.Lookup(ctx, "a"); return v == "2" })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func shortCheck(t *testing.T) {
	old := checkInterval
	checkInterval = 5 * time.Millisecond
	t.Cleanup(func() { checkInterval = old })
}

// unmapped waits until at most n more mappings than before are left
// mapped, collecting garbage for the cleanups that unmap the others.
func unmapped(t *testing.T, before, n int64) {
	t.Helper()
	waitFor(t, func() bool {
		runtime.GC()
		return liveMappings.Load()-before <= n
	})
}

// TestReopenWhileLookingUp replaces the file over and over while readers
// look keys up. Every answer must come from one complete version, no
// lookup may fail, old mappings must be unmapped once unused (all but the
// current one and the maps.ReloadGrace versions), and the last version
// must be seen.
func TestReopenWhileLookingUp(t *testing.T) {
	shortCheck(t)
	before := liveMappings.Load()
	path := filepath.Join(t.TempDir(), "r")
	const keys = 50
	version := func(n int) {
		kv := make([]string, 0, 2*keys+2)
		for i := range keys {
			kv = append(kv, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d-%d", n, i))
		}
		kv = append(kv, "version", fmt.Sprint(n))
		build(t, path, WriteOptions{}, kv...)
	}
	version(0)
	tb := openT(t, path)

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; !stop.Load(); i++ {
				k := i % keys
				v, ok, err := tb.Lookup(ctx, fmt.Sprintf("k%d", k))
				var n int
				if err == nil && ok {
					_, err = fmt.Sscanf(v, "v%d-", &n)
				}
				if err != nil || !ok || v != fmt.Sprintf("v%d-%d", n, k) {
					errs <- fmt.Errorf("k%d: %q %v %v", k, v, ok, err)
					return
				}
			}
		}()
	}
	const versions = 15
	for n := 1; n <= versions; n++ {
		version(n)
		time.Sleep(3 * time.Millisecond)
	}
	waitFor(t, func() bool { v, _, _ := tb.Lookup(ctx, "version"); return v == fmt.Sprint(versions) })
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	unmapped(t, before, 3) // the current version and two replaced ones
	tb.Close()
	if _, _, err := tb.Lookup(ctx, "k1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("lookup after Close: %v", err)
	}
	unmapped(t, before, 0)
}

// TestReplacementUnreadable keeps serving the old version when the new
// file is corrupt or gone, and logs it once per version of the file.
func TestReplacementUnreadable(t *testing.T) {
	shortCheck(t)
	var logs testutil.SyncBuffer
	path := filepath.Join(t.TempDir(), "u")
	build(t, path, WriteOptions{}, "a", "1")
	tb, err := Open(path, maps.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	// A corrupt replacement, renamed into place.
	if err := os.WriteFile(path+".new", []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path+".cdb"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	want(t, tb, "a", "1", true)
	const failed = "could not be loaded again; still using the previous contents"
	logged := func(what string) bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, failed) && strings.Contains(l, what) {
				return true
			}
		}
		return false
	}
	waitFor(t, func() bool { return logged(ErrCorrupt.Error()) })
	if err := os.Remove(path + ".cdb"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	want(t, tb, "a", "1", true)
	waitFor(t, func() bool { return logged("no such file or directory") })
	if n := strings.Count(logs.String(), ErrCorrupt.Error()); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, logs.String())
	}
	build(t, path, WriteOptions{}, "a", "3")
	waitFor(t, func() bool { v, _, _ := tb.Lookup(ctx, "a"); return v == "3" })
}

func TestWriterKeepsModeAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m")
	build(t, path, WriteOptions{}, "a", "1")
	if st, _ := os.Stat(path + ".cdb"); st.Mode().Perm() != 0o644 {
		t.Fatalf("new table mode %v", st.Mode())
	}
	if err := os.Chmod(path+".cdb", 0o640); err != nil {
		t.Fatal(err)
	}
	build(t, path, WriteOptions{}, "a", "2")
	if st, _ := os.Stat(path + ".cdb"); st.Mode().Perm() != 0o640 {
		t.Fatalf("rebuilt table mode %v, want 0640 kept", st.Mode())
	}
	w, err := NewWriter(path, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Add(Entry{Key: "x", Value: "y"})
	w.Abort()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("after Abort the directory holds %v", ents)
	}
	want(t, openT(t, path), "a", "2", true)
}

// TestCloseWhileLookingUp: lookups racing Close get a right answer or
// ErrClosed, and the mapping is unmapped once the last one is done.
func TestCloseWhileLookingUp(t *testing.T) {
	shortCheck(t)
	path := filepath.Join(t.TempDir(), "c")
	build(t, path, WriteOptions{}, "a", "1")
	before := liveMappings.Load()
	tb, err := Open(path, quietOpts(""))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var closed atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				v, ok, err := tb.Lookup(ctx, "a")
				if errors.Is(err, ErrClosed) {
					closed.Add(1)
					return
				}
				if err != nil || !ok || v != "1" {
					t.Errorf("%q %v %v", v, ok, err)
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	tb.Close()
	wg.Wait()
	if closed.Load() != 4 {
		t.Fatalf("%d readers saw ErrClosed", closed.Load())
	}
	unmapped(t, before, 0)
}

// TestUnfoldedKeysWarn: a file built without folding (postmap -f, makemap
// -f, another cdb tool) holds keys a folded address never finds; opening
// it names them, at most maps.MaxUnfoldedWarnings, then a count. A file built
// normally is folded with full Unicode folding (ß → ss) and opens silently.
func TestUnfoldedKeysWarn(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vmailbox")
	kv := []string{"Mixed@plus.test", "a/", "ok@plus.test", "b/", "Straße@x.test", "c/"}
	for i := 0; i < maps.MaxUnfoldedWarnings; i++ {
		kv = append(kv, fmt.Sprintf("U%d@x.test", i), "d/")
	}
	build(t, path, WriteOptions{KeepCase: true, AppendNUL: true}, kv...)
	var logs bytes.Buffer
	tb, err := Open(path, maps.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	got := logs.String()
	for _, w := range []string{
		`key \"Mixed@plus.test\" is not case-folded`,
		`key \"Straße@x.test\" is not case-folded`, `write \"strasse@x.test\"`,
		"7 keys in all are not case-folded",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("warnings lack %q:\n%s", w, got)
		}
	}
	if n := strings.Count(got, "is not case-folded"); n != maps.MaxUnfoldedWarnings {
		t.Errorf("%d key warnings, want %d:\n%s", n, maps.MaxUnfoldedWarnings, got)
	}
	want(t, tb, "mixed@plus.test", "", false)

	build(t, path, WriteOptions{}, "Straße@X.test", "folded/")
	logs.Reset()
	tb2, err := Open(path, maps.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tb2.Close()
	want(t, tb2, "strasse@x.test", "folded/", true)
	if logs.Len() != 0 {
		t.Errorf("a folded file warned:\n%s", logs.String())
	}
}

// A reloaded version is checked for unfolded keys too (in the background:
// the lookup that found it does not wait for the scan).
func TestUnfoldedKeysWarnOnReload(t *testing.T) {
	shortCheck(t)
	path := filepath.Join(t.TempDir(), "vmailbox")
	build(t, path, WriteOptions{}, "ok@x.test", "a/")
	var logs testutil.SyncBuffer
	tb, err := Open(path, maps.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	build(t, path, WriteOptions{KeepCase: true}, "ok@x.test", "a/", "Upper@x.test", "b/")
	waitFor(t, func() bool {
		tb.Lookup(ctx, "ok@x.test")
		return strings.Contains(logs.String(), `key \"Upper@x.test\" is not case-folded`)
	})
}
