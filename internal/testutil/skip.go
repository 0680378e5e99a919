// Runs in: tests only.

package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// CI reports whether the tests run in CI (CI=true), where everything a
// test needs is installed and nothing may skip.
func CI() bool { return os.Getenv("CI") == "true" }

// SkipOrFail skips the test, or fails it under CI=true: what is missing on
// a laptop must be there in CI.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot skips (fails under CI=true, which runs as root) unless the
// test runs as root; why says what needs it.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "%s needs root", why)
	}
}

// Tool returns the first of paths that is an executable file (a bare name
// is looked up in PATH, then in /usr/sbin and /sbin, where Postfix's tools
// live but a user's PATH often does not reach), or skips the test (fails
// it under CI=true).
func Tool(t testing.TB, why string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			if lp, err := exec.LookPath(p); err == nil {
				return lp
			}
			for _, dir := range []string{"/usr/sbin/", "/sbin/"} {
				if executable(dir + p) {
					return dir + p
				}
			}
			continue
		}
		if executable(p) {
			return p
		}
	}
	SkipOrFail(t, "%s: none of %v is installed", why, paths)
	return ""
}

func executable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
