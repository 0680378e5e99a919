package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/store"
	"golang.org/x/sys/unix"
)

// benchServer starts an in-process server with the in-process store on a
// unix socket, delivering to a Maildir (alice) and an mbox (bob).
func benchServer(b *testing.B) (sock, base string) {
	uid := os.Getuid()
	if uid == 0 {
		b.Skip("the in-process store refuses uid 0; run as a regular user")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sock, base = startBench(b, uid, os.Getgid(), func(cfg *config.Config) store.Deliverer {
		l, err := store.NewWriter(cfg.VirtualMailboxBase, store.WriterOptions{Hostname: cfg.Hostname, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		return l
	})
	return sock, base
}

// startBench starts a server on a unix socket whose mailboxes belong to
// uid and gid and whose deliveries go to the Deliverer newStore returns.
func startBench(b *testing.B, uid, gid int, newStore func(*config.Config) store.Deliverer) (sock, base string) {
	dir := b.TempDir()
	base = filepath.Join(dir, "mail")
	os.MkdirAll(filepath.Join(base, "example.com"), 0o755)
	os.MkdirAll(filepath.Join(dir, "spool"), 0o755)
	os.WriteFile(filepath.Join(dir, "vmailbox"), []byte("alice@example.com example.com/alice/\nbob@example.com example.com/bob\n"), 0o644)
	sock = filepath.Join(dir, "lmtp.sock")
	cfg, err := config.Parse(filepath.Join(dir, "vlmtpd.toml"), []byte(fmt.Sprintf(`
hostname = "bench.test"
listen = ["unix:%s"]
spool_directory = "spool"
virtual_mailbox_base = "mail"
virtual_mailbox_domains = "example.com"
virtual_mailbox_maps = "texthash:vmailbox"
virtual_uid_maps = "static:%d"
virtual_gid_maps = "static:%d"
virtual_minimum_uid = %d
virtual_mailbox_limit = 0
message_size_limit = 0
`, sock, uid, gid, max(uid, 1))))
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(cfg, newStore(cfg), log)
	if err != nil {
		b.Fatal(err)
	}
	ls, err := Listen(cfg)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ls)
	b.Cleanup(func() { srv.Shutdown(b.Context()) })
	return sock, base
}

// BenchmarkLMTP measures whole transactions: pipelined MAIL, RCPT, DATA
// with a 4 KB body, durable delivery, replies. Run it as a regular user
// (the in-process store writes only the caller's own mailboxes):
//
//	go test -run '^$' -bench LMTP ./server/
func BenchmarkLMTP(b *testing.B) {
	for _, tc := range []struct {
		name     string
		rcpt     string
		sessions int
	}{
		{"maildir/1session", "alice@example.com", 1},
		{"maildir/8sessions", "alice@example.com", 8},
		{"mbox/1session", "bob@example.com", 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			sock, _ := benchServer(b)
			body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 52) + ".\r\n"
			txn := "MAIL FROM:<s@remote.test>\r\nRCPT TO:<" + tc.rcpt + ">\r\nDATA\r\n"
			var next sync.Mutex
			n := 0
			take := func() bool {
				next.Lock()
				defer next.Unlock()
				n++
				return n <= b.N
			}
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			var wg sync.WaitGroup
			for range tc.sessions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.Dial("unix", sock)
					if err != nil {
						b.Error(err)
						return
					}
					defer c.Close()
					r := bufio.NewReader(c)
					expect := func(prefix string) bool {
						for {
							l, err := r.ReadString('\n')
							if err != nil || !strings.HasPrefix(l, prefix) {
								b.Errorf("got %q (%v), want %s", l, err, prefix)
								return false
							}
							if len(l) < 4 || l[3] != '-' {
								return true
							}
						}
					}
					expect("220")
					io.WriteString(c, "LHLO bench\r\n")
					expect("250")
					for take() {
						io.WriteString(c, txn)
						for _, want := range []string{"250", "250", "354"} {
							if !expect(want) {
								return
							}
						}
						io.WriteString(c, body)
						if !expect("250") {
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// nullStore accepts every message without reading it: the front's own
// work, without a mailbox write.
type nullStore struct{}

func (nullStore) Deliver(_ context.Context, _ *store.Message, rcpts []store.Recipient) []error {
	return make([]error, len(rcpts))
}
func (nullStore) MailboxSize(context.Context, store.Recipient) (int64, error) { return 0, nil }
func (nullStore) Permits(int, int) error                                      { return nil }

// BenchmarkFrontData measures the front's DATA path alone: a client in
// another process pipelines transactions over a unix socket, the front
// reads, unstuffs and spools each body, and a store that writes nothing
// accepts it. cpu-ms/op is the front's user+sys CPU per message (the
// client's is not counted: it is a child process).
//
//	go test -run '^$' -bench FrontData -benchmem ./server/
func BenchmarkFrontData(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20, 10 << 20} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			sock, _ := startBench(b, 5000, 5000, func(*config.Config) store.Deliverer { return nullStore{} })
			b.SetBytes(int64(size))
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), fmt.Sprintf("VLMTPD_BENCH_CLIENT=%s,%d,%d", sock, size, b.N))
			cmd.Stderr = os.Stderr
			var before, after unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &before)
			b.ResetTimer()
			out, err := cmd.Output()
			b.StopTimer()
			unix.Getrusage(unix.RUSAGE_SELF, &after)
			if err != nil || !strings.Contains(string(out), "ok") {
				b.Fatalf("client: %v\n%s", err, out)
			}
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(float64(cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// A test binary started with VLMTPD_BENCH_CLIENT set is
// BenchmarkFrontData's client, not a test run.
func init() {
	if env := os.Getenv("VLMTPD_BENCH_CLIENT"); env != "" {
		if err := frontDataClient(env); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("ok")
		os.Exit(0)
	}
}

// frontDataClient sends n transactions with a size-byte body
// (78-character lines, a dot to unstuff in every hundredth) and checks
// each reply; env is "socket,size,n".
func frontDataClient(env string) error {
	var size, n int
	f := strings.Split(env, ",")
	if len(f) != 3 {
		return fmt.Errorf("VLMTPD_BENCH_CLIENT=%q: want socket,size,n", env)
	}
	sock := f[0]
	fmt.Sscan(f[1], &size)
	fmt.Sscan(f[2], &n)
	var body strings.Builder
	body.WriteString("Subject: bench\r\n\r\n")
	for i := 0; body.Len() < size; i++ {
		if i%100 == 99 {
			body.WriteString(".")
		}
		body.WriteString(strings.Repeat("x", 76) + "\r\n")
	}
	body.WriteString(".\r\n")
	txn := []byte("MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n" + body.String())
	c, err := net.Dial("unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		r := bufio.NewReader(c)
		// 220, 250 for LHLO (multi-line), then 250, 250, 354, 250 each.
		want := []string{"220"}
		for range n {
			want = append(want, "250", "250", "354", "250")
		}
		lhlo := false
		for _, w := range want {
			for {
				l, err := r.ReadString('\n')
				if err != nil || !strings.HasPrefix(l, w) && !(lhlo && strings.HasPrefix(l, "250")) {
					done <- fmt.Errorf("got %q (%v), want %s", l, err, w)
					return
				}
				if len(l) >= 4 && l[3] == '-' {
					continue
				}
				if w == "220" && !lhlo {
					lhlo = true
					continue
				}
				break
			}
		}
		done <- nil
	}()
	io.WriteString(c, "LHLO bench\r\n")
	for range n {
		if _, err := c.Write(txn); err != nil {
			return err
		}
	}
	return <-done
}
