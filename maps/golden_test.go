package maps

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// recorder is a slog handler that keeps the messages of warnings, so tests
// can check what an admin would see in the log.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec.Level >= slog.LevelWarn {
		r.msgs = append(r.msgs, rec.Message)
	}
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func (r *recorder) warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func testOptions(t *testing.T) (Options, *recorder) {
	rec := &recorder{}
	return Options{Dir: t.TempDir(), Logger: slog.New(rec)}, rec
}

// sections splits a golden file into its "-- name --" sections.
func sections(t *testing.T, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	name := ""
	for _, line := range strings.SplitAfter(text, "\n") {
		trim := strings.TrimRight(line, "\n")
		if strings.HasPrefix(trim, "-- ") && strings.HasSuffix(trim, " --") {
			name = strings.TrimSuffix(strings.TrimPrefix(trim, "-- "), " --")
			if _, dup := out[name]; dup {
				t.Fatalf("section %q twice", name)
			}
			out[name] = ""
			continue
		}
		if name == "" {
			continue // commentary before the first section
		}
		out[name] += line
	}
	return out
}

// TestGolden runs every testdata/TYPE/*.txt file. Sections:
//
//	-- table --     the table file's contents (written to TABLE)
//	-- spec --      the spec to open (default TYPE:TABLE)
//	-- lookups --   "key => value", "key => (not found)"
//	-- warnings --  the warnings expected while loading, in order, with the
//	                table's path shown as TABLE
//	-- error --     a text the open error must contain (no lookups then)
//	-- postmap --   (empty) Postfix must agree: TestGoldenAgreesWithPostmap
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		typ := filepath.Base(filepath.Dir(file))
		t.Run(typ+"/"+strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sec := sections(t, string(raw))
			opts, rec := testOptions(t)
			path := filepath.Join(opts.Dir, "table")
			if tbl, ok := sec["table"]; ok {
				if err := os.WriteFile(path, []byte(tbl), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			spec := typ + ":" + path
			if s, ok := sec["spec"]; ok {
				spec = strings.ReplaceAll(strings.TrimSpace(s), "TABLE", path)
			}
			m, err := Open(spec, opts)
			if want, ok := sec["error"]; ok {
				want = strings.ReplaceAll(strings.TrimSpace(want), "TABLE", path)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("open %s: error %v, want one containing %q", spec, err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("open %s: %v", spec, err)
			}
			defer Close(m)
			var got []string
			for _, w := range rec.warnings() {
				got = append(got, strings.ReplaceAll(w, path, "TABLE"))
			}
			want := nonEmptyLines(sec["warnings"])
			if !slices.Equal(got, want) {
				t.Errorf("warnings:\n got %q\nwant %q", got, want)
			}
			lookups := nonEmptyLines(sec["lookups"])
			if len(lookups) == 0 {
				t.Fatal("no lookups: a golden file must check something")
			}
			for _, l := range lookups {
				key, wantV, ok := strings.Cut(l, " => ")
				if !ok {
					t.Fatalf("bad lookup line %q", l)
				}
				v, found, err := m.Lookup(context.Background(), key)
				if err != nil {
					t.Errorf("lookup %q: %v", key, err)
					continue
				}
				gotV := v
				if !found {
					gotV = "(not found)"
				} else if v == "" {
					gotV = "(empty)"
				}
				if gotV != wantV {
					t.Errorf("lookup %q = %q, want %q", key, gotV, wantV)
				}
			}
		})
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "//") {
			out = append(out, l)
		}
	}
	return out
}
