// Runs in: the front.
//
// The Sieve submissions the workers composed
// (redirects, vacation replies), sent over SMTP to submission_host or
// through sendmail_path, as the front's own unprivileged user. The workers
// run nothing and open no TCP connection (their sandbox), and a set-gid
// postdrop under a worker's no_new_privs could not queue anything.

package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/store"
)

// submitTimeout bounds one submission: the MTA only queues the message.
// dialTimeout bounds reaching submission_host, usually on this machine.
const (
	submitTimeout = 60 * time.Second
	dialTimeout   = 10 * time.Second
)

// transportError is a failure to reach the transport at all (no
// connection, no greeting, a sendmail that does not start or hangs): the
// message's later submissions are then failed at once instead of each
// waiting as long again.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// maxSubmitOutput bounds what is kept of sendmail's output for the log.
const maxSubmitOutput = 2048

// submitter sends submissions for one configuration.
type submitter struct {
	host     string // submission_host, "" for sendmail
	sendmail string // sendmail_path
	helo     string // hostname, for EHLO
	timeout  time.Duration
	// unusable, if set, fails every submission at once: Postfix's
	// sendmail under no_new_privs would retry postdrop until the timeout.
	unusable error
}

func newSubmitter(cfg *config.Config) *submitter {
	sb := &submitter{host: cfg.SubmissionHost, sendmail: cfg.SendmailPath, helo: cfg.Hostname, timeout: submitTimeout}
	if sb.host == "" && sieveConfigured(cfg) && NoNewPrivs() && PostfixSendmail(sb.sendmail) {
		sb.unusable = fmt.Errorf("sendmail_path %s is Postfix's sendmail, whose set-gid postdrop cannot queue under no_new_privs (NoNewPrivileges=yes): set submission_host", sb.sendmail)
	}
	return sb
}

// warn logs, when a configuration is loaded, that submissions cannot work.
func (sb *submitter) warn(log *slog.Logger) {
	if sb.unusable != nil {
		log.Warn("sieve: redirects will be kept and vacation replies not sent", "error", sb.unusable)
	}
}

// sieveConfigured reports whether any recipient's mail may go through Sieve.
func sieveConfigured(cfg *config.Config) bool {
	return len(cfg.SieveScriptMaps) > 0 || len(cfg.SieveBefore) > 0 || len(cfg.SieveAfter) > 0
}

// via names the transport for logs.
func (sb *submitter) via() string {
	if sb.host != "" {
		return sb.host
	}
	return sb.sendmail
}

// checkSubmission refuses a submission the worker had no business asking
// for: the front does not take a worker's word for the envelope. A
// redirect keeps the original sender and a body within the spool; a
// vacation reply has the null sender and is complete in itself.
func checkSubmission(s store.Submission, msg *store.Message) error {
	if err := checkEnvelopeAddress(s.Rcpt); err != nil {
		return err
	}
	if s.Redirect {
		if s.Sender != msg.Sender {
			return fmt.Errorf("redirect with sender %q, not the message's %q", s.Sender, msg.Sender)
		}
		if s.BodyFrom < 0 || s.BodyFrom > msg.Size {
			return fmt.Errorf("redirect body offset %d outside the message (%d bytes)", s.BodyFrom, msg.Size)
		}
		return nil
	}
	if s.Sender != "" || s.BodyFrom != -1 || len(s.Head) == 0 {
		return errors.New("vacation reply without the null sender or not complete")
	}
	return nil
}

// checkEnvelopeAddress refuses what no submission can carry: an empty
// address, one sendmail would read as an option, control characters,
// angle brackets or spaces outside a quoted local part.
func checkEnvelopeAddress(a string) error {
	if a == "" || len(a) > 998 || strings.HasPrefix(a, "-") ||
		strings.ContainsFunc(a, func(c rune) bool { return c < ' ' || c == 0x7f || c == '<' || c == '>' }) {
		return fmt.Errorf("unusable envelope address %q", a)
	}
	return nil
}

// content is what a submission sends: its head, then the spool from
// BodyFrom.
func content(s store.Submission, msg *store.Message) (io.Reader, int64) {
	head := bytes.NewReader(s.Head)
	if s.BodyFrom < 0 {
		return head, int64(len(s.Head))
	}
	return io.MultiReader(head, io.NewSectionReader(msg.Body, s.BodyFrom, msg.Size-s.BodyFrom)),
		int64(len(s.Head)) + msg.Size - s.BodyFrom
}

// submit sends one checked submission, within submitTimeout and ctx.
func (sb *submitter) submit(ctx context.Context, s store.Submission, msg *store.Message) error {
	if sb.unusable != nil {
		return sb.unusable
	}
	ctx, cancel := context.WithTimeout(ctx, sb.timeout)
	defer cancel()
	body, size := content(s, msg)
	if sb.host != "" {
		return sb.smtp(ctx, s, body, size)
	}
	return sb.exec(ctx, s, body)
}

// smtp submits over SMTP: EHLO (HELO if refused), MAIL with BODY=8BITMIME
// and SIZE= where offered (SMTPUTF8 when an address needs it), RCPT, DATA,
// QUIT. The whole exchange ends at ctx's deadline: the connection is
// closed then, whatever go-smtp's per-command timeouts say.
func (sb *submitter) smtp(ctx context.Context, s store.Submission, body io.Reader, size int64) error {
	network, addr := "tcp", strings.TrimPrefix(sb.host, "inet:")
	if p, ok := strings.CutPrefix(sb.host, "unix:"); ok {
		network, addr = "unix", p
	}
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return &transportError{fmt.Errorf("submission_host %s: %w", sb.host, err)}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c := smtp.NewClient(conn)
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.CommandTimeout, c.SubmissionTimeout = time.Until(dl), time.Until(dl)
	}
	step := func(what string, err error) error {
		if err == nil {
			return nil
		}
		var se *smtp.SMTPError
		switch {
		case errors.As(err, &se):
			// The server's own words, as a log reader expects them.
			err = fmt.Errorf("server said %s", smtpReply(se))
		case ctx.Err() != nil:
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return fmt.Errorf("submission_host %s: %s: %w", sb.host, what, err)
	}
	if err := step("EHLO", c.Hello(sb.helo)); err != nil {
		return &transportError{err}
	}
	utf8 := !isASCII(s.Sender) || !isASCII(s.Rcpt)
	if err := step("MAIL FROM", c.Mail(s.Sender, &smtp.MailOptions{Size: size, UTF8: utf8})); err != nil {
		return err
	}
	if err := step("RCPT TO", c.Rcpt(s.Rcpt, nil)); err != nil {
		return err
	}
	w, err := c.Data()
	if err := step("DATA", err); err != nil {
		return err
	}
	// go-smtp's DotWriter turns the spool's LF line ends into CRLF and
	// stuffs dots.
	if _, err := io.Copy(w, body); err != nil {
		w.Close()
		return step("DATA", err)
	}
	if err := step("end of DATA", w.Close()); err != nil {
		return err
	}
	c.Quit() // the message is queued: a failing QUIT changes nothing
	return nil
}

// smtpReply is an SMTP reply as the server wrote it: code, enhanced code
// if there was one, text.
func smtpReply(e *smtp.SMTPError) string {
	if ec := e.EnhancedCode; ec[0] > 0 {
		return fmt.Sprintf("%d %d.%d.%d %s", e.Code, ec[0], ec[1], ec[2], e.Message)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Message)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// exec runs sendmail_path -i -f SENDER -- RCPT with the message on its
// standard input, as the front's user, with an environment of only PATH.
// The null sender is given as "<>", which Postfix's, Exim's and
// OpenSMTPD's sendmail all read as the null sender.
func (sb *submitter) exec(ctx context.Context, s store.Submission, body io.Reader) error {
	sender := s.Sender
	if sender == "" {
		sender = "<>"
	}
	cmd := exec.CommandContext(ctx, sb.sendmail, "-i", "-f", sender, "--", s.Rcpt)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	cmd.Stdin = body
	// A sendmail that leaves a child holding its output does not hold
	// the delivery past the timeout.
	cmd.WaitDelay = 5 * time.Second
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		down := ctx.Err() != nil || cmd.ProcessState == nil // timed out, or did not start
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		if o := strings.TrimSpace(out.b.String()); o != "" {
			err = fmt.Errorf("%s: %w: %s", sb.sendmail, err, o)
		} else {
			err = fmt.Errorf("%s: %w", sb.sendmail, err)
		}
		if down {
			return &transportError{err}
		}
		return err
	}
	return nil
}

// limitedBuffer keeps the first maxSubmitOutput bytes written to it.
type limitedBuffer struct{ b bytes.Buffer }

func (w *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxSubmitOutput - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// NoNewPrivs reports whether this process runs with no_new_privs (the
// unit's NoNewPrivileges=yes): then no set-uid or set-gid program it
// starts gains its privileges.
func NoNewPrivs() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "NoNewPrivs:"); ok {
			return strings.TrimSpace(v) == "1"
		}
	}
	return false
}

// PostfixSendmail reports whether path is (a link to) Postfix's sendmail,
// which queues through the set-gid postdrop: that fails under
// no_new_privs, so submission_host is needed there.
func PostfixSendmail(path string) bool {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	f, err := os.Open(real)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("Postfix sendmail")) || bytes.Contains(b, []byte("/postdrop"))
}

// submitFor sends what one recipient's scripts asked for, in their order,
// and reports whether the message must still be kept for it: a redirect
// failed (or was refused here) and the worker did not keep the message
// already. A failed vacation reply is only logged. down is the message's
// transport failure so far: once the transport could not be reached, the
// rest of the message's submissions fail at once.
func (ss *session) submitFor(ctx context.Context, msg *store.Message, box store.Recipient, out store.Outbound, down *error) (keep bool) {
	sb := ss.st.submit
	log := ss.log.With("id", msg.ID, "rcpt", box.Address)
	redirects, vacations := 0, 0
	failed := false
	for _, s := range out.Submissions {
		kind, metric := "vacation reply", "vacation"
		if s.Redirect {
			kind, metric = "redirect", "redirect"
		}
		err := checkSubmission(s, msg)
		switch {
		case err != nil:
		case s.Redirect && redirects >= ss.st.cfg.SieveMaxRedirects:
			err = fmt.Errorf("more than sieve_max_redirects (%d) redirects", ss.st.cfg.SieveMaxRedirects)
		case !s.Redirect && vacations >= 1:
			err = errors.New("more than one vacation reply")
		}
		if s.Redirect {
			redirects++
		} else {
			vacations++
		}
		if err != nil {
			log.Error("sieve: "+kind+" refused: the worker asked for what a script cannot", "to", s.Rcpt, "error", err)
			ss.s.observeSubmission(metric, "failed")
			failed = failed || s.Redirect
			continue
		}
		if *down != nil {
			err = fmt.Errorf("not tried: %w", *down)
		} else {
			err = sb.submit(ctx, s, msg)
			var te *transportError
			if errors.As(err, &te) {
				*down = te
			}
		}
		if err != nil {
			ss.s.observeSubmission(metric, "failed")
			if s.Redirect {
				log.Warn("sieve: redirect failed, message kept", "to", s.Rcpt, "via", sb.via(), "error", err)
				failed = true
			} else {
				log.Warn("sieve: vacation reply failed", "to", s.Rcpt, "via", sb.via(), "error", err)
			}
			continue
		}
		ss.s.observeSubmission(metric, "sent")
		if s.Redirect {
			log.Info("sieve: redirected", "to", s.Rcpt, "from", s.Sender, "via", sb.via())
		} else {
			log.Info("sieve: vacation reply sent", "to", s.Rcpt, "via", sb.via())
		}
	}
	return failed && !out.Kept
}
