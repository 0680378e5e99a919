// Runs in: every process.

// Package stderrlog builds the logger of vlmtpd's processes from the
// log_level and log_format settings, so that the front and its delivery
// workers, which write to the same stderr, log in one format.
package stderrlog

import (
	"io"
	"log/slog"
)

// New returns a logger writing to w (the process's stderr) at level
// ("debug", "info", "warn" or "error"; anything else means info) in format:
// "json" (durations in seconds), "postfix" (Postfix's mail log lines, see
// postfix.go), else slog's key=value text.
func New(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		opts.ReplaceAttr = durationSeconds
		return slog.New(slog.NewJSONHandler(w, opts))
	case "postfix":
		return slog.New(newPostfixHandler(w, l))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// durationSeconds writes a duration as seconds (a float), as log
// processors expect, where slog's JSON handler writes nanoseconds.
func durationSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.Float64Value(a.Value.Duration().Seconds())
	}
	return a
}
