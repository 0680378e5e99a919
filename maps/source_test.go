package maps

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func collectWarn() (Warn, *[]string) {
	var w []string
	return func(msg string) { w = append(w, msg) }, &w
}

func TestReadSource(t *testing.T) {
	src := "Key1 v1\n" +
		"key2\tv2\n" +
		"KEY1 later\n" +
		"nul\x00key v\n" +
		"bad\xffutf8 v\n" +
		"key3 " + strings.Repeat("x", 200000) + "\n" + // longer than the read buffer
		"  continued\n" +
		"last value-without-newline"
	warn, w := collectWarn()
	got, err := ReadSource(strings.NewReader(src), "src", warn)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Key: "key1", Value: "v1", Line: 1},
		{Key: "key2", Value: "v2", Line: 2},
		{Key: "key3", Value: strings.Repeat("x", 200000) + "  continued", Line: 6},
		{Key: "last", Value: "value-without-newline", Line: 8},
	}
	if !slices.Equal(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w Entry
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("entry %d: got %q %.40q line %d, want %q %.40q line %d", i, g.Key, g.Value, g.Line, w.Key, w.Value, w.Line)
			}
		}
	}
	wantW := []string{
		`src:3: duplicate entry: "key1" (keeping line 1)`,
		"src:4: record contains a NUL byte: skipping this line",
		"src:5: record is not valid UTF-8: skipping this line",
	}
	if !slices.Equal(*w, wantW) {
		t.Errorf("warnings:\n got %q\nwant %q", *w, wantW)
	}
}

func TestScanSourceKeepsCaseAndDuplicates(t *testing.T) {
	var got []Entry
	err := ScanSource(strings.NewReader("A b\na c\n"), "s", nil, func(e Entry) error {
		got = append(got, e)
		return nil
	})
	if err != nil || len(got) != 2 || got[0].Key != "A" || got[1].Key != "a" {
		t.Fatalf("%v %+v", err, got)
	}
}

func TestScanLinesStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := ScanLines(strings.NewReader("a\nb\nc\n"), "s", nil, func(line int, text string) error {
		n++
		if text == "b" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("err %v after %d lines", err, n)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestScanLinesReadError(t *testing.T) {
	err := ScanLines(failingReader{}, "f", nil, func(int, string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "f: disk on fire") {
		t.Fatalf("err %v", err)
	}
}

func TestParseSourceLine(t *testing.T) {
	for _, tc := range []struct {
		in, key, value string
		skip           bool
	}{
		{in: "k v", key: "k", value: "v"},
		{in: "k \t v  w \t", key: "k", value: "v  w"},
		{in: `"a b"@x  v5`, key: `"a b"@x`, value: "v5"},
		{in: `a\ b v`, key: `a\ b`, value: "v"},
		{in: `"a\"b c"@x v`, key: `"a\"b c"@x`, value: "v"},
		{in: `key\`, skip: true}, // a trailing backslash, no value
		{in: `"open v`, skip: true},
		{in: "k5", skip: true},
		{in: "k4:v4", skip: true},
		{in: "k3 v3 # x", key: "k3", value: "v3 # x"},
	} {
		e, skip := ParseSourceLine(tc.in)
		if (skip != "") != tc.skip || !tc.skip && (e.Key != tc.key || e.Value != tc.value) {
			t.Errorf("ParseSourceLine(%q) = %+v, %q", tc.in, e, skip)
		}
	}
}
