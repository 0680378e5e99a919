package parent

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func owner(t *testing.T, p string) (uid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid), fi.Mode().Perm()
}

// The spool: created when missing, taken over when an empty root-owned
// directory, left alone otherwise.
func TestPrepareSpool(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	missing, empty, full, other := filepath.Join(dir, "missing"), filepath.Join(dir, "empty"), filepath.Join(dir, "full"), filepath.Join(dir, "other")
	os.Mkdir(empty, 0o755)
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	os.Mkdir(other, 0o755)
	os.Chown(other, 4000, 4000)
	for _, tc := range []struct {
		dir  string
		uid  int
		mode os.FileMode
	}{{missing, 65534, 0o700}, {empty, 65534, 0o700}, {full, 0, 0o755}, {other, 4000, 0o755}} {
		if err := prepareSpool(tc.dir, 65534, 65534); err != nil {
			t.Fatalf("%s: %v", tc.dir, err)
		}
		if uid, mode := owner(t, tc.dir); uid != tc.uid || mode != tc.mode {
			t.Errorf("%s: owner %d mode %o, want %d %o", filepath.Base(tc.dir), uid, mode, tc.uid, tc.mode)
		}
	}
}

func TestReadableBy(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's parent is 0700
	open := filepath.Join(dir, "open.toml")
	os.WriteFile(open, nil, 0o644)
	closed := filepath.Join(dir, "closed")
	os.Mkdir(closed, 0o700)
	hidden := filepath.Join(closed, "vlmtpd.toml")
	os.WriteFile(hidden, nil, 0o644)
	private := filepath.Join(dir, "private.toml")
	os.WriteFile(private, nil, 0o600)
	if err := readableBy(open, 65534, 65534, nil); err != nil {
		t.Errorf("a world-readable file: %v", err)
	}
	if err := readableBy(hidden, 65534, 65534, nil); err == nil || !strings.Contains(err.Error(), closed+" is not searchable") {
		t.Errorf("a file in a 0700 directory: %v", err)
	}
	if err := readableBy(private, 65534, 65534, nil); err == nil || !strings.Contains(err.Error(), "is not readable") {
		t.Errorf("a 0600 file of another user: %v", err)
	}
}
