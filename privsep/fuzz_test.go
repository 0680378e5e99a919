package privsep

import (
	"log/slog"
	"math"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FuzzDecodeRequest feeds the parent what a compromised front could send:
// only exact, known layouts with ids in range are accepted, and they
// encode back to the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(request{Op: opSpawn, Seq: 1, UID: 5000, GID: 5000}.encode())
	f.Add(request{Op: opKill, Seq: 2, ID: 7}.encode())
	f.Add([]byte{opSpawn, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRequest(b)
		if err != nil {
			return
		}
		if r.UID < 0 || r.GID < 0 {
			t.Fatalf("negative id accepted: %+v", r)
		}
		if string(r.encode()) != string(b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzDecodeReply feeds the front's decoder.
func FuzzDecodeReply(f *testing.F) {
	f.Add(reply{Seq: 1, Code: codeOK, ID: 3, PID: 99}.encode())
	f.Add(reply{Seq: 2, Code: codeRefused, Msg: "uid 0 is not allowed"}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeReply(b)
		if err != nil {
			return
		}
		if r.PID < 0 || r.Code > codeFailed {
			t.Fatalf("accepted %+v", r)
		}
		if string(r.encode()) != string(b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzControlFraming sends the parent what a compromised front could put
// on the control socket: any sequence of packets (empty ones, oversized
// ones, ones carrying descriptors), then closes its end or only shuts it
// for writing. The parent must answer a valid request sent after them,
// and stop serving, without an error, only at that end.
//
// Input: per packet one header byte (bit 0: attach a descriptor; bits
// 1-7: length, 127 meaning one byte over the largest packet) and that
// many bytes; a last odd byte picks shutdown instead of close.
func FuzzControlFraming(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})              // one empty packet
	f.Add([]byte{0, 0, 0, 1})     // empty packets, then shutdown
	f.Add([]byte{1})              // an empty packet with a descriptor
	f.Add([]byte{127 << 1, 1, 2}) // truncated
	f.Add(append([]byte{requestLen << 1}, request{Op: opSpawn, Seq: 9, UID: 5000, GID: 5000}.encode()...))
	f.Add(append([]byte{requestLen<<1 | 1}, request{Op: opKill, Seq: 3, ID: 1}.encode()...))
	f.Fuzz(func(t *testing.T, in []byte) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		front := fds[1]
		defer func() {
			if front >= 0 {
				unix.Close(front)
			}
		}()
		p := &Parent{Policy: Policy{MinUID: math.MaxInt}, Log: slog.New(slog.DiscardHandler)}
		done := make(chan error, 1)
		go func() { done <- p.ServeControl(os.NewFile(uintptr(fds[0]), "ctl")) }()

		null, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(null)
		shutdown := false
		sent := 0
		// Blocking sends with a bound: the parent reads while we write.
		tv := unix.NsecToTimeval((10 * time.Second).Nanoseconds())
		unix.SetsockoptTimeval(front, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
		unix.SetsockoptTimeval(front, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		for len(in) > 0 && sent < 64 {
			h := in[0]
			in = in[1:]
			if len(in) == 0 && h&1 == 1 && sent > 0 {
				shutdown = true
				break
			}
			n := int(h >> 1)
			var pkt []byte
			if n == 127 {
				pkt = make([]byte, maxPacket+1)
				copy(pkt, in)
			} else {
				n = min(n, len(in))
				pkt, in = in[:n], in[n:]
			}
			var oob []byte
			if h&1 == 1 {
				oob = unix.UnixRights(null)
			}
			if err := unix.Sendmsg(front, pkt, oob, nil, 0); err != nil {
				t.Fatalf("send packet %d: %v", sent, err)
			}
			sent++
		}

		// The parent still serves: a kill of an unknown worker is answered.
		const probe = 0xfffffff0
		if err := unix.Sendmsg(front, request{Op: opKill, Seq: probe, ID: 1}.encode(), nil, nil, 0); err != nil {
			t.Fatalf("send probe: %v", err)
		}
		buf := make([]byte, maxPacket)
		oob := make([]byte, unix.CmsgSpace(4*8))
		for i := 0; ; i++ {
			n, oobn, _, _, err := unix.Recvmsg(front, buf, oob, unix.MSG_CMSG_CLOEXEC)
			if err != nil || n == 0 {
				t.Fatalf("no answer to the probe after %d packets (reply %d): %v", sent, i, err)
			}
			if oobn > 0 {
				t.Fatalf("descriptors in a reply to a refused request")
			}
			rep, err := decodeReply(buf[:n])
			if err != nil {
				t.Fatalf("reply %d: %v", i, err)
			}
			if rep.Seq == probe {
				break
			}
			if i > sent {
				t.Fatalf("more replies than requests")
			}
		}

		if shutdown {
			unix.Shutdown(front, unix.SHUT_WR)
		} else {
			unix.Close(front)
			front = -1
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("ServeControl at the end: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ServeControl did not notice the end of the stream")
		}
	})
}
