package maildirpp

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata file path (rewriting it with -update).
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s:\n got: %q\nwant: %q", path, got, want)
	}
}

func describe(f File, why Reason) string {
	if why == Malformed || why == TooLarge {
		return fmt.Sprintf("recalculate: %s\n", why)
	}
	s := fmt.Sprintf("limits %q = %s\nlines %d\nusage %d bytes %d messages\n", f.LimitsLine, f.Limits, f.Lines, f.Usage.Bytes, f.Usage.Count)
	if why != Fine {
		s += fmt.Sprintf("recalculate: %s\n", why)
	}
	return s
}

// TestParseGolden: each testdata/parse/*.in is a maildirsize; its .golden
// is what Parse makes of it (limits, usage, or why it must be rebuilt).
func TestParseGolden(t *testing.T) {
	ins, _ := filepath.Glob("testdata/parse/*.in")
	if len(ins) < 10 {
		t.Fatalf("only %d parse cases", len(ins))
	}
	for _, in := range ins {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			f, why := Parse(data)
			golden(t, strings.TrimSuffix(in, ".in")+".golden", describe(f, why))
		})
	}
}

// buildTree makes a Maildir from a .tree description in dir/maildir:
// "file PATH [SIZE]", "dir PATH", "symlink PATH TARGET"; paths are
// relative to the Maildir.
func buildTree(t *testing.T, spec, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "maildir")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(spec))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		p := filepath.Join(root, f[1])
		os.MkdirAll(filepath.Dir(p), 0o700)
		var err error
		switch f[0] {
		case "file":
			size := 0
			if len(f) > 2 {
				size, _ = strconv.Atoi(f[2])
			}
			err = os.WriteFile(p, []byte(strings.Repeat("x", size)), 0o600)
		case "dir":
			err = os.MkdirAll(p, 0o700)
		case "symlink":
			err = os.Symlink(f[2], p)
		default:
			t.Fatalf("bad tree line %q", sc.Text())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func openDir(t testing.TB, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestRecalculateGolden: each testdata/recalc/*.tree is a Maildir++ tree;
// the .golden is the usage a recalculation finds there (Dovecot's rules:
// new/ and cur/ of INBOX and of every ".folder", ,S= else the file size).
func TestRecalculateGolden(t *testing.T) {
	trees, _ := filepath.Glob("testdata/recalc/*.tree")
	if len(trees) < 4 {
		t.Fatalf("only %d recalc cases", len(trees))
	}
	for _, tr := range trees {
		t.Run(filepath.Base(tr), func(t *testing.T) {
			spec, err := os.ReadFile(tr)
			if err != nil {
				t.Fatal(err)
			}
			root := buildTree(t, string(spec), t.TempDir())
			u, changed, err := Recalculate(openDir(t, root))
			if err != nil {
				t.Fatal(err)
			}
			if changed {
				t.Error("nothing changed the tree, yet changed is reported")
			}
			golden(t, strings.TrimSuffix(tr, ".tree")+".golden", fmt.Sprintf("%d bytes %d messages\n", u.Bytes, u.Count))
		})
	}
}

func TestParseLimits(t *testing.T) {
	for in, want := range map[string]Limits{
		"52428800": {Bytes: 52428800}, "0": {}, "0S": {}, "1000S": {Bytes: 1000}, "50C": {Count: 50},
		"1000S,50C": {1000, 50}, "50C,1000S": {1000, 50}, " 1000S , 5C ": {1000, 5},
	} {
		got, err := ParseLimits(in)
		if err != nil || got != want {
			t.Errorf("ParseLimits(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "10K", "S", "1000S,2000S", "x", "1000S,", "+5S", "-5C", "1e3"} {
		if l, err := ParseLimits(bad); err == nil {
			t.Errorf("ParseLimits(%q) = %+v, want an error", bad, l)
		}
	}
	for l, want := range map[Limits]string{{}: "0S", {Bytes: 5}: "5S", {Count: 3}: "3C", {5, 3}: "5S,3C"} {
		if got := l.Line(); got != want {
			t.Errorf("%+v.Line() = %q, want %q", l, got, want)
		}
		back, ok := parseLimitsLine(want)
		if !ok || back != l {
			t.Errorf("parseLimitsLine(%q) = %+v", want, back)
		}
	}
}

func TestFits(t *testing.T) {
	l := Limits{Bytes: 1000, Count: 3}
	cases := []struct {
		u    Usage
		size int64
		want bool
	}{
		{Usage{0, 0}, 1000, true},  // exact fit
		{Usage{0, 0}, 1001, false}, // one byte over
		{Usage{900, 2}, 100, true},
		{Usage{900, 3}, 1, false}, // the count limit
		{Usage{1200, 1}, 0, false},
	}
	for _, c := range cases {
		if got := c.u.Fits(c.size, l); got != c.want {
			t.Errorf("%+v.Fits(%d) = %v", c.u, c.size, got)
		}
	}
	if !(Usage{1 << 40, 1 << 40}).Fits(1<<40, Limits{}) {
		t.Error("no limits must always fit")
	}
}

// TestCheckRules: the recalculation triggers of maildirquota(7) and
// Dovecot for a file that parsed.
func TestCheckRules(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := Limits{Bytes: 1000}
	fresh, old := now.Add(-time.Minute), now.Add(-16*time.Minute)
	cases := []struct {
		name  string
		f     File
		want  Limits
		mtime time.Time
		why   Reason
	}{
		{"under quota, old", File{Limits: l, Usage: Usage{500, 5}, Lines: 7}, l, old, Fine},
		{"limits differ", File{Limits: Limits{Bytes: 2000}, Usage: Usage{5, 1}, Lines: 1}, l, fresh, LimitsDiffer},
		{"count added", File{Limits: l, Usage: Usage{5, 1}, Lines: 1}, Limits{1000, 10}, fresh, LimitsDiffer},
		{"over quota, fresh, one line", File{Limits: l, Usage: Usage{1500, 1}, Lines: 1}, l, fresh, Fine},
		{"over quota, 16 minutes old", File{Limits: l, Usage: Usage{1500, 1}, Lines: 1}, l, old, StaleOverQuota},
		{"over quota, two lines", File{Limits: l, Usage: Usage{1500, 2}, Lines: 2}, l, fresh, OverQuotaLines},
		{"at the limit is not over", File{Limits: l, Usage: Usage{1000, 2}, Lines: 2}, l, old, Fine},
	}
	for _, c := range cases {
		if got := c.f.Check(c.want, c.mtime, now); got != c.why {
			t.Errorf("%s: Check = %q, want %q", c.name, got, c.why)
		}
	}
}

// TestCurrent: the file is created by a recalculation when missing (only
// with Create), appended to, trusted while it is right, and rebuilt when
// a rule says so; symlinked quota files are refused.
func TestCurrent(t *testing.T) {
	dir := t.TempDir()
	root := buildTree(t, "file new/a,S=100\nfile .F/cur/b,S=50:2,S\n", dir)
	fd := openDir(t, root)
	l := Limits{Bytes: 1000, Count: 10}

	st, err := Current(fd, l, Options{})
	if err != nil || st.Usage != (Usage{150, 2}) || st.Recalculated != Missing || st.Written {
		t.Fatalf("without Create: %+v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(root, FileName)); !os.IsNotExist(err) {
		t.Fatal("maildirsize created without Create")
	}
	st, err = Current(fd, l, Options{Create: true})
	if err != nil || !st.Written || st.Usage != (Usage{150, 2}) {
		t.Fatalf("with Create: %+v, %v", st, err)
	}
	if got := readFile(t, filepath.Join(root, FileName)); got != "1000S,10C\n150 2\n" {
		t.Fatalf("maildirsize = %q", got)
	}
	fi, _ := os.Stat(filepath.Join(root, FileName))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("maildirsize mode %v", fi.Mode())
	}

	// Appends are trusted without a recalculation, even if the tree says
	// otherwise (that is the point of the file).
	if err := Append(fd, Usage{300, 1}); err != nil {
		t.Fatal(err)
	}
	st, err = Current(fd, l, Options{Create: true})
	if err != nil || st.Recalculated != Fine || st.Usage != (Usage{450, 3}) {
		t.Fatalf("after append: %+v, %v", st, err)
	}
	if got := readFile(t, filepath.Join(root, FileName)); got != "1000S,10C\n150 2\n300 1\n" {
		t.Fatalf("maildirsize = %q", got)
	}

	// Another quota in the table: rebuilt with the new limits line.
	st, err = Current(fd, Limits{Bytes: 5000}, Options{Create: true})
	if err != nil || st.Recalculated != LimitsDiffer || st.Usage != (Usage{150, 2}) {
		t.Fatalf("new limits: %+v, %v", st, err)
	}
	if got := readFile(t, filepath.Join(root, FileName)); got != "5000S\n150 2\n" {
		t.Fatalf("maildirsize = %q", got)
	}

	// Over 5120 bytes: rebuilt.
	for i := 0; i < 1300; i++ {
		if err := Append(fd, Usage{1, 0}); err != nil {
			t.Fatal(err)
		}
	}
	st, err = Current(fd, Limits{Bytes: 5000}, Options{Create: true})
	if err != nil || st.Recalculated != TooLarge || st.Usage != (Usage{150, 2}) {
		t.Fatalf("too large: %+v, %v", st, err)
	}

	// A lock left by a dead writer is taken over once stale; a fresh one
	// means somebody else is writing, and the file is left alone.
	lock := filepath.Join(root, lockName)
	os.WriteFile(lock, nil, 0o600)
	os.Remove(filepath.Join(root, FileName))
	st, err = Current(fd, Limits{Bytes: 5000}, Options{Create: true})
	if err != nil || st.Written || st.Usage != (Usage{150, 2}) {
		t.Fatalf("fresh lock: %+v, %v", st, err)
	}
	past := time.Now().Add(-time.Minute)
	os.Chtimes(lock, past, past)
	st, err = Current(fd, Limits{Bytes: 5000}, Options{Create: true})
	if err != nil || !st.Written {
		t.Fatalf("stale lock: %+v, %v", st, err)
	}

	// A symlink as maildirsize is never followed, for reading or writing.
	outside := filepath.Join(dir, "outside")
	os.WriteFile(outside, []byte("0S\n0 0\n"), 0o600)
	os.Remove(filepath.Join(root, FileName))
	os.Symlink(outside, filepath.Join(root, FileName))
	if _, err := Current(fd, l, Options{Create: true}); err == nil {
		t.Error("a symlinked maildirsize was read")
	}
	if err := Append(fd, Usage{1, 1}); err == nil {
		t.Error("a symlinked maildirsize was appended to")
	}
	if got := readFile(t, outside); got != "0S\n0 0\n" {
		t.Errorf("the symlink's target changed: %q", got)
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzParse: any content parses without panicking, an accepted file has
// a non-negative usage and the counted lines, and what Contents writes
// parses back to itself.
func FuzzParse(f *testing.F) {
	ins, _ := filepath.Glob("testdata/parse/*.in")
	for _, in := range ins {
		b, _ := os.ReadFile(in)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, why := Parse(data)
		if why == Fine || why == Negative {
			if why == Fine && (file.Usage.Bytes < 0 || file.Usage.Count < 0) {
				t.Fatalf("accepted a negative usage %+v", file.Usage)
			}
			if file.Lines < 1 || file.Lines > strings.Count(string(data), "\n") {
				t.Fatalf("lines %d", file.Lines)
			}
			if why == Fine {
				again, why2 := Parse(Contents(file.Limits, file.Usage))
				if why2 != Fine || again.Usage != file.Usage || again.Limits != file.Limits {
					t.Fatalf("round trip: %+v %q -> %+v %q", file, why, again, why2)
				}
			}
		}
	})
}

func FuzzParseLimits(f *testing.F) {
	for _, s := range []string{"0", "100", "100S", "5C", "100S,5C", "5C,100S", "x", "1,2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLimits(s)
		if err != nil {
			return
		}
		if l.Bytes < 0 || l.Count < 0 {
			t.Fatalf("negative limits %+v from %q", l, s)
		}
		if back, ok := parseLimitsLine(l.Line()); !ok || back != l {
			t.Fatalf("%q: %+v line %q reads back as %+v", s, l, l.Line(), back)
		}
	})
}
