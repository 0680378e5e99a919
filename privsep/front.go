package privsep

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/scmrights"
	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/worker"
)

// envFront tells a front process which descriptors it inherited from the
// parent: "control=3 listeners=4,5 metrics=6" (metrics only when
// metrics_listen is set).
const envFront = "VLMTPD_PRIVSEP"

// Front is what a front process inherited from its parent.
type Front struct {
	// Control asks the parent for workers.
	Control *Client
	// Listeners are the parent's listeners, in configuration order.
	Listeners []net.Listener
	// Metrics is metrics_listen's listener, nil when it is off.
	Metrics net.Listener
}

// FrontFromEnv returns the inheritance of a front started by the parent,
// or nil if this process was not started as one. A front that is root is
// refused: the parent never starts one.
func FrontFromEnv() (*Front, error) {
	v, ok := os.LookupEnv(envFront)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(envFront)
	if os.Geteuid() == 0 || os.Getuid() == 0 {
		return nil, errors.New("started as a front but running as root")
	}
	ctl, lfds, mfd, err := parseFrontEnv(v)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", envFront, v, err)
	}
	// Nothing the front might exec inherits these.
	unix.CloseOnExec(ctl)
	fr := &Front{Control: NewClient(os.NewFile(uintptr(ctl), "control"))}
	for _, fd := range lfds {
		f := os.NewFile(uintptr(fd), "listener-"+strconv.Itoa(fd))
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("inherited listener fd %d: %w", fd, err)
		}
		fr.Listeners = append(fr.Listeners, l)
	}
	if mfd >= 0 {
		f := os.NewFile(uintptr(mfd), "metrics-listener")
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("inherited metrics listener fd %d: %w", mfd, err)
		}
		fr.Metrics = l
	}
	return fr, nil
}

// frontEnv is envFront's setting; metrics is -1 when there is none.
func frontEnv(ctl int, listeners []int, metrics int) string {
	s := make([]string, len(listeners))
	for i, fd := range listeners {
		s[i] = strconv.Itoa(fd)
	}
	v := fmt.Sprintf("%s=control=%d listeners=%s", envFront, ctl, strings.Join(s, ","))
	if metrics >= 0 {
		v += " metrics=" + strconv.Itoa(metrics)
	}
	return v
}

func parseFrontEnv(v string) (ctl int, ls []int, metrics int, err error) {
	ctl, metrics = -1, -1
	for _, field := range strings.Fields(v) {
		k, val, _ := strings.Cut(field, "=")
		switch k {
		case "control":
			n, err := strconv.Atoi(val)
			if err != nil || n < 3 {
				return 0, nil, 0, errors.New("bad control descriptor")
			}
			ctl = n
		case "listeners":
			for _, s := range strings.Split(val, ",") {
				if s == "" {
					continue
				}
				n, err := strconv.Atoi(s)
				if err != nil || n < 3 {
					return 0, nil, 0, errors.New("bad listener descriptor")
				}
				ls = append(ls, n)
			}
		case "metrics":
			n, err := strconv.Atoi(val)
			if err != nil || n < 3 {
				return 0, nil, 0, errors.New("bad metrics descriptor")
			}
			metrics = n
		default:
			return 0, nil, 0, fmt.Errorf("unknown field %q", k)
		}
	}
	if ctl < 0 {
		return 0, nil, 0, errors.New("no control descriptor")
	}
	return ctl, ls, metrics, nil
}

// Client is the front's side of the control socket; it implements
// worker.Spawner. Requests are serialised: starting a worker is rare.
type Client struct {
	mu  sync.Mutex
	f   *os.File
	fd  int
	seq uint32
	buf []byte
	oob []byte
}

// NewClient takes over a control socket.
func NewClient(f *os.File) *Client {
	return &Client{f: f, fd: int(f.Fd()), buf: make([]byte, maxPacket+1), oob: make([]byte, unix.CmsgSpace(4*4))}
}

// Close closes the control socket; the parent then exits once the front
// does.
func (c *Client) Close() error { return c.f.Close() }

var _ worker.Spawner = (*Client)(nil)

// call sends a request and waits for its reply; a stale reply (to a
// request that timed out earlier) is dropped with its descriptor.
func (c *Client) call(ctx context.Context, req request) (reply, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	req.Seq = c.seq
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	if err := sendPacket(c.fd, req.encode(), nil); err != nil {
		return reply{}, -1, fmt.Errorf("control socket: %w", err)
	}
	for {
		d := time.Until(deadline)
		if d <= 0 {
			return reply{}, -1, errors.New("control socket: no reply from the parent in time")
		}
		tv := unix.NsecToTimeval(d.Nanoseconds())
		unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, oobn, flags, _, err := unix.Recvmsg(c.fd, c.buf, c.oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return reply{}, -1, fmt.Errorf("control socket: %w", err)
		}
		if n == 0 && oobn == 0 {
			return reply{}, -1, errors.New("control socket: the parent is gone")
		}
		fds := scmrights.Parse(c.oob[:oobn])
		rep, err := decodeReply(c.buf[:n])
		if err == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			err = fmt.Errorf("%w: truncated reply", errControl)
		}
		if err == nil && len(fds) > 1 {
			err = fmt.Errorf("%w: %d descriptors in a reply", errControl, len(fds))
		}
		if err != nil || rep.Seq != req.Seq {
			scmrights.Close(fds)
			if err != nil {
				return reply{}, -1, err
			}
			continue
		}
		fd := -1
		if len(fds) == 1 {
			fd = fds[0]
		}
		return rep, fd, nil
	}
}

// Permits implements worker.Spawner with what the front can tell without
// the parent: uid 0 and gid 0 are never allowed (virtual_minimum_uid is
// checked when the recipient is resolved, and the parent checks both again).
func (c *Client) Permits(uid, gid int) error {
	// The parent applies virtual_minimum_uid; the front's resolver has
	// already refused what is below it.
	if err := (store.IDPolicy{}).Check(uid, gid); err != nil {
		return &store.Error{Status: store.NotPermitted, Op: "spawn", Err: err}
	}
	return nil
}

// Spawn asks the parent for a worker; implements worker.Spawner.
func (c *Client) Spawn(ctx context.Context, uid, gid int) (*worker.Process, error) {
	rep, fd, err := c.call(ctx, request{Op: opSpawn, UID: uid, GID: gid})
	if err != nil {
		return nil, err
	}
	switch rep.Code {
	case codeRefused:
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, &store.Error{Status: store.NotPermitted, Op: "spawn", Err: fmt.Errorf("parent refused uid %d gid %d: %s", uid, gid, rep.Msg)}
	case codeFailed:
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("parent could not start a worker for %d:%d: %s", uid, gid, rep.Msg)
	}
	if fd < 0 {
		return nil, fmt.Errorf("%w: spawn reply without a socket", errControl)
	}
	id := rep.ID
	signal := func(op byte) func() error {
		return func() error {
			rep, fd, err := c.call(context.Background(), request{Op: op, ID: id})
			if fd >= 0 {
				unix.Close(fd)
			}
			if err == nil && rep.Code != codeOK {
				err = errors.New(rep.Msg)
			}
			return err
		}
	}
	return &worker.Process{Conn: os.NewFile(uintptr(fd), "worker"), PID: rep.PID, Kill: signal(opKill), Stop: signal(opStop)}, nil
}

// WatchParent blocks until the parent's end of the control socket closes —
// the parent died — and then calls gone. A front without its parent can
// start no worker, so it should stop rather than answer 4xx forever. It
// returns without calling gone once Close was called.
func (c *Client) WatchParent(gone func()) {
	for {
		fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLRDHUP}}
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || fds[0].Revents&unix.POLLNVAL != 0 {
			return
		}
		if fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
			gone()
			return
		}
	}
}
