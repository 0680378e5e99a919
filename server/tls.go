// Runs in: the front.

package server

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/vlmtpd/vlmtpd/server/config"
)

// tlsConfig is the STARTTLS configuration, nil when TLS is off. The
// certificate is re-read when its file changes, so a renewed certificate
// is used without a restart.
func tlsConfig(cfg *config.Config) (*tls.Config, error) {
	if cfg.TLSSecurityLevel == "none" {
		return nil, nil
	}
	kp := &keyPair{cert: cfg.TLSCertFile, key: cfg.TLSKeyFile}
	if _, err := kp.get(); err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get() },
	}
	if fps := cfg.TLSClientFingerprints; len(fps) > 0 {
		// Postfix's model: no CA, the client's certificate is known by
		// its fingerprint.
		tc.ClientAuth = tls.RequireAnyClientCert
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no client certificate")
			}
			sum := sha256.Sum256(raw[0])
			if !slices.Contains(fps, hex.EncodeToString(sum[:])) {
				return fmt.Errorf("client certificate %x is not in tls_client_fingerprints", sum)
			}
			return nil
		}
	}
	return tc, nil
}

// keyPair caches a certificate and its key, reloading them when either
// file's modification time changes.
type keyPair struct {
	cert, key string

	mu      sync.Mutex
	mtimes  [2]time.Time
	current *tls.Certificate
}

func (k *keyPair) get() (*tls.Certificate, error) {
	var mt [2]time.Time
	for i, p := range []string{k.cert, k.key} {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		mt[i] = fi.ModTime()
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.current != nil && mt == k.mtimes {
		return k.current, nil
	}
	c, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		if k.current != nil {
			// A half-replaced pair: keep serving the old one.
			return k.current, nil
		}
		return nil, fmt.Errorf("TLS: tls_cert_file %s / tls_key_file %s: %w", k.cert, k.key, err)
	}
	k.current, k.mtimes = &c, mt
	return k.current, nil
}
