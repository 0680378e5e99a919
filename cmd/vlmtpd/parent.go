// Runs in: the parent (root).
//
// serve (or quickstart) started as root
// opens the listeners and hands everything else to the front, which it
// starts with the hidden front command.

package main

import (
	"log/slog"
	"net"

	"github.com/vlmtpd/vlmtpd/internal/sdnotify"
	"github.com/vlmtpd/vlmtpd/parent"
	"github.com/vlmtpd/vlmtpd/server"
	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/store"
)

// runParent is the root parent of serve: it opens the listeners (and
// metrics_listen's), then parent.Run starts the front as the configured
// user with frontArgs (the front command and its flags) and from then on
// only starts workers for it.
func runParent(cfg *config.Config, frontArgs []string, log *slog.Logger) int {
	ls, activated, err := openListeners(cfg, log)
	if err != nil {
		log.Error("startup failed", "error", err)
		return 1
	}
	// Opened here, as root, like the LMTP sockets: the front, which
	// serves it, may not be allowed to bind the address or create the
	// socket in its directory.
	ml, err := server.ListenMetrics(cfg)
	if err != nil {
		for _, l := range ls {
			l.Close()
		}
		log.Error("startup failed", "error", err)
		return 1
	}
	return parent.Run(parent.Options{
		Metrics: ml,
		// systemd owns activated sockets: their files stay.
		KeepSocketFiles: activated,
		ConfigPath:      cfg.Path,
		User:            cfg.User,
		FrontArgs:       frontArgs,
		Listeners:       ls,
		SpoolDirectory:  cfg.SpoolDirectory,
		Policy:          store.IDPolicy{MinUID: cfg.VirtualMinimumUID},
		Worker:          workerConfig(cfg),
		Log:             log.With("role", "parent"),
	})
}

// openListeners takes the sockets systemd passed (socket activation),
// else opens those of the listen setting.
func openListeners(cfg *config.Config, log *slog.Logger) (ls []net.Listener, activated bool, err error) {
	ls, names, err := sdnotify.Listeners()
	if err != nil || ls != nil {
		if ls != nil {
			log.Info("using the sockets systemd passed; the listen setting is not used", "sockets", names)
		}
		return ls, ls != nil, err
	}
	ls, err = server.Listen(cfg)
	return ls, false, err
}
