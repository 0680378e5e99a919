// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Pigeonhole's sieve_vacation_{min,default}_period; the maximum is unlimited there.
const (
	vacationMin     = 24 * time.Hour
	vacationDefault = 7 * 24 * time.Hour
)

// listHeaders mark a message from a mailing list (RFC 2369, 2919): RFC
// 5230 4.5 says not to answer those.
var listHeaders = []string{"List-Id", "List-Help", "List-Subscribe", "List-Unsubscribe",
	"List-Post", "List-Owner", "List-Archive"}

func (r *run) doVacation(f *frame, x *cmd) error {
	if r.vacation {
		return r.fail(f, x, "vacation: only one vacation action is allowed")
	}
	if r.reject != nil {
		return r.fail(f, x, "vacation conflicts with the earlier reject")
	}
	r.vacation = true
	v := &Vacation{Reason: r.expand(f, x.args[0].strs[0]), MIME: x.has("mime")}
	v.Period = vacationDefault
	if a, ok := x.tags["days"]; ok {
		v.Period = time.Duration(a.num) * 24 * time.Hour
	}
	if a, ok := x.tags["seconds"]; ok {
		v.Period = time.Duration(a.num) * time.Second
	}
	if v.Period < vacationMin {
		v.Period = vacationMin
	}
	subject, hasSubject := x.tagStr("subject")
	from, hasFrom := x.tagStr("from")
	subject, from = r.expand(f, subject), r.expand(f, from)
	// Pigeonhole's default handle: the arguments that shape the reply, as
	// written (variables not expanded).
	if h, ok := x.tagStr("handle"); ok {
		v.Handle = r.expand(f, h)
	} else {
		v.Handle = x.args[0].strs[0]
		if s, ok := x.tagStr("subject"); ok {
			v.Handle += s
		} else {
			v.Handle += "<default-subject>"
		}
		if s, ok := x.tagStr("from"); ok {
			v.Handle += s
		} else {
			v.Handle += "<default-from>"
		}
		if v.MIME {
			v.Handle += "<MIME>"
		} else {
			v.Handle += "<NO-MIME>"
		}
	}
	var own []string
	if a, ok := x.tags["addresses"]; ok {
		own = r.strs(f, a.strs)
	}
	own = append(own, r.env.Envelope.To, r.env.Envelope.OrigTo)
	own = append(own, r.env.UserAddresses...)

	sender := r.env.Envelope.From
	v.To = sender
	v.From = r.env.Envelope.To
	if hasFrom {
		if a, err := parseMailbox(from); err == nil {
			v.From = (&mail.Address{Name: a.Name, Address: a.Address}).String()
		} else {
			v.From = from
		}
	}
	orig := ""
	if vals := r.headerValues("Subject"); len(vals) > 0 {
		orig = decodeHeader(vals[0])
	}
	switch {
	case hasSubject:
		v.Subject = subject
	case orig != "":
		v.Subject = "Auto: " + orig
	default:
		v.Subject = "Automated reply"
	}
	if ids := r.headerValues("Message-ID"); len(ids) > 0 {
		v.InReplyTo = strings.TrimSpace(ids[0])
		refs := r.headerValues("References")
		if len(refs) > 0 {
			v.References = strings.TrimSpace(refs[0]) + " " + v.InReplyTo
		} else {
			v.References = v.InReplyTo
		}
	}
	v.Key = duplicateKey("vacation:"+v.Handle, strings.ToLower(sender))
	v.Why = r.vacationVeto(sender, own)
	if v.Why == "" && r.env.Vacations != nil {
		done, err := r.env.Vacations.Responded(r.ctx, v.Key)
		if err != nil {
			return r.fail(f, x, "vacation: %v", err)
		}
		if done {
			v.Why = "already answered within the period"
		}
	}
	v.Send = v.Why == ""
	return r.add(f, x, v)
}

// vacationVeto returns why RFC 5230 (sections 4.5 and 4.6) forbids
// answering, or "".
func (r *run) vacationVeto(sender string, own []string) string {
	if sender == "" || sender == "<>" {
		return "null sender"
	}
	sa, err := parseAddrSpec(sender)
	if err != nil {
		return "invalid sender address"
	}
	for _, o := range own {
		if o != "" && strings.EqualFold(strings.Trim(o, "<>"), sa.all()) {
			return "the sender is the user"
		}
	}
	lp := strings.ToLower(sa.local)
	if lp == "mailer-daemon" || lp == "listserv" || lp == "majordomo" || strings.HasSuffix(lp, "-request") || strings.HasPrefix(lp, "owner-") {
		return "the sender is a list or a mailer daemon"
	}
	for _, h := range listHeaders {
		if len(r.headerValues(h)) > 0 {
			return "a mailing list message (" + h + ")"
		}
	}
	for _, v := range r.headerValues("Auto-Submitted") {
		if !strings.EqualFold(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]), "no") {
			return "an auto-submitted message"
		}
	}
	for _, v := range r.headerValues("Precedence") {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "bulk", "list", "junk":
			return "a bulk message (Precedence: " + strings.TrimSpace(v) + ")"
		}
	}
	for _, h := range []string{"To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"} {
		for _, raw := range r.headerValues(h) {
			for _, a := range parseAddressList(raw) {
				for _, o := range own {
					if o != "" && a.valid && strings.EqualFold(strings.Trim(o, "<>"), a.all()) {
						return ""
					}
				}
			}
		}
	}
	return "none of the user's addresses is in To or Cc"
}

// WriteTo composes the reply (RFC 3834 and 5230 5): Auto-Submitted,
// threading fields, and the reason as text/plain UTF-8 unless :mime gave
// a whole MIME entity. date and msgID are the reply's own.
func (v *Vacation) WriteTo(w io.Writer, date time.Time, msgID string) error {
	var h mail.Header
	h.SetDate(date)
	h.SetMessageID(msgID)
	h.Set("From", v.From)
	h.SetAddressList("To", []*mail.Address{{Address: v.To}})
	h.SetSubject(v.Subject)
	if v.InReplyTo != "" {
		h.Set("In-Reply-To", v.InReplyTo)
		h.Set("References", v.References)
	}
	h.Set("Auto-Submitted", "auto-replied (vacation)")
	h.Set("Precedence", "bulk")
	h.Set("MIME-Version", "1.0")
	var body []byte
	if v.MIME {
		// The reason is a MIME entity: its header joins ours.
		br := bufio.NewReader(strings.NewReader(v.Reason))
		eh, err := textproto.ReadHeader(br)
		if err != nil {
			return fmt.Errorf("vacation :mime: %w", err)
		}
		for fl := eh.Fields(); fl.Next(); {
			h.Add(fl.Key(), fl.Value())
		}
		body, _ = io.ReadAll(br)
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Transfer-Encoding", "8bit")
		body = []byte(v.Reason)
	}
	if err := textproto.WriteHeader(w, h.Header.Header); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}
