package tests

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// manMacros are the requests vlmtpd(8) uses; any other line starting with
// roff's control characters is help text that was not escaped.
var manMacros = map[string]bool{".TH": true, ".SH": true, ".SS": true, ".PP": true, ".TP": true,
	".B": true, ".I": true, ".RI": true, ".nf": true, ".fi": true}

// vlmtpd(8) is generated from the commands' own help: every command that
// `vlmtpd help` lists has its section with its synopsis and every flag its
// -h prints; no text line starts with a control character; groff renders
// it without a warning, and the rendered page holds every line of every
// command's -h text exactly (so an unescaped backslash, dot or quote,
// which roff would eat or act on, shows).
func TestManPage(t *testing.T) {
	bin := vlmtpdBinary(t)
	out, err := exec.Command(bin, "man").Output()
	if err != nil {
		t.Fatal(err)
	}
	page := string(out)
	if !strings.HasPrefix(page, ".TH VLMTPD 8 ") {
		t.Fatalf("not a man page:\n%.200s", page)
	}
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			if req, _, _ := strings.Cut(l, " "); !manMacros[req] {
				t.Errorf("a text line starts with a control character: %q", l)
			}
		}
	}

	listing, err := exec.Command(bin, "help").Output()
	if err != nil {
		t.Fatal(err)
	}
	cmds := regexp.MustCompile(`(?m)^  ([a-z-]+)  +\S`).FindAllStringSubmatch(string(listing), -1)
	if len(cmds) < 10 {
		t.Fatalf("vlmtpd help lists %d commands:\n%s", len(cmds), listing)
	}
	helps := map[string]string{}
	flagRe := regexp.MustCompile(`(?m)^  (-[a-z][a-z0-9-]*)`)
	for _, m := range cmds {
		cmd := m[1]
		help, err := exec.Command(bin, cmd, "-h").Output()
		if err != nil {
			t.Errorf("vlmtpd %s -h: %v", cmd, err)
			continue
		}
		helps[cmd] = string(help)
		i := strings.Index(page, "\n.SS "+roffDashes(cmd)+"\n")
		if i < 0 {
			t.Errorf("no section for %s", cmd)
			continue
		}
		section := page[i+1:]
		if j := strings.Index(section[4:], "\n.SS "); j >= 0 {
			section = section[:j+4]
		} else if j := strings.Index(section, "\n.SH "); j >= 0 {
			section = section[:j]
		}
		if !strings.Contains(section, "usage: vlmtpd "+roffDashes(cmd)) {
			t.Errorf("section %s lacks its usage:\n%s", cmd, section)
		}
		for _, f := range flagRe.FindAllStringSubmatch(string(help), -1) {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(roffDashes(f[1])) + `\b`).MatchString(section) {
				t.Errorf("section %s lacks the flag %s:\n%s", cmd, f[1], section)
			}
		}
	}

	groff := toolOrSkip(t, "groff (Debian package groff-base)", "groff", "/usr/bin/groff")
	if groff == "" {
		return
	}
	var stderr bytes.Buffer
	lint := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
	lint.Stdin, lint.Stderr = strings.NewReader(page), &stderr
	if err := lint.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("groff -man -ww: %v\n%s", err, stderr.String())
	}
	// Rendered as text: no hyphenation, no bold or underline, a wide line.
	render := exec.Command(groff, "-man", "-Tutf8", "-P-cbu", "-rHY=0", "-rLL=300n")
	render.Stdin = strings.NewReader(page)
	rendered, err := render.Output()
	if err != nil {
		t.Fatal(err)
	}
	text := squash(string(rendered))
	for cmd, help := range helps {
		for _, l := range strings.Split(help, "\n") {
			if s := squash(l); s != "" && !strings.Contains(text, s) {
				t.Errorf("the rendered page lacks %s's help line %q", cmd, l)
			}
		}
	}
}

// roffDashes writes a flag's dashes as the page does.
func roffDashes(flag string) string { return strings.ReplaceAll(flag, "-", `\-`) }

// squash drops white space (filling joins and breaks lines) and maps the
// characters groff's utf8 device draws for ASCII ones back to them: \- is
// a minus sign; a bare - is a hyphen (U+2010), which stays, so that a
// dash the page forgot to escape shows.
func squash(s string) string {
	s = strings.NewReplacer("\u2212", "-", "\u2018", "'", "\u2019", "'", "\u201c", `"`, "\u201d", `"`,
		"\u02dc", "~", "\u02c6", "^", "\u00b4", "'", "\u2014", "--").Replace(s)
	return strings.Join(strings.Fields(s), "")
}
