package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/vlmtpd/vlmtpd/sieve"
)

// sendmailTimeout bounds one submission: sendmail only queues the message.
const sendmailTimeout = 60 * time.Second

// maxSendmailOutput bounds what is kept of sendmail's output for the log.
const maxSendmailOutput = 2048

// RedirectedFromHeader marks a message vlmtpd redirected, as Pigeonhole
// does: a message that comes back to the same recipient is not redirected
// again.
const RedirectedFromHeader = "X-Sieve-Redirected-From"

var errRedirectLoop = errors.New("redirect loop")

// redirect submits the message unchanged to addr with the original
// envelope sender, with X-Sieve-Redirected-From and Delivered-To naming
// this recipient on top (the latter lets Postfix's and vlmtpd's own loop
// detection see the way it went). A message that was already redirected
// by this recipient, or already delivered to addr, is a loop: refused.
func (l *Local) redirect(ctx context.Context, msg *Message, r Recipient, addr string) error {
	if err := checkHeaderLoop(msg, r.Address, addr); err != nil {
		return err
	}
	top := RedirectedFromHeader + ": " + r.Address + "\nDelivered-To: " + r.Address + "\n"
	body := io.MultiReader(strings.NewReader(top), io.NewSectionReader(msg.Body, 0, msg.Size))
	return l.sendmail(ctx, msg.Sender, addr, body)
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

// sendVacation submits a vacation reply with the null envelope sender
// (RFC 5230 5.1, RFC 3834 3.3).
func (l *Local) sendVacation(ctx context.Context, v *sieve.Vacation, r Recipient) error {
	var id [12]byte
	rand.Read(id[:])
	var b bytes.Buffer
	if err := v.WriteTo(&b, time.Now(), hex.EncodeToString(id[:])+".vacation@"+l.opts.Hostname); err != nil {
		return err
	}
	text := bytes.ReplaceAll(b.Bytes(), []byte("\r\n"), []byte("\n"))
	return l.sendmail(ctx, "", v.To, bytes.NewReader(text))
}

// sendmail runs sendmail_path -i -f SENDER -- RCPT with the message on
// its standard input, as the mailbox owner (this process), with an
// environment of only PATH. The null sender is given as "<>", which
// Postfix's, Exim's and OpenSMTPD's sendmail all read as the null sender.
func (l *Local) sendmail(ctx context.Context, sender, rcpt string, body io.Reader) error {
	if rcpt == "" || strings.HasPrefix(rcpt, "-") || strings.ContainsFunc(rcpt, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return fmt.Errorf("unusable recipient address %q", rcpt)
	}
	if sender == "" {
		sender = "<>"
	}
	path := l.opts.Sieve.Sendmail
	if path == "" {
		path = DefaultSendmail
	}
	ctx, cancel := context.WithTimeout(ctx, sendmailTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-i", "-f", sender, "--", rcpt)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Dir = "/"
	cmd.Stdin = body
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if s := strings.TrimSpace(out.b.String()); s != "" {
			return fmt.Errorf("%s: %w: %s", path, err, s)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// limitedBuffer keeps the first maxSendmailOutput bytes written to it.
type limitedBuffer struct{ b bytes.Buffer }

func (w *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxSendmailOutput - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
