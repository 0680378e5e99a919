package stderrlog

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestFormats(t *testing.T) {
	var b bytes.Buffer
	New(&b, "info", "json").Info("delivered", "to", "a@example.org")
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil || rec["msg"] != "delivered" || rec["to"] != "a@example.org" {
		t.Fatalf("json line %q: %v", b.String(), err)
	}
	b.Reset()
	New(&b, "info", "text").Info("delivered", "to", "a@example.org")
	if got := b.String(); !strings.Contains(got, "msg=delivered to=a@example.org") {
		t.Fatalf("text line %q", got)
	}
}

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		level         string
		debug, info   bool
		warn, errored bool
	}{
		{"debug", true, true, true, true},
		{"info", false, true, true, true},
		{"WARN", false, false, true, true},
		{"error", false, false, false, true},
		{"", false, true, true, true},
		{"loud", false, true, true, true},
	} {
		var b bytes.Buffer
		log := New(&b, tc.level, "text")
		log.Debug("d")
		log.Info("i")
		log.Warn("w")
		log.Error("e")
		out := b.String()
		for msg, want := range map[string]bool{"msg=d": tc.debug, "msg=i": tc.info, "msg=w": tc.warn, "msg=e": tc.errored} {
			if strings.Contains(out, msg) != want {
				t.Errorf("level %q: %s logged = %v, want %v", tc.level, msg, !want, want)
			}
		}
	}
}
