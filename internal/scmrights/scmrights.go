// Runs in: the front, the parent and a worker.

// Package scmrights reads the file descriptors that arrive with a message
// on a unix socket (SCM_RIGHTS control messages), for the privsep control
// socket and the store worker protocol.
package scmrights

import "golang.org/x/sys/unix"

// Parse returns the descriptors carried by the control-message bytes oob
// that Recvmsg filled in. The caller owns them and must close them.
// Messages that are not SCM_RIGHTS are skipped; if oob cannot be parsed at
// all, Parse returns nil.
func Parse(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if f, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, f...)
		}
	}
	return fds
}

// Close closes every descriptor in fds, for a message that is refused or
// not expected to carry any.
func Close(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
