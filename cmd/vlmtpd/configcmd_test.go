package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vlmtpd/vlmtpd/server/config"
)

// TestConfigLoadsBack: what `vlmtpd config` and `vlmtpd config -n` print,
// saved beside the file, loads to the same configuration; -n prints only
// what the file changes; names select.
func TestConfigLoadsBack(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vlmtpd.toml")
	text := `virtual_mailbox_base = "mail"
virtual_mailbox_maps = "texthash:vmailbox"
virtual_uid_maps = "static:5000"
virtual_gid_maps = "static:5000"
hostname = "mx.example.org"
mydomain = "example.org"
stale_lock_time = "1d"
idle_timeout = "5m"
recipient_delimiter = "+"
allowed_networks = "10.0.0.0/8 ::1"
sieve_max_cpu_time = "1500ms"
`
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	want, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"config", "-config", path}, {"config", "-n", "-config", path}} {
		code, out, errOut := capture(t, func() int { return dispatch(args) })
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
		again := filepath.Join(dir, "again.toml")
		if err := os.WriteFile(again, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := config.Load(again)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		got.Path = want.Path
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%v: loads back differently:\n%s", args, out)
		}
		if args[1] == "-n" {
			wantN := `virtual_mailbox_base = "` + dir + `/mail"` + "\n"
			if !strings.Contains(out, wantN) || !strings.Contains(out, `stale_lock_time = "24h"`) ||
				!strings.Contains(out, `sieve_max_cpu_time = "1.5s"`) ||
				strings.Contains(out, "mydomain") || strings.Contains(out, "idle_timeout") || strings.Count(out, "\n") != 9 {
				t.Errorf("config -n:\n%s", out)
			}
		}
	}
	code, out, errOut := capture(t, func() int { return dispatch([]string{"config", "-config", path, "mydomain", "nosuch", "listen"}) })
	if code != 1 || out != "mydomain = \"example.org\"\nlisten = [\"unix:/run/vlmtpd/lmtp.sock\"]\n" || !strings.Contains(errOut, `unknown setting "nosuch"`) {
		t.Errorf("config NAME...: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
