package server

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/store"
)

// benchServer starts an in-process server with the in-process store on a
// unix socket, delivering to a Maildir (alice) and an mbox (bob).
func benchServer(b *testing.B) (sock, base string) {
	dir := b.TempDir()
	base = filepath.Join(dir, "mail")
	os.MkdirAll(filepath.Join(base, "example.com"), 0o755)
	os.MkdirAll(filepath.Join(dir, "spool"), 0o755)
	os.WriteFile(filepath.Join(dir, "vmailbox"), []byte("alice@example.com example.com/alice/\nbob@example.com example.com/bob\n"), 0o644)
	sock = filepath.Join(dir, "lmtp.sock")
	uid := os.Getuid()
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
`, sock, uid, os.Getgid(), max(uid, 1))))
	if err != nil {
		b.Fatal(err)
	}
	if uid == 0 {
		b.Skip("the in-process store refuses uid 0; run as a regular user")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := store.NewWriter(cfg.VirtualMailboxBase, store.WriterOptions{Hostname: cfg.Hostname, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(cfg, d, log)
	if err != nil {
		b.Fatal(err)
	}
	ls, err := Listen(cfg)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ls)
	b.Cleanup(func() { srv.Shutdown(b.Context()); d.Close() })
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
