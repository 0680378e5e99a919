package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTableRewrittenInPlaceNeverBounces: the vmailbox file is rewritten in
// place the way `cat new > vmailbox` or a slow copy does it: truncated,
// half written, a pause longer than the settle time (so the half version
// is loaded), then completed. Meanwhile RCPTs for a user that both the old
// and the new version hold run every 100 ms: none may get a 5xx. They get
// 250, or 451 while only the replaced version has the user, and the log
// says why.
func TestTableRewrittenInPlaceNeverBounces(t *testing.T) {
	var table strings.Builder
	for i := range 400 {
		fmt.Fprintf(&table, "user%03d@example.com example.com/user%03d/\n", i, i)
	}
	full := table.String()
	target := "<user399@example.com>" // in the second half
	in := StartInstance(t, Options{Tables: map[string]string{"vmailbox": full}})
	path := filepath.Join(in.Dir, "vmailbox")

	r := in.Dial(t)
	r.lhlo()
	rcpt := func() string {
		r.Send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:" + target + "\r\nRSET\r\n")
		r.Expect("250")
		rep := r.Reply()
		r.Expect("250")
		return rep
	}
	if rep := rcpt(); !strings.HasPrefix(rep, "250 ") {
		t.Fatalf("before the rewrite: %s", rep)
	}

	writerDone := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			writerDone <- err
			return
		}
		defer f.Close()
		half := full[:len(full)/2]
		half = half[:strings.LastIndexByte(half, '\n')+1]
		if _, err := f.WriteString(half); err != nil {
			writerDone <- err
			return
		}
		time.Sleep(3 * time.Second) // longer than the settle time: the half version is loaded
		_, err = f.WriteString(full[len(half):])
		writerDone <- err
	}()

	counts := map[string]int{}
	var bounced []string
	var end time.Time
	for i := 0; i < 200; i++ { // 20 s at most
		rep := rcpt()
		counts[rep[:3]]++
		if rep[0] == '5' {
			bounced = append(bounced, rep)
		}
		if end.IsZero() {
			select {
			case err := <-writerDone:
				if err != nil {
					t.Fatal(err)
				}
				// The complete version is loaded within settle time plus
				// one check interval; keep asking a little longer.
				end = time.Now().Add(4 * time.Second)
			default:
			}
		} else if time.Now().After(end) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("RCPT replies during the rewrite: %v", counts)
	if len(bounced) > 0 {
		t.Fatalf("%d RCPTs for a user both versions hold were bounced: %q", len(bounced), bounced[0])
	}
	if end.IsZero() {
		t.Fatal("the writer did not finish")
	}
	if rep := rcpt(); !strings.HasPrefix(rep, "250 ") {
		t.Fatalf("after the rewrite: %s", rep)
	}
	if counts["451"] > 0 && !strings.Contains(in.Logs(), "the table file was just replaced") {
		t.Errorf("deferred without saying why:\n%s", tailLines(in.Logs(), 20))
	}
	if counts["451"] == 0 {
		t.Errorf("no RCPT met the half-written version (replies %v): the test did not test anything", counts)
	}
}
