package server

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/sys/unix"
)

func spoolString(t testing.TB, in io.Reader) string {
	t.Helper()
	sp, err := NewSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, size, err := sp.Write(in, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, size))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size {
		t.Fatalf("size %d, file holds %d bytes", size, len(b))
	}
	return string(b)
}

func TestSpoolLineEndings(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a\r\nb\r\n", "a\nb\n"},
		{"bare\rcr\r\n", "bare\rcr\n"},
		{"lf only\nkept\n", "lf only\nkept\n"},
		{"ends in cr\r", "ends in cr\r"},
		{"\r\r\n", "\r\n"},
		{"", ""},
	} {
		// One byte at a time too, so a CR split from its LF is handled.
		for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
			if got := spoolString(t, r); got != tc.want {
				t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
			}
		}
	}
}

func TestSpoolLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	sp, err := NewSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := sp.Write(strings.NewReader("x\r\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("spool directory holds %d names while a message is spooled", len(ents))
	}
	f.Close()
}

func FuzzSpoolLineEndings(f *testing.F) {
	f.Add([]byte("a\r\nb\rc\r\n\r"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got := spoolString(t, iotest.HalfReader(bytes.NewReader(in)))
		if want := strings.ReplaceAll(string(in), "\r\n", "\n"); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

func TestBadPath(t *testing.T) {
	for p, bad := range map[string]bool{
		"example.com/alice/": false, "/abs/ok": false, "a..b/c": false,
		"../x": true, "a/../b": true, "a/..": true, "": true, "/": true, "a\x00b": true, "a\nb": true,
	} {
		if got := badPath(p) != ""; got != bad {
			t.Errorf("badPath(%q) = %q", p, badPath(p))
		}
	}
}

func TestSpoolSpillsLargeBodiesToDisk(t *testing.T) {
	dir := t.TempDir()
	sp, err := NewSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 998) + "\r\n"
	in := strings.Repeat(line, 3*memSpoolLimit/len(line))
	f, size, err := sp.Write(iotest.HalfReader(strings.NewReader(in)), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := strings.ReplaceAll(in, "\r\n", "\n")
	got, _ := io.ReadAll(io.NewSectionReader(f, 0, size))
	if string(got) != want {
		t.Fatalf("spilled body differs: %d bytes, want %d", len(got), len(want))
	}
	if inMemory(t, f) {
		t.Errorf("a %d-byte body is still in memory, not in the spool directory", size)
	}
}

// inMemory reports whether a spool file is a memfd. Comparing filesystem
// types would not tell when the spool directory is on tmpfs, which is
// what a memfd lives on too.
func inMemory(t *testing.T, f *os.File) bool {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return strings.HasPrefix(link, "/memfd:")
}

func TestSpoolSmallBodyIsSealedInMemory(t *testing.T) {
	sp, err := NewSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := sp.Write(strings.NewReader("Subject: s\r\n\r\nbody\r\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Skipf("not a memfd here: %v", err)
	}
	if seals&unix.F_SEAL_WRITE == 0 {
		t.Errorf("seals %#x lack F_SEAL_WRITE", seals)
	}
	if _, err := f.WriteAt([]byte("X"), 0); err == nil {
		t.Error("a sealed spool file could be modified")
	}
}

func TestNewSpoolCreatesItsDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool", "vlmtpd")
	if _, err := NewSpool(dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool directory: %v %v", fi, err)
	}
}

// A body announced (SIZE=) larger than memory holds goes to disk at once;
// a 1 MB message with its headers stays in memory.
func TestSpoolSizeHint(t *testing.T) {
	dir := t.TempDir()
	sp, err := NewSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	onDisk := func(f *os.File) bool { return !inMemory(t, f) }
	mb := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("y", 76)+"\r\n", 1<<20/78)
	f, _, err := sp.Write(strings.NewReader(mb), int64(len(mb)))
	if err != nil {
		t.Fatal(err)
	}
	if onDisk(f) {
		t.Error("a 1 MB message went to disk")
	}
	f.Close()
	f, _, err = sp.Write(strings.NewReader("small, but announced big\r\n"), 6*memSpoolLimit)
	if err != nil {
		t.Fatal(err)
	}
	if !onDisk(f) {
		t.Error("a body announced as large was kept in memory")
	}
	f.Close()
}

// BenchmarkSpoolWrite spools bodies as the front does, without SIZE=
// (smtp-source sends none): 1 MB stays in the memfd, 10 MB moves to a
// spool file at memSpoolLimit.
//
//	go test -run '^$' -bench SpoolWrite -benchmem ./server/
func BenchmarkSpoolWrite(b *testing.B) {
	for _, size := range []int{1 << 20, 10 << 20} {
		line := strings.Repeat("x", 78) + "\r\n"
		body := strings.Repeat(line, size/len(line))
		b.Run(fmt.Sprintf("%dMB", size>>20), func(b *testing.B) {
			sp, err := NewSpool(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				// Only Read, like the DATA reader: a strings.Reader's
				// WriteTo would copy the whole body into one []byte.
				f, _, err := sp.Write(struct{ io.Reader }{strings.NewReader(body)}, 0)
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
