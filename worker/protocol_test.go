package worker

import (
	"errors"
	"io"
	"os"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/scmrights"
	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/store/maildirpp"
)

func TestMessagesRoundTrip(t *testing.T) {
	rc := store.Recipient{Address: "Joe@example.com", OriginalRecipient: "joe+x@example.com", Path: "example.com/joe/", UID: 5001, GID: 5002, Limit: 1 << 20, HasDeliveredTo: true, Sieve: "example.com/joe/.dovecot.sieve"}
	req := &deliverRequest{Seq: 7, Msgs: []deliverMsg{
		{Sender: `"a b"@example.org`, Size: 1234, Arrival: time.Unix(1700000000, 5), ID: "Q1", HasReturnPath: true, Rcpts: []store.Recipient{rc, {Path: "x", UID: 1, GID: 2, NoSieve: true}}},
		{Sender: "", Size: 0, Arrival: time.Unix(1700000001, 0), ID: "Q2", Rcpts: []store.Recipient{rc}}}}
	got, err := decodeDeliverRequest(req.encode())
	if err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("deliver request: %+v, %v; want %+v", got, err, req)
	}
	rep := &deliverReply{Seq: 7, Results: []result{{Status: store.OK}, {Status: store.BadMailbox, Op: "open", Path: "x", Err: "symlink"}},
		Timings: []timing{{Write: 1500, Fsync: 2500}, {}},
		Outbound: []store.Outbound{{Kept: true, Submissions: []store.Submission{
			{Redirect: true, Sender: `"a b"@example.org`, Rcpt: "c@example.net", Head: []byte("X-Sieve-Redirected-From: Joe@example.com\n"), BodyFrom: 17},
			{Rcpt: `"a b"@example.org`, Head: []byte("Subject: Auto\n\naway\n"), BodyFrom: -1}}},
			{Submissions: []store.Submission{}}}}
	gotRep, err := decodeDeliverReply(rep.encode())
	if err != nil || !reflect.DeepEqual(gotRep, rep) {
		t.Fatalf("deliver reply: %+v, %v", gotRep, err)
	}
	sq := &sizeRequest{Seq: 9, Rcpt: rc}
	gotSq, err := decodeSizeRequest(sq.encode())
	if err != nil || !reflect.DeepEqual(gotSq, sq) {
		t.Fatalf("size request: %+v, %v", gotSq, err)
	}
	sr := &sizeReply{Seq: 9, Size: 42, Result: result{Status: store.Locked, Err: "busy"}}
	gotSr, err := decodeSizeReply(sr.encode())
	if err != nil || !reflect.DeepEqual(gotSr, sr) {
		t.Fatalf("size reply: %+v, %v", gotSr, err)
	}
	qrc := rc
	qrc.Quota = store.Quota{Set: true, Limits: maildirpp.Limits{Bytes: 5000, Count: 7}, Extended: true, Create: true}
	qrc.Folder, qrc.CreateFolder = "work", true
	qq := &quotaRequest{Seq: 10, Rcpt: qrc, Recalc: true}
	gotQq, err := decodeQuotaRequest(qq.encode())
	if err != nil || !reflect.DeepEqual(gotQq, qq) {
		t.Fatalf("quota request: %+v, %v", gotQq, err)
	}
	qr := &quotaReply{Seq: 10, Bytes: 4000, Count: 3, Recalculated: "missing", Result: result{Status: store.OverLimit}}
	gotQr, err := decodeQuotaReply(qr.encode())
	if err != nil || !reflect.DeepEqual(gotQr, qr) {
		t.Fatalf("quota reply: %+v, %v", gotQr, err)
	}
	neg := qrc
	neg.Quota.Limits.Count = -1
	if _, err := decodeQuotaRequest((&quotaRequest{Seq: 1, Rcpt: neg}).encode()); err == nil {
		t.Error("negative quota accepted")
	}
	if _, err := decodeQuotaReply((&quotaReply{Seq: 1, Bytes: -5}).encode()); err == nil {
		t.Error("negative usage accepted")
	}
	h := hello{Version: ProtocolVersion, Build: "v1 abc", PID: 99, UID: 5001, GID: 5002}
	gotH, err := decodeHello(h.encode())
	if err != nil || gotH != h {
		t.Fatalf("hello: %+v, %v", gotH, err)
	}
}

func TestDecodersRefuseBadInput(t *testing.T) {
	good := (&deliverRequest{Seq: 1, Msgs: []deliverMsg{{Size: 1, Rcpts: []store.Recipient{{Path: "a", UID: 5, GID: 5}}}, {Size: 2, Rcpts: []store.Recipient{{Path: "b", UID: 5, GID: 5}}}}}).encode()
	for i := 0; i < len(good); i++ {
		if _, err := decodeDeliverRequest(good[:i]); err == nil {
			t.Errorf("truncated to %d bytes: no error", i)
		}
	}
	if _, err := decodeDeliverRequest(append(good, 0)); err == nil {
		t.Error("trailing byte: no error")
	}
	// No message, or more than maxBatch, is refused.
	if _, err := decodeDeliverRequest((&deliverRequest{Seq: 1}).encode()); err == nil {
		t.Error("no message: no error")
	}
	many := &deliverRequest{Seq: 1}
	for range maxBatch + 1 {
		many.Msgs = append(many.Msgs, deliverMsg{Size: 1, Rcpts: []store.Recipient{{Path: "a", UID: 5, GID: 5}}})
	}
	if _, err := decodeDeliverRequest(many.encode()); err == nil {
		t.Error("maxBatch+1 messages: no error")
	}
	if _, err := decodeDeliverRequest((&deliverRequest{Seq: 1, Msgs: many.Msgs[:maxBatch]}).encode()); err != nil {
		t.Errorf("maxBatch messages: %v", err)
	}
	// A message or recipient count far beyond the payload must not allocate.
	var e encoder
	e.u64(1)
	e.u32(1 << 31)
	if _, err := decodeDeliverRequest(e.b); err == nil {
		t.Error("huge message count: no error")
	}
	e = encoder{}
	e.u64(1)
	e.u32(1)
	e.str("")
	e.i64(1)
	e.i64(0)
	e.str("")
	e.flag(false)
	e.u32(1 << 31)
	if _, err := decodeDeliverRequest(e.b); err == nil {
		t.Error("huge count: no error")
	}
	// A uid that would wrap to a negative or zero int is refused.
	e = encoder{}
	e.u64(1)
	e.rcpt(store.Recipient{Path: "a", GID: 5})
	b := e.b
	copy(b[len(b)-21:], []byte{0xff, 0xff, 0xff, 0xff})
	if _, err := decodeSizeRequest(b); err == nil {
		t.Error("uid 0xffffffff: no error")
	}
	// A flag is 0 or 1: any other byte is refused, so that a corrupted
	// request cannot mean "the client wrote the header" by accident.
	e = encoder{}
	e.u64(1)
	e.rcpt(store.Recipient{Path: "a", UID: 5, GID: 5, HasDeliveredTo: true})
	b = e.b
	b[len(b)-5] = 2 // before the Sieve script's length
	if _, err := decodeSizeRequest(b); err == nil {
		t.Error("Delivered-To flag 2: no error")
	}
	bad := (&deliverRequest{Seq: 1, Msgs: []deliverMsg{{Size: 1, HasReturnPath: true, Rcpts: []store.Recipient{{Path: "a", UID: 5, GID: 5}}}}}).encode()
	bad[8+4+4+8+8+4] = 0xff // the Return-Path flag, after seq, message count, sender, size, arrival and id
	if _, err := decodeDeliverRequest(bad); err == nil {
		t.Error("Return-Path flag 0xff: no error")
	}
	// Every known status crosses; an unknown one is refused rather than
	// passed on for the server to guess at.
	for st := store.OK; st <= store.Rejected; st++ {
		if _, err := decodeSizeReply((&sizeReply{Seq: 1, Result: result{Status: st}}).encode()); err != nil {
			t.Errorf("status %v refused: %v", st, err)
		}
	}
	if _, err := decodeDeliverReply((&deliverReply{Seq: 1, Results: []result{{Status: store.Rejected + 1}}, Timings: make([]timing, 1), Outbound: make([]store.Outbound, 1)}).encode()); err == nil {
		t.Error("unknown status: no error")
	}
	err := resultOf(errors.New("plain")).err()
	if store.StatusOf(err) != store.Temporary {
		t.Errorf("unclassified error became %v", store.StatusOf(err))
	}
}

func socketPair(t testing.TB) (*conn, *conn) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newConn(os.NewFile(uintptr(fds[0]), "a")), newConn(os.NewFile(uintptr(fds[1]), "b"))
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestFramesCarryDescriptor(t *testing.T) {
	a, b := socketPair(t)
	f, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("hello")
	big := make([]byte, 3<<20) // larger than the socket buffer: written in pieces
	errc := make(chan error, 1)
	go func() {
		if err := a.writeFrame(frameDeliver, big, []int{int(f.Fd()), int(f.Fd())}); err != nil {
			errc <- err
			return
		}
		errc <- a.writeFrame(frameSize, []byte("x"), nil)
	}()
	typ, p, fds, err := b.readFrame()
	if err != nil || typ != frameDeliver || len(p) != len(big) || len(fds) != 2 {
		t.Fatalf("first frame: type %d, %d bytes, fds %v, %v", typ, len(p), fds, err)
	}
	buf := make([]byte, 5)
	for _, fd := range fds {
		if n, _ := unix.Pread(fd, buf, 0); string(buf[:n]) != "hello" {
			t.Errorf("descriptor reads %q", buf[:n])
		}
	}
	scmrights.Close(fds)
	typ, p, fds, err = b.readFrame()
	if err != nil || typ != frameSize || string(p) != "x" || len(fds) != 0 {
		t.Fatalf("second frame: type %d, %q, fds %v, %v", typ, p, fds, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, _, _, err := b.readFrame(); err != io.EOF {
		t.Errorf("after close: %v, want EOF", err)
	}
}

func TestReadFrameRefusesHugeLength(t *testing.T) {
	a, b := socketPair(t)
	go a.f.Write([]byte{0xff, 0xff, 0xff, 0xff, 1})
	if _, _, _, err := b.readFrame(); !errors.Is(err, errProtocol) {
		t.Errorf("got %v, want a protocol error", err)
	}
}

func TestReadFrameKeepsWhatFollows(t *testing.T) {
	a, b := socketPair(t)
	// Two frames and the start of a third in one write, the rest later.
	raw := []byte{0, 0, 0, 2, frameSize, 'x', 0, 0, 0, 1, frameHello, 0, 0, 0, 3, frameSize, 'y'}
	a.f.Write(raw)
	for _, want := range []string{"x", ""} {
		_, p, _, err := b.readFrame()
		if err != nil || string(p) != want {
			t.Fatalf("got %q, %v; want %q", p, err, want)
		}
	}
	go a.f.Write([]byte{'z'})
	if _, p, _, err := b.readFrame(); err != nil || string(p) != "yz" {
		t.Fatalf("got %q, %v; want yz", p, err)
	}
	a.Close()
	if _, _, _, err := b.readFrame(); err != io.EOF {
		t.Fatalf("got %v, want EOF", err)
	}
}

// A reply whose timings do not match its results one for one is a
// protocol error, not a guess.
func TestDeliverReplyTimingsMatchResults(t *testing.T) {
	rep := &deliverReply{Seq: 1, Results: []result{{Status: store.OK}, {Status: store.OK}}, Timings: []timing{{1, 2}}, Outbound: make([]store.Outbound, 2)}
	if _, err := decodeDeliverReply(rep.encode()); err == nil {
		t.Fatal("reply with 2 results and 1 timing decoded")
	}
	rep = &deliverReply{Seq: 1, Results: []result{{Status: store.OK}, {Status: store.OK}}, Timings: []timing{{1, 2}, {3, 4}}, Outbound: make([]store.Outbound, 1)}
	if _, err := decodeDeliverReply(rep.encode()); err == nil {
		t.Fatal("reply with 2 results and 1 outbound decoded")
	}
	rep.Outbound = []store.Outbound{{}, {Submissions: []store.Submission{{Rcpt: "x", Head: []byte("y"), BodyFrom: -2}}}}
	if _, err := decodeDeliverReply(rep.encode()); err == nil {
		t.Fatal("submission with body offset -2 decoded")
	}
}

// A Sieve rejection's reason crosses the protocol and comes back as the
// cause the server puts into the reply.
func TestRejectedResultRoundTrip(t *testing.T) {
	in := &store.Error{Status: store.Rejected, Op: "sieve", Path: "p/", Err: &store.Rejection{Reason: "go away"}}
	rep, err := decodeDeliverReply((&deliverReply{Seq: 1, Results: []result{resultOf(in)}, Timings: []timing{{1, 2}}, Outbound: make([]store.Outbound, 1)}).encode())
	if err != nil {
		t.Fatal(err)
	}
	out := rep.Results[0].err()
	if reason, ok := store.RejectReason(out); !ok || reason != "go away" {
		t.Errorf("got %v: %q %v", out, reason, ok)
	}
}
