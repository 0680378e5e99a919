// Runs in: an administrator's command (one-shot process).

package main

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vlmtpd/vlmtpd/server"
	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/sieve"
	"github.com/vlmtpd/vlmtpd/store"
)

func init() {
	commands["check-config"] = command{"validate the configuration and open every table", runCheckConfig}
}

// runCheckConfig finds what would otherwise fail only later: tables that
// do not open or skip lines, users and directories the processes need,
// ids vlmtpd refuses. Each problem is one line saying how to fix it.
func runCheckConfig(args []string) int {
	cfg, _, code := loadConfig("check-config", defaultConfig, args)
	if cfg == nil {
		return code
	}
	var problems []string
	problem := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// Tables warn while they load (keys that can never match, skipped
	// lines): each is printed once and counted. They are warnings, not
	// problems: Postfix loads such tables too, and check-config runs
	// before every start (ExecStartPre).
	warnings := newCLIHandler("vlmtpd check-config")
	prev := slog.Default()
	slog.SetDefault(slog.New(warnings))
	r, err := server.NewResolver(cfg)
	slog.SetDefault(prev)
	if err != nil {
		problem("%v", err)
	} else {
		r.Close()
	}

	// static: ids, read and judged as the resolver and the id policy do.
	checkStatic := func(param string, tables []string, uid bool) {
		for _, m := range tables {
			v, ok := strings.CutPrefix(m, "static:")
			if !ok {
				continue
			}
			n, ok := server.ParseID(v)
			switch {
			case !ok:
				problem("%s: %s is not an id (a number up to %d): every recipient would get 451 4.3.5", param, m, store.MaxID)
			case n == 0:
				problem("%s: %s makes every mailbox root's, which vlmtpd refuses (451 4.3.5): use the mailbox owners' id", param, m)
			case uid && n < cfg.VirtualMinimumUID:
				problem("%s: %s is below virtual_minimum_uid %d: every recipient would get 451 4.3.5", param, m, cfg.VirtualMinimumUID)
			}
		}
	}
	checkStatic("virtual_uid_maps", cfg.VirtualUIDMaps, true)
	checkStatic("virtual_gid_maps", cfg.VirtualGIDMaps, false)

	base := cfg.VirtualMailboxBase
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		problem("virtual_mailbox_base: %s is not an existing directory (create it, writable by the mailbox owners, or try `vlmtpd quickstart`)", base)
	} else if dir := unsearchable(base); dir != "" {
		problem("virtual_mailbox_base: %s is not searchable by other users, so workers running as the mailbox owners cannot reach their mailboxes (chmod o+x %s)", dir, dir)
	}

	// The spool's writer is the front: the user setting when vlmtpd is
	// started as root, else whoever starts it (as this check is run).
	writer, err := user.Current()
	if os.Geteuid() == 0 {
		writer, err = user.Lookup(cfg.User)
		if err != nil {
			problem("user: %q does not exist; started as root, vlmtpd runs its network side as this user (create it: useradd --system --no-create-home --shell /usr/sbin/nologin %s)", cfg.User, cfg.User)
		}
	}
	if fi, serr := os.Stat(cfg.SpoolDirectory); err == nil && serr == nil {
		if !fi.IsDir() {
			problem("spool_directory: %s is not a directory", cfg.SpoolDirectory)
		} else if !writableBy(fi, writer) {
			problem("spool_directory: %s is not writable by %s, the user that spools messages (chown %s %s; chmod 0700 %s)", cfg.SpoolDirectory, writer.Username, writer.Username, cfg.SpoolDirectory, cfg.SpoolDirectory)
		}
	}

	checkSieve(cfg, problem, slog.New(warnings).Warn)

	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "vlmtpd:", p)
		}
		return 1
	}
	if n := warnings.Count(); n > 0 {
		fmt.Printf("%s: OK, with %d warning(s) above\n", cfg.Path, n)
		return 0
	}
	fmt.Printf("%s: OK\n", cfg.Path)
	return 0
}

// unsearchable is the first of dir and its parents that others cannot
// search, "" if there is none.
func unsearchable(dir string) string {
	dir, _ = filepath.Abs(dir)
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return d
		}
		if d == "/" {
			return ""
		}
	}
}

// writableBy reports whether u may create files in the directory fi.
func writableBy(fi os.FileInfo, u *user.User) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	uid, _ := strconv.Atoi(u.Uid)
	if uid == 0 {
		return true
	}
	mode := fi.Mode().Perm()
	if int(st.Uid) == uid {
		return mode&0o300 == 0o300
	}
	gids, _ := u.GroupIds()
	gids = append(gids, u.Gid)
	for _, g := range gids {
		if n, _ := strconv.Atoi(g); uint32(n) == st.Gid {
			return mode&0o030 == 0o030
		}
	}
	return mode&0o003 == 0o003
}

// checkSieve compiles the administrator's scripts (they are not users'
// data, so they may be compiled here; users' scripts are only ever read by
// the workers) and checks that they can be read by every mailbox owner
// and that sendmail_path can be run by the front.
func checkSieve(cfg *config.Config, problem func(string, ...any), warn func(string, ...any)) {
	before, after, sendmail := cfg.SieveBefore, cfg.SieveAfter, cfg.SendmailPath
	if g := cfg.SieveGlobalDir; g != "" {
		if fi, err := os.Stat(g); err != nil || !fi.IsDir() {
			problem("sieve_global_dir: %s is not a directory: include :global would fail (the scripts would not run)", g)
		}
	}
	global := func(loc sieve.IncludeLocation, name string) ([]byte, error) {
		if loc != sieve.Global || cfg.SieveGlobalDir == "" {
			return nil, fmt.Errorf("include %q: %w", name, fs.ErrNotExist)
		}
		return os.ReadFile(filepath.Join(cfg.SieveGlobalDir, name+".sieve"))
	}
	for _, set := range []struct {
		param string
		paths []string
	}{{"sieve_before", before}, {"sieve_after", after}} {
		for _, p := range set.paths {
			fi, err := os.Stat(p)
			if err != nil {
				problem("%s: %v (a missing script is skipped at delivery, with a warning)", set.param, err)
				continue
			}
			if fi.Mode().Perm()&0o004 == 0 {
				problem("%s: %s is not readable by others: the workers read it as each mailbox owner (chmod o+r %s)", set.param, p, p)
			}
			src, err := os.ReadFile(p)
			if err != nil {
				problem("%s: %v", set.param, err)
				continue
			}
			if _, err := sieve.Compile(src, &sieve.Options{Name: p, MaxScriptSize: cfg.SieveMaxScriptSize, Include: global}); err != nil {
				problem("%s: %v (it would not run)", set.param, err)
			}
		}
	}
	if len(cfg.SieveScriptMaps) == 0 && len(before) == 0 && len(after) == 0 {
		return // no Sieve: nothing is submitted
	}
	if cfg.SubmissionHost != "" {
		return // sendmail is not used
	}
	if fi, err := os.Stat(sendmail); err != nil {
		problem("sendmail_path: %v: redirect and vacation replies would fail (the messages are kept)", err)
	} else if fi.IsDir() || fi.Mode().Perm()&0o001 == 0 {
		problem("sendmail_path: %s is not executable by others: the front runs it as %q", sendmail, cfg.User)
	}
	// check-config runs as the unit's ExecStartPre, with the service's
	// no_new_privs: what it sees is what the front will have.
	if server.NoNewPrivs() && server.PostfixSendmail(sendmail) {
		warn("sendmail_path " + sendmail + " is Postfix's sendmail, whose set-gid postdrop cannot queue under no_new_privs (NoNewPrivileges=yes): " +
			"Sieve redirects would fail (the messages are kept) and vacation replies would not be sent; " +
			`set submission_host (e.g. "inet:127.0.0.1:25", Postfix's smtpd)`)
	}
}
