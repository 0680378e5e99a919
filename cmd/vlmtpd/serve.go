package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vlmtpd/vlmtpd/internal/stderrlog"
	"github.com/vlmtpd/vlmtpd/server"
	"github.com/vlmtpd/vlmtpd/server/config"
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
	return serve(cfg)
}

// loadConfig parses a subcommand's flags (-config, defaulting to def) and
// loads the configuration. On failure cfg is nil and code is the exit code.
func loadConfig(name, def string, args []string) (cfg *config.Config, fs *flag.FlagSet, code int) {
	fs = flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", def, "configuration file")
	if fs.Parse(args) != nil {
		return nil, fs, 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd:", err)
		return nil, fs, 1
	}
	return cfg, fs, 0
}

// serve runs the server on a loaded configuration until SIGTERM or SIGINT.
func serve(cfg *config.Config) int {
	log := stderrlog.Open(cfg.LogLevel, cfg.LogFormat)
	fail := func(err error) int {
		log.Error("startup failed", "error", err)
		return 1
	}
	code, done, parentGone := privsepRole(cfg, log)
	if done {
		return code
	}
	ls, err := listeners(cfg)
	if err != nil {
		return fail(err)
	}
	d, closeDeliverer, err := newDeliverer(cfg, log)
	if err != nil {
		return fail(err)
	}
	defer closeDeliverer()
	srv, err := server.New(cfg, d, log)
	if err != nil {
		return fail(err)
	}

	// The exit code: 0 for a stop that was asked for, 1 when the
	// privileged parent went away, so Restart=on-failure restarts us.
	exit := make(chan int, 1)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		code := 0
	wait:
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					// Table files are re-read when they change; nothing
					// else is reloadable yet, and a hang-up must not stop
					// delivery.
					log.Info("SIGHUP: table files reload by themselves when changed; restart to apply configuration changes")
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
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("shutdown timeout reached: deliveries not yet writing were cancelled", "error", err)
		}
		exit <- code
	}()
	log.Info("vlmtpd started", "version", versionString(), "listen", cfg.Listen, "uid", os.Getuid())
	if err := srv.Serve(ls); err != nil {
		return fail(err)
	}
	code = <-exit
	log.Info("vlmtpd stopped", "exit", code)
	return code
}
