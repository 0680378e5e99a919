// Runs in: a worker.

package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
	"github.com/vlmtpd/vlmtpd/internal/scmrights"
	"github.com/vlmtpd/vlmtpd/store"
)

// workerArg is the hidden subcommand that runs a worker; argv[1] of every
// worker process.
const workerArg = "worker"

// socketFD is where a worker finds its end of the socketpair.
const socketFD = 3

// Main runs a worker process: args are the command line after "worker".
// It returns the exit code. The worker verifies its own credentials before
// anything else and refuses to run if they are not exactly what Config
// asks for.
func Main(args []string) int {
	// The first stage drops what it can, confines itself and re-executes
	// with -dropped=<sandbox>; the second checks and serves.
	confined, sandbox := false, ""
	if len(args) > 0 && strings.HasPrefix(args[0], "-dropped=") {
		confined, sandbox, args = true, strings.TrimPrefix(args[0], "-dropped="), args[1:]
	}
	cfg, err := ParseArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vlmtpd worker: %v\n", err)
		return 2
	}
	refuse := func(err error) int {
		fmt.Fprintf(os.Stderr, "vlmtpd worker uid %d gid %d: refusing to run: %v\n", cfg.UID, cfg.GID, err)
		return 1
	}
	if len(os.Environ()) != 0 {
		return refuse(errors.New("environment is not empty"))
	}
	if !confined {
		return refuse(reexecConfined(cfg.Base, args))
	}
	creds, err := proctree.ReadCreds(0)
	if err != nil {
		return refuse(err)
	}
	if err := checkCreds(creds, cfg); err != nil {
		return refuse(err)
	}
	if err := checkDescriptors(); err != nil {
		return refuse(err)
	}

	log := cfg.logger().With("worker_pid", os.Getpid(), "uid", cfg.UID, "gid", cfg.GID)
	log.Debug("worker ready", "sandbox", sandbox)
	c := newConn(os.NewFile(socketFD, "front"))
	defer c.Close()
	// Nothing the worker might run inherits the front's socket.
	unix.CloseOnExec(socketFD)

	opts := cfg.Writer
	opts.Logger = log
	local, err := store.NewWriter(cfg.Base, opts)
	if err != nil {
		log.Error("cannot open the mailbox base", "base", cfg.Base, "err", err)
		return 1
	}
	defer local.Close()

	h := hello{Version: ProtocolVersion, Build: BuildID(), PID: os.Getpid(), UID: cfg.UID, GID: cfg.GID}
	if err := c.writeFrame(frameHello, h.encode(), -1); err != nil {
		log.Error("hello", "err", err)
		return 1
	}

	// SIGTERM cancels the delivery in progress so the writer can roll
	// back; EOF from the front is the normal way to stop.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// An idle worker sits in a blocking read that no signal interrupts:
	// shutting the socket's read side down ends it, and a request in
	// progress can still send its answer.
	go func() {
		<-ctx.Done()
		unix.Shutdown(c.fd, unix.SHUT_RD)
	}()
	w := &server{cfg: cfg, c: c, d: local}
	if err := w.serve(ctx); err != nil {
		log.Error("worker stopped", "err", err)
		return 1
	}
	return 0
}

// BuildID identifies the binary: module version and VCS revision.
func BuildID() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	id := bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			id += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				id += "+dirty"
			}
		}
	}
	return id
}

// server answers the front's requests inside a worker.
type server struct {
	cfg Config
	c   *conn
	d   store.Deliverer
}

func (s *server) serve(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		typ, payload, fds, err := s.c.readFrame()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var reply []byte
		var rtyp byte
		switch typ {
		case frameDeliver:
			if len(fds) != 1 {
				scmrights.Close(fds)
				return protoErr("delivery request with %d descriptors", len(fds))
			}
			req, err := decodeDeliverRequest(payload)
			if err != nil {
				unix.Close(fds[0])
				return err
			}
			rtyp, reply = frameDeliverReply, s.deliver(ctx, req, fds[0]).encode()
		case frameSize:
			scmrights.Close(fds)
			if len(fds) != 0 {
				return protoErr("size request with descriptors")
			}
			req, err := decodeSizeRequest(payload)
			if err != nil {
				return err
			}
			rtyp, reply = frameSizeReply, s.size(ctx, req).encode()
		case frameQuota:
			scmrights.Close(fds)
			if len(fds) != 0 {
				return protoErr("quota request with descriptors")
			}
			req, err := decodeQuotaRequest(payload)
			if err != nil {
				return err
			}
			rtyp, reply = frameQuotaReply, s.quota(ctx, req).encode()
		default:
			scmrights.Close(fds)
			return protoErr("unexpected frame type %d", typ)
		}
		if err := s.c.writeFrame(rtyp, reply, -1); err != nil {
			return err
		}
	}
}

// permitted refuses a recipient this worker must not write for.
func (s *server) permitted(r store.Recipient) error {
	if r.UID != s.cfg.UID || r.GID != s.cfg.GID {
		return &store.Error{Status: store.NotPermitted, Op: "deliver", Path: r.Path,
			Err: fmt.Errorf("worker for %d:%d asked to deliver as %d:%d", s.cfg.UID, s.cfg.GID, r.UID, r.GID)}
	}
	return nil
}

func (s *server) deliver(ctx context.Context, req *deliverRequest, fd int) *deliverReply {
	body := os.NewFile(uintptr(fd), "spool")
	defer body.Close()
	out := &deliverReply{Seq: req.Seq, Results: make([]result, len(req.Rcpts)), Timings: make([]timing, len(req.Rcpts)),
		Outbound: make([]store.Outbound, len(req.Rcpts))}
	fail := func(err error) *deliverReply {
		for i := range out.Results {
			out.Results[i] = resultOf(err)
		}
		return out
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(&store.Error{Status: store.Temporary, Op: "spool", Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size < req.Size {
		return fail(&store.Error{Status: store.Temporary, Op: "spool",
			Err: fmt.Errorf("spool is not a regular file of %d bytes", req.Size)})
	}
	msg := &store.Message{Sender: req.Sender, Body: body, Size: req.Size, Arrival: req.Arrival, ID: req.ID, HasReturnPath: req.HasReturnPath}
	var todo []store.Recipient
	var idx []int
	for i, r := range req.Rcpts {
		if err := s.permitted(r); err != nil {
			out.Results[i] = resultOf(err)
			continue
		}
		todo = append(todo, r)
		idx = append(idx, i)
	}
	if len(todo) > 0 {
		errs, times, outs := store.DeliverTimed(ctx, s.d, msg, todo)
		for j, i := range idx {
			if j < len(times) {
				out.Timings[i] = timingOf(times[j])
			}
			if j < len(outs) {
				out.Outbound[i] = outs[j]
			}
			var err error
			if j < len(errs) {
				err = errs[j]
			} else {
				err = &store.Error{Status: store.Temporary, Op: "deliver", Err: errors.New("no result from the writer")}
			}
			out.Results[i] = resultOf(err)
		}
	}
	return out
}

func (s *server) size(ctx context.Context, req *sizeRequest) *sizeReply {
	out := &sizeReply{Seq: req.Seq}
	if err := s.permitted(req.Rcpt); err != nil {
		out.Result = resultOf(err)
		return out
	}
	n, err := s.d.MailboxSize(ctx, req.Rcpt)
	out.Size, out.Result = max(n, 0), resultOf(err)
	return out
}
