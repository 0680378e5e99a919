package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// writeTestCert writes a self-signed certificate and its key (PEM) to dir.
func writeTestCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "mx.test"},
		DNSNames: []string{"mx.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeTestFile(t, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeTestFile(t, key, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	return cert, key
}

// Postfix's lmtp client with lmtp_tls_security_level = encrypt delivers
// over STARTTLS to an inet listener that requires it.
func TestPostfixLMTPOverTLS(t *testing.T) {
	cert, key := writeTestCert(t, sharedTempDir(t))
	v := startVlmtpdFor(t, vlmtpdSetup{
		Privsep:   true,
		Domains:   []string{"tls.test"},
		Mailboxes: map[string]string{"md@tls.test": "tls.test/md/"},
		Extra:     fmt.Sprintf("tls_cert_file = %q\ntls_key_file = %q\ntls_security_level = \"encrypt\"\n", cert, key),
	})
	// Without STARTTLS a transaction is refused on TCP.
	nc, err := net.Dial("tcp", v.Addr)
	if err != nil {
		t.Fatal(err)
	}
	raw := newRaw(t, nc)
	raw.Send("LHLO client.test\r\nMAIL FROM:<s@remote.test>\r\n")
	raw.Expect("250")
	raw.Expect("530 5.7.0 ")
	raw.Close()

	pf := startPostfix(t, map[string]string{
		"virtual_mailbox_domains": "tls.test",
		"virtual_mailbox_maps":    "texthash:" + filepath.Join(v.Dir, "vmailbox"),
		"virtual_transport":       "lmtp:inet:" + v.Addr,
		"lmtp_tls_security_level": "encrypt",
		"lmtp_tls_loglevel":       "1",
	}, false)
	c, err := smtp.Dial(pf.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("sender@client.test", []string{"md@tls.test"}, strings.NewReader("Subject: tls\r\n\r\nover TLS\r\n")); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 60*time.Second, "an lmtp outcome in Postfix's log", func() bool {
		ds, _ := pf.deliveries()
		return len(ds) >= 1
	})
	ds, _ := pf.deliveries()
	if d := ds[0]; d.Status != "sent" {
		t.Fatalf("Postfix logged %s %s: %s", d.Status, d.DSN, d.Reply)
	}
	if log := readLogFile(pf.Log); !strings.Contains(log, "TLS connection established to") {
		t.Errorf("Postfix's log shows no TLS connection:\n%s", tailLines(log, 20))
	}
	files := maildirFiles(t, v.mailbox("tls.test/md"))
	if len(files) != 1 || !strings.HasSuffix(readFile(t, files[0]), "\nover TLS\n") {
		t.Fatalf("mailbox holds %d messages", len(files))
	}
	if !strings.Contains(v.Logs(), `tls="TLS 1.`) {
		t.Errorf("vlmtpd's log does not record the TLS session")
	}
}
