package store

import (
	"log/slog"
	"time"
)

// LocalOptions configure a Local deliverer (and the same writer inside a
// worker process).
type LocalOptions struct {
	// Hostname goes into Maildir file names; default os.Hostname().
	Hostname string
	// LockMethods is virtual_mailbox_lock: "fcntl", "flock", "dotlock",
	// applied in this order. Default fcntl, dotlock.
	LockMethods []string
	// LockTimeout bounds the wait for all mbox locks together; default 20s.
	LockTimeout time.Duration
	// StaleLockTime is the age after which a dotlock is removed; default 500s.
	StaleLockTime time.Duration
	Logger        *slog.Logger
}
