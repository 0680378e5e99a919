package maildirpp

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRulesGolden: each testdata/rules/*.txt is a Maildir (tree lines),
// a maildirsize of a given age and the configured limits; the .golden is
// what Current does: trusts the file or rebuilds it and why, the usage,
// and the file afterwards. These are maildirquota(7)'s and Dovecot's
// rebuild rules.
func TestRulesGolden(t *testing.T) {
	cases, _ := filepath.Glob("testdata/rules/*.txt")
	if len(cases) < 8 {
		t.Fatalf("only %d rule cases", len(cases))
	}
	for _, c := range cases {
		t.Run(filepath.Base(c), func(t *testing.T) {
			spec, err := os.ReadFile(c)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var tree strings.Builder
			var limits Limits
			var age time.Duration
			var content *string
			lines := strings.Split(string(spec), "\n")
			for i := 0; i < len(lines); i++ {
				key, val, _ := strings.Cut(lines[i], " ")
				switch key {
				case "", "#":
				case "limits":
					if limits, err = ParseLimits(val); err != nil {
						t.Fatal(err)
					}
				case "age":
					if age, err = time.ParseDuration(val); err != nil {
						t.Fatal(err)
					}
				case "tree":
					tree.WriteString("file " + val + "\n")
				case "maildirsize":
					s := strings.Join(lines[i+1:], "\n")
					content, i = &s, len(lines)
				case "maildirsize-raw":
					s := strings.ReplaceAll(val, `\n`, "\n")
					content = &s
				case "maildirsize-repeat": // N times "bytes count"
					f := strings.Fields(val)
					n, _ := strconv.Atoi(f[0])
					s := limits.Line() + "\n" + strings.Repeat(f[1]+" "+f[2]+"\n", n)
					content = &s
				default:
					t.Fatalf("bad line %q", lines[i])
				}
			}
			root := buildTree(t, tree.String(), dir)
			mtime := time.Unix(1_800_000_000, 0)
			if content != nil {
				p := filepath.Join(root, FileName)
				if err := os.WriteFile(p, []byte(*content), 0o600); err != nil {
					t.Fatal(err)
				}
				os.Chtimes(p, mtime, mtime)
			}
			st, err := Current(openDir(t, root), limits, Options{Create: true, Now: mtime.Add(age)})
			if err != nil {
				t.Fatal(err)
			}
			what := "trusted"
			if st.Recalculated != Fine {
				what = "rebuilt: " + string(st.Recalculated)
			}
			after, _ := os.ReadFile(filepath.Join(root, FileName))
			if len(after) > 200 {
				after = append(after[:200:200], "…"...)
			}
			golden(t, strings.TrimSuffix(c, ".txt")+".golden",
				fmt.Sprintf("%s\nusage %d bytes %d messages\nwritten %v\nmaildirsize %q\n", what, st.Usage.Bytes, st.Usage.Count, st.Written, after))
		})
	}
}
