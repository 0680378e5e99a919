package privsep

import (
	"flag"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/store"
	"golang.org/x/sys/unix"
)

// The descriptors the parent names on the front's command line come back
// as they were sent; anything else is refused.
func TestInheritArgs(t *testing.T) {
	parse := func(args ...string) ([]int, fdFlags, error) {
		fs := flag.NewFlagSet("front", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fl := inheritFlags(fs)
		if err := fs.Parse(args); err != nil {
			return nil, fl, err
		}
		ls, err := fl.check()
		return ls, fl, err
	}
	ls, fl, err := parse(InheritArgs(3, []int{4, 5}, -1)...)
	if err != nil || *fl.control != 3 || !slices.Equal(ls, []int{4, 5}) || *fl.metrics != -1 {
		t.Errorf("round trip: %d %v %d %v", *fl.control, ls, *fl.metrics, err)
	}
	ls, fl, err = parse(InheritArgs(3, []int{4}, 5)...)
	if err != nil || *fl.control != 3 || !slices.Equal(ls, []int{4}) || *fl.metrics != 5 {
		t.Errorf("round trip with metrics: %d %v %d %v", *fl.control, ls, *fl.metrics, err)
	}
	for _, bad := range [][]string{{}, {"-control-fd=1"}, {"-control-fd=x"}, {"-control-fd=3", "-listener-fds=2"},
		{"-control-fd=3", "-other=4"}, {"-control-fd=3", "-metrics-fd=1"}, {"-control-fd=3", "-metrics-fd="}, {"-control-fd=3", "-listener-fds=4,x"}} {
		if _, _, err := parse(bad...); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestWatchParent(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(os.NewFile(uintptr(fds[1]), "front"))
	defer c.Close()
	gone := make(chan struct{})
	go c.WatchParent(func() { close(gone) })
	// Traffic from a live parent is not mistaken for its death.
	unix.Write(fds[0], Reply{Seq: 1}.Encode())
	select {
	case <-gone:
		t.Fatal("gone called while the parent lives")
	case <-time.After(100 * time.Millisecond):
	}
	unix.Close(fds[0])
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("parent's exit not noticed")
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(Request{Op: OpSpawn, Seq: 1, UID: 5000, GID: 5000}.Encode())
	f.Add(Request{Op: OpKill, Seq: 2, ID: 7}.Encode())
	f.Add([]byte{OpSpawn, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if r.UID > store.MaxID || r.GID > store.MaxID {
			t.Fatalf("id out of range accepted: %+v", r)
		}
		if string(r.Encode()) != string(b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func FuzzDecodeReply(f *testing.F) {
	f.Add(Reply{Seq: 1, Code: CodeOK, ID: 3, PID: 99}.Encode())
	f.Add(Reply{Seq: 2, Code: CodeRefused, Msg: "uid 0 is not allowed"}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReply(b)
		if err != nil {
			return
		}
		if r.PID < 0 || r.Code > CodeFailed {
			t.Fatalf("accepted %+v", r)
		}
		if string(r.Encode()) != string(b) {
			t.Fatalf("re-encoding differs")
		}
	})
}
