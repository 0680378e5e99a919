// Runs in: the front.

package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vlmtpd/vlmtpd/server/config"
)

// Listen opens every listener of the configuration. It runs before
// privileges are dropped, so the sockets may live in root-owned places.
func Listen(cfg *config.Config) ([]net.Listener, error) {
	var ls []net.Listener
	for _, addr := range cfg.Listen {
		l, err := listen(cfg, addr)
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// ListenMetrics opens metrics_listen, or returns nil when it is off. As
// root it runs in the parent with Listen, so a unix socket may live in a
// root-owned directory; it gets socket_mode and socket_group like the
// LMTP sockets.
func ListenMetrics(cfg *config.Config) (net.Listener, error) {
	if cfg.MetricsListen == "" {
		return nil, nil
	}
	l, err := listen(cfg, cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen %s: %w", cfg.MetricsListen, err)
	}
	return l, nil
}

func listen(cfg *config.Config, addr string) (net.Listener, error) {
	if hostport, ok := strings.CutPrefix(addr, "inet:"); ok {
		return net.Listen("tcp", hostport)
	}
	path := strings.TrimPrefix(addr, "unix:")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, cfg.SocketMode); err != nil {
		l.Close()
		return nil, err
	}
	if cfg.SocketGroup != "" {
		gid, err := lookupGroup(cfg.SocketGroup)
		if err == nil {
			err = os.Lchown(path, -1, gid)
		}
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("socket_group %s: %w", cfg.SocketGroup, err)
		}
	}
	return l, nil
}

// removeStaleSocket removes a socket left by a previous run, but never a
// file that is not a socket and never one that a live server answers on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; not removing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s: another server is listening on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: cannot tell whether it is in use: %w", path, err)
	}
	return os.Remove(path)
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}
