package cdb

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vlmtpd/vlmtpd/internal/testutil"
)

// postmap runs Debian's postmap with a private, empty configuration
// directory (plus extra main.cf lines). Without postmap or its cdb plugin
// the test is skipped, except under CI=true, where it fails.
func postmap(t *testing.T, mainCF string) func(args ...string) (string, error) {
	t.Helper()
	bin := testutil.Tool(t, "cdb interop (apt-get install postfix)", "postmap")
	if _, err := os.Stat("/usr/lib/postfix/postfix-cdb.so"); err != nil {
		testutil.SkipOrFail(t, "postmap's cdb support not installed (apt-get install postfix-cdb): %v", err)
	}
	cfg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	return func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"-c", cfg}, args...)...)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		err := cmd.Run()
		if err != nil && stderr.Len() > 0 {
			err = errors.New(err.Error() + ": " + strings.TrimSpace(stderr.String()))
		}
		return out.String(), err
	}
}

// The source exercises postmap's syntax: comments, a continuation line,
// a quoted localpart with a space, UTF-8, mixed case and a duplicate.
const interopSource = `# virtual mailboxes
User@Example.COM      example.com/user/
"a b"@example.com     quoted/
üser@exämple.de       utf/ü
  # an indented comment
alias@example.com     value with  spaces
  continued
dup@example.com       first
DUP@example.com       second
@example.org          example.org/catchall/
`

var interopWant = map[string]string{
	"user@example.com":   "example.com/user/",
	`"a b"@example.com`:  "quoted/",
	"üser@exämple.de":    "utf/ü",
	"alias@example.com":  "value with  spaces  continued",
	"dup@example.com":    "first",
	"@example.org":       "example.org/catchall/",
	"nobody@example.com": "",
}

// TestPostmapBuildsWeRead: `postmap cdb:FILE` and `postmap -N cdb:FILE`
// output, read by our reader.
func TestPostmapBuildsWeRead(t *testing.T) {
	run := postmap(t, "smtputf8_enable = yes\n")
	dir := t.TempDir()
	src := filepath.Join(dir, "vmailbox")
	if err := os.WriteFile(src, []byte(interopSource), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, flags := range [][]string{nil, {"-N"}} {
		if _, err := run(append(flags, "cdb:"+src)...); err != nil {
			t.Fatalf("postmap %v: %v", flags, err)
		}
		raw, _ := os.ReadFile(src + ".cdb")
		if hasNUL := bytes.Contains(raw, []byte("user@example.com\x00")); hasNUL != (flags != nil) {
			t.Fatalf("postmap %v: NUL-terminated keys = %v", flags, hasNUL)
		}
		tb := openT(t, src)
		for k, v := range interopWant {
			want(t, tb, k, v, v != "")
		}
	}
}

// TestWeBuildPostmapReads: files from our writer, queried with
// `postmap -q KEY cdb:FILE`.
func TestWeBuildPostmapReads(t *testing.T) {
	run := postmap(t, "smtputf8_enable = yes\n")
	path := filepath.Join(t.TempDir(), "vmailbox")
	kv := []string{
		"User@Example.COM", "example.com/user/",
		`"a b"@example.com`, "quoted/",
		"üser@exämple.de", "utf/ü",
		"x_kbhba", "hash-zero", // a key whose cdb hash is 0
		"uaa-@x", "c1", "uaco@x", "c2", // two keys with the same hash
		"dup@example.com", "first",
		"dup@example.com", "second",
	}
	for _, nul := range []bool{false, true} {
		build(t, path, WriteOptions{AppendNUL: nul}, kv...)
		for k, v := range map[string]string{
			"user@example.com":  "example.com/user/",
			"USER@example.com":  "example.com/user/", // postmap folds the query
			`"a b"@example.com`: "quoted/",
			"üser@exämple.de":   "utf/ü",
			"x_kbhba":           "hash-zero",
			"uaa-@x":            "c1",
			"uaco@x":            "c2",
			"dup@example.com":   "first",
		} {
			out, err := run("-q", k, "cdb:"+path)
			if err != nil || out != v+"\n" {
				t.Fatalf("NUL=%v: postmap -q %q = %q, %v; want %q", nul, k, out, err, v)
			}
		}
		// Not found: exit status 1 and no output.
		out, err := run("-q", "nobody@example.com", "cdb:"+path)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || out != "" {
			t.Fatalf("NUL=%v: postmap -q of a missing key: %q, %v", nul, out, err)
		}
	}
}

// TestMakeFromSource builds with Make from the postmap source directly and
// from `postmap -s` output (the conversion path for hash:/lmdb: maps; the
// dump of a texthash: table has the same format).
func TestMakeFromSource(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "vmailbox")
	if err := os.WriteFile(src, []byte(interopSource+"no-value-line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	opts := WriteOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	res, err := MakeFile(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.File != src+".cdb" || res.Entries != 6 || res.Duplicates != 1 {
		t.Fatalf("MakeFile: %+v", res)
	}
	for _, w := range []string{"vmailbox:9", "vmailbox:11: expected format"} {
		if !strings.Contains(logs.String(), w) {
			t.Fatalf("warnings lack %q:\n%s", w, logs.String())
		}
	}
	tb := openT(t, src)
	for k, v := range interopWant {
		want(t, tb, k, v, v != "")
	}

	run := postmap(t, "smtputf8_enable = yes\n")
	dump, err := run("-s", "texthash:"+src)
	if err != nil {
		t.Fatal(err)
	}
	conv := filepath.Join(dir, "converted")
	if _, err := Make(conv, strings.NewReader(dump), "stdin", opts); err != nil {
		t.Fatal(err)
	}
	tb2 := openT(t, conv)
	for k, v := range interopWant {
		want(t, tb2, k, v, v != "")
	}
	for k, v := range interopWant {
		if v == "" {
			continue
		}
		if out, err := run("-q", k, "cdb:"+conv); err != nil || out != v+"\n" {
			t.Fatalf("postmap -q %q on the converted table: %q %v", k, out, err)
		}
	}
}

func TestSpecName(t *testing.T) {
	if n, err := SpecName("cdb:/etc/x"); n != "/etc/x" || err != nil {
		t.Fatal(n, err)
	}
	for _, bad := range []string{"/etc/x", "hash:/etc/x", "cdb:"} {
		if _, err := SpecName(bad); err == nil {
			t.Fatalf("SpecName(%q) accepted", bad)
		}
	}
}
