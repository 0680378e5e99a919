package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
	"github.com/vlmtpd/vlmtpd/server/config"
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
