package main

import (
	"log/slog"
	"net"
	"os"

	"github.com/vlmtpd/vlmtpd/internal/sdnotify"
	"github.com/vlmtpd/vlmtpd/privsep"
	"github.com/vlmtpd/vlmtpd/server"
	"github.com/vlmtpd/vlmtpd/server/config"
)

// privsepFront is set when this process is the front that the root parent
// started: it then uses the parent's listeners and asks the parent for
// workers.
var privsepFront *privsep.Front

// privsepRole sorts out which of serve's roles this process plays. Started
// as root it runs the parent, which starts the front as the configured user
// with the same command line, and done is true. Started by the parent it
// picks up the inherited descriptors. Otherwise (single-user mode) it does
// nothing. parentGone is closed if the front's parent dies.
func privsepRole(cfg *config.Config, log *slog.Logger) (code int, done bool, parentGone <-chan struct{}) {
	fr, err := privsep.FrontFromEnv()
	if err != nil {
		log.Error("startup failed", "error", err)
		return 1, true, nil
	}
	if fr != nil {
		privsepFront = fr
		gone := make(chan struct{})
		go fr.Control.WatchParent(func() { close(gone) })
		return 0, false, gone
	}
	if os.Geteuid() != 0 {
		return 0, false, nil
	}
	ls, activated, err := openListeners(cfg, log)
	if err != nil {
		log.Error("startup failed", "error", err)
		return 1, true, nil
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
		return 1, true, nil
	}
	return privsep.Run(privsep.Options{
		Metrics: ml,
		// systemd owns activated sockets: their files stay.
		KeepSocketFiles: activated,
		ConfigPath:      cfg.Path,
		User:            cfg.User,
		// The front runs the same command (serve or quickstart, with the
		// same flags) and so arrives at the same configuration.
		FrontArgs:      os.Args[1:],
		Listeners:      ls,
		SpoolDirectory: cfg.SpoolDirectory,
		Policy:         privsep.Policy{MinUID: cfg.VirtualMinimumUID},
		Worker:         workerConfig(cfg),
		Log:            log.With("role", "parent"),
	}), true, nil
}

// listeners returns the front's listeners: the parent's, or its own.
func listeners(cfg *config.Config, log *slog.Logger) ([]net.Listener, error) {
	if privsepFront != nil {
		return privsepFront.Listeners, nil
	}
	ls, _, err := openListeners(cfg, log)
	return ls, err
}

// metricsListener returns metrics_listen's listener (nil when it is off):
// the parent's, or its own.
func metricsListener(cfg *config.Config) (net.Listener, error) {
	if privsepFront != nil {
		return privsepFront.Metrics, nil
	}
	return server.ListenMetrics(cfg)
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
