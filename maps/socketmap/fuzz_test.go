package socketmap

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzReadNetstring: any bytes give a payload or an error, never a panic;
// a payload re-encodes to exactly the bytes consumed, and nothing over the
// limit is accepted.
// Run: go test -run '^$' -fuzz FuzzReadNetstring -fuzzminimizetime 100x ./maps/socketmap/
func FuzzReadNetstring(f *testing.F) {
	for _, s := range []string{"0:,", "3:abc,", "12:OK mailbox/,", "3:ab", "x:", ":,", "999999999999:", "4:OK x;", "00:,"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 64
		r := bufio.NewReader(bytes.NewReader(data))
		got, err := readNetstring(r, limit)
		if err != nil {
			return
		}
		if len(got) > limit {
			t.Fatalf("payload of %d bytes over the limit", len(got))
		}
		consumed := len(data) - r.Buffered()
		enc := appendNetstring(nil, got)
		// Leading zeros in the length are tolerated, so compare the
		// payload and terminator, and the length's value.
		if !bytes.HasSuffix(data[:consumed], enc[bytes.IndexByte(enc, ':'):]) {
			t.Fatalf("read %q from %q", got, data[:consumed])
		}
	})
}

func TestParseReply(t *testing.T) {
	for reply, want := range map[string]string{
		"OK a b":     "found a b",
		"OK ":        "found ",
		"OK":         "found ",
		"NOTFOUND ":  "notfound",
		"NOTFOUND":   "notfound",
		"TEMP x":     "error socketmap server answered TEMP: x",
		"PERM":       "error socketmap server answered PERM: ",
		"ok a":       `error malformed socketmap reply "ok a"`,
		"":           `error malformed socketmap reply ""`,
		"OKAY thing": `error malformed socketmap reply "OKAY thing"`,
	} {
		v, found, err := parseReply(reply)
		got := "notfound"
		switch {
		case err != nil:
			got = "error " + err.Error()
		case found:
			got = "found " + v
		}
		if got != want {
			t.Errorf("parseReply(%q) = %q, want %q", reply, got, want)
		}
	}
}
