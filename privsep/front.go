// Runs in: the front.

package privsep

import (
	"context"
	"errors"
	"flag"
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

// Front is what a front process inherited from its parent.
type Front struct {
	// Control asks the parent for workers.
	Control *Client
	// Listeners are the parent's listeners, in configuration order.
	Listeners []net.Listener
	// Metrics is metrics_listen's listener, nil when it is off.
	Metrics net.Listener
}

// The flags of the hidden front command that name the descriptors the
// parent passes on.
const (
	flagControl   = "control-fd"
	flagListeners = "listener-fds"
	flagMetrics   = "metrics-fd"
)

// InheritArgs are the front command's flags for the descriptors the parent
// passes: the control socket, the listeners in configuration order and
// metrics_listen's listener (-1 when there is none).
func InheritArgs(control int, listeners []int, metrics int) []string {
	s := make([]string, len(listeners))
	for i, fd := range listeners {
		s[i] = strconv.Itoa(fd)
	}
	args := []string{"-" + flagControl + "=" + strconv.Itoa(control), "-" + flagListeners + "=" + strings.Join(s, ",")}
	if metrics >= 0 {
		args = append(args, "-"+flagMetrics+"="+strconv.Itoa(metrics))
	}
	return args
}

// InheritFlags registers InheritArgs' flags on the front command's flag
// set. The function it returns, called once the flags are parsed, takes
// the descriptors over. A front that is root is refused: the parent never
// starts one.
func InheritFlags(fs *flag.FlagSet) func() (*Front, error) {
	fl := inheritFlags(fs)
	return func() (*Front, error) {
		if os.Geteuid() == 0 || os.Getuid() == 0 {
			return nil, errors.New("started as a front but running as root")
		}
		lfds, err := fl.check()
		if err != nil {
			return nil, err
		}
		return inherit(*fl.control, lfds, *fl.metrics)
	}
}

type fdFlags struct {
	control, metrics *int
	listeners        *string
}

func inheritFlags(fs *flag.FlagSet) fdFlags {
	return fdFlags{
		control:   fs.Int(flagControl, -1, "the control socket the parent passed (set by the parent)"),
		listeners: fs.String(flagListeners, "", "the listeners the parent passed, comma-separated (set by the parent)"),
		metrics:   fs.Int(flagMetrics, -1, "metrics_listen's listener, if the parent passed one (set by the parent)"),
	}
}

// check validates the descriptor flags (stdio is never one of them) and
// returns the listeners'.
func (fl fdFlags) check() ([]int, error) {
	ctl, listeners, metrics := *fl.control, *fl.listeners, *fl.metrics
	if ctl < 3 {
		return nil, fmt.Errorf("-%s: no control descriptor (the front is started by vlmtpd serve, not by hand)", flagControl)
	}
	if metrics != -1 && metrics < 3 {
		return nil, fmt.Errorf("-%s=%d: not an inherited descriptor", flagMetrics, metrics)
	}
	var lfds []int
	for _, s := range strings.Split(listeners, ",") {
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 3 {
			return nil, fmt.Errorf("-%s=%s: %q is not an inherited descriptor", flagListeners, listeners, s)
		}
		lfds = append(lfds, n)
	}
	return lfds, nil
}

func inherit(ctl int, lfds []int, mfd int) (*Front, error) {
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
	return &Client{f: f, fd: int(f.Fd()), buf: make([]byte, MaxPacket+1), oob: make([]byte, unix.CmsgSpace(4*4))}
}

// Close closes the control socket; the parent then exits once the front
// does.
func (c *Client) Close() error { return c.f.Close() }

var _ worker.Spawner = (*Client)(nil)

// call sends a request and waits for its reply; a stale reply (to a
// request that timed out earlier) is dropped with its descriptor.
func (c *Client) call(ctx context.Context, req Request) (Reply, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	req.Seq = c.seq
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	if err := SendPacket(c.fd, req.Encode(), nil); err != nil {
		return Reply{}, -1, fmt.Errorf("control socket: %w", err)
	}
	for {
		d := time.Until(deadline)
		if d <= 0 {
			return Reply{}, -1, errors.New("control socket: no reply from the parent in time")
		}
		tv := unix.NsecToTimeval(d.Nanoseconds())
		unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, oobn, flags, _, err := unix.Recvmsg(c.fd, c.buf, c.oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return Reply{}, -1, fmt.Errorf("control socket: %w", err)
		}
		if n == 0 && oobn == 0 {
			return Reply{}, -1, errors.New("control socket: the parent is gone")
		}
		fds := scmrights.Parse(c.oob[:oobn])
		rep, err := DecodeReply(c.buf[:n])
		if err == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			err = fmt.Errorf("%w: truncated reply", ErrProtocol)
		}
		if err == nil && len(fds) > 1 {
			err = fmt.Errorf("%w: %d descriptors in a reply", ErrProtocol, len(fds))
		}
		if err != nil || rep.Seq != req.Seq {
			scmrights.Close(fds)
			if err != nil {
				return Reply{}, -1, err
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
	rep, fd, err := c.call(ctx, Request{Op: OpSpawn, UID: uid, GID: gid})
	if err != nil {
		return nil, err
	}
	switch rep.Code {
	case CodeRefused:
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, &store.Error{Status: store.NotPermitted, Op: "spawn", Err: fmt.Errorf("parent refused uid %d gid %d: %s", uid, gid, rep.Msg)}
	case CodeFailed:
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("parent could not start a worker for %d:%d: %s", uid, gid, rep.Msg)
	}
	if fd < 0 {
		return nil, fmt.Errorf("%w: spawn reply without a socket", ErrProtocol)
	}
	id := rep.ID
	signal := func(op byte) func() error {
		return func() error {
			rep, fd, err := c.call(context.Background(), Request{Op: op, ID: id})
			if fd >= 0 {
				unix.Close(fd)
			}
			if err == nil && rep.Code != CodeOK {
				err = errors.New(rep.Msg)
			}
			return err
		}
	}
	return &worker.Process{Conn: os.NewFile(uintptr(fd), "worker"), PID: rep.PID, Kill: signal(OpKill), Stop: signal(OpStop)}, nil
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
