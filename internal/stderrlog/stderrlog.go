// Package stderrlog builds the logger of vlmtpd's processes from the
// log_level and log_format settings, so that the front and its delivery
// workers, which write to the same stderr, log in one format.
package stderrlog

import (
	"io"
	"log/slog"
)

// New returns a logger writing to w (the process's stderr) at level
// ("debug", "info", "warn" or "error"; anything else means info) in format
// ("json", else slog's key=value text).
func New(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
