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
	if err := c.writeFrame(frameHello, h.encode(), nil); err != nil {
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
			req, err := decodeDeliverRequest(payload)
			if err == nil && len(fds) != len(req.Msgs) {
				err = protoErr("delivery request of %d messages with %d descriptors", len(req.Msgs), len(fds))
			}
			if err != nil {
				scmrights.Close(fds)
				return err
			}
			rtyp, reply = frameDeliverReply, s.deliver(ctx, req, fds).encode()
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
		if err := s.c.writeFrame(rtyp, reply, nil); err != nil {
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

// deliver writes the request's messages, all in one store batch; fds are
// their spool descriptors, which it closes.
func (s *server) deliver(ctx context.Context, req *deliverRequest, fds []int) *deliverReply {
	n := req.rcptCount()
	out := &deliverReply{Seq: req.Seq, Results: make([]result, n), Timings: make([]timing, n), Outbound: make([]store.Outbound, n)}
	var batch []store.Delivery
	var where [][]int // per entry of batch, the index in out of each recipient
	off := 0
	for k, m := range req.Msgs {
		body := os.NewFile(uintptr(fds[k]), "spool")
		defer body.Close()
		msg, serr := spoolMessage(m, fds[k], body)
		var todo []store.Recipient
		var idx []int
		for i, r := range m.Rcpts {
			err := serr
			if err == nil {
				err = s.permitted(r)
			}
			if err != nil {
				out.Results[off+i] = resultOf(err)
				continue
			}
			todo = append(todo, r)
			idx = append(idx, off+i)
		}
		off += len(m.Rcpts)
		if len(todo) > 0 {
			batch = append(batch, store.Delivery{Msg: msg, Rcpts: todo})
			where = append(where, idx)
		}
	}
	if len(batch) == 0 {
		return out
	}
	for k, d := range store.DeliverBatch(ctx, s.d, batch) {
		for j, i := range where[k] {
			if j < len(d.Times) {
				out.Timings[i] = timingOf(d.Times[j])
			}
			if j < len(d.Outs) {
				out.Outbound[i] = d.Outs[j]
			}
			var err error
			if j < len(d.Errs) {
				err = d.Errs[j]
			} else {
				err = &store.Error{Status: store.Temporary, Op: "deliver", Err: errors.New("no result from the writer")}
			}
			out.Results[i] = resultOf(err)
		}
	}
	return out
}

// spoolMessage checks a message's spool descriptor: a regular file holding
// at least its size.
func spoolMessage(m deliverMsg, fd int, body *os.File) (*store.Message, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &store.Error{Status: store.Temporary, Op: "spool", Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size < m.Size {
		return nil, &store.Error{Status: store.Temporary, Op: "spool",
			Err: fmt.Errorf("spool is not a regular file of %d bytes", m.Size)}
	}
	return &store.Message{Sender: m.Sender, Body: body, Size: m.Size, Arrival: m.Arrival, ID: m.ID, HasReturnPath: m.HasReturnPath}, nil
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
