// Runs in: the parent (start) and the front (serve).

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/metrics"
	"github.com/vlmtpd/vlmtpd/internal/sdnotify"
	"github.com/vlmtpd/vlmtpd/internal/stderrlog"
	"github.com/vlmtpd/vlmtpd/privsep"
	"github.com/vlmtpd/vlmtpd/server"
	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/worker"
)

func init() {
	commands["serve"] = command{"run the LMTP server in the foreground", runServe}
}

const defaultConfig = "/etc/vlmtpd/vlmtpd.toml"

func runServe(args []string) int {
	cfg, _, code := loadConfig("serve", defaultConfig, args)
	if cfg == nil {
		return code
	}
	return start(cfg, func() (*config.Config, error) { return config.Load(cfg.Path) }, []string{"front", "-config", cfg.Path})
}

// start runs serve's processes for cfg: as root the parent, which starts
// the front as the configured user with frontArgs (the hidden front
// command); otherwise only the front, which then starts its workers itself
// as its own uid (single-user mode).
func start(cfg *config.Config, load func() (*config.Config, error), frontArgs []string) int {
	if os.Geteuid() == 0 {
		return runParent(cfg, frontArgs, stderrlog.Open(cfg.LogLevel, cfg.LogFormat))
	}
	return serve(cfg, load, nil)
}

// reload applies a re-read configuration to new sessions, or keeps the
// running one if the new one is invalid, and returns the one in force.
func reload(srv *server.Server, cur *config.Config, load func() (*config.Config, error), log *slog.Logger) *config.Config {
	sdnotify.Notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	defer sdnotify.Notify("READY=1")
	next, err := load()
	if err == nil {
		err = srv.Reload(next)
	}
	if err != nil {
		log.Error("reload refused; the running configuration stays in force", "error", err)
		return cur
	}
	if keys := config.RestartOnly(cur, next); len(keys) > 0 {
		log.Warn("reloaded; these settings changed but take effect only at a restart", "settings", keys)
	} else {
		log.Info("reloaded: new sessions use the new configuration")
	}
	return next
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants.
func monotonicUsec() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}

// loadConfig parses a subcommand's flags (-config, defaulting to def) and
// loads the configuration. On failure, or after -h, cfg is nil and code is
// the exit code.
func loadConfig(name, def string, args []string) (cfg *config.Config, fs *flag.FlagSet, code int) {
	fs = newFlagSet(name)
	path := fs.String("config", def, "configuration file")
	if code, ok := parseFlags(fs, args); !ok {
		return nil, fs, code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd:", err)
		return nil, fs, 1
	}
	return cfg, fs, 0
}

// serve is the front: it runs the server on a loaded configuration until
// SIGTERM or SIGINT; SIGHUP reloads it with load. fr is what the root
// parent passed (listeners, the control socket that starts workers), nil
// in single-user mode, where the front opens and starts them itself.
func serve(cfg *config.Config, load func() (*config.Config, error), fr *privsep.Front) int {
	log := stderrlog.Open(cfg.LogLevel, cfg.LogFormat)
	fail := func(err error) int {
		log.Error("startup failed", "error", err)
		return 1
	}
	var (
		ls         []net.Listener
		ml         net.Listener
		spawn      worker.Spawner
		parentGone = make(chan struct{})
		err        error
	)
	if fr != nil {
		ls, ml, spawn = fr.Listeners, fr.Metrics, fr.Control
		go fr.Control.WatchParent(func() { close(parentGone) })
	} else {
		if ls, _, err = openListeners(cfg, log); err != nil {
			return fail(err)
		}
		if ml, err = server.ListenMetrics(cfg); err != nil {
			return fail(err)
		}
		spawn = &worker.LocalSpawner{Config: workerConfig(cfg)}
	}
	d, closeDeliverer, err := newDeliverer(cfg, spawn, log)
	if err != nil {
		return fail(err)
	}
	defer closeDeliverer()
	srv, err := server.New(cfg, d, log)
	if err != nil {
		return fail(err)
	}
	if ml != nil {
		pool, _ := d.(*worker.Pool)
		// The parent reaps the workers it started; in single-user mode,
		// this process.
		reaper := os.Getpid()
		if fr != nil {
			reaper = os.Getppid()
		}
		m := metrics.New(metrics.Sources{Server: srv, Pool: pool, WorkerReaper: reaper, Log: log})
		srv.SetObserver(m)
		go func() {
			if err := m.Serve(ml); err != nil {
				log.Error("metrics server stopped", "metrics_listen", cfg.MetricsListen, "error", err)
			}
		}()
		defer m.Close()
	}

	// The exit code: 0 for a stop that was asked for, 1 when the
	// privileged parent went away, so Restart=on-failure restarts us.
	exit := make(chan int, 1)
	stopNotify := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		code := 0
	wait:
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					cfg = reload(srv, cfg, load, log)
					continue
				}
				log.Info("shutting down", "signal", sig.String(), "shutdown_timeout", cfg.ShutdownTimeout)
				break wait
			case <-parentGone:
				log.Error("the privileged parent is gone; shutting down")
				code = 1
				break wait
			}
		}
		close(stopNotify)
		sdnotify.Notify("STOPPING=1\nSTATUS=stopping: finishing the transactions in progress")
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("shutdown timeout reached: deliveries not yet writing were cancelled", "error", err)
		}
		exit <- code
	}()
	started := []any{"version", versionString(), "listen", cfg.Listen, "uid", os.Getuid()}
	if ml != nil {
		started = append(started, "metrics_listen", cfg.MetricsListen)
	}
	log.Info("vlmtpd started", started...)
	go notifyReady(srv, log, stopNotify)
	if err := srv.Serve(ls); err != nil {
		return fail(err)
	}
	code := <-exit
	log.Info("vlmtpd stopped", "exit", code)
	return code
}
