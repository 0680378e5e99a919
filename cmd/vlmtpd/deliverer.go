// Runs in: the front (and the quota command).

package main

import (
	"log/slog"

	"github.com/vlmtpd/vlmtpd/internal/stderrlog"
	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/worker"
)

// newDeliverer returns what writes the mailboxes: a pool of long-lived
// worker processes, one kind per (uid, gid), started by spawn: the root
// parent (through the control socket) or, in single-user mode, this
// process itself, as its own uid.
func newDeliverer(cfg *config.Config, spawn worker.Spawner, log *slog.Logger) (store.Deliverer, func(), error) {
	p := worker.NewPool(spawn, worker.PoolOptions{
		IdleTimeout:     cfg.WorkerIdleTimeout,
		MaxDeliveries:   cfg.WorkerMaxUse,
		MaxWorkers:      cfg.WorkerLimit,
		OwnerWorkers:    cfg.WorkerOwnerLimit,
		DeliveryTimeout: cfg.DeliveryTimeout,
		Logger:          log,
	})
	return p, func() { p.Close() }, nil
}

// workerConfig is the part of the configuration a worker is started with.
func workerConfig(cfg *config.Config) worker.Config {
	return worker.Config{
		Base:       cfg.VirtualMailboxBase,
		LogLevel:   cfg.LogLevel,
		LogFormat:  cfg.LogFormat,
		LogJournal: stderrlog.Journal,
		Writer: store.WriterOptions{
			Hostname:       cfg.Hostname,
			LockMethods:    cfg.VirtualMailboxLock,
			LockTimeout:    cfg.LockTimeout(),
			StaleLockTime:  cfg.StaleLockTime,
			SingleInstance: cfg.SingleInstanceDelivery,
			Sieve: store.SieveOptions{
				Before: cfg.SieveBefore, After: cfg.SieveAfter, GlobalDir: cfg.SieveGlobalDir,
				Separator:    firstDelimiter(cfg.RecipientDelimiter),
				MaxRedirects: cfg.SieveMaxRedirects, MaxActions: cfg.SieveMaxActions,
				MaxScriptSize: cfg.SieveMaxScriptSize, MaxCPUTime: cfg.SieveMaxCPUTime,
			},
		},
	}
}

// firstDelimiter is the subaddress separator Sieve uses: the first of
// recipient_delimiter's characters (the sieve package takes one).
func firstDelimiter(d string) string {
	if d == "" {
		return ""
	}
	return d[:1]
}
