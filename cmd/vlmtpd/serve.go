package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

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

// serve runs the server on a loaded configuration until SIGTERM or SIGINT.
func serve(cfg *config.Config) int {
	log := stderrlog.New(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	fail := func(err error) int {
		log.Error("startup failed", "error", err)
		return 1
	}
	if code, done := privsepRole(cfg, log); done {
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

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		for sig == syscall.SIGHUP {
			// Table files are re-read when they change; nothing else is
			// reloadable yet, and a hang-up must not stop delivery.
			log.Info("SIGHUP: table files reload by themselves when changed; restart to apply configuration changes")
			sig = <-sigs
		}
		log.Info("shutting down", "signal", sig.String())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	log.Info("vlmtpd started", "version", versionString(), "listen", cfg.Listen, "uid", os.Getuid())
	if err := srv.Serve(ls); err != nil {
		return fail(err)
	}
	log.Info("vlmtpd stopped")
	return 0
}
