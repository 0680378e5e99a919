// Runs in: make test (a tool).

// Command testsummary reads `go test -json` on stdin and prints what a
// plain `go test` prints (each package's result, the output of failing
// tests), then what was skipped and why, so that a run without root or
// without the MTAs installed says which tests it did not run. It exits 1
// if anything failed. Used by `make test`.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() { os.Exit(summarize(os.Stdin, os.Stdout)) }

func summarize(in io.Reader, out io.Writer) int {
	output := map[string][]string{} // package/test → its output lines
	var skips []string
	failed := false
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not an event (a build error printed as text): show it.
			fmt.Fprintln(out, sc.Text())
			continue
		}
		key := e.Package + "/" + e.Test
		switch e.Action {
		case "output":
			if e.Test == "" {
				// Package lines: "ok", "FAIL", build output.
				if !strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "PASS\n") {
					fmt.Fprint(out, e.Output)
				}
				continue
			}
			output[key] = append(output[key], e.Output)
		case "build-output":
			fmt.Fprint(out, e.Output)
		case "fail", "build-fail":
			failed = true
			if e.Test != "" {
				fmt.Fprint(out, strings.Join(output[key], ""))
			}
			delete(output, key)
		case "skip":
			if e.Test != "" {
				skips = append(skips, fmt.Sprintf("%s %s: %s", shortPkg(e.Package), e.Test, skipReason(output[key])))
			}
			delete(output, key)
		case "pass":
			delete(output, key)
		}
	}
	if len(skips) > 0 {
		sort.Strings(skips)
		fmt.Fprintf(out, "\n%d tests skipped:\n", len(skips))
		for _, s := range skips {
			fmt.Fprintln(out, "  "+s)
		}
	}
	if failed {
		return 1
	}
	return 0
}

// skipReason is the message of t.Skip: the last output line that is not
// the "--- SKIP" line itself.
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		return l
	}
	return "(no reason given)"
}

func shortPkg(p string) string {
	return strings.TrimPrefix(p, "github.com/vlmtpd/vlmtpd/")
}
