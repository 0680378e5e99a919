// Runs in: the tests and the benchmark (tools).

// Package rig sets up what the end-to-end tests and the benchmark both
// run against: mailbox trees owned by the test owner, and a private
// Dovecot instance's configuration. Its helpers return errors instead of
// taking a testing.TB, so that the benchmark (a command) can use them.
package rig

import (
	"fmt"
	"os"
	"path/filepath"
)

// ChownTree gives root and everything beneath it to uid:gid without
// following links. It does nothing unless this process is root.
func ChownTree(root string, uid, gid int) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// Dovecot is a private Dovecot instance in Dir (run/, state/ and the log
// beneath it), every user being UID:GID through a static userdb.
type Dovecot struct {
	Dir       string
	Instance  string // instance_name: unique per test process
	Protocols string // e.g. "lmtp"
	UID, GID  int
	// Dovecot's internal and login users: dovecot and dovenull as root,
	// else the current user (Dovecot refuses to switch users otherwise).
	InternalUser, InternalGroup, LoginUser string
	// LogPath is log_path; default Dir/dovecot.log.
	LogPath string
	// Userdb is added to the static userdb's args (home=…); Extra after
	// the whole configuration (mail_location, services, plugins).
	Userdb, Extra string
}

// Config is the instance's dovecot.conf.
func (d Dovecot) Config() string {
	log := d.LogPath
	if log == "" {
		log = filepath.Join(d.Dir, "dovecot.log")
	}
	group := ""
	if d.InternalGroup != "" {
		group = "default_internal_group = " + d.InternalGroup + "\n"
	}
	return fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = %[2]s
protocols = %[3]s
ssl = no
log_path = %[4]s
default_internal_user = %[5]s
%[6]sdefault_login_user = %[7]s
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=%[8]d gid=%[9]d %[10]s
}
`, d.Dir, d.Instance, d.Protocols, log, d.InternalUser, group, d.LoginUser, d.UID, d.GID, d.Userdb) + d.Extra
}

// Dirs creates the directories the configuration names (run/, state/).
func (d Dovecot) Dirs() error {
	for _, s := range []string{"run", "state"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, s), 0o755); err != nil {
			return err
		}
	}
	return nil
}
