package worker

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain lets the test binary serve as the worker binary: Start runs
// /proc/self/exe with "worker" as its first argument.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == workerArg {
		os.Exit(Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// mailBase makes a mailbox base that other uids can traverse, inside a
// test directory whose parents are opened up for them too.
func mailBase(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	base := filepath.Join(dir, "mail")
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	return base
}
