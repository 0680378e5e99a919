// Runs in: every process.

package stderrlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"log/syslog"
	"os"
	"os/signal"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Open returns the process's logger on its stderr, made safe for a
// delivery agent: see Writer. Every process role (the root parent, the
// front, the workers) calls it once at start; later calls share the
// same Writer.
func Open(level, format string) *slog.Logger {
	stderrOnce.Do(func() {
		// Without a handler for SIGPIPE, Go kills the process when a write
		// to fd 1 or 2 meets a closed pipe (os/signal: "SIGPIPE"). With
		// one, the write just fails with EPIPE, which the Writer handles.
		// Notify rather than Ignore: an ignored signal would stay ignored
		// in every program the process executes.
		signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
		stderrWriter = NewWriter(os.Stderr, WriterOptions{Format: format})
		// Libraries that use the standard logger go the same way.
		log.SetOutput(stderrWriter)
	})
	return New(stderrWriter, level, format)
}

var (
	stderrOnce   sync.Once
	stderrWriter *Writer
)

// WriterOptions tune a Writer; zero values get the defaults.
type WriterOptions struct {
	// Format is the log format ("json" or text), for the Writer's own
	// lines (how many were dropped).
	Format string
	// Wait is how long Write waits for its line to be written while the
	// stream keeps up; default 20ms. Once a line has waited that long the
	// stream counts as stalled and Write stops waiting until it catches up.
	Wait time.Duration
	// Queue is how many lines may wait for a stalled stream; beyond that
	// they are dropped and counted. Default 1024.
	Queue int
	// Fallback is where lines go once a write to the stream has failed;
	// default the local syslog socket (/dev/log, facility mail, tag
	// vlmtpd). If it returns an error, lines are dropped from then on.
	Fallback func() (LineWriter, error)
}

// LineWriter takes one log line at a time (syslog).
type LineWriter interface {
	WriteLine(line []byte) error
}

// Writer is an io.Writer for log lines that never stops, and never holds
// up for long, the process writing them: a log line must not cost a
// delivery.
//
//   - Lines are written by one goroutine. Write hands its line over and
//     waits up to Wait for it to be written, so that a healthy stream gets
//     every line in order before Write returns (nothing lost at exit). When
//     the stream stalls (a reader that stopped reading), Write stops
//     waiting, lines queue up to Queue and further ones are dropped; once
//     the stream catches up a line says how many were dropped.
//   - The first write error (EPIPE: the reader went away; EBADF, EIO, ...)
//     ends writing to the stream for good: lines go to Fallback from then
//     on, and the first one there says why. Write itself never fails.
type Writer struct {
	out      io.Writer
	opts     WriterOptions
	q        chan item
	stalled  atomic.Bool
	dropped  atomic.Int64
	fallback LineWriter // set by the writing goroutine after a failure
	failed   bool       // the stream failed; only the writing goroutine uses it
	lost     bool       // no fallback either: lines are dropped
}

type item struct {
	line []byte
	done chan struct{} // closed once written (or dropped); nil: nobody waits
}

// NewWriter starts a Writer on out.
func NewWriter(out io.Writer, opts WriterOptions) *Writer {
	if opts.Wait <= 0 {
		opts.Wait = 20 * time.Millisecond
	}
	if opts.Queue <= 0 {
		opts.Queue = 1024
	}
	if opts.Fallback == nil {
		opts.Fallback = dialSyslog
	}
	w := &Writer{out: out, opts: opts, q: make(chan item, opts.Queue)}
	go w.run()
	return w
}

// Write queues one log line (slog writes each record with one call). It
// always reports success: there is nobody to tell about a failure.
func (w *Writer) Write(p []byte) (int, error) {
	it := item{line: bytes.Clone(p)}
	wait := !w.stalled.Load()
	if wait {
		it.done = make(chan struct{})
	}
	select {
	case w.q <- it:
	default:
		w.dropped.Add(1)
		return len(p), nil
	}
	if wait {
		t := time.NewTimer(w.opts.Wait)
		select {
		case <-it.done:
		case <-t.C:
			w.stalled.Store(true)
		}
		t.Stop()
	}
	return len(p), nil
}

// Dropped is how many lines were dropped so far (a full queue, or nowhere
// left to write them).
func (w *Writer) Dropped() int64 { return w.dropped.Load() }

func (w *Writer) run() {
	reported := int64(0)
	for it := range w.q {
		w.emit(it.line)
		if it.done != nil {
			close(it.done)
		}
		if len(w.q) == 0 {
			// Caught up: report what was dropped meanwhile, wait again.
			if d := w.dropped.Load(); d > reported && !w.lost {
				w.emit(w.ownLine(slog.LevelWarn, "log lines were dropped: the log stream was blocked or gone",
					"dropped", d-reported, "dropped_total", d))
				reported = d
			}
			w.stalled.Store(false)
		}
	}
}

// emit writes one line to the stream, or where lines go after it failed.
func (w *Writer) emit(line []byte) {
	if !w.failed {
		_, err := w.out.Write(line)
		if err == nil {
			return
		}
		w.failed = true
		fb, ferr := w.opts.Fallback()
		if ferr != nil {
			w.lost = true
			w.dropped.Add(1)
			return
		}
		w.fallback = fb
		fb.WriteLine(w.ownLine(slog.LevelError, "writing the log to stderr failed; logging to syslog from now on", "error", err.Error()))
	}
	if w.lost || w.fallback.WriteLine(line) != nil {
		w.dropped.Add(1)
	}
}

// ownLine formats one of the Writer's own lines like the process's others.
func (w *Writer) ownLine(level slog.Level, msg string, args ...any) []byte {
	var b bytes.Buffer
	New(&b, "debug", w.opts.Format).Log(context.Background(), level, msg, append(args, "pid", os.Getpid())...)
	return b.Bytes()
}

// syslogWriter sends lines to the local syslog daemon (the journal's
// /dev/log under systemd) with the priority of the line's level.
type syslogWriter struct{ w *syslog.Writer }

func dialSyslog() (LineWriter, error) {
	w, err := syslog.Dial("", "", syslog.LOG_MAIL|syslog.LOG_INFO, "vlmtpd")
	if err != nil {
		return nil, fmt.Errorf("no local syslog: %w", err)
	}
	return syslogWriter{w}, nil
}

func (s syslogWriter) WriteLine(line []byte) error {
	// syslog adds its own header: a postfix-format line's goes.
	line = postfixHeader.ReplaceAll(line, nil)
	msg := string(bytes.TrimRight(line, "\n"))
	switch levelOf(line) {
	case slog.LevelDebug:
		return s.w.Debug(msg)
	case slog.LevelWarn:
		return s.w.Warning(msg)
	case slog.LevelError:
		return s.w.Err(msg)
	}
	return s.w.Info(msg)
}

// levelOf finds the level of a line that New's handlers wrote: text
// "level=WARN" or JSON "level":"WARN", near the start; in the postfix
// format "warning: " or "error: " after the queue id, if any.
func levelOf(line []byte) slog.Level {
	head := line[:min(len(line), 80)]
	for _, l := range []slog.Level{slog.LevelError, slog.LevelWarn, slog.LevelDebug} {
		s := l.String()
		if bytes.Contains(head, []byte("level="+s)) || bytes.Contains(head, []byte(`"level":"`+s)) {
			return l
		}
	}
	if m := postfixLevel.FindSubmatch(head); m != nil {
		if string(m[1]) == "error" {
			return slog.LevelError
		}
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// postfixLevel finds the postfix format's level word.
var postfixLevel = regexp.MustCompile(`^(?:\S+: )?(warning|error): `)
