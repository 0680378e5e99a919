package tests

// Load with Postfix's smtp-source in LMTP mode: 20 sessions that keep
// their connections, thousands of 4 KB messages, then 10 recipients per
// message. Afterwards every message is in the right mailbox exactly once
// and vlmtpd's memory stayed flat.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/proctree"
)

// smtpSource runs smtp-source against a vlmtpd socket and fails the test on
// any unexpected reply (smtp-source exits non-zero without -A).
func smtpSource(t testing.TB, bin, socket string, args ...string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append([]string{"-L", "-M", "client.test", "-f", "load@client.test"}, args...)
	full = append(full, "unix:"+socket)
	cmd := exec.CommandContext(ctx, bin, full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("smtp-source %s: %v\n%s", strings.Join(full, " "), err, out.String())
	}
	return time.Since(start)
}

func TestLoadSmtpSource(t *testing.T) {
	src := toolOrSkip(t, "smtp-source (package postfix)", "/usr/sbin/smtp-source", "smtp-source")
	const (
		steady = 4800 // one session …
		rounds = 6    // … in rounds of 800
		single = 4000 // 20 sessions, one recipient per message
		multi  = 400  // 20 sessions, ten recipients per message
		size   = 4096
	)
	// smtp-source 3.7 numbers the extra recipients of -r 10 by prefixing:
	// bench, 2bench … 10bench. Some are mboxes, so sessions contend for
	// their locks.
	boxes := map[string]string{"bench@load.test": "load.test/bench/"}
	rcpts := []string{"bench@load.test"}
	for i := 2; i <= 10; i++ {
		r := fmt.Sprintf("%dbench@load.test", i)
		rcpts = append(rcpts, r)
		if i <= 4 {
			boxes[r] = fmt.Sprintf("load.test/%dbench", i)
		} else {
			boxes[r] = fmt.Sprintf("load.test/%dbench/", i)
		}
	}
	// As deployed: privilege separation when the tests run as root.
	// 20 sessions into one mailbox: recipient_concurrency_limit (10)
	// would defer half of them, which is not what this measures.
	v := startVlmtpdFor(t, vlmtpdSetup{Domains: []string{"load.test"}, Mailboxes: boxes, Privsep: true,
		Extra: "recipient_concurrency_limit = 0\n"})

	// Steady phase, first, on the fresh server: one session, so one
	// delivery worker handles every message, in equal rounds; the memory
	// of all vlmtpd processes is read after each, at rest. Each Go process
	// lets its heap grow to the collector's first goal (4 MB) before it
	// collects, which takes a worker about 2000 deliveries; from then on
	// the memory must not grow with the messages handled. (With 20
	// sessions each of 20 workers would need those 2000 deliveries: too
	// long a test.)
	var atRest []int64
	var d0 time.Duration
	for r := 0; r < rounds; r++ {
		d0 += smtpSource(t, src, v.Socket, "-s", "1", "-d", "-m", fmt.Sprint(steady/rounds), "-l", fmt.Sprint(size), "-t", "bench@load.test")
		atRest = append(atRest, proctree.PSS(v.Pid()))
	}
	// Then 20 sessions, and 10 recipients per message.
	stop := proctree.PeakPSS(v.Pid(), 20*time.Millisecond)
	d1 := smtpSource(t, src, v.Socket, "-s", "20", "-d", "-m", fmt.Sprint(single), "-l", fmt.Sprint(size), "-t", "bench@load.test")
	phase1 := stop()
	stop = proctree.PeakPSS(v.Pid(), 20*time.Millisecond)
	d2 := smtpSource(t, src, v.Socket, "-s", "20", "-d", "-m", fmt.Sprint(multi), "-r", "10", "-l", fmt.Sprint(size), "-t", "bench@load.test")
	phase2 := stop()
	t.Logf("smtp-source -s 1 -d -m %d -l %d, %d times: %v (%.0f deliveries/s)", steady/rounds, size, rounds, d0.Round(time.Millisecond), float64(steady)/d0.Seconds())
	t.Logf("smtp-source -s 20 -d -m %d -l %d: %v (%.0f deliveries/s)", single, size, d1.Round(time.Millisecond), float64(single)/d1.Seconds())
	t.Logf("smtp-source -s 20 -d -m %d -r 10 -l %d: %v (%.0f deliveries/s)", multi, size, d2.Round(time.Millisecond), float64(multi*10)/d2.Seconds())

	var rest []string
	for _, m := range atRest {
		rest = append(rest, fmt.Sprintf("%.1f", mb(m)))
	}
	peak := max(phase1, phase2)
	largest := proctree.MaxHWM(v.Pid())
	t.Logf("vlmtpd memory (PSS of all its processes) after each steady round of %d messages: %s MB; peak under 20 sessions %.1f MB; largest process peak RSS %.1f MB",
		steady/rounds, strings.Join(rest, ", "), mb(peak), mb(largest))
	// A kilobyte kept per delivered message is a leak; less is noise.
	const settled = 3 // rounds before the worker's first collection
	base, last := atRest[settled-1], atRest[rounds-1]
	handled := int64(steady / rounds * (rounds - settled))
	if grown := last - base; grown > handled*1024 {
		t.Errorf("vlmtpd's memory grew by %.1f MB over %d messages of steady load (%.1f KB per message): %s MB after each round",
			mb(grown), handled, float64(grown)/float64(handled)/1024, strings.Join(rest, ", "))
	}
	// Under 20 sessions about 20 workers run; none may grow large.
	if largest > 64<<20 {
		t.Errorf("a vlmtpd process peaked at %.1f MB RSS", mb(largest))
	}
	if phase2 > phase1*2+16<<20 {
		t.Errorf("vlmtpd's memory grew in the 10-recipient phase: %.1f MB after %.1f MB", mb(phase2), mb(phase1))
	}
	if peak > 512<<20 {
		t.Errorf("vlmtpd peak memory %.1f MB", mb(peak))
	}

	// Every message in the right mailbox exactly once, bodies intact.
	var refBody []byte
	var boxesRead []storedBox
	for _, r := range rcpts {
		want := multi
		if r == "bench@load.test" {
			want += steady + single
		}
		box := storedBox{Path: v.mailbox(strings.TrimSuffix(boxes[r], "/")), Mbox: !strings.HasSuffix(boxes[r], "/")}
		msgs := readStored(t, box)
		if len(msgs) != want {
			t.Errorf("%s holds %d messages, want %d", box.Path, len(msgs), want)
		}
		ids := map[string]bool{}
		bad := 0
		for _, m := range msgs {
			id, _ := m.header("Message-Id")
			if id == "" || ids[id] {
				t.Errorf("%s: message-id %q missing or seen twice", box.Path, id)
				bad++
			}
			ids[id] = true
			if dt, _ := m.header("Delivered-To"); dt != r {
				t.Errorf("%s: Delivered-To %q, want %q", box.Path, dt, r)
				bad++
			}
			if refBody == nil {
				refBody = m.Body
				checkSourceBody(t, refBody, size)
			}
			if !bytes.Equal(m.Body, refBody) {
				t.Errorf("%s: message %s body differs from the others (%d bytes, want %d)", box.Path, id, len(m.Body), len(refBody))
				bad++
			}
			if bad > 10 {
				t.Fatalf("%s: giving up after %d bad messages", box.Path, bad)
			}
		}
		for id := range ids {
			box.Want = append(box.Want, wantMessage{
				MessageID: strings.Trim(id, "<>"),
				Headers:   map[string]string{"Delivered-To": r},
				Body:      refBody,
			})
		}
		boxesRead = append(boxesRead, box)
	}
	// The mboxes were appended to by 20 sessions at once: readers must
	// find every message whole.
	var mboxes []storedBox
	for _, b := range boxesRead {
		if b.Mbox {
			mboxes = append(mboxes, b)
		}
	}
	checkWithReaders(t, v.Owner, mboxes)
	if left, err := os.ReadDir(v.Dir + "/spool"); err != nil || len(left) > 0 {
		t.Errorf("spool holds %d files after the run (%v)", len(left), err)
	}
}

// checkSourceBody checks a body smtp-source -l made: lines of X (the first
// ones numbered) that add up to size bytes with CRLF line endings.
func checkSourceBody(t testing.TB, body []byte, size int) {
	t.Helper()
	lines := bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n"))
	wire := 0
	for _, l := range lines {
		wire += len(l) + 2
		if len(bytes.Trim(l, "0123456789X")) != 0 {
			t.Fatalf("smtp-source body line %q", l)
		}
	}
	if wire < size || wire > size+2 {
		t.Fatalf("smtp-source body is %d bytes on the wire, want %d", wire, size)
	}
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
