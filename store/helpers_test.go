package store

import (
	"github.com/vlmtpd/vlmtpd/internal/testutil"

	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testHost = "mx.test"

// newTestWriter returns a Writer on a fresh base directory.
func newTestWriter(t testing.TB, opts WriterOptions) (*Writer, string) {
	t.Helper()
	base := t.TempDir()
	if opts.Hostname == "" {
		opts.Hostname = testHost
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	l, err := NewWriter(base, opts)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, base
}

// spool writes body to a spool file and returns the message for it.
func spool(t testing.TB, sender, body string) *Message {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spool")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &Message{Sender: sender, Body: f, Size: int64(len(body)), Arrival: time.Now(), ID: "TEST1"}
}

func rcpt(path string) Recipient {
	return Recipient{
		Address:           "User@example.com",
		OriginalRecipient: "user+tag@example.com",
		Path:              path,
		UID:               os.Getuid(),
		GID:               os.Getgid(),
	}
}

// deliver delivers msg to one recipient and returns its error.
func deliver(t testing.TB, l *Writer, msg *Message, r Recipient) error {
	t.Helper()
	errs := l.Deliver(context.Background(), msg, []Recipient{r})
	if len(errs) != 1 {
		t.Fatalf("Deliver returned %d errors for 1 recipient", len(errs))
	}
	return errs[0]
}

func wantStatus(t testing.TB, err error, want Status) {
	t.Helper()
	if got := StatusOf(err); got != want {
		t.Fatalf("status = %v (%v), want %v", got, err, want)
	}
	if want != OK {
		if _, ok := err.(*Error); !ok {
			t.Fatalf("error %v is %T, want *store.Error", err, err)
		}
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// listDir returns the names in dir (nil if it does not exist).
func listDir(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// checkFile checks a file's mode and owner.
func checkFile(t testing.TB, path string, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() {
		t.Errorf("%s: owner %d:%d, want %d:%d", path, st.Uid, st.Gid, os.Getuid(), os.Getgid())
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "creating files owned by another uid")
}

// mboxMessage is one message parsed back from an mbox.
type mboxMessage struct {
	From string // the From_ line without its LF
	Text string // everything after the From_ line, without the separator blank line
}

// parseMbox splits an mbox the way mbox readers do: a message starts at a
// "From " line at the start of the file or after an empty line. It fails
// the test if the file does not end with the empty separator line.
func parseMbox(t testing.TB, data string) []mboxMessage {
	t.Helper()
	if data == "" {
		return nil
	}
	if !strings.HasPrefix(data, "From ") {
		t.Fatalf("mbox does not start with a From_ line: %q", data[:min(len(data), 40)])
	}
	if !strings.HasSuffix(data, "\n\n") {
		t.Fatalf("mbox does not end with an empty line: %q", data[max(0, len(data)-40):])
	}
	var msgs []mboxMessage
	lines := strings.SplitAfter(data, "\n")
	var cur *mboxMessage
	var text bytes.Buffer
	flush := func() {
		if cur != nil {
			s := text.String()
			cur.Text = strings.TrimSuffix(s, "\n") // the separator line
			msgs = append(msgs, *cur)
		}
	}
	prevEmpty := true
	for _, ln := range lines {
		if ln == "" {
			continue
		}
		if prevEmpty && strings.HasPrefix(ln, "From ") {
			flush()
			cur = &mboxMessage{From: strings.TrimSuffix(ln, "\n")}
			text.Reset()
			prevEmpty = false
			continue
		}
		text.WriteString(ln)
		prevEmpty = ln == "\n"
	}
	flush()
	return msgs
}
