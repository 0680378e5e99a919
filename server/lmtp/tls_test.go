package lmtp

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.test"},
		DNSNames: []string{"mx.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// STARTTLS on TCP: offered, required before MAIL when RequireTLS, and
// nothing the client sent in the clear after the command runs inside TLS.
func TestStartTLS(t *testing.T) {
	b := &fakeBackend{}
	s := &Server{Backend: b, Settings: Settings{Hostname: "mx.test", IdleTimeout: 5 * time.Second, DataTimeout: 5 * time.Second,
		WriteTimeout: 5 * time.Second, RequireTLS: true,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Shutdown(t.Context()) })

	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &client{t: t, br: bufio.NewReader(nc)}
	send := func(w io.Writer, s string) { io.WriteString(w, s) }
	readReply := func() []string {
		var lines []string
		for {
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			l, err := c.br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			lines = append(lines, strings.TrimSuffix(l, "\r\n"))
			if len(l) > 3 && l[3] == ' ' {
				return lines
			}
		}
	}
	readReply()
	send(nc, "LHLO client.test\r\n")
	if lhlo := strings.Join(readReply(), "\n"); !strings.Contains(lhlo, "250-STARTTLS") && !strings.Contains(lhlo, "250 STARTTLS") {
		t.Fatalf("STARTTLS not offered:\n%s", lhlo)
	}
	send(nc, "MAIL FROM:<a@x.test>\r\n")
	if r := readReply(); !strings.HasPrefix(r[0], "530 5.7.0 ") {
		t.Fatalf("MAIL before STARTTLS: %q", r)
	}
	// An injected command after STARTTLS, in the same packet.
	send(nc, "STARTTLS\r\nMAIL FROM:<injected@x.test>\r\n")
	if r := readReply(); !strings.HasPrefix(r[0], "220 2.0.0 ") {
		t.Fatalf("STARTTLS: %q", r)
	}
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true, ServerName: "mx.test"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.br = bufio.NewReader(tc)
	send(tc, "LHLO client.test\r\n")
	if lhlo := strings.Join(readReply(), "\n"); strings.Contains(lhlo, "STARTTLS") {
		t.Fatalf("STARTTLS offered again inside TLS:\n%s", lhlo)
	}
	send(tc, "MAIL FROM:<a@x.test>\r\nRCPT TO:<u1@y.test>\r\nDATA\r\n")
	for _, want := range []string{"250 2.1.0", "250 2.1.5", "354"} {
		if r := readReply(); !strings.HasPrefix(r[0], want) {
			t.Fatalf("got %q, want %s", r, want)
		}
	}
	send(tc, "x\r\n.\r\n")
	if r := readReply(); !strings.HasPrefix(r[0], "250 2.0.0 <u1@y.test>") {
		t.Fatalf("delivery: %q", r)
	}
	if mails, _, _ := b.snapshot(); len(mails) != 1 || mails[0] != "a@x.test" {
		t.Fatalf("backend saw MAIL %v: the injected command ran", mails)
	}
}
