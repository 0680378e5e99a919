// Runs in: an administrator's command (one-shot process).

package main

import (
	"context"
	"fmt"
	"os"

	"github.com/vlmtpd/vlmtpd/internal/metrics"
	"github.com/vlmtpd/vlmtpd/server/config"
)

func init() {
	commands["stats"] = command{"print a running server's counters", runStats}
}

func runStats(args []string) int {
	fs := newFlagSet("stats")
	path := fs.String("config", defaultConfig, "configuration file")
	raw := fs.Bool("raw", false, "print the Prometheus text of the metrics endpoint")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd stats:", err)
		return 1
	}
	if cfg.MetricsListen == "" {
		fmt.Fprintf(os.Stderr, "vlmtpd stats: metrics_listen is not set in %s: the counters are read from the metrics endpoint. Set e.g. metrics_listen = \"inet:127.0.0.1:9424\" and restart vlmtpd.\n", cfg.Path)
		return 1
	}
	if *raw {
		if err := metrics.ScrapeRaw(context.Background(), cfg.MetricsListen, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "vlmtpd stats:", err)
			return 1
		}
		return 0
	}
	fams, err := metrics.Scrape(context.Background(), cfg.MetricsListen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd stats:", err)
		return 1
	}
	metrics.WriteSummary(os.Stdout, fams)
	return 0
}
