// Runs in: every vlmtpd process.

package main

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Every vlmtpd process is called vlmtpd (ps -C vlmtpd, pgrep), though the
// front and the workers run /proc/self/exe, which would name them "exe".
// Init runs on the main thread, whose name is the process's; their role
// is in argv[0] ("vlmtpd: front", "vlmtpd: worker 5000:5000").
func init() {
	name := []byte("vlmtpd\x00")
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
}
