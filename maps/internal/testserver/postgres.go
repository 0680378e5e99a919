// Runs in: the front (and the lookup, check-config and makemap commands).

package testserver

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Postgres initialises a cluster and starts postgres on a unix socket
// (in Dir/sock) and a loopback port. The superuser is "postgres", trusted
// on the socket; TCP connections need a password (scram-sha-256). As root
// both run as "nobody", since PostgreSQL refuses to run as root.
func Postgres() (*Server, error) {
	initdb, err := find("postgresql", "/usr/lib/postgresql/*/bin/initdb")
	if err != nil {
		return nil, err
	}
	bin := filepath.Dir(initdb)
	dir, err := newDir("vlmtpd-pgsql-")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	s := &Server{Dir: dir, Socket: filepath.Join(sock, ".s.PGSQL."+strconv.Itoa(port)), Port: port, name: "postgres",
		stopSig: syscall.SIGINT, logPath: filepath.Join(dir, "server.log")}
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return nil, err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{dir, data, sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	if err := run(dir, s.cred, initdb, "-D", data, "-U", "postgres", "--auth-local=trust",
		"--auth-host=scram-sha-256", "--no-locale", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.argv = []string{filepath.Join(bin, "postgres"), "-D", data, "-k", sock, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "shared_buffers=16MB"}
	socketUp := dialReady("unix", s.Socket)
	s.ready = func() error {
		// postgres marks postmaster.pid "ready" once it accepts sessions;
		// the socket exists earlier, while it still answers "starting up".
		b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "ready") {
			return errors.New("not ready yet")
		}
		return socketUp()
	}
	if err := s.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}
