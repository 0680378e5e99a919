package worker

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The worker must never get a descriptor through which it could change a
// body other recipients still read: a write-sealed memfd is safe as is,
// anything writable is reopened read-only.
func TestReadOnlyFd(t *testing.T) {
	mfd, err := unix.MemfdCreate("t", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Skip("no memfd:", err)
	}
	sealed := os.NewFile(uintptr(mfd), "sealed")
	defer sealed.Close()
	sealed.WriteString("body\n")
	if _, err := unix.FcntlInt(sealed.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK); err != nil {
		t.Fatal(err)
	}
	fd, done, err := readOnlyFd(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if fd != int(sealed.Fd()) {
		t.Errorf("a sealed memfd was reopened")
	}
	if _, err := unix.Pwrite(fd, []byte("X"), 0); err == nil {
		t.Error("the sealed body could be written")
	}
	done()

	rw, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	fd, done, err = readOnlyFd(rw)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if fd == int(rw.Fd()) {
		t.Fatal("a writable spool file was passed as is")
	}
	if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); flags&unix.O_ACCMODE != unix.O_RDONLY {
		t.Errorf("reopened descriptor is not read-only: flags %#x", flags)
	}

	ro, err := os.Open(rw.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if fd, done, err := readOnlyFd(ro); err != nil || fd != int(ro.Fd()) {
		t.Errorf("a read-only spool file: fd %d, %v; want its own fd %d", fd, err, ro.Fd())
	} else {
		done()
	}
}
