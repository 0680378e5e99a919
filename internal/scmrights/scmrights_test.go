package scmrights

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// sendRecv passes the descriptors of files over a socket pair and returns
// the control bytes the receiver got.
func sendRecv(t *testing.T, files ...*os.File) []byte {
	t.Helper()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	var fds []int
	for _, f := range files {
		fds = append(fds, int(f.Fd()))
	}
	if err := unix.Sendmsg(sp[0], []byte("x"), unix.UnixRights(fds...), nil, 0); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 16), make([]byte, unix.CmsgSpace(4*4))
	_, oobn, _, _, err := unix.Recvmsg(sp[1], buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	return oob[:oobn]
}

func TestParseAndClose(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fds := Parse(sendRecv(t, r, w))
	if len(fds) != 2 {
		t.Fatalf("Parse = %v, want 2 descriptors", fds)
	}
	// The received write end reaches the pipe we read from.
	if _, err := unix.Write(fds[1], []byte("hi")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2)
	if _, err := r.Read(got); err != nil || string(got) != "hi" {
		t.Fatalf("read %q, %v", got, err)
	}
	Close(fds)
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("fd %d still open after Close (err %v)", fd, err)
		}
	}
}

func TestParseNothing(t *testing.T) {
	if fds := Parse(nil); fds != nil {
		t.Errorf("Parse(nil) = %v", fds)
	}
	if fds := Parse([]byte{1, 2, 3}); fds != nil {
		t.Errorf("Parse(garbage) = %v", fds)
	}
}
