// Runs in: every process that reads the configuration (parent, front, commands).

// Package config loads and validates vlmtpd's TOML configuration. Parameter
// names are Postfix's where Postfix has one, with Postfix's defaults; every
// error names the file, the line and the key.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/vlmtpd/vlmtpd/maps"
)

// Config is a loaded, validated configuration. Paths are absolute.
type Config struct {
	// Path is the file the configuration came from; Dir its directory,
	// which relative paths (and relative table names) are taken from.
	Path, Dir string

	Hostname        string
	Listen          []string // "unix:/abs/path" or "inet:host:port"
	SocketMode      os.FileMode
	SocketGroup     string
	AllowedNetworks []netip.Prefix
	User            string
	SpoolDirectory  string

	MessageSizeLimit   int64
	RecipientDelimiter string
	// DoubleBounceSender is never split at a delimiter, as in Postfix.
	DoubleBounceSender string

	// MyOrigin, MyDomain and MyDestination are Postfix's myorigin,
	// mydomain and mydestination, with $myhostname, $mydomain and
	// $myorigin expanded: a recipient whose domain is $myorigin or in
	// $mydestination is also looked up by its bare localpart.
	MyOrigin      string
	MyDomain      string
	MyDestination []string

	VirtualMailboxBase    string
	VirtualMailboxDomains []string
	VirtualMailboxMaps    []string
	VirtualUIDMaps        []string
	VirtualGIDMaps        []string
	VirtualMinimumUID     int
	VirtualMailboxLock    []string
	VirtualMailboxLimit   int64

	// Quota (VDA's names): the per-recipient Maildir++ quota table, whether
	// maildirsize is kept up to date and created, bounce or defer when
	// over quota, and the reply text.
	VirtualMailboxLimitMaps    []string
	VirtualMaildirExtended     bool
	VirtualCreateMaildirsize   bool
	VirtualOverquotaBounce     bool
	VirtualMaildirLimitMessage string
	// RecipientConcurrencyLimit bounds the deliveries in flight to one
	// mailbox (RCPT to end of DATA); 0 means none.
	RecipientConcurrencyLimit int
	// SaveToDetailMailbox puts user+detail into the Maildir++ folder
	// .detail/ when it exists (DetailMailboxCreate: creates it).
	SaveToDetailMailbox bool
	DetailMailboxCreate bool
	// SingleInstanceDelivery: the Maildir recipients of one message
	// share one file, hard-linked, without per-recipient Delivered-To
	// and X-Original-To (Dovecot's trade-off); off by default.
	SingleInstanceDelivery bool

	DeliverLockAttempts int
	DeliverLockDelay    time.Duration
	StaleLockTime       time.Duration

	// Sieve (Pigeonhole's names): the per-recipient active script table
	// (results are paths beneath VirtualMailboxBase), the administrator's
	// scripts run before and after it (absolute paths), the limits, and
	// how redirects and vacation replies are submitted by the front:
	// SubmissionHost (Pigeonhole's submission_host, "inet:host:port" or
	// "unix:/path", SMTP) when set, else Postfix's sendmail_path.
	SieveScriptMaps    []string
	SieveBefore        []string
	SieveAfter         []string
	SieveGlobalDir     string // include :global's scripts, "" for none
	SieveMaxRedirects  int
	SieveMaxActions    int
	SieveMaxScriptSize int
	SieveMaxCPUTime    time.Duration
	SendmailPath       string
	SubmissionHost     string

	MaxConnections  int
	MaxRecipients   int
	LineLengthLimit int
	IdleTimeout     time.Duration
	DataTimeout     time.Duration
	DeliveryTimeout time.Duration
	// ShutdownTimeout is how long a stop waits for transactions in
	// progress; keep it under systemd's TimeoutStopSec.
	ShutdownTimeout time.Duration

	WorkerIdleTimeout time.Duration
	WorkerMaxUse      int
	WorkerLimit       int
	WorkerOwnerLimit  int

	// STARTTLS on inet listeners: the certificate and key (PEM), the
	// policy ("none", "may", "encrypt": STARTTLS required before MAIL)
	// and, if any, the SHA-256 fingerprints (lower-case hex) of the only
	// client certificates accepted.
	TLSCertFile           string
	TLSKeyFile            string
	TLSSecurityLevel      string
	TLSClientFingerprints []string

	EnableOriginalRecipient bool
	// DeliveredToLoopCheck refuses (554 5.4.6) a recipient named by a
	// Delivered-To: header below a Received: header.
	DeliveredToLoopCheck bool
	LogLevel             string
	LogFormat            string
	// MetricsListen is where the front serves Prometheus metrics
	// ("inet:host:port" or "unix:/abs/path"), "" for nowhere.
	MetricsListen string
}

// LockTimeout is the whole time one delivery may wait for mbox locks.
func (c *Config) LockTimeout() time.Duration {
	return time.Duration(c.DeliverLockAttempts) * c.DeliverLockDelay
}

// MapOptions are the options every table of this configuration opens with.
func (c *Config) MapOptions() maps.Options { return maps.Options{Dir: c.Dir} }

// file mirrors the TOML. Parse decodes the table's defaults into it
// first, so a nil pointer is a setting the file leaves out that has no
// literal default (required, or worked out from others: see or).
type file struct {
	Hostname        *string `toml:"hostname"`
	Listen          *list   `toml:"listen"`
	SocketMode      *string `toml:"socket_mode"`
	SocketGroup     *string `toml:"socket_group"`
	AllowedNetworks *list   `toml:"allowed_networks"`
	User            *string `toml:"user"`
	SpoolDirectory  *string `toml:"spool_directory"`

	MessageSizeLimit   *int64  `toml:"message_size_limit"`
	RecipientDelimiter *string `toml:"recipient_delimiter"`
	DoubleBounceSender *string `toml:"double_bounce_sender"`
	MyOrigin           *string `toml:"myorigin"`
	MyDomain           *string `toml:"mydomain"`
	MyDestination      *list   `toml:"mydestination"`

	VirtualMailboxBase    *string `toml:"virtual_mailbox_base"`
	VirtualMailboxDomains *list   `toml:"virtual_mailbox_domains"`
	VirtualMailboxMaps    *list   `toml:"virtual_mailbox_maps"`
	VirtualUIDMaps        *list   `toml:"virtual_uid_maps"`
	VirtualGIDMaps        *list   `toml:"virtual_gid_maps"`
	VirtualMinimumUID     *int    `toml:"virtual_minimum_uid"`
	VirtualMailboxLock    *list   `toml:"virtual_mailbox_lock"`
	VirtualMailboxLimit   *int64  `toml:"virtual_mailbox_limit"`

	VirtualMailboxLimitMaps    *list   `toml:"virtual_mailbox_limit_maps"`
	VirtualMaildirExtended     *bool   `toml:"virtual_maildir_extended"`
	VirtualCreateMaildirsize   *bool   `toml:"virtual_create_maildirsize"`
	VirtualOverquotaBounce     *bool   `toml:"virtual_overquota_bounce"`
	VirtualMaildirLimitMessage *string `toml:"virtual_maildir_limit_message"`
	RecipientConcurrencyLimit  *int    `toml:"recipient_concurrency_limit"`
	SaveToDetailMailbox        *bool   `toml:"save_to_detail_mailbox"`
	DetailMailboxCreate        *bool   `toml:"detail_mailbox_create"`
	SingleInstanceDelivery     *bool   `toml:"single_instance_delivery"`

	SieveScriptMaps    *list   `toml:"sieve_script_maps"`
	SieveBefore        *list   `toml:"sieve_before"`
	SieveAfter         *list   `toml:"sieve_after"`
	SieveGlobalDir     *string `toml:"sieve_global_dir"`
	SieveMaxRedirects  *int    `toml:"sieve_max_redirects"`
	SieveMaxActions    *int    `toml:"sieve_max_actions"`
	SieveMaxScriptSize *int    `toml:"sieve_max_script_size"`
	SieveMaxCPUTime    *string `toml:"sieve_max_cpu_time"`
	SendmailPath       *string `toml:"sendmail_path"`
	SubmissionHost     *string `toml:"submission_host"`

	DeliverLockAttempts *int    `toml:"deliver_lock_attempts"`
	DeliverLockDelay    *string `toml:"deliver_lock_delay"`
	StaleLockTime       *string `toml:"stale_lock_time"`

	MaxConnections  *int    `toml:"max_connections"`
	MaxRecipients   *int    `toml:"max_recipients"`
	LineLengthLimit *int    `toml:"line_length_limit"`
	IdleTimeout     *string `toml:"idle_timeout"`
	DataTimeout     *string `toml:"data_timeout"`
	DeliveryTimeout *string `toml:"delivery_timeout"`
	ShutdownTimeout *string `toml:"shutdown_timeout"`

	WorkerIdleTimeout *string `toml:"worker_idle_timeout"`
	WorkerMaxUse      *int    `toml:"worker_max_use"`
	WorkerLimit       *int    `toml:"worker_limit"`
	WorkerOwnerLimit  *int    `toml:"worker_owner_limit"`

	TLSCertFile           *string `toml:"tls_cert_file"`
	TLSKeyFile            *string `toml:"tls_key_file"`
	TLSSecurityLevel      *string `toml:"tls_security_level"`
	TLSClientFingerprints *list   `toml:"tls_client_fingerprints"`

	EnableOriginalRecipient *bool   `toml:"enable_original_recipient"`
	DeliveredToLoopCheck    *bool   `toml:"delivered_to_loop_check"`
	LogLevel                *string `toml:"log_level"`
	LogFormat               *string `toml:"log_format"`
	MetricsListen           *string `toml:"metrics_listen"`
}

// tls reads the STARTTLS settings. A certificate alone means "may"; any
// level but "none" needs the certificate and its key.
func (p *parser) tls(c *Config, f *file) {
	if v := val(f.TLSCertFile); v != "" {
		c.TLSCertFile = p.absPath(c.Dir, v)
	}
	if v := val(f.TLSKeyFile); v != "" {
		c.TLSKeyFile = p.absPath(c.Dir, v)
	}
	def := "none"
	if c.TLSCertFile != "" {
		def = "may"
	}
	c.TLSSecurityLevel = or(f.TLSSecurityLevel, def)
	if c.TLSSecurityLevel == "may" || c.TLSSecurityLevel == "encrypt" {
		if c.TLSCertFile == "" || c.TLSKeyFile == "" {
			p.errorf("tls_security_level", "%q needs tls_cert_file and tls_key_file", c.TLSSecurityLevel)
		}
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		p.errorf("tls_cert_file", "tls_cert_file and tls_key_file go together")
	}
	for _, fp := range val(f.TLSClientFingerprints) {
		hex := strings.ToLower(strings.ReplaceAll(fp, ":", ""))
		if len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
			p.errorf("tls_client_fingerprints", "%q is not a SHA-256 fingerprint (64 hex digits, colons allowed)", fp)
			continue
		}
		c.TLSClientFingerprints = append(c.TLSClientFingerprints, hex)
	}
	if len(c.TLSClientFingerprints) > 0 && c.TLSSecurityLevel != "encrypt" {
		p.errorf("tls_client_fingerprints", "needs tls_security_level = \"encrypt\"")
	}
}

// quota checks the quota and per-recipient policy settings.
func (p *parser) quota(c *Config, f *file) {
	// VDA: maildirsize is kept up to date by default once quotas exist.
	c.VirtualMaildirExtended = or(f.VirtualMaildirExtended, len(c.VirtualMailboxLimitMaps) > 0)
	msg := c.VirtualMaildirLimitMessage
	switch {
	case strings.TrimSpace(msg) == "":
		p.errorf("virtual_maildir_limit_message", "must not be empty")
	case len(msg) > 200:
		p.errorf("virtual_maildir_limit_message", "is %d bytes long; at most 200 fit in a reply line", len(msg))
	default:
		for _, r := range msg {
			if r < ' ' || r > '~' {
				p.errorf("virtual_maildir_limit_message", "%q: only printable ASCII goes into a reply", r)
				break
			}
		}
	}
	if c.SaveToDetailMailbox && c.RecipientDelimiter == "" {
		p.errorf("save_to_detail_mailbox", "needs recipient_delimiter (there is no detail without it)")
	}
	if c.DetailMailboxCreate && !c.SaveToDetailMailbox {
		p.errorf("detail_mailbox_create", "needs save_to_detail_mailbox = true")
	}
}

// sieve reads the Sieve settings. Admin scripts are read by the workers
// and sendmail run by the front, so they must be absolute paths; whether
// they exist is
// checked by "vlmtpd check-config" and at delivery, not here (a reload
// must not fail because a script is being replaced).
func (p *parser) sieve(c *Config, f *file) {
	c.SieveScriptMaps = val(f.SieveScriptMaps)
	for key, v := range map[string]*list{"sieve_before": f.SieveBefore, "sieve_after": f.SieveAfter} {
		var out []string
		for _, path := range val(v) {
			if !filepath.IsAbs(path) {
				p.errorf(key, "%q is not an absolute path", path)
				continue
			}
			out = append(out, filepath.Clean(path))
		}
		if key == "sieve_before" {
			c.SieveBefore = out
		} else {
			c.SieveAfter = out
		}
	}
	if g := val(f.SieveGlobalDir); g != "" {
		if !filepath.IsAbs(g) {
			p.errorf("sieve_global_dir", "%q is not an absolute path", g)
		}
		c.SieveGlobalDir = filepath.Clean(g)
	}
	c.SendmailPath = val(f.SendmailPath)
	if !filepath.IsAbs(c.SendmailPath) || strings.ContainsAny(c.SendmailPath, " \t") {
		p.errorf("sendmail_path", "%q is not an absolute path to a program (no arguments)", c.SendmailPath)
	}
	c.SubmissionHost = p.submissionHost(c.Dir, val(f.SubmissionHost))
	c.SieveMaxRedirects = val(f.SieveMaxRedirects)
	c.SieveMaxActions = val(f.SieveMaxActions)
	c.SieveMaxScriptSize = val(f.SieveMaxScriptSize)
	c.SieveMaxCPUTime = p.duration("sieve_max_cpu_time", f.SieveMaxCPUTime)
	if c.SieveMaxCPUTime > c.DeliveryTimeout {
		p.errorf("sieve_max_cpu_time", "%v is longer than delivery_timeout %v", c.SieveMaxCPUTime, c.DeliveryTimeout)
	}
}

// list is a list parameter: a TOML array of strings, or one string split
// like main.cf (commas and white space, braces kept together).
type list []string

func (l *list) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*l = maps.SplitList(v)
		if len(*l) == 0 {
			*l = nil // as [] does: an empty list is nil
		}
	case []any:
		var out []string
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("list items must be strings, not %T", e)
			}
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		*l = out
	default:
		return fmt.Errorf("expected a string or an array of strings, not %T", v)
	}
	return nil
}

// Load reads and validates the configuration at path.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, err
	}
	return Parse(abs, data)
}

// Parse validates configuration text; path names it in errors and fixes
// the directory relative paths are taken from.
func Parse(path string, data []byte) (*Config, error) {
	var f file
	if _, err := toml.Decode(defaultsTOML, &f); err != nil {
		panic("config: the table's defaults: " + err.Error())
	}
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, decodeError(path, err)
	}
	p := &parser{path: path, text: string(data)}
	for _, k := range md.Undecoded() {
		p.errorf(k.String(), "unknown parameter %q", k.String())
	}
	c := p.build(&f)
	p.checkValues(c)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return c, nil
}

// tomlError is how the toml package words its errors, with or without
// the key it was reading.
var tomlError = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "([^"]*)"\))?: (.*)$`)

// decodeError rewrites a toml error as file:line: key: problem.
func decodeError(path string, err error) error {
	m := tomlError.FindStringSubmatch(err.Error())
	switch {
	case m == nil:
		return fmt.Errorf("%s: %v", path, err)
	case m[2] != "":
		return fmt.Errorf("%s:%s: %s: %s", path, m[1], m[2], m[3])
	default:
		return fmt.Errorf("%s:%s: %s", path, m[1], m[3])
	}
}

type parser struct {
	path, text string
	errs       []error
}

// errorf records an error about key, prefixed with file:line.
func (p *parser) errorf(key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if line := p.lineOf(key); line > 0 {
		p.errs = append(p.errs, fmt.Errorf("%s:%d: %s: %s", p.path, line, key, msg))
	} else {
		p.errs = append(p.errs, fmt.Errorf("%s: %s: %s", p.path, key, msg))
	}
}

// lineOf finds the line that sets a top-level key.
func (p *parser) lineOf(key string) int {
	re := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(key) + `"?\s*=`)
	for i, l := range strings.Split(p.text, "\n") {
		if re.MatchString(l) {
			return i + 1
		}
	}
	return 0
}

// or is a setting's value, def when the file leaves it out; for settings
// whose default is worked out from others (the table has none).
func or[T any](v *T, def T) T {
	if v == nil {
		return def
	}
	return *v
}

// val is a setting's value: the file's, or the table's default.
func val[T any](v *T) T {
	var zero T
	return or(v, zero)
}

func (p *parser) build(f *file) *Config {
	dir := filepath.Dir(p.path)
	c := &Config{
		Path:                p.path,
		Dir:                 dir,
		Hostname:            val(f.Hostname),
		SocketGroup:         val(f.SocketGroup),
		User:                val(f.User),
		SpoolDirectory:      p.absPath(dir, val(f.SpoolDirectory)),
		MessageSizeLimit:    val(f.MessageSizeLimit),
		RecipientDelimiter:  val(f.RecipientDelimiter),
		DoubleBounceSender:  val(f.DoubleBounceSender),
		VirtualMailboxMaps:  val(f.VirtualMailboxMaps),
		VirtualUIDMaps:      val(f.VirtualUIDMaps),
		VirtualGIDMaps:      val(f.VirtualGIDMaps),
		VirtualMinimumUID:   val(f.VirtualMinimumUID),
		VirtualMailboxLock:  val(f.VirtualMailboxLock),
		VirtualMailboxLimit: val(f.VirtualMailboxLimit),
		DeliverLockAttempts: val(f.DeliverLockAttempts),

		VirtualMailboxLimitMaps:    val(f.VirtualMailboxLimitMaps),
		VirtualCreateMaildirsize:   val(f.VirtualCreateMaildirsize),
		VirtualOverquotaBounce:     val(f.VirtualOverquotaBounce),
		VirtualMaildirLimitMessage: val(f.VirtualMaildirLimitMessage),
		RecipientConcurrencyLimit:  val(f.RecipientConcurrencyLimit),
		SaveToDetailMailbox:        val(f.SaveToDetailMailbox),
		DetailMailboxCreate:        val(f.DetailMailboxCreate),
		SingleInstanceDelivery:     val(f.SingleInstanceDelivery),
		MaxConnections:             val(f.MaxConnections),
		MaxRecipients:              val(f.MaxRecipients),
		LineLengthLimit:            val(f.LineLengthLimit),
		WorkerMaxUse:               val(f.WorkerMaxUse),
		WorkerLimit:                val(f.WorkerLimit),
		WorkerOwnerLimit:           val(f.WorkerOwnerLimit),
		EnableOriginalRecipient:    val(f.EnableOriginalRecipient),
		DeliveredToLoopCheck:       val(f.DeliveredToLoopCheck),
		LogLevel:                   val(f.LogLevel),
		LogFormat:                  val(f.LogFormat),
	}
	// Each method once (the writer refuses a repeat in every worker), and
	// at least one.
	for i, m := range c.VirtualMailboxLock {
		if slices.Contains(c.VirtualMailboxLock[:i], m) {
			p.errorf("virtual_mailbox_lock", "%q is given twice", m)
		}
	}
	if len(c.VirtualMailboxLock) == 0 {
		p.errorf("virtual_mailbox_lock", "needs at least one method (fcntl, flock, dotlock)")
	}
	c.DeliverLockDelay = p.duration("deliver_lock_delay", f.DeliverLockDelay)
	c.StaleLockTime = p.duration("stale_lock_time", f.StaleLockTime)
	c.IdleTimeout = p.duration("idle_timeout", f.IdleTimeout)
	c.DataTimeout = p.duration("data_timeout", f.DataTimeout)
	c.DeliveryTimeout = p.duration("delivery_timeout", f.DeliveryTimeout)
	c.ShutdownTimeout = p.duration("shutdown_timeout", f.ShutdownTimeout)
	c.WorkerIdleTimeout = p.duration("worker_idle_timeout", f.WorkerIdleTimeout)

	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			p.errorf("hostname", "not set and the system's hostname is unknown: %v", err)
		}
		c.Hostname = h
	}
	if !validHostname(c.Hostname) {
		p.errorf("hostname", "%q is not a valid host name (letters, digits, '-', '_', '.')", c.Hostname)
	}
	p.localDomains(c, f)

	for _, l := range val(f.Listen) {
		c.Listen = append(c.Listen, p.listenAddr(dir, l))
	}
	if len(c.Listen) == 0 {
		p.errorf("listen", "at least one listener is needed")
	}
	mode, err := strconv.ParseUint(val(f.SocketMode), 8, 32)
	if err != nil || mode > 0o777 {
		p.errorf("socket_mode", "%q is not an octal file mode", val(f.SocketMode))
	}
	c.SocketMode = os.FileMode(mode)
	for _, n := range val(f.AllowedNetworks) {
		pfx, err := parseNetwork(n)
		if err != nil {
			p.errorf("allowed_networks", "%v", err)
			continue
		}
		c.AllowedNetworks = append(c.AllowedNetworks, pfx)
	}
	p.tls(c, f)
	if c.User == "" || c.User == "root" {
		p.errorf("user", "must name an unprivileged user")
	}

	if c.DoubleBounceSender == "" {
		p.errorf("double_bounce_sender", "must not be empty")
	}
	for _, r := range c.RecipientDelimiter {
		if r == '@' || r < ' ' || r > '~' {
			p.errorf("recipient_delimiter", "%q is not usable as a delimiter", r)
		}
	}

	if base := val(f.VirtualMailboxBase); base == "" {
		p.errorf("virtual_mailbox_base", "must be set")
	} else {
		c.VirtualMailboxBase = p.absPath(dir, base)
	}
	if len(c.VirtualMailboxMaps) == 0 {
		p.errorf("virtual_mailbox_maps", "must name at least one table")
	}
	if len(c.VirtualUIDMaps) == 0 {
		p.errorf("virtual_uid_maps", "must name at least one table")
	}
	if len(c.VirtualGIDMaps) == 0 {
		p.errorf("virtual_gid_maps", "must name at least one table")
	}
	// Postfix's default: virtual_mailbox_domains = $virtual_mailbox_maps.
	c.VirtualMailboxDomains = or(f.VirtualMailboxDomains, list(c.VirtualMailboxMaps))
	switch lim, msg := c.VirtualMailboxLimit, c.MessageSizeLimit; {
	case lim > 0 && msg == 0:
		p.errorf("virtual_mailbox_limit", "is %d while message_size_limit is 0 (unlimited): set message_size_limit or make this 0", lim)
	case lim > 0 && lim < msg:
		p.errorf("virtual_mailbox_limit", "%d is smaller than message_size_limit %d", lim, msg)
	}
	p.quota(c, f)
	p.sieve(c, f)
	c.MetricsListen = p.metricsListen(dir, val(f.MetricsListen))
	return c
}

// socketAddr reads a "unix:/path" or "inet:host:port" setting; "" stays
// "" (off), a relative path is taken from dir. The host part's check is
// the caller's (checkHostPort), since the two settings differ in it.
func (p *parser) socketAddr(key, dir, v, example string, checkHostPort func(host, port string) string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	if path, ok := strings.CutPrefix(v, "unix:"); ok {
		if path == "" {
			p.errorf(key, "%q: empty socket path", v)
		}
		return "unix:" + p.absPath(dir, path)
	}
	hostport, ok := strings.CutPrefix(v, "inet:")
	if !ok {
		p.errorf(key, "%q: expected inet:host:port (e.g. %s) or unix:/path", v, example)
		return v
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = "", ""
	}
	if problem := checkHostPort(host, port); problem != "" {
		p.errorf(key, "%q: %s", v, problem)
	}
	return v
}

// metricsListen checks metrics_listen: a numeric port, since the address
// is also what `vlmtpd stats` dials, and a host to listen on.
func (p *parser) metricsListen(dir, v string) string {
	return p.socketAddr("metrics_listen", dir, v, "inet:127.0.0.1:9424", func(host, port string) string {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "expected inet:host:port with a port number 1-65535"
		}
		if host == "" {
			return "name the address to listen on (0.0.0.0 for all, but the metrics have no authentication)"
		}
		return ""
	})
}

// submissionHost checks submission_host: a port number or a service name
// (Postfix's smtpd is usually "smtp").
func (p *parser) submissionHost(dir, v string) string {
	return p.socketAddr("submission_host", dir, v, "inet:127.0.0.1:25", func(host, port string) string {
		if host == "" || port == "" {
			return "expected inet:host:port (e.g. inet:127.0.0.1:25)"
		}
		return ""
	})
}

// localDomains sets myorigin, mydomain and mydestination with Postfix's
// defaults and $name expansion ($myhostname is our hostname).
func (p *parser) localDomains(c *Config, f *file) {
	// Postfix: mydomain defaults to $myhostname minus its first label,
	// or "localdomain" for a name without a dot.
	def := "localdomain"
	if _, rest, ok := strings.Cut(strings.TrimSuffix(c.Hostname, "."), "."); ok && rest != "" {
		def = rest
	}
	vars := map[string]string{"myhostname": c.Hostname}
	c.MyDomain = p.expand("mydomain", or(f.MyDomain, def), vars)
	vars["mydomain"] = c.MyDomain
	c.MyOrigin = p.expand("myorigin", val(f.MyOrigin), vars)
	if strings.HasPrefix(c.MyOrigin, "/") {
		p.errorf("myorigin", "%q: reading myorigin from a file (a Debian patch) is not supported: write the domain", c.MyOrigin)
	}
	vars["myorigin"] = c.MyOrigin
	for _, d := range val(f.MyDestination) {
		if d = p.expand("mydestination", d, vars); d != "" {
			c.MyDestination = append(c.MyDestination, maps.SplitList(d)...)
		}
	}
}

var paramRef = regexp.MustCompile(`\$(\{[A-Za-z0-9_]+\}|\([A-Za-z0-9_]+\)|[A-Za-z0-9_]+)`)

// expand replaces $name, ${name} and $(name) of the parameters in vars;
// any other reference is an error, since main.cf would expand it to
// something this configuration does not have.
func (p *parser) expand(key, v string, vars map[string]string) string {
	return paramRef.ReplaceAllStringFunc(v, func(ref string) string {
		name := strings.Trim(ref[1:], "{}()")
		val, ok := vars[name]
		if !ok {
			p.errorf(key, "%q: $%s cannot be expanded here (only $myhostname, $mydomain and $myorigin)", v, name)
		}
		return val
	})
}

func (p *parser) absPath(dir, path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(dir, path)
}

func (p *parser) listenAddr(dir, l string) string {
	switch {
	case strings.HasPrefix(l, "unix:"):
		path := strings.TrimPrefix(l, "unix:")
		if path == "" {
			p.errorf("listen", "%q: empty socket path", l)
		}
		return "unix:" + p.absPath(dir, path)
	case strings.HasPrefix(l, "inet:"):
		hostport := strings.TrimPrefix(l, "inet:")
		if _, err := netip.ParseAddrPort(hostport); err != nil {
			// host names are allowed too; the port must be there
			if i := strings.LastIndexByte(hostport, ':'); i < 0 || i == len(hostport)-1 {
				p.errorf("listen", "%q: expected inet:host:port", l)
			}
		}
		return l
	default:
		p.errorf("listen", "%q: expected unix:/path or inet:host:port", l)
		return l
	}
}

func parseNetwork(s string) (netip.Prefix, error) {
	s = strings.Trim(s, "[]")
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(strings.Replace(s, "]/", "/", 1))
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a network (address/bits)", s)
		}
		return pfx.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or network", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// duration parses a Postfix time value: a number with an optional unit
// s, m, h, d or w (default seconds); Go durations such as "1m30s" too.
// A bad one is an error and leaves the default, so that checks against
// other settings do not report it again.
func (p *parser) duration(key string, v *string) time.Duration {
	d, err := ParseDuration(val(v))
	if err != nil || d <= 0 {
		p.errorf(key, "%q is not a positive time (e.g. 30s, 5m, 1h)", val(v))
		d, _ = ParseDuration(strings.Trim(settingsByName[key].def, `"`))
	}
	return d
}

// ParseDuration parses a Postfix-style time value.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	if len(s) > 1 {
		unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
		if n, err := strconv.ParseInt(s[:len(s)-1], 10, 64); err == nil && unit > 0 {
			return time.Duration(n) * unit, nil
		}
	}
	return time.ParseDuration(s)
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$`)

func validHostname(h string) bool {
	return len(h) <= 255 && hostnameRE.MatchString(h)
}
