// Runs in: every boundary: the front, the parent and a worker.

package store

import "fmt"

// MaxID is the largest uid or gid: uid_t is 32 bits and (uid_t)-1 means
// "unchanged" to setresuid(2); Postfix's virtual(8) accepts the rest.
const MaxID = 1<<32 - 2

// IDPolicy is the one rule on which ids may own mail, checked at every
// trust boundary: at RCPT (the resolver), by the root parent before it
// starts a worker, by the worker spawners and by the worker itself. Each
// boundary adds only its own rule (a single-user front can only deliver
// as itself; a worker only as the ids it was started with).
type IDPolicy struct {
	// MinUID is virtual_minimum_uid; below 1 it counts as 1.
	MinUID int
}

// Check refuses uid 0, gid 0, negative and out-of-range ids, and uids
// below the minimum.
func (p IDPolicy) Check(uid, gid int) error {
	switch {
	case uid <= 0:
		return fmt.Errorf("uid %d is never allowed", uid)
	case gid <= 0:
		return fmt.Errorf("gid %d is never allowed", gid)
	case uid > MaxID || gid > MaxID:
		return fmt.Errorf("uid %d or gid %d is out of range", uid, gid)
	case uid < p.MinUID:
		return fmt.Errorf("uid %d is below virtual_minimum_uid %d", uid, p.MinUID)
	}
	return nil
}
