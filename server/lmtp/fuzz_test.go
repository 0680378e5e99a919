package lmtp

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
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
			if !strings.HasSuffix(l, "\r\n") || strings.Count(l, "\r") != 1 || len(l) < 6 || l[3] != ' ' && l[3] != '-' ||
				l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9' {
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
// removed, and read through LF each CRLF of it is an LF. Reads of every
// size up to chunk cut lines anywhere; drain must then find the end.
func FuzzDotReader(f *testing.F) {
	f.Add([]byte("a\r\n..b\r\n.\r\n"), 0, 0, false)
	f.Add([]byte("a\n.\r\nb\r\n.\r\n"), 3, 1, true)
	f.Add([]byte(".\r\r\n\r\r\n.\r\nNOOP\r\n"), 0, 2, true)
	f.Fuzz(func(t *testing.T, in []byte, maxLine, chunk int, lf bool) {
		maxLine %= 64
		chunk = 1 + int(uint(chunk)%7)
		d := newDotReader(bufio.NewReaderSize(bytes.NewReader(in), 16), limits{maxLine: maxLine})
		r := io.Reader(d)
		if lf {
			r = LF(d)
		}
		var got []byte
		var err error
		for {
			var n int
			p := make([]byte, chunk)
			n, err = r.Read(p)
			got = append(got, p[:n]...)
			if err != nil {
				break
			}
		}
		if err == io.EOF {
			err = nil
		}
		ref, complete := referenceDot(in)
		want := ref
		if lf {
			want = bytes.ReplaceAll(ref, []byte("\r\n"), []byte("\n"))
		}
		switch {
		case !complete:
			if err != errClientGone && err != ErrLineTooLong {
				t.Fatalf("incomplete %q: %v, want errClientGone (or a line too long)", in, err)
			}
		case maxLine > 0 && longestLine(ref) > maxLine+1:
			if err != ErrLineTooLong {
				t.Fatalf("a line over %d in %q: %v, want ErrLineTooLong", maxLine, in, err)
			}
		case err != nil:
			t.Fatalf("complete message %q within the limits: %v", in, err)
		case !bytes.Equal(got, want):
			t.Fatalf("body %q, want %q", got, want)
		}
		if derr := d.drain(); complete != (derr == nil) {
			t.Fatalf("drain of %q: %v (complete %v)", in, derr, complete)
		}
		if complete {
			// Whatever follows the end marker is left for the commands.
			rest, _ := io.ReadAll(d.br)
			if end := len(in) - len(rest); end < 3 || string(in[end-3:end]) != ".\r\n" {
				t.Fatalf("after the message %q, %q is left, not what follows its end", in, rest)
			}
		}
	})
}

// longestLine is the longest line of b up to its LF (CR included), as
// limits counts them.
func longestLine(b []byte) int {
	n := 0
	for _, l := range bytes.Split(b, []byte("\n")) {
		n = max(n, len(l))
	}
	return n
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

// FuzzLFReader: LF on any other reader (BDAT bodies) turns CRLF into LF
// and keeps a lone CR, whatever the sizes of the reads on either side
// (zero included), and a finished reader whose pooled buffer went to the
// next one still only says EOF.
func FuzzLFReader(f *testing.F) {
	f.Add([]byte("a\r\nb\r\n"), 1, 0)
	f.Add([]byte("\r\r\n\r"), 0, 2)
	f.Add([]byte("x\ry\r\n\r\n"), 5, 3)
	f.Fuzz(func(t *testing.T, in []byte, chunk, piece int) {
		chunk = int(uint(chunk) % 9) // 0: a zero-length read now and then
		src := io.Reader(bytes.NewReader(in))
		if piece%2 == 1 {
			src = iotest.OneByteReader(src)
		}
		r := LF(src)
		var got []byte
		for i := 0; ; i++ {
			p := make([]byte, max(chunk, i%2))
			n, err := r.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if i > 4*len(in)+20 {
				t.Fatalf("no end after %d reads", i)
			}
		}
		if want := bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n")); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %q, want %q", in, got, want)
		}
		// The next reader takes the pooled buffer and fills it.
		next := LF(bytes.NewReader(bytes.Repeat([]byte("z\r\n"), 100)))
		io.Copy(io.Discard, next)
		if n, err := r.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("a finished reader read %d bytes, %v", n, err)
		}
	})
}
