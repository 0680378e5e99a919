package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sendfile refuses an O_APPEND target (EINVAL): the copy then goes through
// pread and write, from the given offset on, and still checks the length.
func TestCopyFDFallback(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 10000) // more than one buffer
	src := spool(t, "a@b", body)
	dstPath := filepath.Join(t.TempDir(), "dst")
	must(t, os.WriteFile(dstPath, []byte("head\n"), 0o600))
	dst, err := unix.Open(dstPath, unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	must(t, err)
	t.Cleanup(func() { unix.Close(dst) })
	if _, err := unix.Sendfile(dst, int(src.Body.Fd()), new(int64), 1); err != unix.EINVAL {
		t.Fatalf("sendfile to an O_APPEND file: %v, want EINVAL (the case this test is about)", err)
	}

	must(t, copySpool(dst, src.Body, src.Size))
	if got := readFile(t, dstPath); got != "head\n"+body {
		t.Errorf("copied %d bytes, want %d", len(got), len("head\n")+len(body))
	}
	if err := copySpool(dst, src.Body, src.Size+1); err != errShortSpool {
		t.Errorf("copy past the spool's end: %v, want errShortSpool", err)
	}
}
