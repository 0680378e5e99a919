package server

import (
	"slices"
	"strings"
	"testing"
)

func traceOf(t testing.TB, msg string) *headerTrace {
	t.Helper()
	h, err := scanTrace(strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The rule, header order by header order: which Delivered-To values are a
// loop (below a Received:), which the delivering client wrote (above the
// first Received:), and the client's Return-Path.
func TestScanTraceGolden(t *testing.T) {
	for _, tc := range []struct {
		name, msg       string
		loops, client   []string
		returnPath      string
		hasReturnPath   bool
		loopFor, notFor string
	}{
		{
			name: "OpenSMTPD's lmtp delivery: its own trace above its Received",
			msg: "Return-Path: <sender@client.test>\nDelivered-To: md@os.test\n" +
				"Received: from localhost (localhost [127.0.0.1])\n\tby mx.os.test (OpenSMTPD) with ESMTP id 4ae49161\n\tfor <md@os.test>;\n\tTue, 1 Dec 2026 21:48:30 +0000 (UTC)\n" +
				"From: s@client.test\nSubject: hi\n\nDelivered-To: body@os.test\n",
			client: []string{"md@os.test"}, returnPath: "<sender@client.test>", hasReturnPath: true,
			notFor: "md@os.test",
		},
		{
			name: "a real loop: delivered once, then through an MTA again",
			msg: "Received: from mx2 by mx1; Tue, 1 Dec 2026\nReturn-Path: <old@x>\nX-Original-To: alice@example.com\nDelivered-To: alice@example.com\n" +
				"Received: from a by mx2\nSubject: fwd\n\nbody\n",
			loops: []string{"alice@example.com"}, loopFor: "Alice@Example.COM",
		},
		{
			name:  "OpenSMTPD delivering a message that looped through it",
			msg:   "Return-Path: <s@x>\nDelivered-To: alice@example.com\nReceived: by mx1\nDelivered-To: alice@example.com\nReceived: by mx0\n\n",
			loops: []string{"alice@example.com"}, client: []string{"alice@example.com"},
			returnPath: "<s@x>", hasReturnPath: true, loopFor: "alice@example.com",
		},
		{
			name:   "never through an MTA: no loop",
			msg:    "Delivered-To: Alice@Example.com\ndelivered-to:  bob@example.com \nSubject: s\n\n",
			client: []string{"alice@example.com", "bob@example.com"}, notFor: "alice@example.com",
		},
		{
			name:  "names and values in any case, space before the colon",
			msg:   "RECEIVED: by x\nDELIVERED-TO: Alice@Example.com\nDelivered-To :bob@example.com\nreturn-path: <late@x>\n\n",
			loops: []string{"alice@example.com", "bob@example.com"}, loopFor: "ALICE@example.com",
		},
		{
			name: "folded fields are unfolded",
			msg: "Return-Path:\n <s@x>\nDelivered-To:\n\tcarol@example.com\nReceived: from a\n  by b\n  for <x@y>\n" +
				"Delivered-To:\n   dave@example.com\n\n",
			loops: []string{"dave@example.com"}, client: []string{"carol@example.com"},
			returnPath: "<s@x>", hasReturnPath: true, loopFor: "dave@example.com", notFor: "carol@example.com",
		},
		{
			name:  "a folded Received makes everything below it relayed",
			msg:   "Received: from a\n\tby b; date\nDelivered-To: e@example.com\n\n",
			loops: []string{"e@example.com"}, loopFor: "e@example.com",
		},
		{
			name:   "only the header block counts",
			msg:    "Subject: s\n\nReceived: by x\nDelivered-To: f@example.com\n",
			notFor: "f@example.com",
		},
		{
			name:   "a line that is no header ends the block",
			msg:    "Received: by x\nnot a header\nDelivered-To: g@example.com\n\n",
			notFor: "g@example.com",
		},
		{
			name: "a Return-Path below a Received is not the client's",
			msg:  "Received: by x\nReturn-Path: <s@x>\n\n",
		},
		{
			name:   "a Delivered-To whose name only starts alike",
			msg:    "Received: by x\nDelivered-To-Foo: h@example.com\nX-Delivered-To: h@example.com\n\n",
			notFor: "h@example.com",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := traceOf(t, tc.msg)
			if got := sortedKeys(h.relayed); !slices.Equal(got, tc.loops) {
				t.Errorf("loops %q, want %q", got, tc.loops)
			}
			if got := sortedKeys(h.client); !slices.Equal(got, tc.client) {
				t.Errorf("client's Delivered-To %q, want %q", got, tc.client)
			}
			if h.clientReturnPath != tc.returnPath || h.hasReturnPath != tc.hasReturnPath {
				t.Errorf("client's Return-Path %q (%v), want %q (%v)", h.clientReturnPath, h.hasReturnPath, tc.returnPath, tc.hasReturnPath)
			}
			if tc.loopFor != "" && !h.loops(tc.loopFor) {
				t.Errorf("no loop for %s", tc.loopFor)
			}
			if tc.notFor != "" && h.loops(tc.notFor) {
				t.Errorf("loop for %s", tc.notFor)
			}
		})
	}
}

func TestClientTraceMatchesWhatWeWouldWrite(t *testing.T) {
	h := traceOf(t, "Return-Path: <s@x>\nDelivered-To: User@Example.com\nReceived: by x\n\n")
	if !h.clientWroteReturnPath("s@x") || h.clientWroteReturnPath("t@x") || h.clientWroteReturnPath("") {
		t.Error("Return-Path <s@x> is only the one of sender s@x")
	}
	if !h.clientDeliveredTo("user@example.com") || h.clientDeliveredTo("other@example.com") {
		t.Error("Delivered-To User@Example.com is only that recipient's")
	}
	null := traceOf(t, "Return-Path: <>\nReceived: by x\n\n")
	if !null.clientWroteReturnPath("") || null.clientWroteReturnPath("s@x") {
		t.Error("Return-Path <> is the null sender's only")
	}
	var none *headerTrace // the scan failed before anything was read
	if none.loops("a@b") || none.clientDeliveredTo("a@b") || none.clientWroteReturnPath("") {
		t.Error("a nil trace claims something")
	}
}

// The scan is bounded: an endless header block of Delivered-To lines
// stops at maxTraceFields, one huge line is skipped, and nothing past
// maxHeaderScan is read.
func TestScanTraceIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("Received: by x\n")
	for i := 0; i < 2*maxTraceFields; i++ {
		b.WriteString("Delivered-To: u@example.com\n")
	}
	if h := traceOf(t, b.String()); len(h.relayed) != 1 {
		t.Errorf("relayed %v", h.relayed)
	}
	long := "Received: by x\nDelivered-To: " + strings.Repeat("x", 64<<10) + "@example.com\nDelivered-To: after@example.com\n\n"
	if h := traceOf(t, long); !h.loops("after@example.com") || len(h.relayed) != 1 {
		t.Errorf("after a long line: relayed %d values, after@ %v", len(h.relayed), h.loops("after@example.com"))
	}
	far := "Received: by x\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 990)+"\n", maxHeaderScan/998+1) + "Delivered-To: far@example.com\n\n"
	if h := traceOf(t, far); h.loops("far@example.com") {
		t.Error("read past maxHeaderScan")
	}
}

// FuzzScanTrace: any header block is scanned without a panic, within its
// bounds, and the addresses kept are lower case.
func FuzzScanTrace(f *testing.F) {
	f.Add(openSMTPDTop)
	f.Add("Received: by x\nDelivered-To:\n\ta@b\n\n")
	f.Fuzz(func(t *testing.T, msg string) {
		h := traceOf(t, msg)
		if len(h.relayed)+len(h.client) > maxTraceFields {
			t.Fatalf("%d trace fields kept", len(h.relayed)+len(h.client))
		}
		for _, m := range []map[string]bool{h.relayed, h.client} {
			for k := range m {
				if k != strings.ToLower(k) {
					t.Fatalf("%q kept in upper case", k)
				}
			}
		}
	})
}

const openSMTPDTop = "Return-Path: <s@x>\nDelivered-To: a@b\nReceived: from l\n\tby h (OpenSMTPD)\n\nbody\n"
