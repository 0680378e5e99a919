// Runs in: a worker, as the mailbox owner.

package store

import (
	"log/slog"
	"time"
)

// WriterOptions configure a Writer (and the same writer inside a
// worker process).
type WriterOptions struct {
	// Hostname goes into Maildir file names; default os.Hostname().
	Hostname string
	// LockMethods is virtual_mailbox_lock: some of LockMethods, applied
	// in this order; default DefaultLockMethods.
	LockMethods []string
	// LockTimeout bounds the wait for all mbox locks together; default
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// StaleLockTime is stale_lock_time, the age after which a dotlock is
	// taken to be left over by a crash and removed. Zero: never; only a
	// dotlock whose writer's pid is gone is removed.
	StaleLockTime time.Duration
	Logger        *slog.Logger
	// SingleInstance is single_instance_delivery: the Maildir recipients
	// of one delivery without a Sieve filter share one file, hard-linked
	// into each new/, without per-recipient Delivered-To and X-Original-To
	// (store/single.go).
	SingleInstance bool
	// Sieve configures filtering; with no administrator scripts, only
	// recipients with a script (Recipient.Sieve) are filtered.
	Sieve SieveOptions
}

// SieveOptions are Pigeonhole's settings as vlmtpd names them.
type SieveOptions struct {
	// Before and After are sieve_before and sieve_after: absolute paths
	// of the administrator's scripts, read by the worker (so readable by
	// every mailbox owner).
	Before, After []string
	// GlobalDir holds the scripts of include :global "name" (name.sieve),
	// Pigeonhole's sieve_global; "" makes :global includes an error.
	GlobalDir string
	// Separator is recipient_delimiter, for the subaddress extension.
	Separator string
	// MaxRedirects, MaxActions and MaxScriptSize are sieve_max_redirects,
	// sieve_max_actions and sieve_max_script_size (default
	// DefaultSieveMaxBytes); zero limits are the sieve package's.
	MaxRedirects, MaxActions, MaxScriptSize int
	// MaxCPUTime is sieve_max_cpu_time: the longest one message's scripts
	// may run; default DefaultSieveCPUTime.
	MaxCPUTime time.Duration
}
