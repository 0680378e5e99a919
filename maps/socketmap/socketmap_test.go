package socketmap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/maps"
)

// server is a socketmap server run by the test: it answers by key and
// records what it was asked. Its netstring code is separate from the
// client's on purpose.
type server struct {
	t       testing.TB
	ln      net.Listener
	network string

	mu       sync.Mutex
	queries  []string
	accepted int
	open     int
	maxOpen  int
	dropped  map[string]bool
	conns    map[net.Conn]bool
	closeAll bool // close each connection after one reply
	wg       sync.WaitGroup
}

func startServer(t testing.TB, network string) *server {
	t.Helper()
	var ln net.Listener
	var err error
	if network == "unix" {
		ln, err = net.Listen("unix", filepath.Join(t.TempDir(), "sm.sock"))
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, ln: ln, network: network, dropped: map[string]bool{}, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// spec is the table name for this server and map name "vmail".
func (s *server) spec() string {
	if s.network == "unix" {
		return "unix:" + s.ln.Addr().String() + ":vmail"
	}
	return "inet:" + s.ln.Addr().String() + ":vmail"
}

func (s *server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepted++
		s.open++
		s.maxOpen = max(s.maxOpen, s.open)
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		s.open--
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	r := bufio.NewReader(c)
	for {
		head, err := r.ReadString(':')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(head[:len(head)-1])
		if err != nil {
			s.t.Errorf("server: bad length %q", head)
			return
		}
		buf := make([]byte, n+1)
		if _, err := io.ReadFull(r, buf); err != nil || buf[n] != ',' {
			s.t.Errorf("server: bad netstring %q %v", buf, err)
			return
		}
		q := string(buf[:n])
		s.mu.Lock()
		s.queries = append(s.queries, q)
		closeAll := s.closeAll
		s.mu.Unlock()
		name, key, _ := strings.Cut(q, " ")
		if name != "vmail" {
			s.reply(c, "PERM unknown map "+name)
			continue
		}
		switch {
		case key == "hang":
			io.Copy(io.Discard, r) // until the client gives up and closes
			return
		case key == "drop":
			return
		case key == "drip":
			// A reply that never completes: a byte every 100 ms for
			// 1.6 s, then the connection closes.
			if _, err := c.Write([]byte("100:OK ")); err != nil {
				return
			}
			for range 16 {
				time.Sleep(100 * time.Millisecond)
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
			return
		case key == "drop-once":
			s.mu.Lock()
			first := !s.dropped[key]
			s.dropped[key] = true
			s.mu.Unlock()
			if first {
				return
			}
			s.reply(c, "OK second try")
		case key == "garbage":
			c.Write([]byte("4:OK x;"))
			return
		default:
			s.reply(c, answer(key))
		}
		if closeAll {
			return
		}
	}
}

func answer(key string) string {
	switch key {
	case "missing":
		return "NOTFOUND "
	case "temp":
		return "TEMP database down"
	case "timeout":
		return "TIMEOUT backend slow"
	case "perm":
		return "PERM bad config"
	case "empty":
		return "OK "
	case "bare-ok":
		return "OK"
	case "what":
		return "MAYBE later"
	case "big":
		return "OK " + strings.Repeat("x", MaxReply-2) // 100,001 bytes
	case "bigok":
		return "OK " + strings.Repeat("x", MaxReply-3) // exactly the limit
	}
	return "OK " + key + "/mail/"
}

func (s *server) reply(c net.Conn, msg string) {
	fmt.Fprintf(c, "%d:%s,", len(msg), msg)
}

func (s *server) stats() (queries []string, accepted, open, maxOpen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...), s.accepted, s.open, s.maxOpen
}

func openT(t testing.TB, name string) *Table {
	t.Helper()
	tb, err := Open(name, maps.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	return tb
}

func bothNetworks(t *testing.T, fn func(t *testing.T, s *server, tb *Table)) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s := startServer(t, network)
			fn(t, s, openT(t, s.spec()))
		})
	}
}

var ctx = context.Background()

func TestReplies(t *testing.T) {
	bothNetworks(t, func(t *testing.T, s *server, tb *Table) {
		if !tb.Pattern() || tb.Spec() != "socketmap:"+s.spec() {
			t.Fatalf("Pattern %v Spec %q", tb.Pattern(), tb.Spec())
		}
		for _, c := range []struct {
			key, value string
			found      bool
			status     string // ReplyError status, "-" for malformed, "" for no error
		}{
			{"user@example.com", "user@example.com/mail/", true, ""},
			{"missing", "", false, ""},
			{"empty", "", true, ""},
			{"bare-ok", "", true, ""},
			{"temp", "", false, "TEMP"},
			{"timeout", "", false, "TIMEOUT"},
			{"perm", "", false, "PERM"},
			{"what", "", false, "-"},
			{"bigok", strings.Repeat("x", MaxReply-3), true, ""},
			{"after@example.com", "after@example.com/mail/", true, ""},
		} {
			v, found, err := tb.Lookup(ctx, c.key)
			var re *ReplyError
			switch {
			case c.status == "" && err != nil:
				t.Fatalf("%s: %v", c.key, err)
			case c.status == "-" && (!errors.As(err, &re) || re.Status != ""):
				t.Fatalf("%s: want a malformed-reply error, got %v", c.key, err)
			case c.status != "" && c.status != "-" && (!errors.As(err, &re) || re.Status != c.status):
				t.Fatalf("%s: want %s, got %v", c.key, c.status, err)
			}
			if v != c.value || found != c.found {
				t.Fatalf("%s: %.40q %v, want %.40q %v", c.key, v, found, c.value, c.found)
			}
		}
		q, accepted, _, _ := s.stats()
		if q[0] != "vmail user@example.com" {
			t.Fatalf("first query %q", q[0])
		}
		if accepted != 1 {
			t.Fatalf("%d connections for sequential queries, want 1 reused", accepted)
		}
	})
}

func TestEmptyResultIsAnErrorInAList(t *testing.T) {
	s := startServer(t, "unix")
	m, err := maps.Open("socketmap:"+s.spec(), maps.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close(m)
	_, _, err = maps.List{m}.Find(ctx, "empty", false)
	if !errors.Is(err, maps.ErrEmptyResult) {
		t.Fatalf("empty OK through maps.List: %v", err)
	}
}

func TestOversizedReplyAndGarbage(t *testing.T) {
	s := startServer(t, "tcp")
	tb := openT(t, s.spec())
	for _, key := range []string{"big", "garbage"} {
		if _, _, err := tb.Lookup(ctx, key); !errors.Is(err, errProtocol) {
			t.Fatalf("%s: %v", key, err)
		}
	}
	// The connection with the unread reply was dropped: the next query
	// works on a new one.
	if v, ok, err := tb.Lookup(ctx, "a"); err != nil || !ok || v != "a/mail/" {
		t.Fatalf("after a bad reply: %q %v %v", v, ok, err)
	}
}

func TestQueryTooLargeIsNotFoundWithoutAsking(t *testing.T) {
	s := startServer(t, "unix")
	tb := openT(t, s.spec())
	limit := MaxQuery - len("vmail ")
	if _, ok, err := tb.Lookup(ctx, strings.Repeat("k", limit+1)); ok || err != nil {
		t.Fatalf("oversized query: %v %v", ok, err)
	}
	if q, _, _, _ := s.stats(); len(q) != 0 {
		t.Fatalf("server was asked %d queries", len(q))
	}
	if _, ok, err := tb.Lookup(ctx, strings.Repeat("k", limit)); !ok || err != nil {
		t.Fatalf("query at the limit: %v %v", ok, err)
	}
}

func TestTimeout(t *testing.T) {
	bothNetworks(t, func(t *testing.T, s *server, tb *Table) {
		tb.timeouts.query = 200 * time.Millisecond
		start := time.Now()
		_, _, err := tb.Lookup(ctx, "hang")
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !strings.Contains(err.Error(), "no reply within") {
			t.Fatalf("hanging server: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v", d)
		}
		// The caller's shorter deadline wins.
		tb.timeouts.query = time.Minute
		c, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if _, _, err := tb.Lookup(c, "hang"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("context deadline: %v", err)
		}
		if v, ok, err := tb.Lookup(ctx, "x"); err != nil || !ok || v != "x/mail/" {
			t.Fatalf("after timeouts: %q %v %v", v, ok, err)
		}
	})
}

// A server that drips a reply and closes just before the query timeout
// gets one retry, but the lookup as a whole still ends at the timeout:
// 2s here, where a second full attempt would take 3.2s and end in EOF.
// The margin is wide because the race detector on a loaded machine
// delays goroutines by hundreds of milliseconds.
func TestDripAndCloseBoundedByOneQueryTimeout(t *testing.T) {
	bothNetworks(t, func(t *testing.T, s *server, tb *Table) {
		tb.timeouts.query = 2 * time.Second
		start := time.Now()
		_, _, err := tb.Lookup(ctx, "drip")
		took := time.Since(start)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("dripping server: %v, want a timeout", err)
		}
		if took > 2800*time.Millisecond {
			t.Fatalf("lookup took %v with a query timeout of 2s", took)
		}
		q, _, _, _ := s.stats()
		if n := strings.Count(strings.Join(q, "\n"), "vmail drip"); n != 2 {
			t.Errorf("asked %d times, want 2 (the retry after the close)", n)
		}
	})
}

func TestReconnect(t *testing.T) {
	bothNetworks(t, func(t *testing.T, s *server, tb *Table) {
		// The server closes each connection after its reply, as one with
		// a short idle timeout would: every later query meets a closed
		// connection first and must succeed on a new one.
		s.mu.Lock()
		s.closeAll = true
		s.mu.Unlock()
		for i := range 3 {
			k := fmt.Sprint("k", i)
			if v, ok, err := tb.Lookup(ctx, k); err != nil || !ok || v != k+"/mail/" {
				t.Fatalf("%s: %q %v %v", k, v, ok, err)
			}
			time.Sleep(10 * time.Millisecond) // let the close arrive
		}
		s.mu.Lock()
		s.closeAll = false
		s.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		if _, _, err := tb.Lookup(ctx, "fresh"); err != nil { // uses the retry on the stale connection
			t.Fatal(err)
		}
		// Dropped mid-query once: one retry succeeds.
		if v, ok, err := tb.Lookup(ctx, "drop-once"); err != nil || !ok || v != "second try" {
			t.Fatalf("drop-once: %q %v %v", v, ok, err)
		}
		// Dropped every time: exactly one retry, then an error.
		if _, _, err := tb.Lookup(ctx, "drop"); err == nil || !strings.Contains(err.Error(), "EOF") {
			t.Fatalf("drop: %v", err)
		}
		q, _, _, _ := s.stats()
		n := 0
		for _, x := range q {
			if x == "vmail drop" {
				n++
			}
		}
		if n != 2 {
			t.Fatalf("drop: asked %d times, want 2 (one retry)", n)
		}
	})
}

func TestIdleConnectionsClosed(t *testing.T) {
	s := startServer(t, "unix")
	tb := openT(t, s.spec())
	tb.timeouts.idle = 50 * time.Millisecond
	if _, _, err := tb.Lookup(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		if _, _, open, _ := s.stats(); open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle connection still open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, err := tb.Lookup(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, accepted, _, _ := s.stats(); accepted != 2 {
		t.Fatalf("%d connections, want 2", accepted)
	}
}

func TestConcurrentLookups(t *testing.T) {
	s := startServer(t, "tcp")
	tb := openT(t, s.spec())
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				k := fmt.Sprintf("u%d-%d", g, i)
				if v, ok, err := tb.Lookup(ctx, k); err != nil || !ok || v != k+"/mail/" {
					t.Errorf("%s: %q %v %v", k, v, ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, _, _, maxOpen := s.stats(); maxOpen > MaxConns {
		t.Fatalf("%d connections open at once, limit %d", maxOpen, MaxConns)
	}
	tb.Close()
	if _, _, err := tb.Lookup(ctx, "x"); err == nil {
		t.Fatal("lookup after Close succeeded")
	}
}

func TestServerDown(t *testing.T) {
	tb := openT(t, "unix:"+filepath.Join(t.TempDir(), "nothing.sock")+":vmail")
	if _, _, err := tb.Lookup(ctx, "a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no server: %v", err)
	}
}

func TestOpenNames(t *testing.T) {
	for name, want := range map[string]string{
		"unix:/run/sm.sock:vmail":        "unix /run/sm.sock vmail",
		"unix:private/sm:m":              "unix /etc/vlmtpd/private/sm m",
		"inet:127.0.0.1:9000:virtual":    "tcp 127.0.0.1:9000 virtual",
		"inet:[::1]:9000:x":              "tcp [::1]:9000 x",
		"inet:localhost:9000:a:b":        "",
		"inet:127.0.0.1:virtual":         "",
		"unix::vmail":                    "",
		"tcp:127.0.0.1:9000:x":           "",
		"unix:/run/sm.sock:":             "",
		"nocolon":                        "",
		"inet:host.example:smtpmap:name": "tcp host.example:smtpmap name",
	} {
		tb, err := Open(name, maps.Options{Dir: "/etc/vlmtpd"})
		got := ""
		if err == nil {
			got = tb.network + " " + tb.address + " " + tb.mapName
		}
		if got != want {
			t.Errorf("Open(%q) = %q (%v), want %q", name, got, err, want)
		}
	}
}

// TestWaitForConnectionHonoursContext: with every connection busy on a
// hanging query, another lookup waits for a turn only as long as its
// context allows.
func TestWaitForConnectionHonoursContext(t *testing.T) {
	s := startServer(t, "unix")
	tb := openT(t, s.spec())
	tb.timeouts.query = time.Second
	var wg sync.WaitGroup
	for range MaxConns {
		wg.Add(1)
		go func() { defer wg.Done(); tb.Lookup(ctx, "hang") }()
	}
	for {
		if q, _, _, _ := s.stats(); len(q) == MaxConns {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := tb.Lookup(c, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a connection: %v", err)
	}
	if q, _, _, _ := s.stats(); len(q) != MaxConns {
		t.Fatalf("server saw %d queries", len(q))
	}
	wg.Wait()
	if v, ok, err := tb.Lookup(ctx, "a"); err != nil || !ok || v != "a/mail/" {
		t.Fatalf("after the hangs: %q %v %v", v, ok, err)
	}
}
