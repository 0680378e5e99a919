// Runs in: the front (and the lookup, check-config and makemap commands).

package pfconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// TLSParams are a table's TLS settings, whatever the table calls them.
type TLSParams struct {
	CAFile, CADir string // trusted CAs, PEM (a directory: every PEM file in it)
	Cert, Key     string // client certificate and key, PEM
	// Verify checks the server's certificate fully: chain and name. Without
	// it a configured CA still has to sign the server's chain (the name is
	// not checked); with no CA at all nothing is checked, which is what
	// Postfix does by default.
	Verify bool
}

// Config builds the tls.Config for a server called serverName.
func (p TLSParams) Config(serverName string) (*tls.Config, error) {
	tc := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	var roots *x509.CertPool
	addPEM := func(path string) (bool, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return false, err
		}
		if roots == nil {
			roots = x509.NewCertPool()
		}
		return roots.AppendCertsFromPEM(b), nil
	}
	if p.CAFile != "" {
		ok, err := addPEM(p.CAFile)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%s: no PEM certificate in it", p.CAFile)
		}
	}
	if p.CADir != "" {
		ents, err := os.ReadDir(p.CADir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.IsDir() {
				_, _ = addPEM(filepath.Join(p.CADir, e.Name())) // c_rehash links and other files may not be PEM
			}
		}
	}
	tc.RootCAs = roots
	if p.Cert != "" || p.Key != "" {
		kp, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	if p.Verify {
		return tc, nil
	}
	tc.InsecureSkipVerify = true // replaced by the chain-only check below, or none
	if roots != nil {
		tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(raw, roots)
		}
	}
	return tc, nil
}

func verifyChain(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return errors.New("tls: server sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return err
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
	return err
}
