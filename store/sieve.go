// Runs in: a worker, as the mailbox owner.

package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/internal/fdio"
	"github.com/vlmtpd/vlmtpd/sieve"
)

// Sieve filtering runs here, in the writer, because the writer runs in the
// worker as the mailbox's owner: a user's script is user data, read and run
// with exactly the rights of its owner, never in the front or the parent.
// The sieve package decides; this file turns a Result into writes (INBOX,
// Maildir++ folders, flags), a per-recipient rejection, and the
// submissions (redirects, vacation replies) the front is to send
// (sieve_submit.go), and keeps the response and duplicate state beneath
// the mailbox (sieve_state.go).

// Defaults of SieveOptions fields left zero: the configuration's
// (Pigeonhole's), kept equal to server/config's table by
// TestPackageDefaultsAgree there.
const (
	DefaultSieveCPUTime  = 5 * time.Second
	DefaultSieveMaxBytes = sieve.DefaultMaxScriptSize
)

// filtered reports whether r's message goes through Sieve: not when the
// front asked for the implicit keep only (Recipient.NoSieve).
func (l *Writer) filtered(r Recipient) bool {
	if r.NoSieve {
		return false
	}
	return r.Sieve != "" || len(l.opts.Sieve.Before) > 0 || len(l.opts.Sieve.After) > 0
}

// storeTarget is one place a filtered message is written: "" is the
// recipient's INBOX, else a Maildir++ folder's name as it is written on
// disk (without the "."). flags are IMAP flags (imap4flags).
type storeTarget struct {
	folder string
	create bool
	flags  []string
}

// deliverSieve runs the scripts for r and carries out their result. Every
// failure of the filter itself (an unreadable or broken script, a runtime
// error, the CPU limit, a refused redirect) ends in the implicit keep: the
// message is never lost because of a script. What is to be submitted goes
// to out, for the front.
func (l *Writer) deliverSieve(ctx context.Context, msg *Message, r Recipient, mp mailboxPath, hdr []byte, idx int, batch *dirSyncBatch, out *Outbound) error {
	log := l.log.With("queue_id", msg.ID, "rcpt", r.Address)
	// The implicit keep goes where the message would go without Sieve:
	// the +detail folder when there is one (Dovecot's
	// lmtp_save_to_detail_mailbox does the same).
	dd := detailDest(r)
	inbox := storeTarget{folder: dd.folder, create: dd.create}
	keepOnly := func() error { return l.storeTargets(ctx, msg, r, mp, hdr, idx, batch, []storeTarget{inbox}) }

	scripts := l.sieveScripts(r, log)
	if len(scripts) == 0 {
		return keepOnly()
	}
	m, err := sieveMessage(msg)
	if err != nil {
		log.Warn("sieve: cannot read the message, kept in INBOX", "err", err)
		return keepOnly()
	}
	state := l.sieveState(mp, r)
	env := &sieve.Env{
		Envelope:    sieve.Envelope{From: msg.Sender, To: r.Address, OrigTo: r.OriginalRecipient},
		Message:     m,
		Mailboxes:   folderChecker{l: l, mp: mp, r: r},
		Duplicates:  state,
		Vacations:   state,
		Environment: map[string]string{"host": l.opts.Hostname, "domain": domainOf(r.Address)},
		Separator:   l.opts.Sieve.Separator,
		Limits:      sieve.Limits{MaxActions: l.opts.Sieve.MaxActions, MaxRedirects: l.opts.Sieve.MaxRedirects},
		Now:         msg.Arrival,
	}
	cpu := l.opts.Sieve.MaxCPUTime
	if cpu <= 0 {
		cpu = DefaultSieveCPUTime
	}
	rctx, cancel := context.WithTimeout(ctx, cpu)
	res, err := sieve.RunSequence(rctx, env, scripts...)
	cancel()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fail(Temporary, "sieve", r.Path, cerr)
		}
		log.Warn("sieve: runtime error, message kept", "err", err)
	}
	if res == nil {
		res = &sieve.Result{ImplicitKeep: true}
	}
	return l.execute(ctx, msg, r, mp, hdr, idx, batch, res, inbox, state, log, out)
}

// execute carries out a script's result: writes first (nothing is sent
// for a message that could not be stored), then the redirects and
// vacation replies are composed for the front to submit; a refused
// redirect (a loop, an unusable address) makes sure the message is kept.
// A redirect the front fails to submit is kept by the front asking again
// with NoSieve (unless out.Kept says it already is).
func (l *Writer) execute(ctx context.Context, msg *Message, r Recipient, mp mailboxPath, hdr []byte, idx int, batch *dirSyncBatch,
	res *sieve.Result, inbox storeTarget, state *sieveState, log *slog.Logger, out *Outbound) error {
	var targets []storeTarget
	add := func(t storeTarget) {
		for i := range targets {
			if targets[i].folder == t.folder {
				targets[i].flags = t.flags // a duplicate store takes the later flags
				targets[i].create = targets[i].create || t.create
				return
			}
		}
		targets = append(targets, t)
	}
	keep := func(flags []string) storeTarget { t := inbox; t.flags = flags; return t }
	var redirects []*sieve.Redirect
	var vacations []*sieve.Vacation
	var reject *sieve.Reject
	discarded := false
	for _, a := range res.Actions {
		switch a := a.(type) {
		case *sieve.Keep:
			add(keep(a.Flags))
		case *sieve.FileInto:
			add(l.fileIntoTarget(a, mp, r, keep, res.KeepFlags, log))
		case *sieve.Reject:
			reject = a
		case *sieve.Discard:
			discarded = true
		case *sieve.Redirect:
			redirects = append(redirects, a)
		case *sieve.Vacation:
			vacations = append(vacations, a)
		}
	}
	if res.ImplicitKeep {
		add(keep(res.KeepFlags))
	}
	if reject != nil && len(targets) == 0 && len(redirects) == 0 {
		log.Info("sieve: message rejected", "reason", reject.Reason, "extended", reject.Extended)
		return fail(Rejected, "sieve", r.Path, &Rejection{Reason: reject.Reason})
	}

	var eh *editedHeader
	if res.HeaderEdited {
		var edited *Message
		var err error
		eh, err = editHeader(msg, res.Header)
		if err == nil {
			edited, err = editedMessage(msg, eh)
		}
		if err != nil {
			eh = nil
			log.Warn("sieve: cannot apply editheader, the original header is kept", "err", err)
		} else {
			defer edited.Body.Close()
			msg = edited
		}
	}
	if err := l.storeTargets(ctx, msg, r, mp, hdr, idx, batch, targets); err != nil {
		return err
	}
	kept := slices.ContainsFunc(targets, func(t storeTarget) bool { return t.folder == inbox.folder })
	for _, rd := range redirects {
		sub, err := redirectSubmission(msg, r, rd.Address, eh)
		if err == nil {
			out.Submissions = append(out.Submissions, sub)
			log.Debug("sieve: redirect handed to the front", "to", rd.Address, "copy", rd.Copy)
			continue
		}
		log.Warn("sieve: redirect refused, message kept", "to", rd.Address, "err", err)
		if !kept {
			if err := l.storeTargets(ctx, msg, r, mp, hdr, idx, batch, []storeTarget{inbox}); err != nil {
				return err
			}
			kept = true
		}
	}
	out.Kept = kept
	for _, v := range vacations {
		if !v.Send {
			log.Debug("sieve: vacation not sent", "to", v.To, "why", v.Why)
			continue
		}
		sub, err := l.vacationSubmission(v)
		if err != nil {
			log.Warn("sieve: vacation reply not composed", "to", v.To, "err", err)
			continue
		}
		out.Submissions = append(out.Submissions, sub)
		// Recorded when handed over, before the front submits it: a reply
		// the front then fails to submit (logged there) is not retried
		// for this sender within :days, and a reply is never sent twice
		// because its record came too late.
		if err := state.record(vacationPrefix, v.Key, v.Period, true); err != nil {
			log.Warn("sieve: cannot record the vacation reply", "err", err)
		}
		log.Debug("sieve: vacation reply handed to the front", "to", v.To, "handle", v.Handle)
	}
	for _, d := range res.Duplicates {
		if err := state.record(duplicatePrefix, d.Key, d.Period, d.Last); err != nil {
			log.Warn("sieve: cannot record a duplicate id", "err", err)
		}
	}
	switch {
	case len(targets) == 0 && discarded:
		log.Info("sieve: message discarded")
	case len(targets) > 0:
		var where []string
		for _, t := range targets {
			where = append(where, targetName(t))
		}
		log.Info("sieve: message stored", "mailboxes", strings.Join(where, ","))
	}
	return nil
}

func targetName(t storeTarget) string {
	if t.folder == "" {
		return "INBOX"
	}
	return t.folder
}

// fileIntoTarget maps a fileinto to where it is stored. Pigeonhole's
// behaviour for what cannot be stored there: the implicit keep, logged.
func (l *Writer) fileIntoTarget(a *sieve.FileInto, mp mailboxPath, r Recipient, keep func([]string) storeTarget, keepFlags []string, log *slog.Logger) storeTarget {
	if r.Format() != Maildir {
		// An mbox has no folders: the fileinto is a store into the mbox,
		// with the fileinto's own flags.
		log.Info("sieve: fileinto on an mbox mailbox, kept in the mbox", "mailbox", a.Mailbox)
		return keep(a.Flags)
	}
	name, isInbox, ok := SieveFolder(a.Mailbox)
	switch {
	case !ok:
		log.Warn("sieve: fileinto names no safe folder, kept in INBOX", "mailbox", a.Mailbox)
		return keep(keepFlags)
	case isInbox:
		return storeTarget{flags: a.Flags}
	}
	if !a.Create {
		exists, err := l.folderExists(mp, name)
		if err != nil || !exists {
			log.Warn("sieve: fileinto a folder that does not exist, kept in INBOX", "mailbox", a.Mailbox, "err", err)
			return keep(keepFlags)
		}
	}
	return storeTarget{folder: name, create: a.Create, flags: a.Flags}
}

// SieveFolder maps a Sieve mailbox name to the Maildir++ folder's name on
// disk (without the leading "."), as Dovecot's Maildir++ layout stores it:
// "INBOX" in any case is INBOX itself; "." is the hierarchy separator
// ("a.b" is ".a.b", Dovecot's default for Maildir++) and "/" is not allowed
// (Pigeonhole with that default keeps such a message in INBOX, and so do
// we: checked against it); non-ASCII is written in IMAP's modified UTF-7
// (RFC 3501 5.1.3), "&" as "&-". The name must follow DetailFolder's
// rules (printable or space, no backslash, no leading or trailing ".",
// no empty level), so no name leaves the Maildir. ok is false for a name that maps to no
// safe folder (the message is then kept in INBOX).
func SieveFolder(name string) (folder string, inbox, ok bool) {
	if strings.EqualFold(name, "INBOX") {
		return "", true, true
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return "", false, false
	}
	// Check the ASCII skeleton with DetailFolder's rules; non-ASCII runes
	// stand in as a letter (their encoding holds no "." or "/"), and so
	// do spaces, which a +detail cannot hold but a folder name may
	// ("Sent Items").
	skeleton := strings.Map(func(c rune) rune {
		if c > 0x7e || c == ' ' {
			return 'x'
		}
		return c
	}, name)
	if _, ok := DetailFolder(skeleton); !ok {
		return "", false, false
	}
	folder = modifiedUTF7(name)
	if len(folder) > maxFolderName {
		return "", false, false
	}
	return folder, false, true
}

// modifiedUTF7 encodes s as IMAP mailbox names are (RFC 3501 5.1.3):
// printable ASCII as itself, "&" as "&-", every other run of characters
// as "&" + base64 of UTF-16BE with "," for "/" and no padding + "-".
func modifiedUTF7(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		raw := make([]byte, 0, 2*len(u))
		for _, c := range u {
			raw = append(raw, byte(c>>8), byte(c))
		}
		b.WriteByte('&')
		b.WriteString(strings.ReplaceAll(base64.RawStdEncoding.EncodeToString(raw), "/", ","))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, c := range s {
		if c >= 0x20 && c <= 0x7e {
			flush()
			if c == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(c)
			}
			continue
		}
		run = append(run, c)
	}
	flush()
	return b.String()
}

// folderChecker answers mailboxexists for the recipient's Maildir.
type folderChecker struct {
	l  *Writer
	mp mailboxPath
	r  Recipient
}

func (c folderChecker) MailboxExists(_ context.Context, name string) (bool, error) {
	if c.r.Format() != Maildir {
		return strings.EqualFold(name, "INBOX"), nil
	}
	folder, inbox, ok := SieveFolder(name)
	if inbox || !ok {
		return inbox, nil
	}
	return c.l.folderExists(c.mp, folder)
}

// folderExists reports whether the Maildir++ folder (its name on disk
// without the ".") is a directory in the Maildir mp, looked at without
// following anything: a symlink is no folder.
func (l *Writer) folderExists(mp mailboxPath, folder string) (bool, error) {
	if folder == "" || folder[0] == '.' || strings.ContainsAny(folder, "/\x00") {
		return false, nil
	}
	md, err := openBeneath(l.base, mp.rel, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(md)
	var st unix.Stat_t
	err = unix.Fstatat(md, "."+folder, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// storeTargets writes the message to each target, all of them or an
// error: the first failure is returned (the recipient then gets a 4xx and
// the client retries; targets already written may then get a duplicate,
// as with Pigeonhole).
func (l *Writer) storeTargets(ctx context.Context, msg *Message, r Recipient, mp mailboxPath, hdr []byte, idx int, batch *dirSyncBatch, targets []storeTarget) error {
	for _, t := range targets {
		var err error
		if r.Format() == Maildir {
			err = l.deliverMaildir(ctx, msg, r, mp, hdr, idx, batch,
				maildirDest{folder: t.folder, create: t.create, flags: MaildirFlags(t.flags), keywords: Keywords(t.flags)})
		} else {
			err = l.deliverMboxFlags(ctx, msg, r, mp, hdr, t.flags, batch.timing(idx))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// MaildirFlags turns IMAP system flags into Maildir info letters, sorted
// as maildir(5) wants them. Keywords get their letters from the folder's
// dovecot-keywords (keywords.go) and are left out here.
func MaildirFlags(flags []string) string {
	var b []byte
	for _, f := range flags {
		var c byte
		switch strings.ToLower(f) {
		case `\answered`:
			c = 'R'
		case `\deleted`:
			c = 'T'
		case `\draft`:
			c = 'D'
		case `\flagged`:
			c = 'F'
		case `\seen`:
			c = 'S'
		default:
			continue
		}
		if !slices.Contains(b, c) {
			b = append(b, c)
		}
	}
	slices.Sort(b)
	return string(b)
}

// editedHeader is editheader's result: the new header with the empty
// line that ends it (LF line ends), and where the original body starts in
// the spool.
type editedHeader struct {
	head   []byte
	bodyAt int64
}

func editHeader(msg *Message, fields []sieve.Field) (*editedHeader, error) {
	var hb strings.Builder
	if err := sieve.WriteFields(&hb, fields); err != nil {
		return nil, err
	}
	head := strings.ReplaceAll(hb.String(), "\r\n", "\n") + "\n"
	bodyAt, err := bodyOffset(msg)
	if err != nil {
		return nil, err
	}
	return &editedHeader{head: []byte(head), bodyAt: bodyAt}, nil
}

// editedMessage is msg with its header replaced by editheader's result,
// in a sealed memory file like the spool (LF line ends).
func editedMessage(msg *Message, eh *editedHeader) (*Message, error) {
	fd, err := unix.MemfdCreate("vlmtpd-edited", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "edited message")
	_, err = f.Write(eh.head)
	if err == nil {
		_, err = io.Copy(f, io.NewSectionReader(msg.Body, eh.bodyAt, msg.Size-eh.bodyAt))
	}
	var size int64
	if err == nil {
		size, err = f.Seek(0, io.SeekCurrent)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	out := *msg
	out.Body, out.Size = f, size
	return &out, nil
}

// bodyOffset finds where the body starts in the spool: after the first
// empty line (the spool has LF line ends), or the end for a message
// without a body.
func bodyOffset(msg *Message) (int64, error) {
	buf := make([]byte, 32<<10)
	var off int64
	prevLF := true // an empty first line ends an empty header
	for off < msg.Size {
		n, err := msg.Body.ReadAt(buf[:min(int64(len(buf)), msg.Size-off)], off)
		for i := 0; i < n; i++ {
			if buf[i] == '\n' {
				if prevLF {
					return off + int64(i) + 1, nil
				}
				prevLF = true
			} else {
				prevLF = false
			}
		}
		off += int64(n)
		if err != nil && err != io.EOF {
			return 0, err
		}
		if n == 0 {
			break
		}
	}
	return msg.Size, nil
}

// sieveMessage is what the scripts see of the spooled message: the header
// parsed as the sieve package parses one (up to the first empty line, as
// much as go-message can read), the body read from the spool when a test
// asks for it, so that a large message is not held in memory once per
// recipient.
func sieveMessage(msg *Message) (*sieve.Message, error) {
	off, err := bodyOffset(msg)
	if err != nil {
		return nil, err
	}
	head := make([]byte, off)
	if _, err := msg.Body.ReadAt(head, 0); err != nil && err != io.EOF {
		return nil, err
	}
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(head)))
	size := msg.Size
	return &sieve.Message{
		Fields: sieve.FieldsOf(h),
		Size:   size,
		Body:   func() (io.Reader, error) { return io.NewSectionReader(msg.Body, off, size-off), nil },
	}, nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

var errNoScript = errors.New("no such script")

// scriptLog writes the compile errors of the user's script to <script>.log
// beside it, as Pigeonhole does, so that the user (or a ManageSieve client)
// can see why the script is not run.
func (l *Writer) scriptLog(rel string, err error) error {
	fd, oerr := openBeneath(l.base, rel+".log", unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NONBLOCK, 0o600)
	if oerr != nil {
		return oerr
	}
	line := fmt.Sprintf("%s vlmtpd: error: %v\n", time.Now().UTC().Format(time.RFC3339), err)
	werr := fdio.WriteAll(fd, []byte(line))
	if cerr := unix.Close(fd); werr == nil {
		werr = cerr
	}
	return werr
}
