// Runs in: the front (and the lookup, check-config and makemap commands).

package testserver

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// SlapdConfig describes the directory Slapd serves.
type SlapdConfig struct {
	Suffix string // e.g. "dc=example,dc=com"
	RootDN string // e.g. "cn=admin,dc=example,dc=com"
	RootPW string
	LDIF   string // loaded with slapadd before the server starts
}

// Slapd writes a slapd.conf (mdb backend, core/cosine/inetorgperson/nis
// schemas, anonymous read access), loads the LDIF and starts slapd on
// ldap://127.0.0.1:Port (StartTLS too), ldaps://127.0.0.1:TLSPort and
// ldapi:// on Socket, with the certificates in Certs.
func Slapd(c SlapdConfig) (*Server, error) {
	slapd, err := find("slapd", "/usr/sbin/slapd")
	if err != nil {
		return nil, err
	}
	slapadd, err := find("slapd", "/usr/sbin/slapadd")
	if err != nil {
		return nil, err
	}
	schema, err := find("slapd", "/etc/ldap/schema")
	if err != nil {
		return nil, err
	}
	dir, err := newDir("vlmtpd-slapd-")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, Socket: filepath.Join(dir, "ldapi"), Port: port, name: "slapd",
		stopSig: syscall.SIGTERM, logPath: filepath.Join(dir, "server.log")}
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		return nil, err
	}
	if s.Certs, err = writeCerts(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var conf strings.Builder
	for _, sc := range []string{"core", "cosine", "inetorgperson", "nis"} {
		fmt.Fprintf(&conf, "include %s/%s.schema\n", schema, sc)
	}
	fmt.Fprintf(&conf, "pidfile %s/slapd.pid\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n", dir)
	fmt.Fprintf(&conf, "TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n",
		s.Certs.CA, s.Certs.ServerCert, s.Certs.ServerKey)
	fmt.Fprintf(&conf, "database mdb\nmaxsize 10485760\nsuffix %q\nrootdn %q\nrootpw %q\ndirectory %s\n",
		c.Suffix, c.RootDN, c.RootPW, db)
	conf.WriteString("index objectClass,mail,uid eq\naccess to attrs=userPassword by anonymous auth by * none\naccess to * by * read\n")
	cf := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(cf, []byte(conf.String()), 0o600); err != nil {
		return nil, err
	}
	lf := filepath.Join(dir, "data.ldif")
	if err := os.WriteFile(lf, []byte(c.LDIF), 0o600); err != nil {
		return nil, err
	}
	if err := run(dir, nil, slapadd, "-f", cf, "-l", lf); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.TLSPort, err = FreePort()
	if err != nil {
		return nil, err
	}
	urls := "ldap://127.0.0.1:" + strconv.Itoa(port) + "/ ldaps://127.0.0.1:" + strconv.Itoa(s.TLSPort) +
		"/ ldapi://" + strings.ReplaceAll(url.PathEscape(s.Socket), "/", "%2F") + "/"
	s.argv = []string{slapd, "-f", cf, "-h", urls, "-d", "0"}
	s.ready = dialReady("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err := s.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}
