package main

import (
	"log/slog"

	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/store"
)

// newDeliverer returns what writes the mailboxes: for now the in-process
// writer, which serves only mailboxes owned by this process's uid.
func newDeliverer(cfg *config.Config, log *slog.Logger) (store.Deliverer, func(), error) {
	l, err := store.NewLocal(cfg.VirtualMailboxBase, store.LocalOptions{
		Hostname:      cfg.Hostname,
		LockMethods:   cfg.VirtualMailboxLock,
		LockTimeout:   cfg.LockTimeout(),
		StaleLockTime: cfg.StaleLockTime,
		Logger:        log,
	})
	if err != nil {
		return nil, nil, err
	}
	return l, func() { l.Close() }, nil
}
