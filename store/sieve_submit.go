// Runs in: a worker, as the mailbox owner.
//
// What redirect and vacation ask for, composed as the
// mailbox owner and handed to the front, which submits it (server/submit.go).

package store

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vlmtpd/vlmtpd/sieve"
)

// RedirectedFromHeader marks a message vlmtpd redirected, as Pigeonhole
// does: a message that comes back to the same recipient is not redirected
// again.
const RedirectedFromHeader = "X-Sieve-Redirected-From"

// Submission is one message a recipient's scripts ask to send: a redirect
// (the message itself, with the original envelope sender) or a vacation
// reply (composed here, null sender). The worker composes it, the front
// submits it: the worker's sandbox runs no program and opens no TCP
// connection, and Postfix's sendmail hands mail to a set-gid postdrop that
// gains nothing under no_new_privs.
type Submission struct {
	// Redirect is true for a redirect, false for a vacation reply.
	Redirect bool
	// Sender is the envelope sender in external form, "" for <>; Rcpt
	// the one envelope recipient.
	Sender, Rcpt string
	// Head is written first (LF line ends). For a vacation reply it is the
	// whole message.
	Head []byte
	// BodyFrom ≥ 0 follows Head with the spool from that offset: 0 for a
	// redirect of the header as received, the original body's offset when
	// editheader replaced the header (Head then ends with the new header
	// and its empty line). -1: nothing follows Head.
	BodyFrom int64
}

// Outbound is what one recipient's delivery asks the front to do after it:
// the submissions, in the script's order, and whether the message is
// already where the implicit keep puts it (INBOX, or the +detail folder),
// so that a failed redirect needs no second copy there.
type Outbound struct {
	Submissions []Submission
	Kept        bool
}

// Redirects counts the redirects among o's submissions.
func (o Outbound) Redirects() int {
	n := 0
	for _, s := range o.Submissions {
		if s.Redirect {
			n++
		}
	}
	return n
}

var errRedirectLoop = errors.New("redirect loop")

// redirectSubmission is the redirect of msg (as stored: edited by
// editheader if it was, then bodyFrom is where the spool's original body
// starts and head the new header) to addr with the original envelope
// sender, with X-Sieve-Redirected-From and Delivered-To naming this
// recipient on top (the latter lets Postfix's and vlmtpd's own loop
// detection see the way it went). A message that was already redirected
// by this recipient, or already delivered to addr, is a loop: refused.
func redirectSubmission(msg *Message, r Recipient, addr string, edited *editedHeader) (Submission, error) {
	if err := checkAddress(addr); err != nil {
		return Submission{}, err
	}
	if err := checkHeaderLoop(msg, r.Address, addr); err != nil {
		return Submission{}, err
	}
	head := RedirectedFromHeader + ": " + r.Address + "\nDelivered-To: " + r.Address + "\n"
	s := Submission{Redirect: true, Sender: msg.Sender, Rcpt: addr, Head: []byte(head)}
	if edited != nil {
		s.Head = append(s.Head, edited.head...)
		s.BodyFrom = edited.bodyAt
	}
	return s, nil
}

// checkAddress refuses what no submission can carry: an empty address, one
// a sendmail would read as an option, control characters.
func checkAddress(a string) error {
	if a == "" || strings.HasPrefix(a, "-") || strings.ContainsFunc(a, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return fmt.Errorf("unusable recipient address %q", a)
	}
	return nil
}

// checkHeaderLoop reads the message's header for a sign of a loop.
func checkHeaderLoop(msg *Message, self, target string) error {
	br := bufio.NewReader(io.NewSectionReader(msg.Body, 0, min(msg.Size, 1<<20)))
	for {
		line, err := br.ReadString('\n')
		l := strings.TrimRight(line, "\r\n")
		if l == "" {
			return nil
		}
		name, value, ok := strings.Cut(l, ":")
		if ok {
			value = strings.Trim(strings.TrimSpace(value), "<>")
			switch {
			case strings.EqualFold(name, RedirectedFromHeader) && strings.EqualFold(value, self):
				return fmt.Errorf("%w: already redirected by %s", errRedirectLoop, self)
			case strings.EqualFold(name, "Delivered-To") && strings.EqualFold(value, target):
				return fmt.Errorf("%w: already delivered to %s", errRedirectLoop, target)
			}
		}
		if err != nil {
			return nil
		}
	}
}

// vacationSubmission composes a vacation reply, sent with the null
// envelope sender (RFC 5230 5.1, RFC 3834 3.3).
func (l *Writer) vacationSubmission(v *sieve.Vacation) (Submission, error) {
	if err := checkAddress(v.To); err != nil {
		return Submission{}, err
	}
	var id [12]byte
	rand.Read(id[:])
	var b bytes.Buffer
	if err := v.WriteTo(&b, time.Now(), hex.EncodeToString(id[:])+".vacation@"+l.opts.Hostname); err != nil {
		return Submission{}, err
	}
	text := bytes.ReplaceAll(b.Bytes(), []byte("\r\n"), []byte("\n"))
	return Submission{Rcpt: v.To, Head: text, BodyFrom: -1}, nil
}
