package server

import (
	"strings"
	"testing"

	"github.com/vlmtpd/vlmtpd/store"
)

// A Sieve reject is a decision: 550 5.7.1 with the script's reason, made
// one printable line whatever the script wrote.
func TestToReplyRejected(t *testing.T) {
	for _, c := range []struct{ reason, want string }{
		{"Not wanted", "Not wanted"},
		{"two\r\nlines\n", "two lines"},
		{"  tabs\tand   spaces ", "tabs and spaces"},
		{"caf\u00e9", "caf?"},
		{"", "Message rejected"},
		{"\r\n", "Message rejected"},
		{strings.Repeat("x", 1000), strings.Repeat("x", maxRejectText)},
	} {
		err := &store.Error{Status: store.Rejected, Op: "sieve", Err: &store.Rejection{Reason: c.reason}}
		r := ToReply(err)
		if r.Code != 550 || r.Enhanced != [3]int{5, 7, 1} || r.Text != c.want {
			t.Errorf("reason %q: %d %v %q, want 550 5.7.1 %q", c.reason, r.Code, r.Enhanced, r.Text, c.want)
		}
	}
}
