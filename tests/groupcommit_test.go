package tests

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTwentySessionsOneMaildir: 20 concurrent LMTP sessions into one
// Maildir with worker_owner_limit 2, so that deliveries wait and go to the
// workers several per request (group commit of new/; that they are
// batched is worker.TestPoolBatchesWaitingDeliveries'): every message is
// stored exactly once, whole, with its own trace headers, in both modes.
func TestTwentySessionsOneMaildir(t *testing.T) {
	forModes(t, func(t *testing.T, privsep bool) {
		in := StartInstance(t, privsepOptions(Options{Config: "worker_owner_limit = 2\nrecipient_concurrency_limit = 0"}, privsep))
		const clients, perClient = 20, 25
		runClients(t, in, clients, perClient, "alice@example.com")
		files := maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))
		if len(files) != clients*perClient {
			t.Fatalf("%d files, want %d", len(files), clients*perClient)
		}
		seen := map[string]bool{}
		for _, f := range files {
			content := readFile(t, f)
			id := regexp.MustCompile(`(?m)^Subject: msg (\d+-\d+)$`).FindStringSubmatch(content)
			if id == nil || seen[id[1]] {
				t.Fatalf("%s: missing or repeated message id", f)
			}
			seen[id[1]] = true
			want := "Return-Path: <s@remote.test>\nX-Original-To: alice@example.com\nDelivered-To: alice@example.com\n"
			if !strings.HasPrefix(content, want) || !strings.HasSuffix(content, "\nSubject: msg "+id[1]+"\n\n"+bodyFor(id[1])) {
				t.Fatalf("%s: damaged message: %.300q", f, content)
			}
			if !strings.HasSuffix(f, fmt.Sprintf(",S=%d", len(content))) {
				t.Errorf("%s: size in the name is not %d", f, len(content))
			}
		}
	})
}
