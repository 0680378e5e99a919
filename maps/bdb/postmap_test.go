package bdb

import (
	"github.com/vlmtpd/vlmtpd/internal/testutil"

	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vlmtpd/vlmtpd/maps"
)

var ctx = context.Background()

func quietOpts(dir string) maps.Options {
	return maps.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)}
}

// tool finds a program, or skips the test (fails it under CI=true, where
// .ci/apt-packages installs it).
func tool(t testing.TB, name, pkg string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
			if p := filepath.Join(dir, name); fileExists(p) {
				return p
			}
		}
		testutil.SkipOrFail(t, "%s not installed (apt-get install %s): %v", name, pkg, err)
	}
	return bin
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// postmap returns a runner of Debian's postmap with a private, empty
// configuration directory.
func postmap(t testing.TB) func(args ...string) (string, error) {
	t.Helper()
	bin := tool(t, "postmap", "postfix")
	cfg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "main.cf"), []byte("smtputf8_enable = yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"-c", cfg}, args...)...)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("postmap %v: %v: %s", args, err, strings.TrimSpace(stderr.String()))
		}
		return out.String(), err
	}
}

func openT(t testing.TB, kind Kind, name string) *Table {
	t.Helper()
	tb, err := Open(kind, name, quietOpts(""))
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

// goldenSource is a postmap source of n entries: mixed-case keys, quoted
// and UTF-8 keys, values from a few bytes to several pages (overflow
// pages), and keys long enough to be overflow items themselves. It returns
// the source and what every folded key must map to.
func goldenSource(n int) (string, map[string]string) {
	var src strings.Builder
	want := map[string]string{}
	add := func(k, v string) {
		fmt.Fprintf(&src, "%s\t%s\n", k, v)
		want[strings.ToLower(k)] = v
	}
	for i := range n {
		k := fmt.Sprintf("User%05d@Example%d.COM", i, i%7)
		v := fmt.Sprintf("example%d.com/user%05d/", i%7, i)
		switch {
		case i%97 == 0: // a big item: several overflow pages at 4 KiB
			v += strings.Repeat(fmt.Sprintf("long%d-", i), 1500)
		case i%13 == 0: // just over a quarter page: an overflow item in hash
			v += strings.Repeat("x", 1100)
		}
		add(k, v)
	}
	for i := range 5 {
		add(fmt.Sprintf("%s%d@example.net", strings.Repeat("k", 3000), i), fmt.Sprintf("long-key-%d/", i))
	}
	add(`"a b"@example.com`, "quoted/")
	add("üser@exämple.de", "utf/ü")
	add("@example.org", "example.org/catchall/")
	return src.String(), want
}

// TestPostmapGolden builds hash: and btree: files with Debian's postmap,
// with its default NUL handling (keys and values end in NUL on Linux),
// with -N (NUL forced) and -n (no NUL), and reads every key back. The
// records our walk finds must be exactly those `postmap -s` dumps.
func TestPostmapGolden(t *testing.T) {
	run := postmap(t)
	src, wantKV := goldenSource(6000)
	dir := t.TempDir()
	path := filepath.Join(dir, "vmailbox")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []Kind{Hash, Btree} {
		for _, flag := range []string{"", "-N", "-n"} {
			t.Run(kind.String()+flag, func(t *testing.T) {
				args := []string{kind.String() + ":" + path}
				if flag != "" {
					args = append([]string{flag}, args...)
				}
				if _, err := run(args...); err != nil {
					t.Fatal(err)
				}
				// Stored form: NUL-terminated unless -n.
				nul := flag != "-n"
				var keys []string
				if err := Dump(path+".db", func(k, v []byte) error {
					if bytes.HasSuffix(k, []byte{0}) != nul || bytes.HasSuffix(v, []byte{0}) != nul {
						return fmt.Errorf("record %q=%q: NUL-terminated should be %v", k, v, nul)
					}
					keys = append(keys, string(bytes.TrimSuffix(k, []byte{0}))+"\t"+string(bytes.TrimSuffix(v, []byte{0})))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				dump, err := run("-s", kind.String()+":"+path)
				if err != nil {
					t.Fatal(err)
				}
				theirs := strings.Split(strings.TrimSuffix(dump, "\n"), "\n")
				sort.Strings(keys)
				sort.Strings(theirs)
				if len(keys) != len(wantKV) || strings.Join(keys, "\n") != strings.Join(theirs, "\n") {
					t.Fatalf("our walk found %d records, postmap -s %d, the source has %d", len(keys), len(theirs), len(wantKV))
				}

				tb := openT(t, kind, path)
				if tb.Len() != len(wantKV) || tb.Spec() != kind.String()+":"+path || tb.Pattern() {
					t.Fatalf("Len %d Spec %q Pattern %v", tb.Len(), tb.Spec(), tb.Pattern())
				}
				d := tb.current().db
				if overflow := countOverflowPages(d); overflow == 0 {
					t.Fatal("the file has no overflow pages: the test does not cover them")
				}
				for k, v := range wantKV {
					want(t, tb, k, v, true)
				}
				for _, miss := range []string{"nobody@example.com", "user00001@example1.co", "", "user00001@example1.com\x00"} {
					want(t, tb, miss, "", false)
				}
				// Spot checks against postmap's own lookup.
				for _, k := range []string{"user00000@example0.com", "user00013@example6.com", `"a b"@example.com`, "üser@exämple.de"} {
					out, err := run("-q", k, kind.String()+":"+path)
					if err != nil || out != wantKV[k]+"\n" {
						t.Fatalf("postmap -q %q: %.40q %v", k, out, err)
					}
					want(t, tb, k, wantKV[k], true)
				}
			})
		}
	}
}

// TestPostmapIncremental: files changed in place by `postmap -d -` (keys
// deleted, pages emptied and freed) and `postmap -i` (keys added to a
// built file, pages split) read back exactly.
func TestPostmapIncremental(t *testing.T) {
	run := postmap(t)
	stdin := func(in string, args ...string) {
		t.Helper()
		cmd := exec.Command(tool(t, "postmap", "postfix"), args...)
		cmd.Stdin = strings.NewReader(in)
		cmd.Env = append(os.Environ(), "MAIL_CONFIG="+postmapConfig(t))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("postmap %v: %v: %s", args, err, out)
		}
	}
	src, wantKV := goldenSource(3000)
	path := filepath.Join(t.TempDir(), "inc")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []Kind{Hash, Btree} {
		spec := kind.String() + ":" + path
		if _, err := run(spec); err != nil {
			t.Fatal(err)
		}
		expect := map[string]string{}
		var del, add strings.Builder
		i := 0
		for k, v := range wantKV {
			if i%3 == 0 && !strings.Contains(k, "\"") {
				fmt.Fprintln(&del, k)
			} else {
				expect[k] = v
			}
			i++
		}
		for j := range 800 {
			k := fmt.Sprintf("added%04d@example.com", j)
			v := fmt.Sprintf("example.com/added%04d/%s", j, strings.Repeat("a", j%3*900))
			fmt.Fprintf(&add, "%s %s\n", k, v)
			expect[k] = v
		}
		stdin(del.String(), "-d", "-", spec)
		stdin(add.String(), "-i", spec)
		tb := openT(t, kind, path)
		if tb.Len() != len(expect) {
			t.Fatalf("%s: %d entries, want %d", kind, tb.Len(), len(expect))
		}
		for k, v := range expect {
			want(t, tb, k, v, true)
		}
		for k := range wantKV {
			if _, kept := expect[k]; !kept {
				want(t, tb, k, "", false)
			}
		}
	}
}

// postmapConfig is a private Postfix configuration directory.
func postmapConfig(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte("smtputf8_enable = yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPostmapSmallTables: tables of zero, one and two entries, where most
// bucket pages libdb allocated were never written (holes of zeros).
func TestPostmapSmallTables(t *testing.T) {
	run := postmap(t)
	path := filepath.Join(t.TempDir(), "small")
	for _, kind := range []Kind{Hash, Btree} {
		for n := range 3 {
			var src strings.Builder
			for i := range n {
				fmt.Fprintf(&src, "U%d@example.com example.com/u%d/\n", i, i)
			}
			if err := os.WriteFile(path, []byte(src.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := run(kind.String() + ":" + path); err != nil {
				t.Fatal(err)
			}
			tb := openT(t, kind, path)
			if tb.Len() != n {
				t.Fatalf("%s with %d entries: Len %d", kind, n, tb.Len())
			}
			for i := range n {
				want(t, tb, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("example.com/u%d/", i), true)
			}
			want(t, tb, "nobody@example.com", "", false)
		}
	}
}

func countOverflowPages(d *db) int {
	n := 0
	for pg := uint32(1); pg < d.npages; pg++ {
		if p, err := d.page(pg); err == nil && p.typ == pOverflow {
			n++
		}
	}
	return n
}

// TestDBLoadOrdersAndPageSizes builds files with libdb's own db_load in
// the other byte order (big-endian, as on s390x or a file copied from
// one) and at the smallest and largest page sizes, and reads every key.
func TestDBLoadOrdersAndPageSizes(t *testing.T) {
	load := tool(t, "db5.3_load", "db5.3-util")
	src, wantKV := goldenSource(3000)
	// db_load -T: key line, value line; backslashes are escapes.
	var in strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(src, "\n"), "\n") {
		k, v, _ := strings.Cut(line, "\t")
		fmt.Fprintf(&in, "%s\\00\n%s\\00\n", strings.ToLower(k), v)
	}
	dir := t.TempDir()
	for _, kind := range []Kind{Hash, Btree} {
		for _, c := range []struct{ lorder, psize string }{{"4321", "4096"}, {"1234", "512"}, {"4321", "65536"}, {"4321", "512"}} {
			name := filepath.Join(dir, fmt.Sprintf("%s-%s-%s", kind, c.lorder, c.psize))
			cmd := exec.Command(load, "-T", "-t", kind.String(), "-c", "db_lorder="+c.lorder, "-c", "db_pagesize="+c.psize, name+".db")
			cmd.Stdin = strings.NewReader(in.String())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("db_load %s: %v: %s", name, err, out)
			}
			tb := openT(t, kind, name)
			d := tb.current().db
			if d.bigEndian != (c.lorder == "4321") || fmt.Sprint(d.psize) != c.psize {
				t.Fatalf("%s: read as big-endian=%v, page size %d", name, d.bigEndian, d.psize)
			}
			if tb.Len() != len(wantKV) {
				t.Fatalf("%s: %d entries, want %d", name, tb.Len(), len(wantKV))
			}
			for k, v := range wantKV {
				want(t, tb, k, v, true)
			}
			want(t, tb, "nobody@example.com", "", false)
		}
	}
}

// TestRegistryAndErrors opens through maps.Open and checks the errors an
// admin meets.
func TestRegistryAndErrors(t *testing.T) {
	run := postmap(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "vmailbox")
	if err := os.WriteFile(path, []byte("User@Example.com example.com/user/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run("btree:" + path); err != nil {
		t.Fatal(err)
	}
	m, err := maps.Open("proxy:btree:vmailbox", quietOpts(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close(m)
	want(t, m, "user@example.com", "example.com/user/", true)

	// A btree file named as hash: says what to write instead.
	if _, err := maps.Open("hash:vmailbox", quietOpts(dir)); err == nil || !strings.Contains(err.Error(), "use btree:") {
		t.Fatalf("btree file as hash: %v", err)
	}
	if _, err := maps.Open("hash:missing", quietOpts(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := maps.Open("hash:", quietOpts(dir)); err == nil {
		t.Fatal("empty name accepted")
	}
	for _, b := range [][]byte{nil, []byte("garbage"), make([]byte, 4096)} {
		if err := os.WriteFile(path+".db", b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Hash, path, quietOpts("")); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%d bytes: %v, want ErrCorrupt", len(b), err)
		}
	}
	// A truncated postmap file: the meta page names pages that are gone.
	src, _ := goldenSource(300)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run("hash:" + path); err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(path + ".db")
	if err := os.WriteFile(path+".db", full[:len(full)-4096], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Hash, path, quietOpts("")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v, want ErrCorrupt", err)
	}
}

// A file postmap -f built keeps the case of its keys, which a folded
// address never finds: opening it warns about them, as for cdb.
func TestUnfoldedKeysWarn(t *testing.T) {
	run := postmap(t)
	src := filepath.Join(t.TempDir(), "vmailbox")
	if err := os.WriteFile(src, []byte("Mixed@plus.test a/\nok@plus.test b/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run("-f", "hash:"+src); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	tb, err := Open(Hash, src, maps.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if got := logs.String(); !strings.Contains(got, `key \"Mixed@plus.test\" is not case-folded`) || strings.Contains(got, "ok@plus.test") {
		t.Errorf("warnings:\n%s", got)
	}
}
