package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	in := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:9: postmap not installed\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"--- SKIP: TestA (0.00s)\n"}
{"Action":"skip","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:3: boom\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}
{"Action":"fail","Package":"p"}
`
	var out strings.Builder
	if code := summarize(strings.NewReader(in), &out); code != 1 {
		t.Errorf("exit %d with a failure, want 1", code)
	}
	for _, want := range []string{"b_test.go:3: boom", "FAIL\tp\t0.1s", "1 tests skipped:", "p TestA: a_test.go:9: postmap not installed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := summarize(strings.NewReader(`{"Action":"output","Package":"q","Output":"ok  \tq\t0.1s\n"}`+"\n"+`{"Action":"pass","Package":"q"}`), &out); code != 0 || !strings.Contains(out.String(), "ok  \tq") {
		t.Errorf("a pass: exit %d, output %q", code, out.String())
	}
}
