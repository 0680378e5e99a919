// Runs in: the front.

package main

import (
	"log/slog"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/sdnotify"
	"github.com/vlmtpd/vlmtpd/server"
)

// statusInterval is how often the status line systemd shows is renewed.
const statusInterval = 10 * time.Second

// notifyReady tells systemd (Type=notify; run by the front, the process
// that knows) that the service is ready, then keeps its status line and,
// if WatchdogSec is set, its watchdog fed until stop is closed.
func notifyReady(srv *server.Server, log *slog.Logger, stop <-chan struct{}) {
	if err := sdnotify.Notify("READY=1\nSTATUS=" + srv.Stats().String()); err != nil {
		log.Warn("cannot notify systemd", "error", err)
		return
	}
	status := time.NewTicker(statusInterval)
	defer status.Stop()
	var watchdog <-chan time.Time
	if d := sdnotify.WatchdogInterval(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		watchdog = t.C
	}
	for {
		select {
		case <-stop:
			return
		case <-status.C:
			sdnotify.Notify("STATUS=" + srv.Stats().String())
		case <-watchdog:
			sdnotify.Notify("WATCHDOG=1")
		}
	}
}
