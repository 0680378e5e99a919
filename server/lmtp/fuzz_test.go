package lmtp

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzSession feeds arbitrary client bytes to a connection: the engine
// must not panic, must answer only in well-formed reply lines, and must
// hand the backend only complete messages.
func FuzzSession(f *testing.F) {
	f.Add([]byte("LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n"))
	f.Add([]byte("LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 2\r\nhiBDAT 0 LAST\r\nQUIT\r\n"))
	f.Add([]byte("LHLO x\r\nMAIL FROM:<\"q\\\"x\"@b> SIZE=3\r\nRCPT TO:<@r,@s:c@d> ORCPT=utf-8;\\x{E9}\r\nBDAT x\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := &fakeBackend{}
		s := &Server{Backend: b, Settings: Settings{Hostname: "mx.test", MaxMessageSize: 4096, MaxRecipients: 3, MaxLineLength: 100,
			IdleTimeout: time.Second, DataTimeout: time.Second, WriteTimeout: time.Second}}
		s.init()
		cli, srv := net.Pipe()
		done := make(chan struct{})
		go func() { newConn(s, srv).serve(); close(done) }()
		go func() { cli.Write(in); cli.(interface{ Close() error }).Close() }()
		out, _ := io.ReadAll(cli)
		<-done
		lines := strings.SplitAfter(string(out), "\n")
		for _, l := range lines[:len(lines)-1] {
			if !strings.HasSuffix(l, "\r\n") || strings.Count(l, "\r") != 1 || len(l) < 6 || l[3] != ' ' && l[3] != '-' {
				t.Fatalf("malformed reply line %q", l)
			}
		}
		if rest := lines[len(lines)-1]; rest != "" {
			t.Fatalf("unterminated reply %q", rest)
		}
	})
}

// FuzzDotReader checks DATA's reader against a plain reference decoding:
// the body is everything up to the first CRLF.CRLF with leading dots
// removed.
func FuzzDotReader(f *testing.F) {
	f.Add([]byte("a\r\n..b\r\n.\r\n"), 0)
	f.Add([]byte("a\n.\r\nb\r\n.\r\n"), 3)
	f.Fuzz(func(t *testing.T, in []byte, maxLine int) {
		r := newDotReader(bufio.NewReaderSize(bytes.NewReader(in), 16), limits{maxLine: maxLine % 64})
		got, err := io.ReadAll(r)
		want, complete := referenceDot(in)
		switch {
		case err == nil && !complete:
			t.Fatalf("complete message reported for %q", in)
		case err == nil && !bytes.Equal(got, want):
			t.Fatalf("body %q, want %q", got, want)
		case err != nil && err != errClientGone && err != ErrLineTooLong:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func referenceDot(in []byte) ([]byte, bool) {
	var out []byte
	prevCRLF := true
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			return nil, false
		}
		line := in[:i+1]
		in = in[i+1:]
		if string(line) == ".\r\n" {
			if prevCRLF {
				return out, true
			}
		} else if line[0] == '.' {
			line = line[1:]
		}
		prevCRLF = bytes.HasSuffix(line, []byte("\r\n"))
		out = append(out, line...)
	}
	return nil, false
}
