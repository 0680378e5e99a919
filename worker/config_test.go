package worker

import (
	"reflect"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/store"
)

func TestConfigArgsRoundTrip(t *testing.T) {
	c := Config{Base: "/var/mail/vhosts", UID: 5000, GID: 5001, KeepGroups: true,
		LogLevel: "debug", LogFormat: "postfix", LogJournal: true,
		Writer: store.WriterOptions{Hostname: "mx.example.com", LockMethods: []string{"flock", "dotlock"},
			LockTimeout: 20 * time.Second, StaleLockTime: 500 * time.Second, SingleInstance: true,
			Sieve: store.SieveOptions{Before: []string{"/etc/a,b.sieve", "/etc/c.sieve"}, After: []string{"/etc/after.sieve"}, GlobalDir: "/etc/vlmtpd/sieve-global",
				Separator: "+", MaxRedirects: 2, MaxActions: 10, MaxScriptSize: 1000, MaxCPUTime: time.Second}}}
	got, err := ParseArgs(c.Args())
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Fatalf("got %+v, %v; want %+v", got, err, c)
	}
	for _, bad := range [][]string{
		{"-base", "relative", "-uid", "5", "-gid", "5"},
		{"-base", "/m", "-uid", "0", "-gid", "5"},
		{"-base", "/m", "-uid", "5", "-gid", "0"},
		{"-base", "/m", "-uid", "5"},
		{"-base", "/m", "-uid", "5", "-gid", "5", "extra"},
		{"-base", "/m", "-uid", "5", "-gid", "5", "-sieve-before", "relative.sieve"},
	} {
		if _, err := ParseArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
