package main

import (
	"strings"
	"testing"

	"github.com/vlmtpd/vlmtpd/server/config"
)

// TestManConfig: vlmtpd.toml(5) has every setting of the table with its
// type and default, and no unescaped roff.
func TestManConfig(t *testing.T) {
	code, page, errOut := capture(t, func() int { return dispatch([]string{"man", "-section", "5"}) })
	if code != 0 || errOut != "" || !strings.HasPrefix(page, ".TH VLMTPD.TOML 5 ") {
		t.Fatalf("exit %d, stderr %q:\n%.200s", code, errOut, page)
	}
	for _, d := range config.Reference() {
		entry := ".TP\n.B " + d.Name + "\n(" + d.Type + "; default: " + roffText(d.Default) + ")\n"
		if !strings.Contains(page, entry) {
			t.Errorf("no entry %q", entry)
		}
	}
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, "'") || strings.ContainsAny(l, "`[") && !strings.HasPrefix(l, "(") {
			t.Errorf("Markdown or unescaped roff in %q", l)
		}
		if i := strings.Index(l, `\`); i >= 0 && !strings.HasPrefix(l[i:], `\-`) && !strings.HasPrefix(l[i:], `\e`) &&
			!strings.HasPrefix(l[i:], `\&`) && !strings.HasPrefix(l[i:], `\f`) && !strings.HasPrefix(l[i:], `\"`) {
			t.Errorf("unescaped backslash in %q", l)
		}
	}
	if code, _, _ := capture(t, func() int { return dispatch([]string{"man", "-section", "3"}) }); code != 2 {
		t.Errorf("man -section 3: exit %d", code)
	}
}
