// Runs in: the front (and the lookup, check-config and makemap commands).

package testserver

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// MariaDB initialises a data directory and starts mariadbd on a unix
// socket and a loopback port, with TLS (Certs). root@localhost has no password; the caller
// creates its own users.
func MariaDB() (*Server, error) {
	install, err := find("mariadb-server", "/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db")
	if err != nil {
		return nil, err
	}
	mariadbd, err := find("mariadb-server", "/usr/sbin/mariadbd", "/usr/sbin/mysqld")
	if err != nil {
		return nil, err
	}
	dir, err := newDir("vlmtpd-mariadb-")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	s := &Server{Dir: dir, Socket: filepath.Join(dir, "mysqld.sock"), Port: port, name: "mariadbd",
		stopSig: syscall.SIGTERM, logPath: filepath.Join(dir, "server.log")}
	user := []string{}
	if os.Geteuid() == 0 {
		user = []string{"--user=root"} // mariadbd refuses root unless told
	}
	if err := run(dir, nil, append([]string{install, "--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"}, user...)...); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if s.Certs, err = writeCerts(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.argv = append([]string{mariadbd, "--no-defaults", "--datadir=" + data, "--socket=" + s.Socket,
		"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--skip-log-bin",
		"--skip-name-resolve", "--innodb-buffer-pool-size=16M", "--innodb-flush-log-at-trx-commit=0",
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--log-error=" + s.logPath,
		"--ssl-ca=" + s.Certs.CA, "--ssl-cert=" + s.Certs.ServerCert, "--ssl-key=" + s.Certs.ServerKey}, user...)
	s.ready = dialReady("unix", s.Socket)
	if err := s.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}
