package tests

// The Delivered-To loop rule over real LMTP: a Delivered-To below a
// Received: is a loop; one the client put above every Received: (as
// OpenSMTPD's lmtp delivery does) is not, and is not written twice;
// delivered_to_loop_check = false turns the check off.

import (
	"path/filepath"
	"strings"
	"testing"
)

// openSMTPDStyle is a message as OpenSMTPD's lmtp action sends it: its
// Return-Path and Delivered-To above its own Received.
const openSMTPDStyle = "Return-Path: <sender@remote.test>\nDelivered-To: carol@example.com\n" +
	"Received: from localhost (localhost [127.0.0.1])\n\tby mx.test (OpenSMTPD) with ESMTP id 1a2b3c4d\n\tfor <carol@example.com>;\n\tTue, 1 Dec 2026 21:00:00 +0000 (UTC)\n" +
	"Subject: via OpenSMTPD\n\nbody\n"

// looped was delivered to alice once, then passed an MTA again.
const looped = "Received: from mx2.test by mx.test; Tue, 1 Dec 2026 21:00:00 +0000\n" +
	"Return-Path: <old@remote.test>\nX-Original-To: alice@example.com\nDelivered-To: alice@example.com\n" +
	"Received: from remote.test by mx2.test; Tue, 1 Dec 2026 20:00:00 +0000\nSubject: forwarded back\n\nbody\n"

func onlyMaildirMessage(t *testing.T, in *Instance, box string) string {
	t.Helper()
	files := maildirFiles(t, filepath.Join(in.Base, box))
	if len(files) != 1 {
		t.Fatalf("%s holds %d messages, want 1", box, len(files))
	}
	return readFile(t, files[0])
}

func TestDeliveredToLoopRule(t *testing.T) {
	in := StartInstance(t, Options{})
	c := in.Dial(t)
	c.lhlo()

	// The client's own trace header: delivered, to carol without a second
	// Return-Path or Delivered-To; alice, whom it does not name, gets both.
	_, dr := c.txn("<sender@remote.test>", []string{"<carol@example.com>", "<alice@example.com>"}, openSMTPDStyle)
	if len(dr) != 2 || !strings.HasPrefix(dr[0], "250 2.0.0 <carol@example.com>") || !strings.HasPrefix(dr[1], "250 2.0.0 <alice@example.com>") {
		t.Fatalf("OpenSMTPD-style message: replies %v, want two 250s", dr)
	}
	if got, want := onlyMaildirMessage(t, in, "example.com/carol"), "X-Original-To: carol@example.com\n"+openSMTPDStyle; got != want {
		t.Errorf("carol's message:\n%q\nwant\n%q", got, want)
	}
	// The client's Return-Path is that of this transaction's sender, so
	// alice's copy has no second one either, but her own Delivered-To.
	if got, want := onlyMaildirMessage(t, in, "example.com/alice"), "X-Original-To: alice@example.com\nDelivered-To: alice@example.com\n"+openSMTPDStyle; got != want {
		t.Errorf("alice's message:\n%q\nwant\n%q", got, want)
	}

	// A different envelope sender: the client's Return-Path is not ours.
	_, dr = c.txn("<other@remote.test>", []string{"<carol@example.com>"}, openSMTPDStyle)
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250 2.0.0 ") {
		t.Fatalf("replies %v", dr)
	}
	files := maildirFiles(t, filepath.Join(in.Base, "example.com/carol"))
	var second string
	for _, f := range files {
		if s := readFile(t, f); strings.HasPrefix(s, "Return-Path: <other@remote.test>\n") {
			second = s
		}
	}
	if want := "Return-Path: <other@remote.test>\nX-Original-To: carol@example.com\n" + openSMTPDStyle; second != want {
		t.Errorf("with another sender, carol's message:\n%q\nwant\n%q", second, want)
	}

	// A real loop: alice is refused, carol gets it.
	_, dr = c.txn("<s@remote.test>", []string{"<Alice@Example.com>", "<carol@example.com>"}, looped)
	if len(dr) != 2 || !strings.HasPrefix(dr[0], "554 5.4.6 <Alice@Example.com> mail forwarding loop for Alice@Example.com") ||
		!strings.HasPrefix(dr[1], "250 2.0.0 <carol@example.com>") {
		t.Errorf("looped message: replies %v, want 554 5.4.6 then 250", dr)
	}
	if n := len(maildirFiles(t, filepath.Join(in.Base, "example.com/alice"))); n != 1 {
		t.Errorf("alice holds %d messages after the loop, want still 1", n)
	}
}

func TestDeliveredToLoopCheckOff(t *testing.T) {
	in := StartInstance(t, Options{Config: "delivered_to_loop_check = false\n"})
	c := in.Dial(t)
	c.lhlo()
	_, dr := c.txn("<s@remote.test>", []string{"<alice@example.com>"}, looped)
	if len(dr) != 1 || !strings.HasPrefix(dr[0], "250 2.0.0 <alice@example.com>") {
		t.Fatalf("with the check off: replies %v, want 250", dr)
	}
	if got, want := onlyMaildirMessage(t, in, "example.com/alice"), "Return-Path: <s@remote.test>\nX-Original-To: alice@example.com\nDelivered-To: alice@example.com\n"+looped; got != want {
		t.Errorf("alice's message:\n%q\nwant\n%q", got, want)
	}
}
