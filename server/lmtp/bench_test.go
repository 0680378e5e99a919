package lmtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// BenchmarkDataReader measures DATA's body path: dot-unstuffing, limits
// and the end marker, from the connection's buffer to the backend; LF/
// reads it as the spool does, with LF line ends.
//
//	go test -run '^$' -bench DataReader -benchmem ./server/lmtp/
func BenchmarkDataReader(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20, 10 << 20} {
		line := strings.Repeat("x", 76) + "\r\n"
		var msg bytes.Buffer
		for msg.Len() < size {
			msg.WriteString(line)
		}
		msg.WriteString(".\r\n")
		wire := msg.Bytes()
		for _, lf := range []bool{false, true} {
			name := fmt.Sprintf("%dKB", size>>10)
			if lf {
				name = "LF/" + name
			}
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(wire)))
				br := bufio.NewReaderSize(nil, 64<<10)
				buf := make([]byte, 128<<10)
				b.ReportAllocs()
				for b.Loop() {
					br.Reset(bytes.NewReader(wire))
					var r io.Reader = newDotReader(br, limits{maxSize: 20 << 20, maxLine: 1 << 20})
					if lf {
						r = LF(r)
					}
					if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkLFReader: LF on a reader that is not the DATA reader (a BDAT
// body, as Postfix's LMTP client sends when CHUNKING is offered).
func BenchmarkLFReader(b *testing.B) {
	body := bytes.Repeat([]byte("a line of a message body, about sixty bytes long, ends in\r\n"), 4096/60)
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{LF(bytes.NewReader(body))}, buf); err != nil {
			b.Fatal(err)
		}
	}
}
