// Runs in: a worker (and the sieve-test and sieve-check commands).

package sieve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Envelope is the SMTP/LMTP envelope of the delivery.
type Envelope struct {
	From   string // MAIL FROM; "" is the null sender
	To     string // the recipient being delivered to
	OrigTo string // the original recipient (ORCPT), "" if unknown
	Auth   string // the authenticated submitter, if any
}

// MailboxChecker says whether a mailbox exists (mailboxexists and
// fileinto without :create).
type MailboxChecker interface {
	MailboxExists(ctx context.Context, name string) (bool, error)
}

// DuplicateTracker says whether a duplicate test's key was recorded and
// has not expired (RFC 7352). Recording is the deliverer's job, after a
// successful delivery (Result.Duplicates).
type DuplicateTracker interface {
	Seen(ctx context.Context, key string) (bool, error)
}

// VacationTracker says whether a vacation reply with this key (sender and
// handle) was sent within its period (RFC 5230 4.2). The deliverer records
// the key after sending.
type VacationTracker interface {
	Responded(ctx context.Context, key string) (bool, error)
}

// Limits bound what a script may do; zero values take Pigeonhole's
// defaults, below. CPU time is bounded by the context given to Run.
type Limits struct {
	MaxActions   int // sieve_max_actions
	MaxRedirects int // sieve_max_redirects
}

// Pigeonhole's defaults, which are vlmtpd's configuration's too
// (server/config's TestPackageDefaultsAgree keeps them equal).
const (
	DefaultMaxActions    = 32
	DefaultMaxRedirects  = 4
	DefaultMaxScriptSize = 1 << 20 // bytes
)

// Env is everything a run can see of the world.
type Env struct {
	Envelope Envelope
	Message  *Message
	// UserAddresses are the user's other addresses, for vacation's check
	// that the message was sent to the user (besides Envelope.To/OrigTo
	// and :addresses).
	UserAddresses []string
	Mailboxes     MailboxChecker
	Duplicates    DuplicateTracker
	Vacations     VacationTracker
	// Environment items (RFC 5183) such as "domain", "host",
	// "remote-host", "remote-ip"; "location", "phase", "name" and
	// "version" have defaults.
	Environment map[string]string
	// Separator is the subaddress separator (recipient_delimiter); "+"
	// when empty.
	Separator string
	Limits    Limits
	// Now is the time of delivery (currentdate, date's default zone);
	// zero means time.Now().
	Now time.Time
}

// RuntimeError is an error while running: a limit, a conflict between
// actions, a failing callback. RFC 5228 2.10.6: the message is then kept.
type RuntimeError struct {
	Script string
	Pos    Pos
	Err    error
}

func (e *RuntimeError) Error() string {
	name := e.Script
	if name == "" {
		name = "script"
	}
	return fmt.Sprintf("%s:%d:%d: %v", name, e.Pos.Line, e.Pos.Col, e.Err)
}
func (e *RuntimeError) Unwrap() error { return e.Err }

// ErrLimit is wrapped by runtime errors from a limit.
var ErrLimit = errors.New("limit exceeded")

// Run executes the script for one message and recipient. On error the
// returned Result holds only the implicit keep (RFC 5228 2.10.6: "the
// implicit keep is performed"), with the header unedited; the error says
// why, for the log.
func (s *Script) Run(ctx context.Context, env *Env) (*Result, error) {
	return RunSequence(ctx, env, s)
}

// RunSequence runs scripts one after the other on one message, as
// Pigeonhole runs sieve_before, the user's script and sieve_after: the
// next script runs only while the message is kept (the implicit keep is
// still in effect, or the script did an explicit keep), and the last
// script run decides the implicit keep. Actions accumulate and duplicates
// merge across scripts; the conflict rules (reject with keep or fileinto,
// one vacation) hold within each script, as Pigeonhole executes each
// script's result before the next. Variables are each script's own; the
// imap4flags flags carry over, as in Pigeonhole. A runtime error drops the failing script's actions and edits only
// (the earlier scripts' results stand, as in Pigeonhole, where each
// script's result is executed before the next runs) and keeps the message.
func RunSequence(ctx context.Context, env *Env, scripts ...*Script) (*Result, error) {
	e := *env
	if e.Message == nil {
		e.Message = &Message{}
	}
	r := newRun(ctx, &e)
	for _, s := range scripts {
		r.keep, r.matchVars, r.keptExplicit = true, nil, false
		r.stores, r.reject, r.vacation = false, nil, false
		r.once = map[includeKey]bool{}
		saved := r.snapshot()
		err := r.script(s, map[string]string{})
		if err == errStop {
			err = nil
		}
		if err != nil {
			var re *RuntimeError
			if !errors.As(err, &re) {
				err = &RuntimeError{Script: s.name, Err: err}
			}
			r.restore(saved)
			r.keep, r.flags = true, nil
			r.finish()
			return r.res, err
		}
		if !r.keep && !r.keptExplicit {
			break
		}
	}
	r.finish()
	return r.res, nil
}

// runState is what a failing script's rollback restores.
type runState struct {
	actions    []Action
	duplicates []DuplicateMark
	fields     []Field
	edited     bool
	vacation   bool
	redirects  int
	count      int
	reject     *Reject
	stores     bool
}

func (r *run) snapshot() runState {
	st := runState{duplicates: append([]DuplicateMark(nil), r.res.Duplicates...), fields: r.fields,
		edited: r.edited, vacation: r.vacation, redirects: r.redirects, count: r.actions, reject: r.reject, stores: r.stores}
	// Copy the actions: a duplicate store merges into an earlier one in
	// place.
	for _, a := range r.res.Actions {
		switch a := a.(type) {
		case *Keep:
			c := *a
			st.actions = append(st.actions, &c)
		case *FileInto:
			c := *a
			st.actions = append(st.actions, &c)
		case *Redirect:
			c := *a
			st.actions = append(st.actions, &c)
		default:
			st.actions = append(st.actions, a)
		}
	}
	return st
}

func (r *run) restore(st runState) {
	r.res.Actions, r.res.Duplicates, r.fields, r.edited = st.actions, st.duplicates, st.fields, st.edited
	r.vacation, r.redirects, r.actions, r.reject, r.stores = st.vacation, st.redirects, st.count, st.reject, st.stores
}

var (
	errStop   = errors.New("stop")
	errReturn = errors.New("return")
)

type run struct {
	ctx          context.Context
	env          *Env
	res          *Result
	fields       []Field
	edited       bool
	globals      map[string]string
	once         map[includeKey]bool
	matchVars    []string // match variables ${0}...
	flags        []string // imap4flags' internal variable
	keep         bool     // implicit keep still on
	vacation     bool
	redirects    int
	actions      int
	reject       *Reject
	stores       bool            // keep or fileinto happened
	keptExplicit bool            // this script did an explicit keep
	dupSeen      map[string]bool // duplicate keys tested in this run
	rawBody      *string         // body :raw, read once
	parts        *[]bodyPart     // body :text/:content, decoded once
	now          time.Time
	steps        int
	sep          string
}

func newRun(ctx context.Context, env *Env) *run {
	r := &run{ctx: ctx, env: env, res: &Result{}, globals: map[string]string{}, once: map[includeKey]bool{}, keep: true, sep: env.Separator}
	r.fields = append([]Field(nil), env.Message.Fields...)
	r.now = env.Now
	if r.now.IsZero() {
		r.now = time.Now()
	}
	if r.sep == "" {
		r.sep = "+"
	}
	return r
}

// frame is one script's variables while it runs.
type frame struct {
	s    *Script
	vars map[string]string
	glob map[string]bool
}

func (r *run) script(s *Script, vars map[string]string) error {
	f := &frame{s: s, vars: vars, glob: map[string]bool{}}
	err := r.block(f, s.cmds)
	if err == errReturn {
		return nil
	}
	return err
}

func (r *run) fail(f *frame, x *cmd, format string, args ...any) error {
	return &RuntimeError{Script: f.s.name, Pos: x.pos, Err: fmt.Errorf(format, args...)}
}

func (r *run) block(f *frame, cmds []*cmd) error {
	for _, x := range cmds {
		if err := r.cpuCheck(f, x); err != nil {
			return err
		}
		if err := r.command(f, x); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) command(f *frame, x *cmd) error {
	switch x.name {
	case "if":
		for c := x; c != nil; c = c.next {
			ok := true
			if c.name != "else" {
				var err error
				if ok, err = r.test(f, c.tests[0]); err != nil {
					return err
				}
			}
			if ok {
				return r.block(f, c.block)
			}
		}
		return nil
	case "stop":
		return errStop
	case "return":
		return errReturn
	case "keep":
		flags := r.flags
		if a, ok := x.tags["flags"]; ok {
			flags = r.flagList(f, a.strs)
		}
		return r.store(f, x, "INBOX", flags, false, false, true)
	case "fileinto":
		flags := r.flags
		if a, ok := x.tags["flags"]; ok {
			flags = r.flagList(f, a.strs)
		}
		mbox := r.expand(f, x.args[0].strs[0])
		if !utf8.ValidString(mbox) || mbox == "" {
			return r.fail(f, x, "fileinto: invalid mailbox name %q", mbox)
		}
		return r.store(f, x, mbox, flags, x.has("copy"), x.has("create"), false)
	case "redirect":
		return r.redirect(f, x)
	case "discard":
		r.keep = false
		for _, a := range r.res.Actions {
			if _, ok := a.(*Discard); ok {
				return nil
			}
		}
		return r.add(f, x, &Discard{})
	case "reject", "ereject":
		return r.doReject(f, x)
	case "vacation":
		return r.doVacation(f, x)
	case "set":
		return r.set(f, x)
	case "setflag", "addflag", "removeflag":
		return r.flagCommand(f, x)
	case "include":
		if x.include == nil {
			return nil // :optional and missing
		}
		// :once skips a script included before, with or without :once.
		if x.has("once") && r.once[x.inc] {
			return nil
		}
		r.once[x.inc] = true
		return r.script(x.include, map[string]string{})
	case "global":
		for _, v := range x.args[0].strs {
			f.glob[strings.ToLower(v)] = true
		}
		return nil
	case "addheader":
		return r.addHeader(f, x)
	case "deleteheader":
		return r.deleteHeader(f, x)
	}
	return r.fail(f, x, "unknown command %s", x.name)
}

func (r *run) limits() Limits {
	l := r.env.Limits
	if l.MaxActions <= 0 {
		l.MaxActions = DefaultMaxActions
	}
	if l.MaxRedirects <= 0 {
		l.MaxRedirects = DefaultMaxRedirects
	}
	return l
}

func (r *run) add(f *frame, x *cmd, a Action) error {
	if r.actions++; r.actions > r.limits().MaxActions {
		return &RuntimeError{Script: f.s.name, Pos: x.pos, Err: fmt.Errorf("%w: more than %d actions", ErrLimit, r.limits().MaxActions)}
	}
	r.res.Actions = append(r.res.Actions, a)
	return nil
}

func mergeFlags(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, f := range b {
		if !containsFold(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// sameMailbox compares mailbox names; INBOX is case-insensitive (RFC 3501).
func sameMailbox(a, b string) bool {
	if strings.EqualFold(a, "INBOX") && strings.EqualFold(b, "INBOX") {
		return true
	}
	return a == b
}

// store is keep and fileinto: RFC 5228 2.10.3 says storing twice into one
// mailbox stores once, and keep is fileinto "INBOX".
func (r *run) store(f *frame, x *cmd, mbox string, flags []string, cp, create, isKeep bool) error {
	if r.reject != nil {
		return r.fail(f, x, "%s conflicts with the earlier reject", x.name)
	}
	r.stores = true
	if isKeep {
		r.keptExplicit = true
		mbox = "INBOX"
	}
	for _, a := range r.res.Actions {
		switch a := a.(type) {
		// A duplicate store takes the later flags (as Pigeonhole does).
		case *Keep:
			if sameMailbox(mbox, "INBOX") {
				a.Flags = append([]string(nil), flags...)
				return nil
			}
		case *FileInto:
			if sameMailbox(a.Mailbox, mbox) {
				a.Flags = append([]string(nil), flags...)
				a.Copy = a.Copy && cp
				a.Create = a.Create || create
				return nil
			}
		}
	}
	// Only a new action cancels the implicit keep: a duplicate of a
	// :copy store does not (Pigeonhole's behaviour).
	if !cp {
		r.keep = false
	}
	fl := append([]string(nil), flags...)
	if isKeep {
		return r.add(f, x, &Keep{Flags: fl})
	}
	return r.add(f, x, &FileInto{Mailbox: mbox, Flags: fl, Copy: cp, Create: create})
}

func (r *run) redirect(f *frame, x *cmd) error {
	raw := r.expand(f, x.args[0].strs[0])
	addr, err := parseAddrSpec(raw)
	if err != nil {
		return r.fail(f, x, "redirect: invalid address %q", raw)
	}
	if r.reject != nil {
		return r.fail(f, x, "redirect conflicts with the earlier reject")
	}
	cp := x.has("copy")
	if !cp {
		r.keep = false
	}
	norm := addr.local + "@" + strings.ToLower(addr.domain)
	for _, a := range r.res.Actions {
		if rd, ok := a.(*Redirect); ok && strings.EqualFold(rd.Address, norm) {
			rd.Copy = rd.Copy && cp
			return nil
		}
	}
	if r.redirects++; r.redirects > r.limits().MaxRedirects {
		return &RuntimeError{Script: f.s.name, Pos: x.pos, Err: fmt.Errorf("%w: more than %d redirects", ErrLimit, r.limits().MaxRedirects)}
	}
	return r.add(f, x, &Redirect{Address: norm, Copy: cp})
}

// doReject enforces RFC 5429 2.1/2.2: one reject, and not with an action
// that delivers the message.
func (r *run) doReject(f *frame, x *cmd) error {
	if r.reject != nil {
		return r.fail(f, x, "%s: only one reject or ereject is allowed", x.name)
	}
	if r.stores {
		return r.fail(f, x, "%s conflicts with an earlier keep or fileinto", x.name)
	}
	for _, a := range r.res.Actions {
		switch a.(type) {
		case *Redirect:
			return r.fail(f, x, "%s conflicts with an earlier redirect", x.name)
		case *Vacation:
			return r.fail(f, x, "%s conflicts with an earlier vacation", x.name)
		}
	}
	r.reject = &Reject{Reason: r.expand(f, x.args[0].strs[0]), Extended: x.name == "ereject"}
	r.keep = false
	return r.add(f, x, r.reject)
}

func (r *run) finish() {
	r.res.ImplicitKeep = r.keep
	if r.keep {
		r.res.KeepFlags = append([]string(nil), r.flags...)
		// An earlier script's explicit keep and this implicit keep are one
		// store into INBOX: the implicit keep's flags win.
		for _, a := range r.res.Actions {
			if k, ok := a.(*Keep); ok {
				k.Flags = r.res.KeepFlags
				r.res.ImplicitKeep, r.res.KeepFlags = false, nil
			}
		}
	}
	if r.edited {
		r.res.Header, r.res.HeaderEdited = r.fields, true
	}
}

// expand substitutes variables (RFC 5229 3) when the script uses them.
func (r *run) expand(f *frame, s string) string {
	if !f.s.exts["variables"] || !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			b.WriteString(s[i:])
			return b.String()
		}
		name := s[i+2 : i+end]
		if v, ok := r.lookupVar(f, name); ok {
			b.WriteString(v)
			s = s[i+end+1:]
		} else {
			// Not a variable reference: keep "${" and go on after it.
			b.WriteString("${")
			s = s[i+2:]
		}
	}
}

// lookupVar returns a variable's value; ok is false if name is not a
// valid reference (then the text is kept as it is). An unset variable is
// the empty string.
func (r *run) lookupVar(f *frame, name string) (string, bool) {
	if name == "" {
		return "", false
	}
	if isDigits(name) {
		n, err := strconv.Atoi(name)
		if err != nil || n >= len(r.matchVars) {
			return "", err == nil
		}
		return r.matchVars[n], true
	}
	parts := strings.Split(strings.ToLower(name), ".")
	for _, p := range parts {
		if !identRE.MatchString(p) {
			return "", false
		}
	}
	switch {
	case len(parts) == 1:
		if f.glob[parts[0]] {
			return r.globals[parts[0]], true
		}
		return f.vars[parts[0]], true
	case len(parts) == 2 && parts[0] == "global" && f.s.exts["include"]:
		return r.globals[parts[1]], true
	case len(parts) >= 2 && parts[0] == "env" && f.s.exts["environment"]:
		v, _ := r.environment(strings.Join(parts[1:], "."))
		return v, true
	}
	return "", true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func (r *run) setVar(f *frame, name, value string) {
	name = strings.ToLower(name)
	if strings.HasPrefix(name, "global.") {
		r.globals[name[len("global."):]] = value
		return
	}
	if f.glob[name] {
		r.globals[name] = value
		return
	}
	f.vars[name] = value
}

func (r *run) getVar(f *frame, name string) string {
	v, _ := r.lookupVar(f, name)
	return v
}

// maxVarSize is Pigeonhole's sieve_variables_max_variable_size.
const maxVarSize = 4096

func (r *run) set(f *frame, x *cmd) error {
	v := r.expand(f, x.args[1].strs[0])
	if x.has("lower") {
		v = strings.ToLower(v)
	}
	if x.has("upper") {
		v = strings.ToUpper(v)
	}
	if x.has("lowerfirst") && v != "" {
		rr, n := utf8.DecodeRuneInString(v)
		v = strings.ToLower(string(rr)) + v[n:]
	}
	if x.has("upperfirst") && v != "" {
		rr, n := utf8.DecodeRuneInString(v)
		v = strings.ToUpper(string(rr)) + v[n:]
	}
	if x.has("quotewildcard") {
		v = quoteWildcard(v)
	}
	if x.has("quoteregex") {
		v = quoteRegex(v)
	}
	if x.has("length") {
		v = strconv.Itoa(utf8.RuneCountInString(v))
	}
	if len(v) > maxVarSize {
		v = truncUTF8(v, maxVarSize)
	}
	r.setVar(f, x.args[0].strs[0], v)
	return nil
}

func truncUTF8(s string, n int) string {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// systemFlags may be set by a script (RFC 5232 3: not \Recent).
var systemFlags = map[string]bool{`\seen`: true, `\answered`: true, `\flagged`: true, `\deleted`: true, `\draft`: true}

// validFlag: a system flag from the list, or an IMAP atom (RFC 3501
// flag-keyword); Pigeonhole drops the rest, and so do we.
func validFlag(fl string) bool {
	if strings.HasPrefix(fl, `\`) {
		return systemFlags[strings.ToLower(fl)]
	}
	for i := 0; i < len(fl); i++ {
		if c := fl[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return fl != ""
}

// flagList splits flag strings on spaces and drops duplicates and invalid
// flags (RFC 5232 3).
func (r *run) flagList(f *frame, strs []string) []string {
	var out []string
	for _, s := range strs {
		for _, fl := range strings.Fields(r.expand(f, s)) {
			if validFlag(fl) && !containsFold(out, fl) {
				out = append(out, fl)
			}
		}
	}
	return out
}

func (r *run) flagCommand(f *frame, x *cmd) error {
	list := r.flagList(f, x.args[len(x.args)-1].strs)
	var cur []string
	varName := ""
	if len(x.args) == 2 {
		varName = x.args[0].strs[0]
		cur = strings.Fields(r.getVar(f, varName))
	} else {
		cur = r.flags
	}
	switch x.name {
	case "setflag":
		cur = list
	case "addflag":
		cur = mergeFlags(cur, list)
	case "removeflag":
		var keep []string
		for _, fl := range cur {
			if !containsFold(list, fl) {
				keep = append(keep, fl)
			}
		}
		cur = keep
	}
	if varName != "" {
		r.setVar(f, varName, strings.Join(cur, " "))
	} else {
		r.flags = cur
	}
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// duplicateKey hashes a duplicate test's handle and ID so that no message
// content is stored in clear beneath the mailbox.
func duplicateKey(handle, id string) string {
	h := sha256.Sum256([]byte(handle + "\x00" + id))
	return hex.EncodeToString(h[:])
}
