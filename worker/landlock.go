// Runs in: a worker.

package worker

import (
	"debug/elf"
	"fmt"
	"io"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock confines a worker beyond what its uid allows: it may create,
// write, truncate, link or remove files only beneath the mailbox base,
// make no TCP connection, connect to no abstract UNIX socket and signal no
// process outside itself, and execute no program but itself (to
// re-execute once confined) and its ELF interpreter: it runs nothing
// (Sieve's redirects and vacation replies are submitted by the front). A
// worker holding a real user's uid thus cannot change that user's other
// files or start a shell even if it is subverted. Reading stays allowed
// everywhere the uid may: its libraries live in places that differ
// between systems, and a worker reads nothing its uid could not read
// anyway.
//
// Landlock restricts the calling thread only; the worker applies it on a
// locked thread just before it re-executes itself, and every thread of the
// new image inherits it. No library does this for us without pulling in
// much more; the system calls are three.

// sandboxNone and sandboxLandlock name the outcome for the worker's log.
const (
	sandboxNone     = "none"
	sandboxLandlock = "landlock"
)

// Access rights by the Landlock ABI version that introduced them.
const (
	fsRightsV1 = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR |
		unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	// What a mailbox writer does beneath the base: Maildir files are
	// linked from tmp/ into new/ (REFER), an mbox is truncated back on
	// failure (TRUNCATE), dotlocks are created and removed.
	mailboxRights = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG |
		unix.LANDLOCK_ACCESS_FS_REFER | unix.LANDLOCK_ACCESS_FS_TRUNCATE
	readRights = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	// For the two files that may be executed (a rule on a file takes
	// only file rights).
	execRights = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_READ_FILE
)

// executables are the files a confined worker may still execute: the
// running binary and, if it is dynamically linked, its ELF interpreter,
// which execve opens for execution too. Shared libraries are mapped by
// the interpreter with plain reads, which Landlock does not check.
func executables() ([]string, error) {
	files := []string{SelfExe}
	f, err := elf.Open(SelfExe)
	if err != nil {
		return nil, fmt.Errorf("read the running binary: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
		if err != nil {
			return nil, fmt.Errorf("read the binary's interpreter: %w", err)
		}
		files = append(files, strings.TrimRight(string(b), "\x00"))
	}
	return files, nil
}

func handledFS(abi int) uint64 {
	h := uint64(fsRightsV1)
	if abi >= 2 {
		h |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		h |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		h |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	return h
}

// landlockABI returns the kernel's Landlock ABI version, 0 if it has none
// or it is disabled.
func landlockABI() int {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return 0
	}
	return int(v)
}

// sandboxThisThread confines the calling thread (which must already have
// no_new_privs) to base as described above. It returns sandboxNone when
// the kernel has no Landlock, and an error when Landlock is there but the
// confinement could not be set up: the worker then refuses to run.
func sandboxThisThread(base string) (string, error) {
	abi := landlockABI()
	if abi < 1 {
		return sandboxNone, nil
	}
	attr := unix.LandlockRulesetAttr{Handled_access_fs: handledFS(abi)}
	size := unsafe.Sizeof(attr.Handled_access_fs)
	if abi >= 4 {
		attr.Handled_access_net = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
		size += unsafe.Sizeof(attr.Handled_access_net)
	}
	if abi >= 6 {
		attr.Scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
		size += unsafe.Sizeof(attr.Scoped)
	}
	rfd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if errno != 0 {
		return "", fmt.Errorf("landlock_create_ruleset: %w", errno)
	}
	defer unix.Close(int(rfd))
	type rule struct {
		path   string
		rights uint64
		flags  int
	}
	rules := []rule{
		{"/", readRights, unix.O_DIRECTORY},
		{base, mailboxRights, unix.O_DIRECTORY},
	}
	exes, err := executables()
	if err != nil {
		return "", err
	}
	for _, p := range exes {
		rules = append(rules, rule{p, execRights, 0})
	}
	for _, r := range rules {
		fd, err := unix.Open(r.path, unix.O_PATH|r.flags|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("open %s: %w", r.path, err)
		}
		pb := unix.LandlockPathBeneathAttr{Allowed_access: r.rights & attr.Handled_access_fs, Parent_fd: int32(fd)}
		_, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, rfd, unix.LANDLOCK_RULE_PATH_BENEATH,
			uintptr(unsafe.Pointer(&pb)), 0, 0, 0)
		unix.Close(fd)
		if errno != 0 {
			return "", fmt.Errorf("landlock_add_rule %s: %w", r.path, errno)
		}
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, rfd, 0, 0); errno != 0 {
		return "", fmt.Errorf("landlock_restrict_self: %w", errno)
	}
	return sandboxLandlock, nil
}
