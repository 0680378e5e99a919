// Runs in: the front and a worker (both ends of the protocol).
//
// The front↔worker protocol: frame layouts, encoding and the socket
// wrapper, used by the front (Pool) and the worker (Main).

package worker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/scmrights"
	"github.com/vlmtpd/vlmtpd/store"
)

// ProtocolVersion changes whenever a frame's layout or meaning changes. A
// worker started from an upgraded binary announces a different version in
// its hello and the front refuses it.
const ProtocolVersion = 7

// maxBatch bounds the messages of one delivery request: the deliveries
// for one owner that waited for a worker, sent together (protocol 7) so
// that they share the fsyncs of their directories.
const maxBatch = 16

// maxFrame bounds a frame's payload so a broken peer cannot make the other
// side allocate without limit. A request for thousands of recipients with
// long paths still fits.
const maxFrame = 8 << 20

// Frame types.
const (
	frameHello        byte = 1 // worker → front, once, first
	frameDeliver      byte = 2 // front → worker, with one spool descriptor per message
	frameDeliverReply byte = 3 // worker → front
	frameSize         byte = 4 // front → worker: mailbox size query
	frameSizeReply    byte = 5 // worker → front
	frameQuota        byte = 6 // front → worker: quota usage query
	frameQuotaReply   byte = 7 // worker → front
)

var errProtocol = errors.New("worker protocol error")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errProtocol, fmt.Sprintf(format, args...))
}

// hello is the worker's first frame.
type hello struct {
	Version  uint32
	Build    string // the binary's build identity, for logs
	PID      int
	UID, GID int
}

// deliverRequest asks a worker to write one or more messages (up to
// maxBatch) to their recipients, all of them owned by the worker's uid and
// gid. The frame carries one spool descriptor per message, in order.
type deliverRequest struct {
	Seq  uint64
	Msgs []deliverMsg
}

// deliverMsg is one message of a request.
type deliverMsg struct {
	Sender  string
	Size    int64
	Arrival time.Time
	ID      string
	// HasReturnPath is store.Message's: the client wrote the Return-Path.
	HasReturnPath bool
	Rcpts         []store.Recipient
}

// rcptCount is the recipients of all the request's messages: the length
// of each list of its reply.
func (r *deliverRequest) rcptCount() int {
	n := 0
	for _, m := range r.Msgs {
		n += len(m.Rcpts)
	}
	return n
}

// result is one recipient's outcome as it crosses the protocol.
type result struct {
	Status store.Status
	Op     string
	Path   string
	Err    string
}

func resultOf(err error) result {
	if err == nil {
		return result{Status: store.OK}
	}
	r := result{Status: store.StatusOf(err), Err: err.Error()}
	var se *store.Error
	if errors.As(err, &se) {
		r.Op, r.Path = se.Op, se.Path
		if se.Err != nil {
			r.Err = se.Err.Error()
		} else {
			r.Err = ""
		}
	}
	return r
}

// err turns a result back into the error Deliver returns.
func (r result) err() error {
	if r.Status == store.OK {
		return nil
	}
	e := &store.Error{Status: r.Status, Op: r.Op, Path: r.Path}
	switch {
	case r.Status == store.Rejected:
		e.Err = &store.Rejection{Reason: r.Err}
	case r.Err != "":
		e.Err = errors.New(r.Err)
	}
	return e
}

// deliverReply answers a deliverRequest: one result per recipient, the
// messages' recipients one after the other in the request's order.
type deliverReply struct {
	Seq     uint64
	Results []result
	// Timings are the worker's write and fsync times, one per result (the
	// front adds its own wait for the worker). Protocol 4 added them.
	Timings []timing
	// Outbound is, per result, what the front is to submit for Sieve
	// (redirects, vacation replies). Protocol 6 added it.
	Outbound []store.Outbound
}

// timing is store.Timing's worker part, in nanoseconds.
type timing struct{ Write, Fsync uint64 }

func timingOf(t store.Timing) timing {
	return timing{uint64(max(t.Write, 0)), uint64(max(t.Fsync, 0))}
}

type sizeRequest struct {
	Seq  uint64
	Rcpt store.Recipient
}

type sizeReply struct {
	Seq    uint64
	Size   int64
	Result result
}

type quotaRequest struct {
	Seq    uint64
	Rcpt   store.Recipient
	Recalc bool // rebuild maildirsize first
}

type quotaReply struct {
	Seq          uint64
	Bytes, Count int64
	Recalculated string
	Result       result
}

func (r *quotaRequest) encode() []byte {
	e := newEncoder()
	e.u64(r.Seq)
	e.rcpt(r.Rcpt)
	e.flag(r.Recalc)
	return e.b
}

func decodeQuotaRequest(p []byte) (*quotaRequest, error) {
	d := decoder{b: p}
	r := &quotaRequest{Seq: d.u64("seq"), Rcpt: d.rcpt(), Recalc: d.flag("recalc")}
	return r, d.end("quota request")
}

func (r *quotaReply) encode() []byte {
	e := newEncoder()
	e.u64(r.Seq)
	e.i64(r.Bytes)
	e.i64(r.Count)
	e.str(r.Recalculated)
	e.result(r.Result)
	return e.b
}

func decodeQuotaReply(p []byte) (*quotaReply, error) {
	d := decoder{b: p}
	r := &quotaReply{Seq: d.u64("seq"), Bytes: d.i64("bytes"), Count: d.i64("count"), Recalculated: d.str("recalculated"), Result: d.result()}
	if d.err == nil && (r.Bytes < 0 || r.Count < 0) {
		d.fail("usage")
	}
	return r, d.end("quota reply")
}

// encoder appends fields to a payload.
type encoder struct{ b []byte }

// newEncoder starts a payload with room for a usual frame (a one-recipient
// request is about 150 bytes), so encoding it allocates once rather than
// at every doubling.
func newEncoder() encoder { return encoder{b: make([]byte, 0, 256)} }

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) i64(v int64)  { e.u64(uint64(v)) }
func (e *encoder) str(s string) {
	e.u32(uint32(len(s)))
	e.b = append(e.b, s...)
}

// decoder reads fields from a payload; the first error sticks and every
// later read returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = protoErr("truncated or malformed %s", what)
	}
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.fail(what)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(what string) uint8 {
	if v := d.take(1, what); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u32(what string) uint32 {
	if v := d.take(4, what); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64(what string) uint64 {
	if v := d.take(8, what); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) i64(what string) int64 { return int64(d.u64(what)) }

func (d *decoder) str(what string) string {
	n := d.u32(what)
	if d.err != nil || uint64(n) > uint64(len(d.b)) {
		d.fail(what)
		return ""
	}
	return string(d.take(int(n), what))
}

// id reads a uid or gid: any uid_t but (uid_t)-1, which setresuid(2)
// takes for "unchanged".
func (d *decoder) id(what string) int {
	v := d.u32(what)
	if v == math.MaxUint32 {
		d.fail(what)
		return -1
	}
	return int(v)
}

// count reads a list length; each element takes at least min bytes, so a
// length the remaining payload cannot hold is refused before allocating.
func (d *decoder) count(min int, what string) int {
	n := d.u32(what)
	if d.err == nil && uint64(n)*uint64(min) > uint64(len(d.b)) {
		d.fail(what)
		return 0
	}
	return int(n)
}

// list reads a count and then that many items, each at least min bytes.
func list[T any](d *decoder, min int, what string, item func() T) []T {
	n := d.count(min, what)
	if d.err != nil {
		return nil
	}
	out := make([]T, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		out = append(out, item())
	}
	return out
}

// appendList writes the count of xs and then each item.
func appendList[T any](e *encoder, xs []T, item func(T)) {
	e.u32(uint32(len(xs)))
	for _, x := range xs {
		item(x)
	}
}

func (d *decoder) end(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = protoErr("%d trailing bytes in %s", len(d.b), what)
	}
	return d.err
}

func (e *encoder) flag(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// flag reads a boolean: exactly 0 or 1, so every value has one encoding.
func (d *decoder) flag(what string) bool {
	v := d.u8(what)
	if v > 1 {
		d.fail(what)
	}
	return v == 1
}

func (e *encoder) rcpt(r store.Recipient) {
	e.str(r.Address)
	e.str(r.OriginalRecipient)
	e.str(r.Path)
	e.u32(uint32(r.UID))
	e.u32(uint32(r.GID))
	e.i64(r.Limit)
	e.flag(r.HasDeliveredTo)
	e.flag(r.Quota.Set)
	e.i64(r.Quota.Limits.Bytes)
	e.i64(r.Quota.Limits.Count)
	e.flag(r.Quota.Extended)
	e.flag(r.Quota.Create)
	e.str(r.Folder)
	e.flag(r.CreateFolder)
	e.str(r.Sieve)
	e.flag(r.NoSieve)
}

// rcptMin is the smallest encoding of a recipient.
const rcptMin = 3*4 + 4 + 4 + 8 + 1 + (1 + 8 + 8 + 1 + 1 + 4 + 1) + 4 + 1

func (d *decoder) rcpt() store.Recipient {
	r := store.Recipient{
		Address:           d.str("address"),
		OriginalRecipient: d.str("original recipient"),
		Path:              d.str("path"),
		UID:               d.id("uid"),
		GID:               d.id("gid"),
		Limit:             d.i64("limit"),
		HasDeliveredTo:    d.flag("has delivered-to"),
	}
	r.Quota.Set = d.flag("quota set")
	r.Quota.Limits.Bytes = d.i64("quota bytes")
	r.Quota.Limits.Count = d.i64("quota count")
	r.Quota.Extended = d.flag("quota extended")
	r.Quota.Create = d.flag("quota create")
	r.Folder = d.str("folder")
	r.CreateFolder = d.flag("create folder")
	r.Sieve = d.str("sieve script")
	r.NoSieve = d.flag("no sieve")
	if d.err == nil && r.Limit < 0 {
		d.fail("limit")
	}
	if d.err == nil && (r.Quota.Limits.Bytes < 0 || r.Quota.Limits.Count < 0) {
		d.fail("quota")
	}
	return r
}

func (e *encoder) result(r result) {
	e.u8(uint8(r.Status))
	e.str(r.Op)
	e.str(r.Path)
	e.str(r.Err)
}

const resultMin = 1 + 3*4

func (d *decoder) result() result {
	r := result{
		Status: store.Status(d.u8("status")),
		Op:     d.str("op"),
		Path:   d.str("path"),
		Err:    d.str("error"),
	}
	// A status this binary does not know is a broken or foreign worker:
	// a protocol error, so its recipients get WorkerFailed, never a guess.
	if d.err == nil && r.Status > store.Rejected {
		d.fail("status")
	}
	return r
}

func (e *encoder) outbound(o store.Outbound) {
	e.flag(o.Kept)
	appendList(e, o.Submissions, func(s store.Submission) {
		e.flag(s.Redirect)
		e.str(s.Sender)
		e.str(s.Rcpt)
		e.str(string(s.Head))
		e.i64(s.BodyFrom)
	})
}

const submissionMin = 1 + 3*4 + 8

func (d *decoder) outbound() store.Outbound {
	o := store.Outbound{Kept: d.flag("kept")}
	o.Submissions = list(d, submissionMin, "submission count", func() store.Submission {
		s := store.Submission{Redirect: d.flag("redirect"), Sender: d.str("submission sender"), Rcpt: d.str("submission recipient"),
			Head: []byte(d.str("submission head")), BodyFrom: d.i64("submission body offset")}
		if d.err == nil && s.BodyFrom < -1 {
			d.fail("submission body offset")
		}
		return s
	})
	return o
}

func (h hello) encode() []byte {
	e := newEncoder()
	e.u32(h.Version)
	e.str(h.Build)
	e.u32(uint32(h.PID))
	e.u32(uint32(h.UID))
	e.u32(uint32(h.GID))
	return e.b
}

func decodeHello(p []byte) (hello, error) {
	d := decoder{b: p}
	h := hello{
		Version: d.u32("version"),
		Build:   d.str("build"),
		PID:     d.id("pid"),
		UID:     d.id("uid"),
		GID:     d.id("gid"),
	}
	return h, d.end("hello")
}

func (r *deliverRequest) encode() []byte {
	e := newEncoder()
	e.u64(r.Seq)
	appendList(&e, r.Msgs, func(m deliverMsg) {
		e.str(m.Sender)
		e.i64(m.Size)
		e.i64(m.Arrival.UnixNano())
		e.str(m.ID)
		e.flag(m.HasReturnPath)
		appendList(&e, m.Rcpts, e.rcpt)
	})
	return e.b
}

// deliverMsgMin is the smallest encoding of a message of a request.
const deliverMsgMin = 4 + 8 + 8 + 4 + 1 + 4

func decodeDeliverRequest(p []byte) (*deliverRequest, error) {
	d := decoder{b: p}
	r := &deliverRequest{Seq: d.u64("seq")}
	r.Msgs = list(&d, deliverMsgMin, "message count", func() deliverMsg {
		m := deliverMsg{
			Sender:  d.str("sender"),
			Size:    d.i64("size"),
			Arrival: time.Unix(0, d.i64("arrival")),
			ID:      d.str("id"),
		}
		m.HasReturnPath = d.flag("has return-path")
		if d.err == nil && m.Size < 0 {
			d.fail("size")
		}
		m.Rcpts = list(&d, rcptMin, "recipient count", d.rcpt)
		if d.err == nil && len(m.Rcpts) == 0 {
			d.fail("recipient count")
		}
		return m
	})
	if d.err == nil && (len(r.Msgs) == 0 || len(r.Msgs) > maxBatch) {
		d.fail("message count")
	}
	return r, d.end("delivery request")
}

func (r *deliverReply) encode() []byte {
	e := newEncoder()
	e.u64(r.Seq)
	appendList(&e, r.Results, e.result)
	appendList(&e, r.Timings, func(t timing) { e.u64(t.Write); e.u64(t.Fsync) })
	appendList(&e, r.Outbound, e.outbound)
	return e.b
}

func decodeDeliverReply(p []byte) (*deliverReply, error) {
	d := decoder{b: p}
	r := &deliverReply{Seq: d.u64("seq")}
	r.Results = list(&d, resultMin, "result count", d.result)
	r.Timings = list(&d, 16, "timing count", func() timing { return timing{d.u64("write time"), d.u64("fsync time")} })
	if d.err == nil && len(r.Timings) != len(r.Results) {
		d.fail("timing count")
	}
	r.Outbound = list(&d, 1+4, "outbound count", d.outbound)
	if d.err == nil && len(r.Outbound) != len(r.Results) {
		d.fail("outbound count")
	}
	return r, d.end("delivery reply")
}

func (r *sizeRequest) encode() []byte {
	e := newEncoder()
	e.u64(r.Seq)
	e.rcpt(r.Rcpt)
	return e.b
}

func decodeSizeRequest(p []byte) (*sizeRequest, error) {
	d := decoder{b: p}
	r := &sizeRequest{Seq: d.u64("seq"), Rcpt: d.rcpt()}
	return r, d.end("size request")
}

func (r *sizeReply) encode() []byte {
	e := newEncoder()
	e.u64(r.Seq)
	e.i64(r.Size)
	e.result(r.Result)
	return e.b
}

func decodeSizeReply(p []byte) (*sizeReply, error) {
	d := decoder{b: p}
	r := &sizeReply{Seq: d.u64("seq"), Size: d.i64("size"), Result: d.result()}
	if d.err == nil && r.Size < 0 {
		d.fail("size")
	}
	return r, d.end("size reply")
}

// conn frames messages over a UNIX stream socket. It uses blocking
// system calls on the descriptor rather than Go's network poller: a worker
// serves one request (of up to maxBatch messages) at a time, the front has one request in flight per
// worker, and skipping the poller's hand-offs between threads cuts the
// latency of a round trip by two thirds. A frame that fits the read buffer
// takes one recvmsg. Deadlines are socket timeouts.
type conn struct {
	f        *os.File
	fd       int
	rbuf     []byte // received, not yet consumed: rbuf[roff:]
	roff     int
	oob      []byte
	deadline time.Time
	armed    [2]time.Duration // socket timeouts set now: receive, send
}

// readBuf is the read buffer's size: every frame of a usual request or
// reply fits.
const readBuf = 64 << 10

// newConn takes ownership of a socket file.
func newConn(f *os.File) *conn {
	fd := int(f.Fd()) // also puts the descriptor in blocking mode
	return &conn{f: f, fd: fd, rbuf: make([]byte, 0, readBuf), oob: make([]byte, unix.CmsgSpace(4*maxBatch))}
}

// setDeadline bounds every later read and write; the zero time removes the
// bound.
func (c *conn) setDeadline(t time.Time) { c.deadline = t }

// timeout arms the socket timeout (index 0 receive, 1 send) for the time
// left before the deadline. Timeouts are relative, so a value within a
// second of the one already set is left alone: requests with the usual
// deadline then cost no extra system call.
func (c *conn) timeout(which int) error {
	var want time.Duration
	if !c.deadline.IsZero() {
		want = time.Until(c.deadline)
		if want <= 0 {
			return os.ErrDeadlineExceeded
		}
		want = max(want, time.Microsecond)
	}
	have := c.armed[which]
	if want == have || (want > 0 && have > 0 && want <= have && have-want < time.Second) {
		return nil
	}
	opt := unix.SO_RCVTIMEO
	if which == 1 {
		opt = unix.SO_SNDTIMEO
	}
	tv := unix.NsecToTimeval(want.Nanoseconds())
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, opt, &tv); err != nil {
		return err
	}
	c.armed[which] = want
	return nil
}

func sockErr(err error) error {
	if err == unix.EAGAIN {
		return os.ErrDeadlineExceeded
	}
	return err
}

func (c *conn) send(p, oob []byte) (int, error) {
	if err := c.timeout(1); err != nil {
		return 0, err
	}
	for {
		n, err := unix.SendmsgN(c.fd, p, oob, nil, unix.MSG_NOSIGNAL)
		if err != unix.EINTR {
			return n, sockErr(err)
		}
	}
}

func (c *conn) recv(p []byte) (n, oobn, flags int, err error) {
	if err := c.timeout(0); err != nil {
		return 0, 0, 0, err
	}
	for {
		n, oobn, flags, _, err = unix.Recvmsg(c.fd, p, c.oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			return n, oobn, flags, sockErr(err)
		}
	}
}

// writeFrame sends one frame; fds, if any, travel with its first byte.
func (c *conn) writeFrame(typ byte, payload []byte, fds []int) error {
	if len(payload) > maxFrame {
		return protoErr("frame of %d bytes is too large", len(payload))
	}
	buf := make([]byte, 5, 5+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(1+len(payload)))
	buf[4] = typ
	buf = append(buf, payload...)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	// A stream socket may take a large frame in pieces; the descriptor
	// goes with the first one.
	for len(buf) > 0 {
		n, err := c.send(buf, oob)
		if err != nil {
			return err
		}
		buf, oob = buf[n:], nil
	}
	return nil
}

// recvInto does one receive into p and returns the descriptors that came
// with it. End of file is io.EOF.
func (c *conn) recvInto(p []byte) (int, []int, error) {
	n, oobn, flags, err := c.recv(p)
	if n < 0 || err != nil {
		n = 0
	}
	var fds []int
	if oobn > 0 {
		fds = scmrights.Parse(c.oob[:oobn])
	}
	if err == nil && flags&unix.MSG_CTRUNC != 0 {
		err = protoErr("too many descriptors in one frame")
	}
	if err == nil && n == 0 {
		err = io.EOF
	}
	return n, fds, err
}

// fill receives until at least n unconsumed bytes are buffered
// (n ≤ readBuf), adding the descriptors that arrive to fds.
func (c *conn) fill(n int, fds []int) ([]int, error) {
	if len(c.rbuf)-c.roff >= n {
		return fds, nil
	}
	if c.roff > 0 {
		c.rbuf = c.rbuf[:copy(c.rbuf[:cap(c.rbuf)], c.rbuf[c.roff:])]
		c.roff = 0
	}
	for len(c.rbuf) < n {
		k, more, err := c.recvInto(c.rbuf[len(c.rbuf):cap(c.rbuf)])
		fds = append(fds, more...)
		c.rbuf = c.rbuf[:len(c.rbuf)+k]
		if err == io.EOF && len(c.rbuf) > 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fds, err
		}
	}
	return fds, nil
}

// readFrame reads one frame and returns its type, payload and the
// descriptors that came with it (the caller owns and must close them).
// io.EOF means the peer closed the connection between frames.
func (c *conn) readFrame() (typ byte, payload []byte, fds []int, err error) {
	fail := func(err error) (byte, []byte, []int, error) {
		scmrights.Close(fds)
		return 0, nil, nil, err
	}
	// The sender attaches a descriptor to a frame's first byte, and only
	// one frame is ever in flight: whatever arrives with the bytes of this
	// frame belongs to it.
	if fds, err = c.fill(5, nil); err != nil {
		return fail(err)
	}
	n := binary.BigEndian.Uint32(c.rbuf[c.roff:])
	if n < 1 || n-1 > maxFrame {
		return fail(protoErr("frame length %d", n))
	}
	typ = c.rbuf[c.roff+4]
	c.roff += 5
	size := int(n - 1)
	payload = make([]byte, size)
	if size <= readBuf {
		if fds, err = c.fill(size, fds); err != nil {
			return fail(eofInFrame(err))
		}
		c.roff += copy(payload, c.rbuf[c.roff:])
		return typ, payload, fds, nil
	}
	// Larger than the buffer: take what is buffered, read the rest in
	// place.
	got := copy(payload, c.rbuf[c.roff:])
	c.roff += got
	for got < size {
		k, more, err := c.recvInto(payload[got:])
		fds = append(fds, more...)
		got += k
		if err != nil {
			return fail(eofInFrame(err))
		}
	}
	return typ, payload, fds, nil
}

func eofInFrame(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (c *conn) Close() error { return c.f.Close() }

// waitExit shuts the connection for writing, which a worker reads as the
// order to exit, and waits until deadline for the end of its stream: the
// worker's end closes only when the worker (and whatever inherited the
// socket from it) has exited. Anything it still sends is discarded.
func (c *conn) waitExit(deadline time.Time) bool {
	unix.Shutdown(c.fd, unix.SHUT_WR)
	c.setDeadline(deadline)
	c.roff, c.rbuf = 0, c.rbuf[:0]
	for {
		_, fds, err := c.recvInto(c.rbuf[:cap(c.rbuf)])
		scmrights.Close(fds)
		switch {
		case err == io.EOF || err == unix.ECONNRESET:
			return true
		case errors.Is(err, os.ErrDeadlineExceeded):
			return false
		case err != nil && !errors.Is(err, errProtocol):
			return true // the socket is unusable: nothing left to wait on
		}
	}
}

// idleAndAlive reports whether a worker that should be waiting for a
// request still is: its end is open and it has sent nothing. A worker that
// died while idle (OOM killer, an administrator) is found here rather than
// by failing the next message's recipients.
func (c *conn) idleAndAlive() bool {
	if len(c.rbuf) > c.roff {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN | unix.POLLRDHUP}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n == 0
	}
}
