package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// DeliverTimed reports, per recipient, a write time and an fsync time for
// both formats: every delivery fsyncs, so a zero fsync time would mean the
// measurement is not wired to the syncs.
func TestDeliverTimedReportsWriteAndFsync(t *testing.T) {
	l, base := newTestWriter(t, WriterOptions{})
	if err := os.MkdirAll(filepath.Join(base, "example.com/b"), 0o700); err != nil {
		t.Fatal(err)
	}
	msg := spool(t, "alice@example.org", testBody)
	rcpts := []Recipient{rcpt("/example.com/a/Maildir/"), rcpt("/example.com/b/mbox"), rcpt("/example.com/c/Maildir/")}
	errs, times, _ := l.DeliverTimed(context.Background(), msg, rcpts)
	if len(times) != len(rcpts) {
		t.Fatalf("%d timings for %d recipients", len(times), len(rcpts))
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", rcpts[i].Path, err)
		}
		if times[i].Write <= 0 || times[i].Fsync <= 0 || times[i].WorkerWait != 0 {
			t.Errorf("%s: timing %+v; want write and fsync > 0, no worker wait", rcpts[i].Path, times[i])
		}
	}
}
