package maps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGoldenAgreesWithPostmap asks Debian's Postfix the lookups of every
// golden file that has a "-- postmap --" section: postmap -q must give
// the answer the golden file expects from vlmtpd. (Files whose rules use
// $1 are left out: postmap allows substitution, virtual(8) does not.) The query is not folded
// (-f), as virtual(8) opens its tables without folding (the address is
// folded before). Without postmap the test skips, except under CI=true.
func TestGoldenAgreesWithPostmap(t *testing.T) {
	bin, err := exec.LookPath("postmap")
	if err != nil {
		bin = "/usr/sbin/postmap"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: postmap is required (apt-get install postfix postfix-pcre): %v", err)
		}
		t.Skipf("postmap not installed: %v", err)
	}
	conf := t.TempDir()
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), []byte("compatibility_level = 3.6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/*/*.txt")
	checked := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sec := sections(t, string(raw))
		if _, ok := sec["postmap"]; !ok {
			continue
		}
		checked++
		typ := filepath.Base(filepath.Dir(file))
		path := filepath.Join(t.TempDir(), "table")
		if err := os.WriteFile(path, []byte(sec["table"]), 0o644); err != nil {
			t.Fatal(err)
		}
		spec := typ + ":" + path
		if s, ok := sec["spec"]; ok {
			spec = strings.ReplaceAll(strings.TrimSpace(s), "TABLE", path)
		}
		for _, l := range nonEmptyLines(sec["lookups"]) {
			key, want, _ := strings.Cut(l, " => ")
			out, err := exec.Command(bin, "-c", conf, "-f", "-q", key, spec).Output()
			got := strings.TrimRight(string(out), "\n")
			if err != nil {
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
					t.Fatalf("%s: postmap -q %q: %v", file, key, err)
				}
				got = "(not found)"
			} else if got == "" {
				got = "(empty)"
			}
			if got != want {
				t.Errorf("%s: %q: Postfix answers %q, the golden file expects %q", file, key, got, want)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no golden file has a -- postmap -- section")
	}
}
