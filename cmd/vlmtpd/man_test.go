package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
)

// TestRoffLine: help lines that roff would act on or eat (a leading dot
// or quote, backslashes, dashes) come out of groff as they went in.
func TestRoffLine(t *testing.T) {
	groff := testutil.Tool(t, "groff (Debian package groff-base)", "groff", "/usr/bin/groff")
	if groff == "" {
		return
	}
	lines := []string{".config is read first", "'quoted' at the start", `a \n and \\ in text`, "-config FILE, --help, a-b", `\fBnot bold\fR`}
	var page strings.Builder
	page.WriteString(".TH T 8\n.SH X\n.nf\n")
	for _, l := range lines {
		page.WriteString(roffLine(l) + "\n")
	}
	page.WriteString(".fi\n")
	cmd := exec.Command(groff, "-man", "-Tutf8", "-P-cbu", "-ww")
	cmd.Stdin = strings.NewReader(page.String())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	// \- is a minus sign on the utf8 device; the rest is ASCII.
	text := strings.ReplaceAll(string(out), "\u2212", "-")
	text = strings.NewReplacer("\u2018", "`", "\u2019", "'").Replace(text)
	for _, l := range lines {
		if !strings.Contains(text, "       "+l+"\n") {
			t.Errorf("%q rendered otherwise:\n%s", l, text)
		}
	}
}
