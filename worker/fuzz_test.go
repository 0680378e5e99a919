package worker

import (
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/store/maildirpp"
)

// FuzzWorkerDecoders feeds what a worker reads from the front: the
// decoders must return an error or a value that encodes back to the same
// bytes, never panic or allocate beyond the input.
func FuzzWorkerDecoders(f *testing.F) {
	f.Add(byte(frameDeliver), (&deliverRequest{Seq: 1, Msgs: []deliverMsg{{Sender: "s@x", Size: 10, Arrival: time.Unix(1, 0), ID: "q",
		Rcpts: []store.Recipient{{Address: "a@x", Path: "x/a/", UID: 5, GID: 5}}}}}).encode())
	f.Add(byte(frameDeliver), (&deliverRequest{Seq: 3, Msgs: []deliverMsg{{Sender: "s@x", Size: 10, Arrival: time.Unix(1, 0), ID: "q", HasReturnPath: true,
		Rcpts: []store.Recipient{{Address: "a@x", Path: "x/a/", UID: 5, GID: 5, HasDeliveredTo: true}, {Address: "b@x", Path: "x/b", UID: 5, GID: 5, Sieve: "x/b.sieve"}}},
		{Sender: "", Size: 0, Arrival: time.Unix(2, 0), ID: "r", Rcpts: []store.Recipient{{Address: "c@x", Path: "x/c/", UID: 5, GID: 5}}}}}).encode())
	f.Add(byte(frameSize), (&sizeRequest{Seq: 2, Rcpt: store.Recipient{Path: "x/a", UID: 5, GID: 5, Limit: 9}}).encode())
	f.Add(byte(frameQuota), (&quotaRequest{Seq: 4, Rcpt: store.Recipient{Path: "x/a/", UID: 5, GID: 5, Folder: "w",
		Quota: store.Quota{Set: true, Limits: maildirpp.Limits{Bytes: 9, Count: 2}, Extended: true}}}).encode())
	f.Fuzz(func(t *testing.T, typ byte, p []byte) {
		switch typ % 3 {
		case 2:
			r, err := decodeQuotaRequest(p)
			if err != nil {
				return
			}
			if r.Rcpt.Quota.Limits.Bytes < 0 || r.Rcpt.Quota.Limits.Count < 0 {
				t.Fatalf("accepted %+v", r.Rcpt.Quota)
			}
			if string(r.encode()) != string(p) {
				t.Fatalf("re-encoding differs")
			}
		case 0:
			r, err := decodeDeliverRequest(p)
			if err != nil {
				return
			}
			if len(r.Msgs) == 0 || len(r.Msgs) > maxBatch {
				t.Fatalf("accepted %d messages", len(r.Msgs))
			}
			for _, m := range r.Msgs {
				if len(m.Rcpts) == 0 || m.Size < 0 {
					t.Fatalf("accepted %+v", m)
				}
				for _, rc := range m.Rcpts {
					if rc.UID < 0 || rc.GID < 0 || rc.Limit < 0 {
						t.Fatalf("accepted %+v", rc)
					}
				}
			}
			if string(r.encode()) != string(p) {
				t.Fatalf("re-encoding differs")
			}
		case 1:
			r, err := decodeSizeRequest(p)
			if err == nil && string(r.encode()) != string(p) {
				t.Fatalf("re-encoding differs")
			}
		}
	})
}

// FuzzFrontDecoders feeds what the front reads from a worker, which may be
// compromised: the same rules.
func FuzzFrontDecoders(f *testing.F) {
	f.Add(byte(0), hello{Version: 1, Build: "b", PID: 3, UID: 5, GID: 5}.encode())
	f.Add(byte(1), (&deliverReply{Seq: 1, Results: []result{{Status: store.OK}, {Status: store.Locked, Op: "lock", Path: "p", Err: "e"}}, Timings: []timing{{1, 2}, {3, 4}},
		Outbound: []store.Outbound{{Kept: true, Submissions: []store.Submission{{Redirect: true, Sender: "s@x", Rcpt: "r@y", Head: []byte("X: y\n"), BodyFrom: 0}}}, {}}}).encode())
	f.Add(byte(1), (&deliverReply{Seq: 2, Results: []result{{Status: store.Rejected, Op: "sieve", Path: "p/", Err: "not wanted"}}, Timings: []timing{{1, 2}}, Outbound: make([]store.Outbound, 1)}).encode())
	f.Add(byte(2), (&sizeReply{Seq: 1, Size: 3, Result: result{}}).encode())
	f.Add(byte(3), (&quotaReply{Seq: 1, Bytes: 3, Count: 1, Recalculated: "missing"}).encode())
	f.Fuzz(func(t *testing.T, typ byte, p []byte) {
		var re []byte
		switch typ % 4 {
		case 3:
			r, err := decodeQuotaReply(p)
			if err != nil {
				return
			}
			if r.Bytes < 0 || r.Count < 0 {
				t.Fatalf("negative usage accepted")
			}
			re = r.encode()
		case 0:
			h, err := decodeHello(p)
			if err != nil {
				return
			}
			re = h.encode()
		case 1:
			r, err := decodeDeliverReply(p)
			if err != nil {
				return
			}
			re = r.encode()
		case 2:
			r, err := decodeSizeReply(p)
			if err != nil {
				return
			}
			if r.Size < 0 {
				t.Fatalf("negative size accepted")
			}
			re = r.encode()
		}
		if string(re) != string(p) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzReadFrame feeds raw bytes to the frame reader over a real socket.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, frameSize, 'x'})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, b := socketPair(t)
		go func() {
			a.f.Write(raw)
			a.Close()
		}()
		for {
			_, p, fds, err := b.readFrame()
			if err != nil {
				return
			}
			if len(fds) != 0 || len(p) > maxFrame {
				t.Fatalf("frame with %d fds, %d bytes", len(fds), len(p))
			}
		}
	})
}
