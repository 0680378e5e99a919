// Runs in: every process that reads the configuration (parent, front, commands).

package config

import (
	"strings"

	"github.com/vlmtpd/vlmtpd/store"
)

// setting is one configuration parameter: everything about it except its
// Go type, which is the type of the fields named like it in file (as
// TOML decodes it) and Config (as the program uses it).
type setting struct {
	name string
	// def is the default as an administrator writes it in TOML. Empty:
	// there is none (the setting is required) or it is worked out from
	// other settings; defDoc then says which.
	def    string
	defDoc string
	// doc is one line; more, if any, the rest of the paragraph. Both are
	// Markdown (`code`, [text](link)); the man page turns them into roff.
	doc, more string
	// restart: a changed value takes effect only at a restart (RestartOnly).
	restart bool

	// Checks of the value on its own; the parser checks what involves
	// other settings. A number is at least min (so never negative) and,
	// unless max is 0, at most max; why is added to the error. oneOf: the
	// values a string, or each item of a list, may take; bad is the
	// error, with the value for %q.
	min, max int64
	why      string
	oneOf    []string
	bad      string
}

// section is a group of settings, in the order the documentation shows.
type section struct {
	title    string
	settings []setting
}

var (
	logLevels        = []string{"debug", "info", "warn", "error"}
	logFormats       = []string{"text", "json", "postfix"}
	tlsSecurityLevel = []string{"none", "may", "encrypt"}
)

// orList joins like "a, b or c".
func orList(l []string) string {
	if len(l) < 2 {
		return strings.Join(l, "")
	}
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}

// sections is the one table of settings: the parser takes defaults and
// the checks of single values from it, and the README's table,
// vlmtpd.toml(5) and `vlmtpd config` are made from it.
var sections = []section{
	{"Listeners and the front", []setting{
		{name: "hostname", defDoc: "the system's host name",
			doc: "the name in the greeting and in Maildir file names"},
		{name: "listen", def: `["unix:/run/vlmtpd/lmtp.sock"]`, restart: true,
			doc:  "where MTAs connect: `unix:/path` and `inet:host:port` listeners",
			more: "Postfix: `virtual_transport = lmtp:unix:/path/to/lmtp.sock`. Under socket activation (`dist/vlmtpd.socket`) systemd's sockets are used instead."},
		{name: "socket_mode", def: `"0660"`, restart: true, doc: "the unix sockets' mode (octal)"},
		{name: "socket_group", def: `""`, restart: true, doc: "the unix sockets' group; empty: left as created (the group of the process that opens them)"},
		{name: "allowed_networks", def: `["127.0.0.0/8", "::1/128"]`,
			doc: "TCP clients allowed to connect (`554 5.7.1` otherwise)"},
		{name: "user", def: `"vlmtpd"`, restart: true,
			doc: "the unprivileged user the network-facing process (the front) runs as when started as root"},
		{name: "spool_directory", def: `"/var/spool/vlmtpd"`,
			doc: "where bodies over 1 MiB are held (anonymous files) during delivery"},
	}},
	{"Addresses and tables", []setting{
		{name: "recipient_delimiter", def: `""`,
			doc: "the characters that separate a localpart's extension (`user+ext`); empty: none"},
		{name: "double_bounce_sender", def: `"double-bounce"`,
			doc: "a localpart that is never split at a delimiter, as in Postfix"},
		{name: "myorigin", def: `"$myhostname"`,
			doc:  "Postfix's myorigin: a recipient in this domain is also looked up by its bare localpart",
			more: "`$myhostname` (the `hostname` setting), `$mydomain` and `$myorigin` are expanded here and in `mydomain` and `mydestination`. As in virtual(8), such a recipient is looked up as `user+ext`, then `user`, before `@domain`."},
		{name: "mydomain", defDoc: "`hostname` minus its first label, or `localdomain`",
			doc: "Postfix's mydomain, for `$mydomain` in `myorigin` and `mydestination`"},
		{name: "mydestination", def: `["$myhostname", "localhost.$mydomain", "localhost"]`,
			doc: "Postfix's mydestination: recipients in these domains (or tables) are also looked up by their bare localpart; set it as in your main.cf if a virtual domain is one of them"},
		{name: "virtual_mailbox_domains", defDoc: "`$virtual_mailbox_maps`",
			doc: "the domains served: names and tables; a recipient in any other domain gets `550 5.1.2`"},
		{name: "virtual_mailbox_maps", defDoc: "none: required",
			doc:  "the tables that map a recipient to its mailbox path beneath `virtual_mailbox_base`; a trailing `/` means Maildir, else mbox",
			more: "Tables are Postfix's `type:name`: `texthash:`, `hash:` and `btree:` (the `name.db` that postmap builds), `cdb:`, `regexp:`, `pcre:`, `mysql:`, `pgsql:`, `sqlite:`, `ldap:`, `socketmap:`, `static:`, `inline:`. Relative names are taken from the configuration file's directory; file tables are re-read when they change."},
		{name: "virtual_uid_maps", defDoc: "none: required", doc: "the tables that give each recipient's mailbox owner uid"},
		{name: "virtual_gid_maps", defDoc: "none: required", doc: "the tables that give each recipient's mailbox group gid"},
		{name: "virtual_minimum_uid", def: "100", restart: true,
			doc: "the lowest uid (and gid) mail is delivered as; lower ones get `451 4.3.5`", min: 1, why: " (uid 0 may never receive mail)"},
	}},
	{"Mailboxes", []setting{
		{name: "virtual_mailbox_base", defDoc: "none: required", restart: true,
			doc:  "the directory every mailbox path is beneath",
			more: "As in Postfix it is the administrator's to create, writable by the mailbox owners; nothing is ever written outside it and no symlink beneath it is followed."},
		{name: "virtual_mailbox_lock", def: `["fcntl", "dotlock"]`, restart: true,
			oneOf: store.LockMethods, bad: "unknown method %q (" + strings.Join(store.LockMethods, ", ") + ")",
			doc: "how an mbox is locked: any of " + strings.Join(store.LockMethods, ", ") + ", taken in the order listed"},
		{name: "deliver_lock_attempts", def: "20", restart: true,
			doc: "how many times an mbox lock is tried, `deliver_lock_delay` apart", min: 1},
		{name: "deliver_lock_delay", def: `"1s"`, restart: true, doc: "the time between mbox lock attempts"},
		{name: "stale_lock_time", def: `"500s"`, restart: true,
			doc: "the age after which an mbox dotlock is taken to be left over by a crash and removed (one whose writer's pid is gone is removed at once)"},
		{name: "enable_original_recipient", def: "true", doc: "write `X-Original-To` (from ORCPT, else RCPT)"},
		{name: "delivered_to_loop_check", def: "true",
			doc:  "refuse (`554 5.4.6`) a recipient named by a `Delivered-To:` that stands below a `Received:` header",
			more: "The message was delivered to it, then passed an MTA again. A `Delivered-To:` above the first `Received:` is the delivering client's own (OpenSMTPD's lmtp action writes one) and is not a loop; see [docs/mta.md](docs/mta.md#the-delivered-to-loop-rule)."},
		{name: "save_to_detail_mailbox", def: "false",
			doc: "`user+work@dom` (a Maildir recipient, found without its extension) goes into the Maildir++ folder `.work/` when it exists, else INBOX; needs `recipient_delimiter`"},
		{name: "detail_mailbox_create", def: "false",
			doc: "with `save_to_detail_mailbox`, create the missing folder (with `maildirfolder`)"},
		{name: "single_instance_delivery", def: "false", restart: true,
			doc:  "the Maildir recipients of one message (same uid, no Sieve filter) get one file, written and fsynced once and hard-linked into each `new/`, as Dovecot does by default",
			more: "Faster for many recipients, but the file then carries only `Return-Path`, **no per-recipient `Delivered-To`/`X-Original-To`** (so Postfix-style loop detection by `Delivered-To` no longer sees this hop). Quota, mailbox limit and the `new/` fsync stay per recipient; a Maildir on another filesystem gets its own copy."},
	}},
	{"Sizes and quota", []setting{
		{name: "message_size_limit", def: "10240000",
			doc: "the largest message in bytes (`552 5.3.4`); 0: no limit"},
		{name: "virtual_mailbox_limit", def: "51200000",
			doc: "the largest mbox file or Maildir message in bytes (`552 5.2.2`); 0: no limit; not below `message_size_limit`"},
		{name: "virtual_mailbox_limit_maps", def: `[]`,
			doc:  "per-recipient quota (VDA's name), looked up like `virtual_uid_maps`: bytes (`52428800`) or Maildir++ `NS`, `NC`, `NS,MC`; `0` = none",
			more: "An entry replaces `virtual_mailbox_limit`: for a Maildir it limits the whole Maildir++ tree (INBOX and every `.folder`, Trash too, as Dovecot counts), for an mbox the file's size (a `C` part is ignored)."},
		{name: "virtual_maildir_extended", defDoc: "`true` when `virtual_mailbox_limit_maps` is set",
			doc: "keep Maildir++ `maildirsize` up to date on every delivery; `false`: usage is recalculated from the files at every check and `maildirsize` is left alone"},
		{name: "virtual_create_maildirsize", def: "true",
			doc: "create `maildirsize` by a full recalculation when it is missing"},
		{name: "virtual_overquota_bounce", def: "true",
			doc: "over quota is `552 5.2.2`; `false`: `452 4.2.2`, so the client keeps the message and retries"},
		{name: "virtual_maildir_limit_message", def: `"mailbox is full"`,
			doc: "the text of the over-quota reply (printable ASCII, at most 200 bytes)"},
		{name: "recipient_concurrency_limit", def: "10",
			doc: "deliveries in flight (RCPT to the end of DATA) to one mailbox; beyond it RCPT gets `451 4.2.1`; 0: no limit", why: " (0 means no limit)"},
	}},
	{"Sieve", []setting{
		{name: "sieve_script_maps", def: `[]`,
			doc:  "per-recipient active Sieve script, looked up like `virtual_mailbox_maps`",
			more: "The result is a path beneath `virtual_mailbox_base` (checked like a mailbox path), e.g. `example.com/alice/.dovecot.sieve`. No entry or no file: no filtering. See [Sieve at delivery](#sieve-at-delivery)."},
		{name: "sieve_before", def: `[]`, restart: true,
			doc:  "administrator's scripts (absolute paths) run before the user's, as Pigeonhole's",
			more: "Read by the worker as the mailbox owner, so they must be readable by every mailbox owner (e.g. root-owned, 0644)."},
		{name: "sieve_after", def: `[]`, restart: true,
			doc: "administrator's scripts (absolute paths) run after the user's, read like `sieve_before`"},
		{name: "sieve_global_dir", def: `""`, restart: true,
			doc: "where `include :global \"name\"` finds `name.sieve` (Pigeonhole's `sieve_global`), absolute, readable by every mailbox owner; empty: none"},
		{name: "submission_host", def: `""`,
			doc:  "where the front submits `redirect`s and vacation replies over SMTP (Pigeonhole's name): `inet:host:port` (e.g. `inet:127.0.0.1:25`, Postfix's smtpd) or `unix:/path`; empty: `sendmail_path`",
			more: "**Set it under the systemd unit** (`NoNewPrivileges=yes`): Postfix's sendmail cannot queue there, see [Sieve at delivery](#sieve-at-delivery)."},
		{name: "sendmail_path", def: `"/usr/sbin/sendmail"`,
			doc: "without `submission_host`: the program the front runs, as `user`, for `redirect` and vacation replies: `sendmail -i -f SENDER -- RCPT`, the message on stdin"},
		{name: "sieve_max_redirects", def: "4", restart: true,
			doc: "Pigeonhole's limit of redirects per message; beyond it the message is kept", min: 1},
		{name: "sieve_max_actions", def: "32", restart: true,
			doc: "Pigeonhole's limit of actions per message; beyond it the message is kept", min: 1},
		{name: "sieve_max_script_size", def: "1048576", restart: true, min: 1, max: 64 << 20, why: " bytes",
			doc: "bytes per script (a larger one is not run; the message is kept)"},
		{name: "sieve_max_cpu_time", def: `"5s"`, restart: true,
			doc: "how long one message's scripts may run; then the message is kept. At most `delivery_timeout`"},
	}},
	{"Limits and timeouts", []setting{
		{name: "max_connections", def: "100", restart: true,
			doc: "sessions at once; beyond it `421 4.4.5`", min: 1},
		{name: "max_recipients", def: "1000",
			doc: "recipients per message; beyond it `452 4.5.3`", min: 1},
		{name: "line_length_limit", def: "1048576",
			doc: "longest line accepted in bytes (Postfix itself never sends more than 998)", min: 1000, why: " (RFC 5321 allows 1000-byte lines)"},
		{name: "idle_timeout", def: `"300s"`,
			doc: "for one command line, in total (a client dripping bytes cannot extend it)"},
		{name: "data_timeout", def: `"600s"`, doc: "for one message body, all BDAT chunks included"},
		{name: "delivery_timeout", def: `"300s"`, restart: true, doc: "for one message's deliveries"},
		{name: "shutdown_timeout", def: `"50s"`,
			doc: "how long a stop waits for transactions in progress (keep it under systemd's `TimeoutStopSec`)"},
	}},
	{"Delivery workers", []setting{
		{name: "worker_idle_timeout", def: `"60s"`, restart: true, doc: "a worker nobody used for this long exits"},
		{name: "worker_max_use", def: "10000", restart: true,
			doc: "deliveries one worker makes before it is replaced", min: 1},
		{name: "worker_limit", def: "64", restart: true,
			doc: "worker processes alive at once, over all uids; at the limit an idle worker of another uid is ended to make room, else the delivery waits", min: 1},
		{name: "worker_owner_limit", def: "64", restart: true,
			doc: "worker processes delivering for one mailbox owner (uid and gid) at once; further deliveries for that owner wait, and the next worker free takes all that waited (up to 16 messages) in one request, which makes them durable together, one fsync of each `new/` for all (group commit)", min: 1,
			more: "The default, `worker_limit`'s, sets no cap of its own. A lower value (e.g. 4) trades latency for CPU and memory: where every mailbox has one uid (a vmail user) it bounds the workers of the whole site, and a message that waits in a request (an mbox lock, a slow Sieve script) holds the replies of the messages batched with it. See docs/benchmarks.md, run G2."},
	}},
	{"TLS", []setting{
		{name: "tls_cert_file", def: `""`,
			doc: "PEM certificate for STARTTLS on `inet:` listeners (re-read when the file changes)"},
		{name: "tls_key_file", def: `""`, doc: "its PEM private key"},
		{name: "tls_security_level", defDoc: "`\"may\"` with a certificate, else `\"none\"`",
			oneOf: tlsSecurityLevel, bad: "unknown level %q (" + strings.Join(tlsSecurityLevel, ", ") + ")",
			doc: "`none`, `may` (offer STARTTLS), `encrypt` (`530 5.7.0` before STARTTLS on TCP; unix sockets are local and never need it)"},
		{name: "tls_client_fingerprints", def: `[]`,
			doc: "SHA-256 fingerprints of the only client certificates accepted (with `encrypt`)"},
	}},
	{"Logging and metrics", []setting{
		{name: "log_level", def: `"info"`, restart: true,
			oneOf: logLevels, bad: "%q is not one of " + strings.Join(logLevels, ", "),
			doc: strings.Join(logLevels, ", ")},
		{name: "log_format", def: `"text"`, restart: true,
			oneOf: logFormats, bad: "%q is not " + orList(logFormats),
			doc: "`text` (key=value), `json` (durations in seconds) or `postfix` (Postfix's mail log lines: `to=<…>, relay=maildir, delay=…, delays=…, dsn=…, status=sent (…)`)"},
		{name: "metrics_listen", def: `""`, restart: true,
			doc: "Prometheus metrics at `/metrics` on `inet:127.0.0.1:9424` or `unix:/path`, served by the front (opened by the root parent); empty: off. See [docs/observability.md](docs/observability.md)"},
	}},
}

// settingsByName indexes sections.
var settingsByName = func() map[string]*setting {
	m := map[string]*setting{}
	for i := range sections {
		for j := range sections[i].settings {
			s := &sections[i].settings[j]
			m[s.name] = s
		}
	}
	return m
}()

// defaultsTOML is every literal default as one TOML document: Parse
// decodes it before the file, so what the file leaves out keeps it.
var defaultsTOML = func() string {
	var b strings.Builder
	for _, sec := range sections {
		for _, s := range sec.settings {
			if s.def != "" {
				b.WriteString(s.name + " = " + s.def + "\n")
			}
		}
	}
	return b.String()
}()
