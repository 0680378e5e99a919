// Runs in: the parent (root).

package parent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/scmrights"
	"github.com/vlmtpd/vlmtpd/privsep"
	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/worker"
)

// Parent starts workers for the front. Only the policy and the worker
// template decide what a worker may do; the front chooses only the ids,
// and those are checked here.
type Parent struct {
	Policy store.IDPolicy
	// Worker is the template for every worker (base, writer options); UID
	// and GID come from the request.
	Worker worker.Config
	// Exe is the binary workers run; default worker.SelfExe.
	Exe string
	// Stderr is the workers' stderr; default os.Stderr.
	Stderr *os.File
	Log    *slog.Logger

	mu      sync.Mutex
	workers map[uint64]*os.Process
	nextID  uint64
	reapers sync.WaitGroup
}

func (p *Parent) log() *slog.Logger {
	if p.Log == nil {
		return slog.Default()
	}
	return p.Log
}

// ServeControl answers requests on the control socket (a SOCK_SEQPACKET
// descriptor it takes over) until the front closes it.
func (p *Parent) ServeControl(ctl *os.File) error {
	defer ctl.Close()
	fd := int(ctl.Fd())
	buf := make([]byte, privsep.MaxPacket)
	oob := make([]byte, unix.CmsgSpace(4*8))
	for {
		n, oobn, flags, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
		if n == 0 && oobn == 0 {
			// Both the end of the stream and an empty packet (legal on
			// SOCK_SEQPACKET) read as 0 bytes.
			closed, err := peerClosed(fd)
			if err != nil {
				return fmt.Errorf("control socket: %w", err)
			}
			if closed {
				return nil // the front closed its end
			}
			p.log().Error("refusing a malformed control request", "err", "empty packet")
			continue
		}
		if oobn > 0 {
			// The front never sends descriptors; drop any it does.
			scmrights.Close(scmrights.Parse(oob[:oobn]))
		}
		req, err := privsep.DecodeRequest(buf[:n])
		if err == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			err = fmt.Errorf("%w: truncated request", privsep.ErrProtocol)
		}
		if err != nil {
			// A front that sends garbage is broken or compromised; keep
			// serving, answer nothing it could use.
			p.log().Error("refusing a malformed control request", "err", err)
			continue
		}
		rep, wfd := p.handle(req)
		var rights []byte
		if wfd != nil {
			rights = unix.UnixRights(int(wfd.Fd()))
		}
		err = privsep.SendPacket(fd, rep.Encode(), rights)
		if wfd != nil {
			wfd.Close()
		}
		if err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
	}
}

// peerClosed reports whether the front can send nothing more: its end is
// closed or shut for writing (poll: RDHUP or HUP) and no data is queued.
// Empty packets still queued then are as meaningless as ever.
func peerClosed(fd int) (bool, error) {
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		_, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, err
		}
		if fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP) == 0 {
			return false, nil
		}
		queued, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
		if err != nil {
			return false, err
		}
		return queued == 0, nil
	}
}

// handle runs one request; a spawn that succeeds returns the front's end
// of the worker's socket.
func (p *Parent) handle(req privsep.Request) (privsep.Reply, *os.File) {
	rep := privsep.Reply{Seq: req.Seq}
	switch req.Op {
	case privsep.OpSpawn:
		if err := p.Policy.Check(req.UID, req.GID); err != nil {
			p.log().Warn("refused to start a worker", "uid", req.UID, "gid", req.GID, "reason", err)
			rep.Code, rep.Msg = privsep.CodeRefused, err.Error()
			return rep, nil
		}
		id, pid, f, err := p.spawn(req.UID, req.GID)
		if err != nil {
			p.log().Error("cannot start a worker", "uid", req.UID, "gid", req.GID, "err", err)
			rep.Code, rep.Msg = privsep.CodeFailed, err.Error()
			return rep, nil
		}
		rep.ID, rep.PID = id, pid
		return rep, f
	case privsep.OpKill, privsep.OpStop:
		p.mu.Lock()
		proc := p.workers[req.ID]
		p.mu.Unlock()
		if proc == nil {
			// Already gone, or never ours: either way nothing to signal.
			return rep, nil
		}
		sig := syscall.SIGKILL
		if req.Op == privsep.OpStop {
			sig = syscall.SIGTERM
		}
		// os.Process signals through a pidfd, so a recycled pid is never hit.
		if err := proc.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			rep.Code, rep.Msg = privsep.CodeFailed, err.Error()
		}
		return rep, nil
	}
	rep.Code, rep.Msg = privsep.CodeFailed, "unknown request"
	return rep, nil
}

func (p *Parent) spawn(uid, gid int) (uint64, int, *os.File, error) {
	cfg := p.Worker
	cfg.UID, cfg.GID, cfg.KeepGroups = uid, gid, false
	exe := p.Exe
	if exe == "" {
		exe = worker.SelfExe
	}
	proc, f, err := worker.Start(exe, cfg, p.Stderr)
	if err != nil {
		return 0, 0, nil, err
	}
	p.mu.Lock()
	if p.workers == nil {
		p.workers = map[uint64]*os.Process{}
	}
	p.nextID++
	id := p.nextID
	p.workers[id] = proc
	p.mu.Unlock()
	p.reapers.Add(1)
	go func() {
		defer p.reapers.Done()
		st, err := proc.Wait()
		p.mu.Lock()
		delete(p.workers, id)
		p.mu.Unlock()
		if err == nil && !st.Success() {
			p.log().Warn("worker exited", "worker_pid", proc.Pid, "uid", uid, "gid", gid, "status", st.String())
		}
	}()
	p.log().Debug("started a worker", "worker_pid", proc.Pid, "uid", uid, "gid", gid)
	return id, proc.Pid, f, nil
}

// Wait waits up to grace for the workers to exit (they do when the front's
// end of their socket closes), then kills the rest.
func (p *Parent) Wait(grace time.Duration) {
	done := make(chan struct{})
	go func() { p.reapers.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	p.mu.Lock()
	for _, proc := range p.workers {
		proc.Signal(syscall.SIGKILL)
	}
	p.mu.Unlock()
	<-done
}
