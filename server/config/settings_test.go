package config

import (
	"bufio"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/sieve"
	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/worker"
)

var update = flag.Bool("update", false, "rewrite the README's settings table from the table")

// TestTableMatchesStructs: every setting of the table has its fields in
// file and Config and every file field is in the table; each literal
// default is written as `vlmtpd config` prints it.
func TestTableMatchesStructs(t *testing.T) {
	cfg := reflect.TypeFor[Config]()
	for name, field := range fieldOf {
		if settingsByName[name] == nil {
			t.Errorf("file.%s (%s) is not in the table", field, name)
		}
	}
	c, err := Parse("/etc/vlmtpd/vlmtpd.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Names() {
		s := settingsByName[name]
		f, ok := fieldOf[name]
		if !ok {
			t.Errorf("%s: no field in file", name)
			continue
		}
		if _, ok := cfg.FieldByName(f); !ok {
			t.Errorf("%s: no field Config.%s", name, f)
		}
		if (s.def == "") == (s.defDoc == "") {
			t.Errorf("%s: needs exactly one of def and defDoc", name)
		}
		if s.doc == "" {
			t.Errorf("%s: no doc line", name)
		}
		if v, _ := c.Value(name); s.def != "" && !strings.Contains(s.def, "$") && v != s.def {
			t.Errorf("%s: default written %s, loads as %s", name, s.def, v)
		}
	}
}

// TestRestartOnly: the restart column names what it named before the
// table, and a change shows.
func TestRestartOnly(t *testing.T) {
	want := []string{"listen", "socket_mode", "socket_group", "user", "max_connections", "virtual_mailbox_base",
		"virtual_minimum_uid", "virtual_mailbox_lock", "deliver_lock_attempts", "deliver_lock_delay", "stale_lock_time",
		"delivery_timeout", "worker_idle_timeout", "worker_max_use", "worker_limit", "worker_owner_limit", "sieve_before", "sieve_after",
		"sieve_global_dir", "sieve_max_redirects", "sieve_max_actions", "sieve_max_script_size", "sieve_max_cpu_time", "single_instance_delivery",
		"log_level", "log_format", "metrics_listen"}
	var got []string
	for _, n := range Names() {
		if settingsByName[n].restart {
			got = append(got, n)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("restart settings\n got %v\nwant %v", got, want)
	}
	a, _ := Parse("/etc/v.toml", []byte(minimal))
	b, _ := Parse("/etc/v.toml", []byte(minimal+"worker_limit = 3\nmax_recipients = 5\nstale_lock_time = \"1h\"\n"))
	if r := RestartOnly(a, b); !slices.Equal(r, []string{"stale_lock_time", "worker_limit"}) {
		t.Errorf("RestartOnly = %v", r)
	}
}

// dump is what `vlmtpd config` prints for c: every setting.
func dump(c *Config) string {
	var b strings.Builder
	for _, n := range Names() {
		v, _ := c.Value(n)
		b.WriteString(n + " = " + v + "\n")
	}
	return b.String()
}

// TestValuesLoadBack: the effective configuration, written out, loads
// back to the same Config (from the same directory, which relative table
// names are taken from).
func TestValuesLoadBack(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "config.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{minimal, string(example), minimal + `
hostname = "mx1.example.org."
myorigin = "$mydomain"
mydestination = "$myhostname, texthash:/etc/postfix/local"
allowed_networks = ["10.0.0.0/8", "::1", "[2001:db8::]/32"]
socket_mode = "0600"
recipient_delimiter = "+-"
save_to_detail_mailbox = true
virtual_mailbox_limit_maps = "texthash:quota"
virtual_maildir_limit_message = "full \"really\" \\ ok"
stale_lock_time = "1d"
deliver_lock_delay = "250ms"
sieve_before = ["/etc/vlmtpd/a.sieve"]
tls_cert_file = "cert.pem"
tls_key_file = "key.pem"
tls_security_level = "encrypt"
tls_client_fingerprints = ["AB:` + strings.Repeat("0", 62) + `"]
metrics_listen = "unix:run/metrics"
`} {
		a, err := Parse("/srv/v/vlmtpd.toml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		out := dump(a)
		b, err := Parse("/srv/v/vlmtpd.toml", []byte(out))
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("loads back differently:\n%s\n%+v\n%+v", out, a, b)
		}
	}
}

func TestNonDefault(t *testing.T) {
	text := minimal + `hostname = "mx.example.org"
mydomain = "example.org"
message_size_limit = 10240000
idle_timeout = "5m"
data_timeout = "10s"
virtual_mailbox_domains = "texthash:vmailbox"
listen = "unix:/run/vlmtpd/lmtp.sock"
`
	got, err := NonDefault("/etc/v.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	// mydomain is what hostname gives, idle_timeout 300s, and
	// virtual_mailbox_domains $virtual_mailbox_maps: defaults all.
	want := []string{"hostname", "virtual_mailbox_maps", "virtual_uid_maps", "virtual_gid_maps", "virtual_mailbox_base", "data_timeout"}
	if !slices.Equal(got, want) {
		t.Errorf("NonDefault\n got %v\nwant %v", got, want)
	}
}

// TestPackageDefaultsAgree: the defaults other packages apply to options
// left zero are the table's.
func TestPackageDefaultsAgree(t *testing.T) {
	c, err := Parse("/etc/v.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what      string
		pkg, want any
	}{
		{"store.DefaultLockTimeout", store.DefaultLockTimeout, c.LockTimeout()},
		{"store.DefaultLockMethods", store.DefaultLockMethods, c.VirtualMailboxLock},
		{"store.DefaultSieveCPUTime", store.DefaultSieveCPUTime, c.SieveMaxCPUTime},
		{"sieve.DefaultMaxScriptSize", sieve.DefaultMaxScriptSize, c.SieveMaxScriptSize},
		{"maps.DefaultDoubleBounce", maps.DefaultDoubleBounce, c.DoubleBounceSender},
		{"sieve.DefaultMaxActions", sieve.DefaultMaxActions, c.SieveMaxActions},
		{"sieve.DefaultMaxRedirects", sieve.DefaultMaxRedirects, c.SieveMaxRedirects},
		{"worker.DefaultIdleTimeout", worker.DefaultIdleTimeout, c.WorkerIdleTimeout},
		{"worker.DefaultMaxDeliveries", worker.DefaultMaxDeliveries, c.WorkerMaxUse},
		{"worker.DefaultMaxWorkers", worker.DefaultMaxWorkers, c.WorkerLimit},
		{"worker.DefaultOwnerWorkers", worker.DefaultOwnerWorkers, c.WorkerOwnerLimit},
		{"worker.DefaultDeliveryTimeout", worker.DefaultDeliveryTimeout, c.DeliveryTimeout},
	} {
		if !reflect.DeepEqual(tc.pkg, tc.want) {
			t.Errorf("%s = %v, the configuration's default is %v", tc.what, tc.pkg, tc.want)
		}
	}
}

// exampleLine is a setting in config.example.toml: set, commented out
// ("# name = value": the default), or an example ("# e.g. name = value").
var exampleLine = regexp.MustCompile(`^(#\s*(e\.g\.\s+)?)?([a-z_]+)\s*=\s*(.*?)\s*(#.*)?$`)

// TestExampleAgrees: every setting config.example.toml names exists, and
// each one shown commented out shows the table's default.
func TestExampleAgrees(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "config.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	def, err := Parse("/etc/v.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	checked := 0
	for n := 1; sc.Scan(); n++ {
		m := exampleLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		checked++
		commented, example, name, value := m[1] != "", m[2] != "", m[3], m[4]
		s := settingsByName[name]
		switch {
		case s == nil:
			t.Errorf("config.example.toml:%d: %s is not a setting", n, name)
		case commented && !example && s.def != "":
			c, err := Parse("/etc/v.toml", []byte(minimal+name+" = "+value+"\n"))
			if err != nil {
				t.Errorf("config.example.toml:%d: %v", n, err)
				continue
			}
			if got, want := must(c.Value(name)), must(def.Value(name)); got != want {
				t.Errorf("config.example.toml:%d: %s is shown as the default %s, but the default is %s (write \"# e.g. %s = …\" for an example)",
					n, name, got, want, name)
			}
		}
	}
	// A pattern that stopped matching must not make the test pass.
	if checked < 20 {
		t.Errorf("only %d settings lines recognised in config.example.toml", checked)
	}
}

// The README's settings table lies between these lines.
const (
	readmeStart = "<!-- settings: generated from server/config/settings.go by `go test ./server/config -update`; do not edit -->\n"
	readmeEnd   = "<!-- end of settings -->\n"
)

// TestREADMETable: the README's settings table is the table's, made by
// markdownTable; -update rewrites it.
func TestREADMETable(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i, j := strings.Index(text, readmeStart), strings.Index(text, readmeEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the lines %q and %q around the settings table", readmeStart, readmeEnd)
	}
	want := text[:i] + readmeStart + markdownTable() + readmeEnd + text[j+len(readmeEnd):]
	if want == text {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's settings table is not server/config's: run go test ./server/config -update")
}

// proseDefault is a default quoted in prose: "`name` (default VALUE".
var proseDefault = regexp.MustCompile("`?\\b([a-z_]+)`? \\(default:? ([^),;]+)")

// TestProseDefaults: where the other documents quote a setting's default,
// it is the table's.
func TestProseDefaults(t *testing.T) {
	def, err := Parse("/etc/v.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	dist, _ := filepath.Glob(filepath.Join("..", "..", "dist", "*"))
	files = append(append(files, dist...), filepath.Join("..", "..", "README.md"))
	quoted := 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range proseDefault.FindAllStringSubmatch(string(data), -1) {
			name, value := m[1], strings.TrimSpace(m[2])
			if settingsByName[name] == nil {
				continue // another program's setting, e.g. Postfix's lmtp_*
			}
			quoted++
			c, err := Parse("/etc/v.toml", []byte(minimal+name+" = "+value+"\n"))
			if err != nil {
				c, err = Parse("/etc/v.toml", []byte(minimal+name+" = "+tomlString(value)+"\n"))
			}
			if err != nil {
				t.Errorf("%s: %s: write the default %q as in TOML: %v", path, name, value, err)
				continue
			}
			if got, want := must(c.Value(name)), must(def.Value(name)); got != want {
				t.Errorf("%s: says %s defaults to %s; it is %s", path, name, got, want)
			}
		}
	}
	if quoted < 5 {
		t.Errorf("only %d quoted defaults found in %d files: the pattern or the globs no longer match", quoted, len(files))
	}
}
