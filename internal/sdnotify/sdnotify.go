// Runs in: the parent (socket activation) and the front (notifications).

// Package sdnotify speaks the two systemd protocols a service needs:
// sd_notify(3) state messages and socket activation (sd_listen_fds(3)).
//
// A few lines of our own rather than go-systemd: in vlmtpd the process
// that knows when the service is ready, busy or stopping is the front, a
// child of the main process (the unit says NotifyAccess=all), and
// go-systemd's watchdog helper refuses to run anywhere but in the process
// WATCHDOG_PID names.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Notify sends state ("READY=1", "STATUS=…", "STOPPING=1", …) to the
// service manager. Without NOTIFY_SOCKET it does nothing.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// WatchdogInterval is how often the service manager expects WATCHDOG=1
// (half of WatchdogSec), 0 when no watchdog is set.
func WatchdogInterval() time.Duration {
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	return time.Duration(us) * time.Microsecond / 2
}

// listenFDsStart is the first descriptor socket activation passes.
const listenFDsStart = 3

// Listeners returns the sockets systemd passed to this process (LISTEN_PID
// is ours), named from LISTEN_FDNAMES, and unsets the variables so no
// child takes them for its own. None passed: nil, nil.
func Listeners() ([]net.Listener, []string, error) {
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil, nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil, nil, errors.New("socket activation: LISTEN_FDS is not a positive number")
	}
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(v)
	}
	var ls []net.Listener
	var out []string
	for i := range n {
		fd := listenFDsStart + i
		syscall.CloseOnExec(fd)
		name := "fd" + strconv.Itoa(fd)
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		f := os.NewFile(uintptr(fd), name)
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			for _, o := range ls {
				o.Close()
			}
			return nil, nil, fmt.Errorf("socket activation: descriptor %d (%s) is not a listening socket: %w", fd, name, err)
		}
		ls = append(ls, l)
		out = append(out, name)
	}
	return ls, out, nil
}
