// Runs in: the front.

package lmtp

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// maxCommandLine bounds a command line. RFC 5321 says 512 octets, but
// SMTPUTF8 addresses and DSN parameters make real lines longer; 4096 is
// plenty and still small.
const maxCommandLine = 4096

// maxErrors is how many protocol errors a client may make before it is
// disconnected.
const maxErrors = 10

var (
	errCommandTooLong = errors.New("command line too long")
	errTooManyErrors  = errors.New("too many protocol errors")
	errShuttingDown   = errors.New("shutting down")
)

// conn is one client connection.
type conn struct {
	s   *Server
	set *Settings // as when the connection was accepted
	// raw is the accepted connection; nc is what is read and written,
	// a TLS layer over raw after STARTTLS. Deadlines set on raw hold for
	// both, and only raw is touched by Shutdown.
	raw  net.Conn
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	sess Session

	// The transaction: MAIL given, and the recipients accepted (as the
	// client wrote them, for the replies after the message).
	inMail bool
	rcpts  []string

	tls     *tls.ConnectionState
	errors  int
	closing bool
	idle    atomic.Bool // waiting for a command outside a transaction
	line    []byte
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{s: s, set: s.settings(), raw: nc, nc: nc, br: bufio.NewReaderSize(nc, 64<<10), bw: bufio.NewWriterSize(nc, 4<<10)}
}

func (c *conn) serve() {
	defer c.close()
	c.reply(&Reply{Code: 220, Text: c.set.Hostname + " LMTP service ready"})
	for !c.closing {
		line, err := c.readCommand()
		if errors.Is(err, errCommandTooLong) {
			c.protocolError(Replyf(500, 5, 5, 2, "command line too long"))
			continue
		}
		if err != nil {
			c.readFailed(err)
			return
		}
		c.handle(line)
	}
}

func (c *conn) close() {
	c.flush()
	c.nc.Close()
	if c.sess != nil {
		c.sess.Close()
	}
}

// readFailed answers a command that could not be read. A partial line is
// never executed.
func (c *conn) readFailed(err error) {
	switch {
	case errors.Is(err, errShuttingDown) || isTimeout(err) && c.s.draining.Load() && !c.inMail:
		c.reply(Replyf(421, 4, 3, 2, "%s service shutting down, closing connection", c.set.Hostname))
	case isTimeout(err):
		c.reply(Replyf(421, 4, 4, 2, "%s timeout exceeded, closing connection", c.set.Hostname))
	default:
		c.s.Log.Debug("client connection ended", "error", err)
	}
}

// readCommand reads the next command line under idle_timeout.
func (c *conn) readCommand() (string, error) {
	idle := !c.inMail
	c.idle.Store(idle)
	defer c.idle.Store(false)
	c.setReadDeadline(deadline(c.set.IdleTimeout))
	// After the deadline is set, so a Shutdown that woke us earlier is
	// not missed (see wakeIfIdle).
	if idle && c.s.draining.Load() {
		return "", errShuttingDown
	}
	return c.readLine()
}

func (c *conn) wakeIfIdle() {
	if c.idle.Load() {
		c.raw.SetReadDeadline(aLongTimeAgo)
	}
}

// setReadDeadline sets d unless Shutdown has run out of time, in which
// case every read ends at once.
func (c *conn) setReadDeadline(d time.Time) {
	c.raw.SetReadDeadline(d)
	if c.s.ctx.Err() != nil {
		c.raw.SetReadDeadline(aLongTimeAgo)
	}
}

// readLine reads one line, without its line end, flushing the replies
// first unless another complete line is already waiting (pipelining).
// An over-long line is consumed and reported as errCommandTooLong.
func (c *conn) readLine() (string, error) {
	if !c.lineBuffered() {
		if err := c.flush(); err != nil {
			return "", err
		}
	}
	c.line = c.line[:0]
	tooLong := false
	for {
		frag, err := c.br.ReadSlice('\n')
		if len(c.line)+len(frag) > maxCommandLine {
			tooLong = true
		} else {
			c.line = append(c.line, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", streamError(err)
		}
		break
	}
	if tooLong {
		return "", errCommandTooLong
	}
	l := bytes.TrimSuffix(c.line[:len(c.line)-1], []byte{'\r'})
	return string(l), nil
}

func (c *conn) lineBuffered() bool {
	n := c.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := c.br.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

func (c *conn) reply(r *Reply) { c.write(r.line("")) }

// replyTo sends a recipient's reply, naming the recipient.
func (c *conn) replyTo(rcpt string, r *Reply) { c.write(r.line("<" + rcpt + "> ")) }

func (c *conn) write(line string) {
	if c.bw.Available() < len(line)+2 {
		// The buffer flushes itself to make room: under a fresh
		// deadline, not one left from an earlier flush.
		c.setWriteDeadline()
	}
	c.bw.WriteString(line)
	c.bw.WriteString("\r\n")
}

func (c *conn) setWriteDeadline() {
	if c.set.WriteTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.set.WriteTimeout))
	}
}

func (c *conn) flush() error {
	if c.bw.Buffered() == 0 {
		return nil
	}
	c.setWriteDeadline()
	err := c.bw.Flush()
	if err != nil {
		c.closing = true
		// Nothing more can reach this client.
		c.bw.Reset(io.Discard)
	}
	return err
}

func (c *conn) protocolError(r *Reply) {
	c.reply(r)
	c.errors++
	if c.errors >= maxErrors {
		c.reply(Replyf(421, 4, 7, 0, "%s too many errors, closing connection", c.set.Hostname))
		c.closing = true
	}
}

var (
	replyOK       = Replyf(250, 2, 0, 0, "ok")
	errNoLHLO     = Replyf(503, 5, 5, 1, "send LHLO first")
	errNeedMail   = Replyf(503, 5, 5, 1, "need MAIL command")
	errNeedRcpt   = Replyf(503, 5, 5, 1, "need RCPT command")
	errNestedMail = Replyf(503, 5, 5, 1, "nested MAIL command")
)

func (c *conn) handle(line string) {
	verb, arg := splitCommand(line)
	// MAIL and RCPT check their own arguments, to say which part is bad.
	if verb != "MAIL" && verb != "RCPT" && (!utf8.ValidString(line) || HasControl(line)) {
		c.protocolError(Replyf(500, 5, 5, 2, "invalid characters in command"))
		return
	}
	switch verb {
	case "LHLO":
		c.lhlo(arg)
	case "HELO", "EHLO":
		c.protocolError(Replyf(500, 5, 5, 1, "this is an LMTP server: use LHLO"))
	case "MAIL", "RCPT", "DATA", "BDAT":
		if c.needsTLS() {
			if verb == "BDAT" {
				// Its chunk cannot be told from commands.
				c.reply(errNeedTLS)
				c.closing = true
				return
			}
			c.protocolError(errNeedTLS)
			return
		}
		switch verb {
		case "MAIL":
			c.mail(arg)
		case "RCPT":
			c.rcpt(arg)
		case "DATA":
			c.data(arg)
		case "BDAT":
			c.bdat(arg)
		}
	case "RSET":
		c.endTransaction()
		c.reply(Replyf(250, 2, 0, 0, "reset"))
	case "NOOP":
		c.reply(replyOK)
	case "QUIT":
		c.reply(Replyf(221, 2, 0, 0, "%s closing connection", c.set.Hostname))
		c.closing = true
	case "VRFY":
		c.reply(Replyf(252, 2, 5, 2, "cannot verify; send the message and RCPT will tell"))
	case "":
		c.protocolError(Replyf(500, 5, 5, 2, "empty command"))
	case "STARTTLS":
		c.startTLS(arg)
	case "AUTH", "EXPN", "HELP", "TURN", "ETRN", "SEND", "SOML", "SAML":
		c.protocolError(Replyf(502, 5, 5, 1, "%s not implemented", verb))
	default:
		c.protocolError(Replyf(500, 5, 5, 2, "command not recognized"))
	}
}

func (c *conn) lhlo(arg string) {
	name, _, _ := strings.Cut(arg, " ")
	if name == "" {
		c.protocolError(Replyf(501, 5, 5, 4, "LHLO requires a host name"))
		return
	}
	if c.sess == nil {
		c.sess = c.s.Backend.NewSession(ConnInfo{Remote: c.nc.RemoteAddr(), Hello: name, TLS: c.tls})
	} else {
		c.endTransaction()
	}
	// The client's name is never echoed: whatever it holds stays out of
	// our replies.
	lines := []string{c.set.Hostname, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8", "CHUNKING", "DSN"}
	if c.offersTLS() {
		lines = append(lines, "STARTTLS")
	}
	if c.set.MaxMessageSize > 0 {
		lines = append(lines, "SIZE "+strconv.FormatInt(c.set.MaxMessageSize, 10))
	} else {
		lines = append(lines, "SIZE")
	}
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		c.write("250" + sep + l)
	}
}

var errNeedTLS = Replyf(530, 5, 7, 0, "must issue a STARTTLS command first")

// offersTLS: TLS is configured, this is TCP, and not yet encrypted.
func (c *conn) offersTLS() bool {
	_, tcp := c.nc.RemoteAddr().(*net.TCPAddr)
	return c.set.TLSConfig != nil && tcp && c.tls == nil
}

func (c *conn) needsTLS() bool { return c.set.RequireTLS && c.offersTLS() }

// startTLS upgrades the connection (RFC 3207). Whatever the client sent
// after the command in the clear is dropped with the old buffer, so
// nothing injected before the handshake runs inside TLS, and the session
// starts over at LHLO.
func (c *conn) startTLS(arg string) {
	switch {
	case !c.offersTLS():
		c.protocolError(Replyf(502, 5, 5, 1, "STARTTLS not available"))
		return
	case arg != "":
		c.protocolError(Replyf(501, 5, 5, 4, "STARTTLS takes no argument"))
		return
	case c.inMail:
		c.protocolError(Replyf(503, 5, 5, 1, "STARTTLS inside a transaction"))
		return
	}
	c.reply(Replyf(220, 2, 0, 0, "ready to start TLS"))
	if err := c.flush(); err != nil {
		return
	}
	tc := tls.Server(c.nc, c.set.TLSConfig)
	c.setReadDeadline(deadline(c.set.IdleTimeout))
	if err := tc.Handshake(); err != nil {
		c.s.Log.Warn("TLS handshake failed", "client", c.nc.RemoteAddr().String(), "error", err)
		c.closing = true
		c.bw.Reset(io.Discard)
		return
	}
	st := tc.ConnectionState()
	c.nc, c.tls = tc, &st
	c.br = bufio.NewReaderSize(tc, 64<<10)
	c.bw = bufio.NewWriterSize(tc, 4<<10)
	if c.sess != nil {
		c.sess.Close()
		c.sess = nil
	}
}

// endTransaction forgets the envelope, here and in the session.
func (c *conn) endTransaction() {
	c.inMail, c.rcpts = false, nil
	if c.sess != nil {
		c.sess.Reset()
	}
}

func addressError(err error, who string, enhanced int) *Reply {
	switch {
	case errors.Is(err, errPathTooLong):
		return Replyf(501, 5, 1, enhanced, "%s address too long", who)
	case errors.Is(err, errBadChars):
		return Replyf(501, 5, 1, enhanced, "%s address contains invalid characters", who)
	}
	return Replyf(501, 5, 1, enhanced, "bad %s address syntax", who)
}

func (c *conn) mail(arg string) {
	switch {
	case c.sess == nil:
		c.protocolError(errNoLHLO)
		return
	case c.inMail:
		c.protocolError(errNestedMail)
		return
	}
	rest, ok := cutKeyword(arg, "FROM:")
	if !ok {
		c.protocolError(Replyf(501, 5, 5, 2, "syntax: MAIL FROM:<address>"))
		return
	}
	from, rest, err := parsePath(rest, true)
	if err != nil {
		c.protocolError(addressError(err, "sender", 7))
		return
	}
	params, err := parseParams(rest)
	if err != nil {
		c.protocolError(Replyf(501, 5, 5, 4, "%v", err))
		return
	}
	var opts MailOptions
	for k, v := range params {
		if r := mailParam(&opts, k, v, c.set.MaxMessageSize); r != nil {
			c.protocolError(r)
			return
		}
	}
	if r := c.sess.Mail(from, opts); r != nil {
		c.reply(r)
		return
	}
	c.inMail = true
	c.reply(Replyf(250, 2, 1, 0, "<%s> sender ok", from.Raw))
}

func mailParam(o *MailOptions, k, v string, maxSize int64) *Reply {
	switch k {
	case "SIZE":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return Replyf(501, 5, 5, 4, "bad SIZE parameter")
		}
		if maxSize > 0 && n > maxSize {
			return ErrMessageTooBig
		}
		o.Size = n
	case "BODY":
		v = strings.ToUpper(v)
		if v != "7BIT" && v != "8BITMIME" {
			return Replyf(555, 5, 5, 4, "BODY=%s not supported", v)
		}
		o.Body = v
	case "SMTPUTF8":
		if v != "" {
			return Replyf(501, 5, 5, 4, "SMTPUTF8 takes no value")
		}
		o.UTF8 = true
	case "RET":
		v = strings.ToUpper(v)
		if v != "FULL" && v != "HDRS" {
			return Replyf(501, 5, 5, 4, "bad RET parameter")
		}
		o.Ret = v
	case "ENVID":
		o.EnvID = v
	case "AUTH":
		// Meaningless here (no AUTH is offered); harmless.
	default:
		return Replyf(555, 5, 5, 4, "MAIL parameter %s not supported", k)
	}
	return nil
}

func (c *conn) rcpt(arg string) {
	if !c.inMail {
		c.protocolError(errNeedMail)
		return
	}
	rest, ok := cutKeyword(arg, "TO:")
	if !ok {
		c.protocolError(Replyf(501, 5, 5, 2, "syntax: RCPT TO:<address>"))
		return
	}
	to, rest, err := parsePath(rest, false)
	if err != nil {
		c.protocolError(addressError(err, "recipient", 3))
		return
	}
	params, err := parseParams(rest)
	if err != nil {
		c.protocolError(Replyf(501, 5, 5, 4, "%v", err))
		return
	}
	var opts RcptOptions
	for k, v := range params {
		switch k {
		case "ORCPT":
			typ, addr, err := decodeORCPT(v)
			if err != nil {
				opts.ParamErrors = append(opts.ParamErrors, fmt.Errorf("ORCPT=%q ignored: %w", v, err))
				continue
			}
			opts.OriginalRecipient, opts.OriginalRecipientType = addr, typ
		case "NOTIFY":
			if !validNotify(v) {
				opts.ParamErrors = append(opts.ParamErrors, fmt.Errorf("NOTIFY=%q ignored", v))
				continue
			}
			opts.Notify = strings.ToUpper(v)
		default:
			c.protocolError(Replyf(555, 5, 5, 4, "RCPT parameter %s not supported", k))
			return
		}
	}
	if c.set.MaxRecipients > 0 && len(c.rcpts) >= c.set.MaxRecipients {
		c.replyTo(to.Raw, Replyf(452, 4, 5, 3, "too many recipients"))
		return
	}
	// nil, and only nil, accepts: the session keeps its own list of the
	// recipients it accepted, and the replies after DATA pair up with
	// this one by position.
	r := c.sess.Rcpt(c.s.ctx, to, opts)
	if r == nil {
		r = RcptOK
		c.rcpts = append(c.rcpts, to.Raw)
	}
	c.replyTo(to.Raw, r)
}

func validNotify(v string) bool {
	seen := map[string]bool{}
	for _, n := range strings.Split(strings.ToUpper(v), ",") {
		if seen[n] || (n != "NEVER" && n != "SUCCESS" && n != "FAILURE" && n != "DELAY") {
			return false
		}
		seen[n] = true
	}
	return !seen["NEVER"] || len(seen) == 1
}

func (c *conn) data(arg string) {
	switch {
	case arg != "":
		c.protocolError(Replyf(501, 5, 5, 4, "DATA takes no argument"))
		return
	case !c.inMail:
		c.protocolError(errNeedMail)
		return
	case len(c.rcpts) == 0:
		c.protocolError(errNeedRcpt)
		return
	}
	c.reply(&Reply{Code: 354, Text: "send the message, end with <CR><LF>.<CR><LF>"})
	c.setReadDeadline(deadline(c.set.DataTimeout))
	if err := c.flush(); err != nil {
		return
	}
	c.transfer(newDotReader(c.br, c.limits()))
}

func (c *conn) bdat(arg string) {
	size, last, ok := parseBDAT(arg)
	if !ok {
		// The chunk's length is unknown, so its bytes cannot be told from
		// commands: the only safe thing is to hang up.
		c.reply(Replyf(501, 5, 5, 4, "syntax: BDAT size [LAST]; closing connection"))
		c.closing = true
		return
	}
	c.setReadDeadline(deadline(c.set.DataTimeout))
	if !c.inMail || len(c.rcpts) == 0 {
		// The chunk follows anyway: read it as data and drop it.
		if _, err := io.CopyN(io.Discard, c.br, size); err != nil {
			c.readFailed(streamError(err))
			c.closing = true
			return
		}
		if !c.inMail {
			c.protocolError(errNeedMail)
		} else {
			c.protocolError(errNeedRcpt)
		}
		return
	}
	c.transfer(&chunkReader{c: c, lim: c.limits(), left: size, size: size, last: last})
}

func (c *conn) limits() limits {
	return limits{maxSize: c.set.MaxMessageSize, maxLine: c.set.MaxLineLength}
}

// transfer hands the message to the session, reads whatever it left, and
// answers each recipient: with the session's reply when the message
// arrived whole, and with a 4xx when it stopped arriving.
func (c *conn) transfer(body bodyReader) {
	replies := c.sess.Data(c.s.ctx, body)
	err := body.drain()
	rcpts := c.rcpts
	c.endTransaction()
	switch {
	case err == nil:
		for i, rc := range rcpts {
			r := errNoStatus
			if i < len(replies) && replies[i] != nil {
				r = replies[i]
			}
			c.replyTo(rc, r)
		}
	case errors.Is(err, errRset):
		c.reply(Replyf(250, 2, 0, 0, "reset"))
	case errors.Is(err, errQuit):
		c.reply(Replyf(221, 2, 0, 0, "%s closing connection", c.set.Hostname))
		c.closing = true
	case errors.Is(err, errDesync):
		c.reply(Replyf(501, 5, 5, 4, "syntax: BDAT size [LAST]; closing connection"))
		c.closing = true
	case isTimeout(err):
		each, final := errDataTimout, Replyf(421, 4, 4, 2, "%s timeout exceeded, closing connection", c.set.Hostname)
		if c.s.ctx.Err() != nil {
			each = Replyf(451, 4, 3, 2, "service shutting down, message not received")
			final = Replyf(421, 4, 3, 2, "%s service shutting down, closing connection", c.set.Hostname)
		}
		for _, rc := range rcpts {
			c.replyTo(rc, each)
		}
		c.reply(final)
		c.closing = true
	default:
		// The client is gone (or broke the protocol past repair):
		// nothing more can be said to it.
		c.closing = true
	}
}

// deadline is d from now; no deadline for 0.
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// streamError names why a read ended early.
func streamError(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return errClientGone
	}
	return err
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
