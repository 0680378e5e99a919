// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Action is one thing the script asked for, in the order it was asked.
type Action interface {
	// String is the action as one line, the format of `vlmtpd sieve-test`.
	String() string
}

// Keep stores the message into the default mailbox (INBOX).
type Keep struct {
	Flags []string // IMAP flags (imap4flags); nil means none
}

// FileInto stores the message into a mailbox. Create is fileinto :create
// (RFC 5490): make the mailbox if it is missing. Copy means the action did
// not cancel the implicit keep (RFC 3894).
type FileInto struct {
	Mailbox string
	Flags   []string
	Copy    bool
	Create  bool
}

// Redirect forwards the message to Address, unchanged.
type Redirect struct {
	Address string
	Copy    bool
}

// Reject refuses the message with Reason: RFC 5429's reject (an MDN or,
// in LMTP, a 5xx reply) or ereject (Extended: a protocol-level refusal).
type Reject struct {
	Reason   string
	Extended bool
}

// Discard drops the message silently; it only cancels the implicit keep.
type Discard struct{}

// AddHeader and DeleteHeader are editheader (RFC 5293) edits, already
// applied to Result.Header; they are listed for the record.
type AddHeader struct {
	Name, Value string
	Last        bool
}

type DeleteHeader struct {
	Name    string
	Deleted int
}

// Vacation is an auto-reply (RFC 5230). The package has applied RFC 5230's
// rules: Send is false, with Why, when no reply must go out (null sender,
// a mailing list, an auto-submitted message, none of the user's addresses
// in To/Cc, or already answered within Period). The deliverer sends it with
// a null envelope sender to To and then records Key with its
// VacationTracker for Period.
type Vacation struct {
	Send bool
	Why  string // why not, when !Send

	Key     string        // tracking key: sender and handle
	Handle  string        // :handle, or one derived from the arguments
	Period  time.Duration // :days or :seconds
	From    string        // header From of the reply
	To      string        // the envelope sender being answered
	Subject string
	Reason  string // the body text, or with MIME a whole MIME entity
	MIME    bool
	// InReplyTo and References thread the reply to the original.
	InReplyTo, References string
}

func flagsSuffix(flags []string) string {
	if len(flags) == 0 {
		return ""
	}
	return " :flags " + quote(strings.Join(flags, " "))
}

func quote(s string) string { return strconv.Quote(s) }

func (a *Keep) String() string { return "keep" + flagsSuffix(a.Flags) }
func (a *FileInto) String() string {
	s := "fileinto"
	if a.Copy {
		s += " :copy"
	}
	if a.Create {
		s += " :create"
	}
	return s + flagsSuffix(a.Flags) + " " + quote(a.Mailbox)
}
func (a *Redirect) String() string {
	if a.Copy {
		return "redirect :copy " + quote(a.Address)
	}
	return "redirect " + quote(a.Address)
}
func (a *Reject) String() string {
	if a.Extended {
		return "ereject " + quote(a.Reason)
	}
	return "reject " + quote(a.Reason)
}
func (*Discard) String() string { return "discard" }
func (a *AddHeader) String() string {
	s := "addheader"
	if a.Last {
		s += " :last"
	}
	return s + " " + quote(a.Name) + " " + quote(a.Value)
}
func (a *DeleteHeader) String() string {
	return fmt.Sprintf("deleteheader %s (%d deleted)", quote(a.Name), a.Deleted)
}
func (a *Vacation) String() string {
	s := fmt.Sprintf("vacation to %s from %s subject %s seconds %d handle %s", quote(a.To), quote(a.From),
		quote(a.Subject), int64(a.Period/time.Second), quote(a.Handle))
	if a.MIME {
		s += " :mime"
	}
	if !a.Send {
		s += " (not sent: " + a.Why + ")"
	}
	return s + " reason " + quote(a.Reason)
}

// DuplicateMark is a duplicate test's ID (RFC 7352) that the deliverer
// records once the message is delivered, for Period. Key hashes the
// handle and the ID; Last means the period restarts at each occurrence.
type DuplicateMark struct {
	Key    string
	Handle string
	Period time.Duration
	Last   bool
}

// Result is what a script decided.
type Result struct {
	Actions []Action
	// ImplicitKeep is true when the message must also be stored into
	// INBOX, with KeepFlags, because no action cancelled the implicit keep.
	ImplicitKeep bool
	KeepFlags    []string
	// Header is the edited header when editheader changed it (HeaderEdited).
	Header       []Field
	HeaderEdited bool
	// Duplicates are to be recorded after a successful delivery.
	Duplicates []DuplicateMark
}

// Lines renders the result one action per line, the implicit keep last.
func (r *Result) Lines() []string {
	var out []string
	for _, a := range r.Actions {
		out = append(out, a.String())
	}
	if r.ImplicitKeep {
		out = append(out, "implicit keep"+flagsSuffix(r.KeepFlags))
	}
	return out
}
