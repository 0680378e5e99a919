package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/vlmtpd/vlmtpd/server/lmtp"
	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/store/maildirpp"
)

// quotaFake is a fakeDeliverer that reports a fixed usage.
type quotaFake struct {
	fakeDeliverer
	usage maildirpp.Usage
	err   error
	asked int
}

func (q *quotaFake) Quota(_ context.Context, r store.Recipient, recalc bool) (store.QuotaUsage, error) {
	q.asked++
	return store.QuotaUsage{Usage: q.usage}, q.err
}

func quotaServer(t *testing.T, d store.Deliverer, quota, extra string) *Server {
	t.Helper()
	return testServerWith(t, d, "virtual_mailbox_limit_maps = \"texthash:quota\"\n"+extra, map[string]string{"quota": quota})
}

func rcptTo(ss *session, addr string) *Reply {
	return ss.Rcpt(context.Background(), mailbox(addr), lmtp.RcptOptions{})
}

// TestAdmitDecisions: the RCPT-time quota rules with the usage a worker
// reports, the reservations of deliveries in flight, and their release.
func TestAdmitDecisions(t *testing.T) {
	d := &quotaFake{usage: maildirpp.Usage{Bytes: 600, Count: 1}}
	s := quotaServer(t, d, "alice@example.com 1000S,3C\nbob@example.com 1000\ncarol@example.com 0\n", "")
	open := func(size int64) *session {
		ss := s.NewSession(lmtp.ConnInfo{}).(*session)
		ss.Mail(lmtp.Address{}, lmtp.MailOptions{Size: size})
		return ss
	}
	for _, tc := range []struct {
		size int64
		want string
	}{
		{0, "accepted"}, {800, "accepted"}, // 600 + 400 = exactly full at half of SIZE=
		{802, "552 5.2.2"}, {5000, "552 5.2.2"},
	} {
		ss := open(tc.size)
		if got := code(rcptTo(ss, "alice@example.com")); got != tc.want {
			t.Errorf("SIZE=%d with 600 of 1000 used: %s, want %s", tc.size, got, tc.want)
		}
		ss.Close()
	}
	// A delivery in flight reserves its SIZE=: the next one is deferred,
	// not bounced; once it ends the room is back.
	a := open(300)
	if r := rcptTo(a, "alice@example.com"); r != nil {
		t.Fatal(r)
	}
	b := open(300)
	if r := rcptTo(b, "alice@example.com"); code(r) != "452 4.2.2" {
		t.Errorf("beside a reservation: %v", r)
	}
	a.Reset()
	a.Reset() // released once only
	if r := rcptTo(b, "alice@example.com"); r != nil {
		t.Errorf("after the reservation ended: %v", r)
	}
	b.Close()
	if n, res, cnt := s.book.Reservations(store.Recipient{UID: 5000, GID: 5000, Path: "example.com/alice/"}); n != 0 || res != 0 || cnt != 0 {
		t.Errorf("left in the book: %d deliveries, %d bytes, %d messages", n, res, cnt)
	}
	// The message count: 1 stored + 2 in flight = 3.
	c1, c2, c3 := open(0), open(0), open(0)
	if rcptTo(c1, "alice@example.com") != nil || rcptTo(c2, "alice@example.com") != nil {
		t.Fatal("two more messages should fit 3C")
	}
	if r := rcptTo(c3, "alice@example.com"); code(r) != "452 4.2.2" {
		t.Errorf("a fourth message beside two in flight: %v", r)
	}
	c1.Close()
	c2.Close()
	c3.Close()
	// bob's mbox: the same rule on the file's size; carol: 0 is no quota.
	d.usage = maildirpp.Usage{Bytes: 999}
	asked := d.asked
	if r := rcptTo(open(10), "bob@example.com"); code(r) != "552 5.2.2" {
		t.Errorf("mbox over quota: %v", r)
	}
	if r := rcptTo(open(1<<20), "carol@example.com"); r != nil || d.asked != asked+1 {
		t.Errorf("quota 0: %v, worker asked %d times", r, d.asked-asked)
	}
	// A worker that cannot answer defers.
	d.err = &store.Error{Status: store.WorkerFailed, Err: errors.New("boom")}
	if r := rcptTo(open(10), "alice@example.com"); code(r) != "451 4.3.0" {
		t.Errorf("worker failed: %v", r)
	}
}

func TestOverQuotaReplies(t *testing.T) {
	d := &quotaFake{usage: maildirpp.Usage{Bytes: 2000}}
	s := quotaServer(t, d, "alice@example.com 1000\n", "virtual_overquota_bounce = false\nvirtual_maildir_limit_message = \"over quota\"\n")
	ss := s.NewSession(lmtp.ConnInfo{}).(*session)
	ss.Mail(lmtp.Address{}, lmtp.MailOptions{})
	r := rcptTo(ss, "alice@example.com")
	// A 4xx ends with the transaction id (so the client's deferral log
	// line leads to ours).
	if code(r) != "452 4.2.2" || r.Text != "over quota ("+ss.txID+")" {
		t.Errorf("bounce off: %v", r)
	}
}

// TestConcurrencyLimit: recipient_concurrency_limit counts deliveries per
// mailbox, not per address, and a duplicate RCPT takes no second slot.
func TestConcurrencyLimit(t *testing.T) {
	s := testServer(t, &fakeDeliverer{}, "recipient_concurrency_limit = 2\nrecipient_delimiter = \"+\"\n")
	var open []*session
	for i := 0; i < 2; i++ {
		ss := s.NewSession(lmtp.ConnInfo{}).(*session)
		ss.Mail(lmtp.Address{}, lmtp.MailOptions{})
		if r := rcptTo(ss, "alice@example.com"); r != nil {
			t.Fatal(r)
		}
		if r := rcptTo(ss, "alice@example.com"); r != nil {
			t.Fatalf("duplicate RCPT: %v", r)
		}
		open = append(open, ss)
	}
	ss := s.NewSession(lmtp.ConnInfo{}).(*session)
	ss.Mail(lmtp.Address{}, lmtp.MailOptions{})
	if r := rcptTo(ss, "alice+x@example.com"); code(r) != "451 4.2.1" {
		t.Errorf("third delivery to alice's mailbox: %v", r)
	}
	if r := rcptTo(ss, "bob@example.com"); r != nil {
		t.Errorf("bob is unaffected: %v", r)
	}
	open[0].Close()
	if r := rcptTo(ss, "alice@example.com"); r != nil {
		t.Errorf("after a session closed: %v", r)
	}
}

// Many recipients of one transaction that share a mailbox (a catch-all,
// aliases) are one delivery in flight: they take one slot, whatever
// recipient_concurrency_limit is, and the slot is free again after.
func TestConcurrencyOneTransactionOneSlot(t *testing.T) {
	s := testServer(t, &fakeDeliverer{}, "recipient_concurrency_limit = 2\nrecipient_delimiter = \"+\"\n")
	ss := s.NewSession(lmtp.ConnInfo{}).(*session)
	ss.Mail(lmtp.Address{}, lmtp.MailOptions{})
	for i := range 20 {
		if r := rcptTo(ss, fmt.Sprintf("alice+%d@example.com", i)); r != nil {
			t.Fatalf("recipient %d of one transaction: %v", i, r)
		}
	}
	other := s.NewSession(lmtp.ConnInfo{}).(*session)
	other.Mail(lmtp.Address{}, lmtp.MailOptions{})
	if r := rcptTo(other, "alice@example.com"); r != nil {
		t.Errorf("a second transaction (2 allowed): %v", r)
	}
	ss.Reset()
	if n, _, _ := s.book.Reservations(store.Recipient{Path: "example.com/alice/", UID: 5000, GID: 5000}); n != 1 {
		t.Errorf("%d deliveries in flight after the first transaction ended, want 1", n)
	}
}
