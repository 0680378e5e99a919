package tests

import (
	"os/exec"
	"strings"
	"testing"
)

// vlmtpd(8) is generated from the commands' own help: every command has
// its section with its synopsis and flags, and roff's control characters
// in the texts are escaped.
func TestManPage(t *testing.T) {
	out, err := exec.Command(vlmtpdBinary(t), "man").Output()
	if err != nil {
		t.Fatal(err)
	}
	page := string(out)
	if !strings.HasPrefix(page, ".TH VLMTPD 8 ") {
		t.Fatalf("not a man page:\n%.200s", page)
	}
	for cmd, flag := range map[string]string{"serve": "-config", "quickstart": "-config", "lookup": "-config",
		"check-config": "-config", "makemap": "-N", "version": "", "sieve-check": "-global", "sieve-test": "-mailboxes",
		"quota": "-recalc", "stats": "-raw", "config": "-n"} {
		i := strings.Index(page, "\n.SS "+cmd+"\n")
		if i < 0 {
			t.Errorf("no section for %s", cmd)
			continue
		}
		section := page[i+1:]
		if j := strings.Index(section[4:], "\n.SS "); j >= 0 {
			section = section[:j+4]
		}
		if !strings.Contains(section, "usage: vlmtpd "+cmd) || flag != "" && !strings.Contains(section, flag) {
			t.Errorf("section %s lacks its usage or %s:\n%s", cmd, flag, section)
		}
	}
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, "'") || strings.Contains(l, `\`) && !strings.Contains(l, `\-`) && !strings.Contains(l, `\e`) && !strings.Contains(l, `\&`) {
			t.Errorf("unescaped roff in %q", l)
		}
	}
}
