package lmtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeBackend records what the engine hands over. Recipients whose local
// part starts with "bad" are refused; Data reads the body through unless
// the test says otherwise.
type fakeBackend struct {
	mu       sync.Mutex
	mails    []string
	rcpts    []RcptOptions
	bodies   []string
	dataErrs []error
	// readLimit, when set, makes Data stop reading after that many bytes
	// and fail every recipient with 452, like a full spool.
	readLimit int
	// release, when set, blocks Data until it is closed.
	release chan struct{}
	// short makes Data return one reply fewer than it has recipients.
	short bool
	// entered, when set, is closed when Data is first called.
	entered     chan struct{}
	enteredOnce sync.Once
	// ctxErr records whether Data's context was cancelled when it ended.
	ctxErr error
}

type fakeSession struct {
	b     *fakeBackend
	rcpts []string
}

func (b *fakeBackend) NewSession(ConnInfo) Session { return &fakeSession{b: b} }

func (f *fakeSession) Mail(from Address, _ MailOptions) *Reply {
	f.b.mu.Lock()
	f.b.mails = append(f.b.mails, from.String())
	f.b.mu.Unlock()
	return nil
}

func (f *fakeSession) Rcpt(_ context.Context, to Address, o RcptOptions) *Reply {
	if strings.HasPrefix(to.Local, "bad") {
		return Replyf(550, 5, 1, 1, "unknown user")
	}
	f.b.mu.Lock()
	f.b.rcpts = append(f.b.rcpts, o)
	f.b.mu.Unlock()
	f.rcpts = append(f.rcpts, to.String())
	return nil
}

func (f *fakeSession) Data(ctx context.Context, r io.Reader) []*Reply {
	if f.b.entered != nil {
		f.b.enteredOnce.Do(func() { close(f.b.entered) })
	}
	var err error
	var body []byte
	if f.b.readLimit > 0 {
		body = make([]byte, f.b.readLimit)
		_, err = io.ReadFull(r, body)
		if err == nil {
			err = errors.New("spool full")
		}
	} else {
		body, err = io.ReadAll(r)
	}
	if f.b.release != nil {
		select {
		case <-f.b.release:
		case <-ctx.Done():
		}
	}
	f.b.mu.Lock()
	f.b.bodies = append(f.b.bodies, string(body))
	f.b.dataErrs = append(f.b.dataErrs, err)
	f.b.ctxErr = ctx.Err()
	f.b.mu.Unlock()
	out := make([]*Reply, len(f.rcpts))
	for i := range out {
		switch {
		case err != nil && f.b.readLimit > 0:
			out[i] = Replyf(452, 4, 3, 1, "insufficient system storage")
		case err != nil:
			var r *Reply
			if errors.As(err, &r) {
				out[i] = r
			} else {
				out[i] = Replyf(451, 4, 3, 0, "not received")
			}
		default:
			out[i] = Replyf(250, 2, 0, 0, "delivered")
		}
	}
	if f.b.short {
		out = out[:len(out)-1]
	}
	return out
}

func (f *fakeSession) Reset() { f.rcpts = nil }
func (f *fakeSession) Close() {}

func (b *fakeBackend) snapshot() (mails []string, bodies []string, errs []error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.mails...), append([]string(nil), b.bodies...), append([]error(nil), b.dataErrs...)
}

type testServer struct {
	*Server
	b    *fakeBackend
	sock string
	done chan struct{}
}

func startServer(t *testing.T, b *fakeBackend, tweak func(*Server)) *testServer {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "lmtp.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Backend: b, Settings: Settings{Hostname: "mx.test", MaxMessageSize: 1 << 20, MaxRecipients: 5,
		MaxLineLength: 1000, IdleTimeout: 5 * time.Second, DataTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}}
	if tweak != nil {
		tweak(s)
	}
	ts := &testServer{Server: s, b: b, sock: sock, done: make(chan struct{})}
	go func() { s.Serve(l); close(ts.done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-ts.done
	})
	return ts
}

type client struct {
	t  *testing.T
	nc *net.UnixConn
	br *bufio.Reader
}

func (ts *testServer) dial(t *testing.T) *client {
	t.Helper()
	nc, err := net.Dial("unix", ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc.(*net.UnixConn), br: bufio.NewReader(nc)}
	c.expect("220 ")
	return c
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// line reads one reply line; "" when the server closed the connection.
// Waiting 10 s for nothing is a failure, not a close.
func (c *client) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := c.br.ReadString('\n')
	if err != nil {
		if l != "" {
			c.t.Fatalf("partial reply line %q: %v", l, err)
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			c.t.Fatalf("no reply and no close: %v", err)
		}
		return ""
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) expect(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("got %q, want %q…", l, prefix)
	}
	return l
}

// expectEOF checks that the server sends nothing more and closes.
func (c *client) expectEOF() {
	c.t.Helper()
	if l := c.line(); l != "" {
		c.t.Fatalf("got %q, want the connection closed", l)
	}
}

func (c *client) lhlo() {
	c.t.Helper()
	c.send("LHLO client.test\r\n")
	for {
		l := c.line()
		if !strings.HasPrefix(l, "250") {
			c.t.Fatalf("LHLO reply %q", l)
		}
		if strings.HasPrefix(l, "250 ") {
			return
		}
	}
}

func TestNestedMailRefused(t *testing.T) {
	ts := startServer(t, &fakeBackend{}, nil)
	c := ts.dial(t)
	c.lhlo()
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<u1@y.test>\r\nMAIL FROM:<b@x.test>\r\nRCPT TO:<u2@y.test>\r\nDATA\r\n")
	c.expect("250 2.1.0 <a@x.test> sender ok")
	c.expect("250 2.1.5 <u1@y.test> recipient ok")
	c.expect("503 5.5.1 nested MAIL command")
	c.expect("250 2.1.5 <u2@y.test>")
	c.expect("354 ")
	c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	c.expect("250 2.0.0 <u1@y.test> delivered")
	c.expect("250 2.0.0 <u2@y.test> delivered")
	mails, bodies, _ := ts.b.snapshot()
	if len(mails) != 1 || len(bodies) != 1 {
		t.Fatalf("backend saw MAIL %v and %d bodies, want one of each", mails, len(bodies))
	}
}

func TestMissingStatusIs451(t *testing.T) {
	ts := startServer(t, &fakeBackend{short: true}, nil)
	c := ts.dial(t)
	c.lhlo()
	c.send("MAIL FROM:<>\r\nRCPT TO:<u1@y.test>\r\nRCPT TO:<u2@y.test>\r\nDATA\r\n")
	c.expect("250 2.1.0 <> sender ok")
	c.expect("250 2.1.5")
	c.expect("250 2.1.5")
	c.expect("354")
	c.send("x\r\n.\r\n")
	c.expect("250 2.0.0 <u1@y.test> delivered")
	c.expect("451 4.3.0 <u2@y.test> no delivery status")
}

// bdatCutShort sends part of a chunk and then closes or shuts down its
// side: the backend must see an error, never a complete message, and the
// client no 250.
func TestBDATCutShort(t *testing.T) {
	for _, tc := range []struct {
		name     string
		last     string
		shutdown bool
	}{
		{"last-close", " LAST", false},
		{"last-shutdown", " LAST", true},
		{"nonlast-shutdown", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, &fakeBackend{}, nil)
			c := ts.dial(t)
			c.lhlo()
			c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<u1@y.test>\r\nRCPT TO:<u2@y.test>\r\n")
			c.expect("250")
			c.expect("250")
			c.expect("250")
			c.send("BDAT 100000" + tc.last + "\r\n" + strings.Repeat("a line\r\n", 6000))
			if tc.shutdown {
				c.nc.CloseWrite()
				c.expectEOF()
			} else {
				c.nc.Close()
			}
			waitFor(t, func() bool { _, b, _ := ts.b.snapshot(); return len(b) == 1 })
			_, _, errs := ts.b.snapshot()
			if !errors.Is(errs[0], errClientGone) {
				t.Fatalf("backend's read ended with %v, want errClientGone", errs[0])
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached in 5 s")
}

// A stalled message body: every recipient gets a 4xx, the connection is
// closed, and nothing sent afterwards runs as a command.
func TestDataTimeoutNeverTurnsDataIntoCommands(t *testing.T) {
	for _, bdat := range []bool{false, true} {
		name := map[bool]string{false: "DATA", true: "BDAT"}[bdat]
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, &fakeBackend{}, func(s *Server) { s.DataTimeout = 300 * time.Millisecond })
			c := ts.dial(t)
			c.lhlo()
			c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<u1@y.test>\r\nRCPT TO:<u2@y.test>\r\n")
			c.expect("250")
			c.expect("250")
			c.expect("250")
			smuggled := "\r\nMAIL FROM:<forged@x.test>\r\nRCPT TO:<u3@y.test>\r\nDATA\r\nforged\r\n.\r\nQUIT\r\n"
			if bdat {
				c.send("BDAT 1000 LAST\r\nSubject: a\r\n")
			} else {
				c.send("DATA\r\n")
				c.expect("354")
				c.send("Subject: a\r\n")
			}
			time.Sleep(500 * time.Millisecond)
			// The server may have hung up already.
			io.WriteString(c.nc, smuggled)
			c.expect("451 4.4.2 <u1@y.test> ")
			c.expect("451 4.4.2 <u2@y.test> ")
			c.expect("421 4.4.2 ")
			c.expectEOF()
			mails, bodies, _ := ts.b.snapshot()
			if len(mails) != 1 || len(bodies) != 1 {
				t.Fatalf("backend saw MAIL %v, %d messages: data ran as commands", mails, len(bodies))
			}
		})
	}
}

func TestPartialCommandAtTimeoutNotExecuted(t *testing.T) {
	ts := startServer(t, &fakeBackend{}, func(s *Server) { s.IdleTimeout = 300 * time.Millisecond })
	c := ts.dial(t)
	c.lhlo()
	c.send("MAIL FROM:<a@x.test>")
	c.expect("421 4.4.2 ")
	c.expectEOF()
	if mails, _, _ := ts.b.snapshot(); len(mails) != 0 {
		t.Fatalf("a partial MAIL line ran: %v", mails)
	}
}

func TestPartialCommandAtEOFNotExecuted(t *testing.T) {
	ts := startServer(t, &fakeBackend{}, nil)
	c := ts.dial(t)
	c.lhlo()
	c.send("MAIL FROM:<a@x.test>")
	c.nc.CloseWrite()
	c.expectEOF()
	time.Sleep(50 * time.Millisecond)
	if mails, _, _ := ts.b.snapshot(); len(mails) != 0 {
		t.Fatalf("a partial MAIL line ran: %v", mails)
	}
}

// A client dripping one byte at a time cannot hold a command open longer
// than idle_timeout in total.
func TestDripBoundedPerCommand(t *testing.T) {
	ts := startServer(t, &fakeBackend{}, func(s *Server) { s.IdleTimeout = 400 * time.Millisecond })
	c := ts.dial(t)
	start := time.Now()
	go func() {
		for _, b := range []byte("LHLO a-very-slow-client.test") {
			if _, err := c.nc.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	c.expect("421 4.4.2 ")
	if d := time.Since(start); d > 1200*time.Millisecond {
		t.Fatalf("a dripping client held the command for %v", d)
	}
}

func TestLHLOArgumentNeverEchoed(t *testing.T) {
	ts := startServer(t, &fakeBackend{}, nil)
	c := ts.dial(t)
	c.send("LHLO evil\rinjected\r\n")
	for {
		l := c.line()
		if strings.Contains(l, "evil") || strings.Contains(l, "injected") {
			t.Fatalf("LHLO reply echoes the client: %q", l)
		}
		if !strings.HasPrefix(l, "250-") {
			break
		}
	}
}

func TestRecipientParameters(t *testing.T) {
	ts := startServer(t, &fakeBackend{}, nil)
	c := ts.dial(t)
	c.lhlo()
	c.send("MAIL FROM:<a@x.test> SIZE=100 BODY=8BITMIME SMTPUTF8\r\n" +
		"RCPT TO:<josé@idn.test> ORCPT=rfc822;jos+C3+A9@idn.test\r\n" +
		"RCPT TO:<\"\"@catch.test> ORCPT=rfc822;\"alice\"@plus.test\r\n" +
		"RCPT TO:<u@y.test> ORCPT=rfc822;+ZZbroken NOTIFY=SOMETIMES\r\n" +
		"RCPT TO:<x@y.test> ORCPT=utf-8;x\\x{E9}@y.test\r\n" +
		"RCPT TO:<Postmaster>\r\n")
	c.expect("250 2.1.0")
	c.expect("250 2.1.5 <josé@idn.test>")
	c.expect(`250 2.1.5 <""@catch.test>`)
	c.expect("250 2.1.5 <u@y.test>")
	c.expect("250 2.1.5 <x@y.test>")
	c.expect("250 2.1.5 <Postmaster>")
	ts.b.mu.Lock()
	defer ts.b.mu.Unlock()
	got := ts.b.rcpts
	if got[0].OriginalRecipient != "josé@idn.test" || got[1].OriginalRecipient != `"alice"@plus.test` ||
		got[2].OriginalRecipient != "" || len(got[2].ParamErrors) != 2 || got[3].OriginalRecipient != "xé@y.test" {
		t.Fatalf("recipient options: %+v", got)
	}
}

func TestAddressLimits(t *testing.T) {
	ts := startServer(t, &fakeBackend{}, nil)
	c := ts.dial(t)
	c.lhlo()
	long := strings.Repeat("a", 300)
	c.send("MAIL FROM:<" + long + "@x.test>\r\nMAIL FROM:<a\x01b@x.test>\r\nMAIL FROM:<a@x.test> FOO=1\r\nMAIL FROM:<a@x.test>\r\n" +
		"RCPT TO:<" + long + "@y.test>\r\nRCPT TO:<a b@y.test>\r\nRCPT TO:<u@y.test> ORCPT=x\r\n")
	c.expect("501 5.1.7 sender address too long")
	c.expect("501 5.1.7 sender address contains invalid characters")
	c.expect("555 5.5.4 ")
	c.expect("250 2.1.0")
	c.expect("501 5.1.3 recipient address too long")
	c.expect("501 5.1.3 bad recipient address syntax")
	c.expect("250 2.1.5 <u@y.test>")
}

func TestSpoolFailureDuringBDAT(t *testing.T) {
	ts := startServer(t, &fakeBackend{readLimit: 10}, nil)
	c := ts.dial(t)
	c.lhlo()
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<u1@y.test>\r\nRCPT TO:<u2@y.test>\r\n")
	c.expect("250")
	c.expect("250")
	c.expect("250")
	chunk := strings.Repeat("y", 5000)
	c.send("BDAT 5000\r\n" + chunk + "BDAT 5000\r\n" + chunk + "BDAT 5000 LAST\r\n" + chunk)
	c.expect("250 2.0.0 5000 octets received")
	c.expect("250 2.0.0 5000 octets received")
	c.expect("452 4.3.1 <u1@y.test> ")
	c.expect("452 4.3.1 <u2@y.test> ")
	c.send("NOOP\r\n")
	c.expect("250 2.0.0 ok")
}

func TestMessageTooBigAndLongLines(t *testing.T) {
	ts := startServer(t, &fakeBackend{}, func(s *Server) { s.MaxMessageSize = 3000 })
	c := ts.dial(t)
	c.lhlo()
	c.send("MAIL FROM:<a@x.test> SIZE=5000\r\n")
	c.expect("552 5.3.4 message exceeds the size limit")
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<u1@y.test>\r\nRCPT TO:<u2@y.test>\r\nDATA\r\n")
	c.expect("250")
	c.expect("250")
	c.expect("250")
	c.expect("354")
	// Lines within the line limit: the size is what is over.
	c.send(strings.Repeat(strings.Repeat("z", 98)+"\r\n", 40) + ".\r\n")
	c.expect("552 5.3.4 <u1@y.test> message exceeds the size limit")
	c.expect("552 5.3.4 <u2@y.test>")
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<u1@y.test>\r\nBDAT 1200 LAST\r\n" + strings.Repeat("w", 1198) + "\r\n")
	c.expect("250")
	c.expect("250")
	c.expect("500 5.5.2 <u1@y.test> message line too long")
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<u1@y.test>\r\nDATA\r\n" + strings.Repeat("v", 1200) + "\r\n.\r\n")
	c.expect("250")
	c.expect("250")
	c.expect("354")
	c.expect("500 5.5.2 <u1@y.test> message line too long")
	c.send("NOOP\r\n")
	c.expect("250 2.0.0 ok")
}

func TestBDATAbandoned(t *testing.T) {
	ts := startServer(t, &fakeBackend{}, nil)
	c := ts.dial(t)
	c.lhlo()
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<u1@y.test>\r\nBDAT 3\r\nabcMAIL FROM:<b@x.test>\r\nNOOP\r\nRSET\r\n")
	c.expect("250")
	c.expect("250")
	c.expect("250 2.0.0 3 octets received")
	c.expect("503 5.5.1 ")
	c.expect("250 2.0.0 ok")
	c.expect("250 2.0.0 reset")
	_, _, errs := ts.b.snapshot()
	if len(errs) != 1 || !errors.Is(errs[0], errRset) {
		t.Fatalf("backend's read ended with %v, want errRset", errs)
	}
	// BDAT without a transaction: the chunk is read as data and dropped.
	c.send("BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
	c.expect("503 5.5.1 need MAIL command")
	c.expect("250 2.0.0 ok")
}

// Only CRLF.CRLF ends DATA: a dot line after a bare LF is content.
func TestDataEndNeedsCRLF(t *testing.T) {
	ts := startServer(t, &fakeBackend{}, nil)
	c := ts.dial(t)
	c.lhlo()
	c.toData("u1@y.test")
	c.send("a\n.\r\nMAIL FROM:<smuggled@x.test>\r\n..dot\r\n.\r\n")
	c.expect("250 2.0.0 <u1@y.test>")
	mails, bodies, _ := ts.b.snapshot()
	want := "a\n.\r\nMAIL FROM:<smuggled@x.test>\r\n.dot\r\n"
	if len(mails) != 1 || bodies[0] != want {
		t.Fatalf("mails %v body %q, want %q", mails, bodies[0], want)
	}
}

// toData sends MAIL, one RCPT and DATA and reads their three replies.
func (c *client) toData(rcpt string) {
	c.t.Helper()
	c.send("MAIL FROM:<a@x.test>\r\nRCPT TO:<" + rcpt + ">\r\nDATA\r\n")
	c.expect("250")
	c.expect("250")
	c.expect("354")
}

// blockedDelivery starts a server whose backend holds every delivery
// until b.release is closed, and a session whose delivery to u1@y.test is
// held there.
func blockedDelivery(t *testing.T) (ts *testServer, b *fakeBackend, busy *client) {
	t.Helper()
	b = &fakeBackend{release: make(chan struct{}), entered: make(chan struct{})}
	ts = startServer(t, b, nil)
	busy = ts.dial(t)
	busy.lhlo()
	busy.toData("u1@y.test")
	busy.send("x\r\n.\r\n")
	<-b.entered // the delivery is in progress
	return ts, b, busy
}

func TestShutdown(t *testing.T) {
	ts, b, busy := blockedDelivery(t)
	idle := ts.dial(t)
	idle.lhlo()
	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(context.Background()) }()
	idle.expect("421 4.3.2 ")
	idle.expectEOF()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a delivery in progress", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(b.release)
	busy.expect("250 2.0.0 <u1@y.test> delivered")
	// Its transaction over, the session is told at once.
	busy.expect("421 4.3.2 ")
	busy.expectEOF()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func TestShutdownOutOfTime(t *testing.T) {
	ts, b, busy := blockedDelivery(t)
	arriving := ts.dial(t)
	arriving.lhlo()
	arriving.toData("u2@y.test")
	arriving.send("part of a message\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	// The delivery saw its context cancelled and answered.
	busy.expect("250 2.0.0 <u1@y.test>")
	b.mu.Lock()
	cancelled := b.ctxErr
	b.mu.Unlock()
	if cancelled == nil {
		t.Error("the delivery's context was not cancelled")
	}
	arriving.expect("451 4.3.2 <u2@y.test> ")
	arriving.expect("421 4.3.2 ")
}

// Replies larger than the write buffer, long after the last flush, still
// all arrive: the buffer's own flushes get a fresh write deadline.
func TestManyRepliesAfterIdle(t *testing.T) {
	ts := startServer(t, &fakeBackend{}, func(s *Server) { s.MaxRecipients = 300; s.WriteTimeout = 200 * time.Millisecond })
	c := ts.dial(t)
	c.lhlo()
	time.Sleep(400 * time.Millisecond)
	var b strings.Builder
	b.WriteString("MAIL FROM:<a@x.test>\r\n")
	for i := range 200 {
		fmt.Fprintf(&b, "RCPT TO:<a-rather-long-recipient-name-%03d@y.test>\r\n", i)
	}
	c.send(b.String())
	c.expect("250 2.1.0")
	for i := range 200 {
		c.expect(fmt.Sprintf("250 2.1.5 <a-rather-long-recipient-name-%03d@y.test>", i))
	}
}
