// Runs in: a worker, as the mailbox owner.

package store

import (
	"hash/fnv"
	"os"
	"strings"
	"sync"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
	"golang.org/x/sys/unix"
)

// processID names a process beyond its pid, so that a record it leaves
// behind can be told from one of a later process that got the same pid.
// Host and boot are kept as 32-bit hashes, so that a record fits within
// an ext4 inode's space for attributes (see appendRecord).
type processID struct {
	host  uint32 // hash of os.Hostname: pids mean nothing on another host
	boot  uint32 // hash of the kernel's boot id, 0 if unreadable
	pid   int
	start uint64 // start time in clock ticks after boot, 0 if unknown
}

// self is this process's identity, read once.
var self = sync.OnceValue(func() processID {
	id := processID{pid: os.Getpid()}
	host, _ := os.Hostname()
	id.host = hash32(host)
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		id.boot = hash32(strings.TrimSpace(string(b)))
	}
	id.start, _ = proctree.StartTime(id.pid)
	return id
})

// hash32 is FNV-1a, 0 only for "".
func hash32(s string) uint32 {
	if s == "" {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(s))
	return max(h.Sum32(), 1)
}

// pidGone reports whether no process with this pid exists in our pid
// namespace. EPERM (another uid's process, or one outside a Landlock
// signal scope) means it exists; only ESRCH proves it gone. A zombie
// counts as existing until its parent reaps it.
func pidGone(pid int) bool {
	if pid <= 0 {
		return false
	}
	return unix.Kill(pid, 0) == unix.ESRCH
}

// gfs2Magic is GFS2's statfs type, which x/sys/unix does not name.
const gfs2Magic = 0x01161970

// networkFS reports whether the filesystem holding fd is shared between
// hosts, where a pid in a lock file may be another host's.
func networkFS(fd int) bool {
	var sf unix.Statfs_t
	if err := unix.Fstatfs(fd, &sf); err != nil {
		return true // unknown: assume the worst
	}
	switch uint32(sf.Type) {
	case unix.NFS_SUPER_MAGIC, unix.SMB_SUPER_MAGIC, unix.SMB2_SUPER_MAGIC, unix.CIFS_SUPER_MAGIC,
		unix.FUSE_SUPER_MAGIC, unix.AFS_SUPER_MAGIC, unix.AFS_FS_MAGIC, unix.CEPH_SUPER_MAGIC,
		unix.CODA_SUPER_MAGIC, unix.V9FS_MAGIC, gfs2Magic, unix.OCFS2_SUPER_MAGIC:
		return true
	}
	return false
}
