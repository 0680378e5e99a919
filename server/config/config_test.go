package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
virtual_mailbox_base = "/var/mail/vhosts"
virtual_mailbox_maps = "texthash:vmailbox"
virtual_uid_maps = "static:5000"
virtual_gid_maps = "static:5000"
`

func TestDefaultsArePostfixs(t *testing.T) {
	c, err := Parse("/etc/vlmtpd/vlmtpd.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.VirtualMinimumUID != 100 || c.VirtualMailboxLimit != 51200000 || c.MessageSizeLimit != 10240000 {
		t.Errorf("limits: %+v", c)
	}
	if strings.Join(c.VirtualMailboxLock, ",") != "fcntl,dotlock" {
		t.Errorf("lock methods %v", c.VirtualMailboxLock)
	}
	// virtual_mailbox_domains defaults to $virtual_mailbox_maps.
	if strings.Join(c.VirtualMailboxDomains, ",") != "texthash:vmailbox" {
		t.Errorf("domains %v", c.VirtualMailboxDomains)
	}
	if !c.DeliveredToLoopCheck || !c.EnableOriginalRecipient {
		t.Errorf("delivered_to_loop_check %v, enable_original_recipient %v: both default to yes", c.DeliveredToLoopCheck, c.EnableOriginalRecipient)
	}
	if c.LockTimeout() != 20*time.Second || c.Dir != "/etc/vlmtpd" {
		t.Errorf("lock timeout %v, dir %s", c.LockTimeout(), c.Dir)
	}
}

func TestListsAndRelativePaths(t *testing.T) {
	c, err := Parse("/srv/conf/v.toml", []byte(minimal+`
listen = "unix:run/lmtp.sock, inet:127.0.0.1:2424"
spool_directory = "spool"
virtual_mailbox_domains = "example.com, texthash:/etc/d inline:{ {a.com = x}, b.com=y }"
allowed_networks = ["10.0.0.0/8", "::1", "[2001:db8::]/32"]
deliver_lock_delay = "2"
stale_lock_time = "1d"
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Listen, " "); got != "unix:/srv/conf/run/lmtp.sock inet:127.0.0.1:2424" {
		t.Errorf("listen %s", got)
	}
	if c.SpoolDirectory != "/srv/conf/spool" {
		t.Errorf("spool %s", c.SpoolDirectory)
	}
	if got := strings.Join(c.VirtualMailboxDomains, "|"); got != "example.com|texthash:/etc/d|inline:{ {a.com = x}, b.com=y }" {
		t.Errorf("domains %s", got)
	}
	if len(c.AllowedNetworks) != 3 || c.AllowedNetworks[1].Bits() != 128 {
		t.Errorf("networks %v", c.AllowedNetworks)
	}
	if c.DeliverLockDelay != 2*time.Second || c.StaleLockTime != 24*time.Hour {
		t.Errorf("durations %v %v", c.DeliverLockDelay, c.StaleLockTime)
	}
}

func TestErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{minimal + "\nvirtual_mailbox_mapz = 1\n", "v.toml:7: virtual_mailbox_mapz: unknown parameter"},
		{minimal + "virtual_minimum_uid = 0\n", "v.toml:6: virtual_minimum_uid: must be at least 1"},
		{minimal + "virtual_mailbox_limit = 1000\n", "v.toml:6: virtual_mailbox_limit: 1000 is smaller than message_size_limit"},
		{minimal + "message_size_limit = 0\n", "virtual_mailbox_limit: is 51200000 while message_size_limit is 0"},
		{minimal + "virtual_mailbox_lock = \"fcntl, lockf\"\n", `v.toml:6: virtual_mailbox_lock: unknown method "lockf"`},
		{minimal + "virtual_mailbox_lock = \"fcntl, fcntl\"\n", `v.toml:6: virtual_mailbox_lock: "fcntl" is given twice`},
		{minimal + "virtual_mailbox_lock = []\n", `v.toml:6: virtual_mailbox_lock: needs at least one method`},
		{minimal + "allowed_networks = [\"10.0.0.0/33\"]\n", "v.toml:6: allowed_networks:"},
		{minimal + "deliver_lock_delay = \"soon\"\n", "v.toml:6: deliver_lock_delay:"},
		{minimal + "listen = [\"tcp:1.2.3.4\"]\n", "v.toml:6: listen:"},
		{minimal + "socket_mode = \"rw\"\n", "v.toml:6: socket_mode:"},
		{minimal + "user = \"root\"\n", "v.toml:6: user: must name an unprivileged user"},
		{minimal + "message_size_limit = \"big\"\n", "v.toml:6:"},
		{minimal + "delivered_to_loop_check = \"maybe\"\n", "v.toml:6: delivered_to_loop_check:"},
		{minimal + "metrics_listen = \"127.0.0.1:9424\"\n", "v.toml:6: metrics_listen: \"127.0.0.1:9424\": expected inet:host:port"},
		{minimal + "metrics_listen = \"inet:127.0.0.1\"\n", "v.toml:6: metrics_listen:"},
		{minimal + "metrics_listen = \"inet:127.0.0.1:http\"\n", "v.toml:6: metrics_listen:"},
		{minimal + "metrics_listen = \"inet::9424\"\n", "v.toml:6: metrics_listen: \"inet::9424\": name the address"},
		{minimal + "metrics_listen = \"unix:\"\n", "v.toml:6: metrics_listen:"},
		{minimal + "log_format = \"syslog\"\n", "v.toml:6: log_format: \"syslog\" is not text, json or postfix"},
		{minimal + "sieve_before = [\"before.sieve\"]\n", `v.toml:6: sieve_before: "before.sieve" is not an absolute path`},
		{minimal + "sieve_after = \"/a.sieve, rel.sieve\"\n", `v.toml:6: sieve_after: "rel.sieve" is not an absolute path`},
		{minimal + "sendmail_path = \"/usr/sbin/sendmail -t\"\n", "v.toml:6: sendmail_path: "},
		{minimal + "submission_host = \"127.0.0.1:25\"\n", "v.toml:6: submission_host: \"127.0.0.1:25\": expected inet:host:port"},
		{minimal + "submission_host = \"inet:127.0.0.1\"\n", "v.toml:6: submission_host:"},
		{minimal + "submission_host = \"inet::25\"\n", "v.toml:6: submission_host:"},
		{minimal + "submission_host = \"unix:\"\n", "v.toml:6: submission_host:"},
		{minimal + "sieve_max_redirects = 0\n", "v.toml:6: sieve_max_redirects: must be at least 1"},
		{minimal + "sieve_max_actions = 0\n", "v.toml:6: sieve_max_actions: must be at least 1"},
		{minimal + "sieve_max_script_size = 0\n", "v.toml:6: sieve_max_script_size:"},
		{minimal + "sieve_max_cpu_time = \"1h\"\n", "v.toml:6: sieve_max_cpu_time: 1h0m0s is longer than delivery_timeout"},
		{"virtual_mailbox_base = \n", "v.toml:1:"},
		{`virtual_mailbox_maps = "texthash:x"`, "virtual_mailbox_base: must be set"},
	} {
		_, err := Parse("/etc/v.toml", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant …%s…", tc.text, err, tc.want)
		}
	}
}

func TestDeliveredToLoopCheckOff(t *testing.T) {
	c, err := Parse("/etc/v.toml", []byte(minimal+"delivered_to_loop_check = false\n"))
	if err != nil || c.DeliveredToLoopCheck {
		t.Errorf("delivered_to_loop_check = false: %v, %v", c, err)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "config.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.VirtualMailboxBase) {
		t.Errorf("base %s not absolute", c.VirtualMailboxBase)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "examples", "vmailbox")); err != nil {
		t.Errorf("example table: %v", err)
	}
}

func TestSubmissionHost(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "",
		"inet:127.0.0.1:25":    "inet:127.0.0.1:25",
		"inet:localhost:smtp":  "inet:localhost:smtp",
		"inet:[::1]:10025":     "inet:[::1]:10025",
		"unix:run/submit.sock": "unix:/etc/vlmtpd/run/submit.sock",
		"unix:/run/smtpd.sock": "unix:/run/smtpd.sock",
	} {
		c, err := Parse("/etc/vlmtpd/v.toml", []byte(minimal+"submission_host = \""+in+"\"\n"))
		if err != nil {
			t.Errorf("submission_host %q: %v", in, err)
		} else if c.SubmissionHost != want {
			t.Errorf("submission_host %q: got %q, want %q", in, c.SubmissionHost, want)
		}
	}
}

func TestMetricsListen(t *testing.T) {
	c, err := Parse("/etc/vlmtpd/v.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsListen != "" {
		t.Fatalf("default metrics_listen %q, want off", c.MetricsListen)
	}
	for in, want := range map[string]string{
		"inet:127.0.0.1:9424": "inet:127.0.0.1:9424",
		"inet:[::1]:9424":     "inet:[::1]:9424",
		"unix:run/metrics":    "unix:/etc/vlmtpd/run/metrics",
	} {
		c, err := Parse("/etc/vlmtpd/v.toml", []byte(minimal+"metrics_listen = \""+in+"\"\n"))
		if err != nil {
			t.Errorf("metrics_listen %q: %v", in, err)
		} else if c.MetricsListen != want {
			t.Errorf("metrics_listen %q: got %q, want %q", in, c.MetricsListen, want)
		}
	}
}

// TestLocalDomainsArePostfixs: myorigin, mydomain and mydestination with
// Postfix's defaults ($myhostname is hostname) and $name expansion.
func TestLocalDomainsArePostfixs(t *testing.T) {
	c, err := Parse("/etc/v.toml", []byte(minimal+"hostname = \"mx1.example.org\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MyOrigin != "mx1.example.org" || c.MyDomain != "example.org" || c.DoubleBounceSender != "double-bounce" {
		t.Errorf("myorigin %q mydomain %q double_bounce_sender %q", c.MyOrigin, c.MyDomain, c.DoubleBounceSender)
	}
	if got := strings.Join(c.MyDestination, ","); got != "mx1.example.org,localhost.example.org,localhost" {
		t.Errorf("mydestination %s", got)
	}
	c, err = Parse("/etc/v.toml", []byte(minimal+`hostname = "mx"
myorigin = "$mydomain"
mydestination = "${myorigin}, $(myhostname) texthash:/etc/postfix/local"
double_bounce_sender = "bounce-bounce"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MyDomain != "localdomain" || c.MyOrigin != "localdomain" || c.DoubleBounceSender != "bounce-bounce" {
		t.Errorf("mydomain %q myorigin %q", c.MyDomain, c.MyOrigin)
	}
	if got := strings.Join(c.MyDestination, "|"); got != "localdomain|mx|texthash:/etc/postfix/local" {
		t.Errorf("mydestination %s", got)
	}
	c, err = Parse("/etc/v.toml", []byte(minimal+"mydestination = \"\"\n"))
	if err != nil || len(c.MyDestination) != 0 {
		t.Errorf("empty mydestination: %v %v", c, err)
	}
	for text, want := range map[string]string{
		minimal + "myorigin = \"$relayhost\"\n":    "v.toml:6: myorigin: \"$relayhost\": $relayhost cannot be expanded",
		minimal + "myorigin = \"/etc/mailname\"\n": "myorigin: \"/etc/mailname\": reading myorigin from a file",
		minimal + "double_bounce_sender = \"\"\n":  "double_bounce_sender: must not be empty",
	} {
		if _, err := Parse("/etc/v.toml", []byte(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\n got %v\nwant …%s…", text, err, want)
		}
	}
}

func TestQuotaSettings(t *testing.T) {
	c, err := Parse("/etc/v.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.VirtualMailboxLimitMaps) != 0 || c.VirtualMaildirExtended || !c.VirtualCreateMaildirsize ||
		!c.VirtualOverquotaBounce || c.VirtualMaildirLimitMessage != "mailbox is full" ||
		c.RecipientConcurrencyLimit != 10 || c.SaveToDetailMailbox || c.DetailMailboxCreate || c.SingleInstanceDelivery {
		t.Errorf("defaults: %+v", c)
	}
	// virtual_maildir_extended defaults to yes once there are quotas.
	c, err = Parse("/etc/v.toml", []byte(minimal+`virtual_mailbox_limit_maps = "texthash:quota"
recipient_delimiter = "+"
save_to_detail_mailbox = true
detail_mailbox_create = true
single_instance_delivery = true
recipient_concurrency_limit = 0
virtual_overquota_bounce = false
virtual_maildir_limit_message = "Sorry, the user's maildir has overdrawn his diskspace quota"
`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.VirtualMailboxLimitMaps, ",") != "texthash:quota" || !c.VirtualMaildirExtended ||
		c.RecipientConcurrencyLimit != 0 || c.VirtualOverquotaBounce || !c.DetailMailboxCreate || !c.SingleInstanceDelivery {
		t.Errorf("set: %+v", c)
	}
	c, err = Parse("/etc/v.toml", []byte(minimal+"virtual_mailbox_limit_maps = \"texthash:q\"\nvirtual_maildir_extended = false\n"))
	if err != nil || c.VirtualMaildirExtended {
		t.Errorf("virtual_maildir_extended = false: %v, %v", c.VirtualMaildirExtended, err)
	}
	for _, tc := range []struct{ text, want string }{
		{minimal + "recipient_concurrency_limit = -1\n", "v.toml:6: recipient_concurrency_limit: must not be negative"},
		{minimal + "save_to_detail_mailbox = true\n", "v.toml:6: save_to_detail_mailbox: needs recipient_delimiter"},
		{minimal + "detail_mailbox_create = true\n", "v.toml:6: detail_mailbox_create: needs save_to_detail_mailbox"},
		{minimal + "virtual_maildir_limit_message = \"\"\n", "v.toml:6: virtual_maildir_limit_message: must not be empty"},
		{minimal + "virtual_maildir_limit_message = \"full\\r\\n250 ok\"\n", "v.toml:6: virtual_maildir_limit_message:"},
		{minimal + "virtual_overquota_bounce = \"no\"\n", "v.toml:6: virtual_overquota_bounce:"},
	} {
		_, err := Parse("/etc/v.toml", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant …%s…", tc.text, err, tc.want)
		}
	}
}

func TestSieveDefaults(t *testing.T) {
	c, err := Parse("/etc/v.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.SendmailPath != "/usr/sbin/sendmail" || c.SieveMaxRedirects != 4 || c.SieveMaxActions != 32 ||
		c.SieveMaxScriptSize != 1<<20 || c.SieveMaxCPUTime != 5*time.Second || c.SieveScriptMaps != nil {
		t.Errorf("defaults: %+v", c)
	}
	c, err = Parse("/etc/v.toml", []byte(minimal+"sieve_script_maps = \"texthash:sieve\"\nsieve_before = [\"/etc/vlmtpd/a.sieve\", \"/etc/vlmtpd/b.sieve\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SieveScriptMaps) != 1 || len(c.SieveBefore) != 2 || c.SieveBefore[1] != "/etc/vlmtpd/b.sieve" {
		t.Errorf("lists: %q %q", c.SieveScriptMaps, c.SieveBefore)
	}
}
