package tests

// Helpers for the interoperability tests: private instances of vlmtpd,
// Postfix, Dovecot and Exim in temp dirs, and readers for what they wrote.
// Every instance listens on loopback or a unix socket only and is stopped
// by t.Cleanup.

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/rig"
	"github.com/vlmtpd/vlmtpd/internal/testutil"
)

// The skip-locally-fail-under-CI rule lives in internal/testutil; these
// are its short names in this package.
func toolOrSkip(t testing.TB, why string, paths ...string) string {
	t.Helper()
	return testutil.Tool(t, why, paths...)
}

func rootOrSkip(t testing.TB, why string) {
	t.Helper()
	testutil.RequireRoot(t, why)
}

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	testutil.SkipOrFail(t, format, args...)
}

// mailOwner is the uid/gid that owns the test mailboxes and runs vlmtpd:
// the tests run vlmtpd in single-user mode, as testUID:testGID when they run
// as root (privilege separation is not what they test), else as the
// current user.
type mailOwner struct {
	UID, GID int
}

func testMailOwner(t testing.TB) mailOwner {
	t.Helper()
	if os.Getuid() != 0 {
		return mailOwner{os.Getuid(), os.Getgid()}
	}
	return mailOwner{testUID, testGID}
}

// sharedTempDir is a t.TempDir that other users (postfix, Debian-exim,
// nobody) can traverse: Go creates temp dirs 0700.
func sharedTempDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/" && strings.HasPrefix(p, os.TempDir()); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func chownTree(t testing.TB, root string, o mailOwner) {
	t.Helper()
	if err := rig.ChownTree(root, o.UID, o.GID); err != nil {
		t.Fatal(err)
	}
}

func writeTestFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pollUntil polls cond every 50ms until it holds or the timeout passes.
func pollUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitAccept(t testing.TB, network, addr string, timeout time.Duration) {
	t.Helper()
	pollUntil(t, timeout, network+" "+addr+" to accept", func() bool {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// --- vlmtpd ----------------------------------------------------------------

// vlmtpdSetup is the part of a vlmtpd configuration the interop tests vary.
type vlmtpdSetup struct {
	Domains   []string
	Mailboxes map[string]string // virtual_mailbox_maps entries: address → path
	UIDs      map[string]int    // virtual_uid_maps entries; default: the owner
	Limit     int64             // virtual_mailbox_limit; 0: vlmtpd's default
	SizeLimit int64             // message_size_limit; 0: vlmtpd's default
	Extra     string            // more TOML lines
	// Privsep starts vlmtpd as root, as deployed: root parent, front as
	// nobody, delivery workers as the mailbox owner. Ignored unless the
	// tests run as root.
	Privsep bool
	// Socket, if set, is vlmtpd's only listener (a unix socket path)
	// instead of the instance's own socket and port.
	Socket string
}

// vlmtpdInstance is the lead's Instance plus the mailbox owner.
type vlmtpdInstance struct {
	*Instance
	Owner mailOwner
}

// startVlmtpdFor starts vlmtpd with the given tables (in single-user mode,
// as the mailbox owner, unless s.Privsep and root) on a unix socket any
// local user may connect to: Postfix's lmtp runs as postfix, Exim's as
// Debian-exim.
func startVlmtpdFor(t testing.TB, s vlmtpdSetup) *vlmtpdInstance {
	t.Helper()
	owner := testMailOwner(t)
	tables := map[string]string{"vmailbox": tableText(s.Mailboxes)}
	uidMaps := fmt.Sprintf(`"static:%d"`, owner.UID)
	if len(s.UIDs) > 0 {
		uids := map[string]string{}
		for k, u := range s.UIDs {
			uids[k] = strconv.Itoa(u)
		}
		tables["vuid"] = tableText(uids)
		uidMaps = `"texthash:vuid", ` + uidMaps
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "socket_mode = %q\n", "0666")
	fmt.Fprintf(&cfg, "virtual_mailbox_domains = [%s]\n", quoteList(s.Domains))
	fmt.Fprintf(&cfg, "virtual_mailbox_maps = [%q]\n", "texthash:vmailbox")
	fmt.Fprintf(&cfg, "virtual_uid_maps = [%s]\n", uidMaps)
	fmt.Fprintf(&cfg, "virtual_gid_maps = [\"static:%d\"]\n", owner.GID)
	fmt.Fprintf(&cfg, "virtual_minimum_uid = %d\n", max(1, min(owner.UID, 100)))
	if s.Limit > 0 {
		fmt.Fprintf(&cfg, "virtual_mailbox_limit = %d\n", s.Limit)
	}
	if s.SizeLimit > 0 {
		fmt.Fprintf(&cfg, "message_size_limit = %d\n", s.SizeLimit)
	}
	privsep := s.Privsep && os.Geteuid() == 0
	if privsep {
		cfg.WriteString("user = \"nobody\"\n")
	}
	if s.Socket != "" {
		fmt.Fprintf(&cfg, "listen = [%q]\n", "unix:"+s.Socket)
	}
	cfg.WriteString(s.Extra)
	// Like virtual(8), vlmtpd never creates an mbox's parent directory:
	// the administrator does.
	prepare := func(dir string) {
		if s.Socket != "" {
			// The harness waits for its own socket path to accept.
			if err := os.Symlink(s.Socket, filepath.Join(dir, "lmtp.sock")); err != nil {
				t.Fatal(err)
			}
		}
		for _, path := range s.Mailboxes {
			if strings.HasSuffix(path, "/") {
				continue
			}
			parent := filepath.Join(dir, "mail", filepath.Dir(path))
			if err := os.MkdirAll(parent, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		chownTree(t, filepath.Join(dir, "mail"), owner)
		if privsep {
			// The front (nobody) writes the spool.
			u, err := user.Lookup("nobody")
			if err != nil {
				t.Fatal(err)
			}
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			chownTree(t, filepath.Join(dir, "spool"), mailOwner{uid, gid})
		}
	}
	in := StartInstance(t, Options{Tables: tables, Config: cfg.String(), Prepare: prepare, Privileged: privsep})
	if in.UID != owner.UID || in.GID != owner.GID {
		t.Fatalf("instance runs as %d:%d, expected %d:%d", in.UID, in.GID, owner.UID, owner.GID)
	}
	return &vlmtpdInstance{Instance: in, Owner: owner}
}

// Pid is the process id of the vlmtpd process the test started.
func (v *vlmtpdInstance) Pid() int { return v.cmd.Process.Pid }

// mailbox is the path of a mailbox relative to the base.
func (v *vlmtpdInstance) mailbox(rel string) string { return filepath.Join(v.Base, rel) }

// overLimitMbox writes an mbox at rel that is already larger than limit
// bytes, owned by the mail owner, and returns its path and content, so a
// test can check that a refused delivery left it untouched.
func (v *vlmtpdInstance) overLimitMbox(t testing.TB, rel string, limit int) (string, []byte) {
	t.Helper()
	full := v.mailbox(rel)
	writeTestFile(t, full, "From old@client.test Thu Jan  1 00:00:00 2026\nSubject: old\n\n"+strings.Repeat(strings.Repeat("x", 99)+"\n", limit/100+1)+"\n")
	chownTree(t, filepath.Dir(full), v.Owner)
	before, _ := os.ReadFile(full)
	return full, before
}

// tableText is m as a Postfix lookup table source, "key value" lines.
func tableText(m map[string]string) string { return sortedLines(m, "%s %s\n") }

// sortedLines formats each key and value of m with format, in key order,
// so that generated files are the same from run to run.
func sortedLines(m map[string]string, format string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, format, k, m[k])
	}
	return b.String()
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func tailLines(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// --- Postfix ---------------------------------------------------------------

type postfixInstance struct {
	ConfDir, QueueDir, Log string
	Port                   int
	postfix                string
}

// postfixMasterCF runs every service but lmtp unchrooted, smtpd on a
// loopback port only. Debian chroots lmtp into the queue directory (column
// 5 = y); then it reaches only sockets under it, e.g. private/vlmtpd.
// virtual is Postfix's own virtual(8), privileged as Debian ships it: the
// oracle test delivers with it.
const postfixMasterCF = `127.0.0.1:%d inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
lmtp      unix  - - %s -  - lmtp
virtual   unix  - n n -  - virtual
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
tlsmgr    unix  - - n 1000? 1 tlsmgr
postlog   unix-dgram n - n - 1 postlogd
`

// startPostfix starts a private Postfix: its own config, queue and data
// directories, smtpd on a free loopback port, log in a file, everything
// that is not a virtual domain discarded (bounces to the test's senders
// included). main sets further main.cf parameters.
func startPostfix(t testing.TB, main map[string]string, chrootLMTP bool) *postfixInstance {
	t.Helper()
	rootOrSkip(t, "a private Postfix instance")
	pf := toolOrSkip(t, "Postfix", "/usr/sbin/postfix")
	dir := sharedTempDir(t)
	p := &postfixInstance{
		ConfDir:  filepath.Join(dir, "conf"),
		QueueDir: filepath.Join(dir, "queue"),
		Log:      filepath.Join(dir, "maillog"),
		Port:     freePort(t),
		postfix:  pf,
	}
	for _, d := range []string{p.ConfDir, filepath.Join(dir, "queue"), filepath.Join(dir, "data")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("postfix user: %v", err)
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	if err := os.Chown(filepath.Join(dir, "data"), uid, -1); err != nil {
		t.Fatal(err)
	}
	params := map[string]string{
		"compatibility_level":             "3.6",
		"queue_directory":                 filepath.Join(dir, "queue"),
		"data_directory":                  filepath.Join(dir, "data"),
		"mail_owner":                      "postfix",
		"setgid_group":                    "postdrop",
		"inet_interfaces":                 "loopback-only",
		"inet_protocols":                  "ipv4",
		"myhostname":                      "mta.test",
		"mydomain":                        "mta.test",
		"myorigin":                        "mta.test",
		"mydestination":                   "",
		"relay_domains":                   "",
		"mynetworks":                      "127.0.0.0/8",
		"maillog_file":                    p.Log,
		"maillog_file_prefixes":           dir,
		"syslog_name":                     "postfix-vtest",
		"default_transport":               "discard:",
		"relay_transport":                 "discard:",
		"smtpd_reject_unlisted_recipient": "no",
		"biff":                            "no",
		// At most vlmtpd's recipient_concurrency_limit (10) at once, as
		// docs/postfix.md recommends: more to one mailbox are deferred.
		"lmtp_destination_concurrency_limit": "10",
		"alias_maps":                         "",
		"alias_database":                     "",
	}
	for k, v := range main {
		params[k] = v
	}
	writeTestFile(t, filepath.Join(p.ConfDir, "main.cf"), sortedLines(params, "%s = %s\n"))
	chroot := "n"
	if chrootLMTP {
		chroot = "y"
	}
	writeTestFile(t, filepath.Join(p.ConfDir, "master.cf"), fmt.Sprintf(postfixMasterCF, p.Port, chroot))

	if out, err := p.run("start"); err != nil {
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, readLogFile(p.Log))
	}
	t.Cleanup(func() {
		if out, err := p.run("stop"); err != nil {
			t.Logf("postfix stop: %v\n%s", err, out)
			p.run("abort")
		}
		if t.Failed() {
			t.Logf("postfix log (tail):\n%s", tailLines(readLogFile(p.Log), 80))
		}
	})
	waitAccept(t, "tcp", p.Addr(), 15*time.Second)
	return p
}

func (p *postfixInstance) Addr() string { return fmt.Sprintf("127.0.0.1:%d", p.Port) }

func (p *postfixInstance) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.postfix, append([]string{"-c", p.ConfDir}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func readLogFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// postfixDelivery is one lmtp(8) log line: a final or temporary outcome
// for one recipient of one queued message.
type postfixDelivery struct {
	QueueID, To, DSN, Status, Reply string
	ConnUse                         int
}

var (
	lmtpLineRE      = regexp.MustCompile(`/lmtp\[\d+\]: ([0-9A-F]+): to=<([^>]*)>, (?:orig_to=<[^>]*>, )?relay=[^,]*, (?:conn_use=(\d+), )?delay=[^,]*, delays=[^,]*, dsn=([0-9.]+), status=(\w+) \((.*)\)$`)
	cleanupMsgIDRE  = regexp.MustCompile(`/cleanup\[\d+\]: ([0-9A-F]+): message-id=<([^>]*)>`)
	postfixFatalRE  = regexp.MustCompile(`: (fatal|panic): `)
	lmtpWarningRE   = regexp.MustCompile(`/lmtp\[\d+\]: warning: `)
	postfixWarningR = regexp.MustCompile(`: warning: `)
)

// deliveries parses every lmtp(8) outcome logged so far, and the
// message-id of every queued message.
func (p *postfixInstance) deliveries() (ds []postfixDelivery, msgIDs map[string]string) {
	msgIDs = map[string]string{}
	for _, line := range strings.Split(readLogFile(p.Log), "\n") {
		if m := lmtpLineRE.FindStringSubmatch(line); m != nil {
			cu, _ := strconv.Atoi(m[3])
			ds = append(ds, postfixDelivery{QueueID: m[1], To: m[2], ConnUse: cu, DSN: m[4], Status: m[5], Reply: m[6]})
		} else if m := cleanupMsgIDRE.FindStringSubmatch(line); m != nil {
			msgIDs[m[1]] = m[2]
		}
	}
	return ds, msgIDs
}

// problems are the fatal and panic lines of the log and the warnings of
// its lmtp client (protocol trouble with the server); other warnings
// depend on the machine and are only returned as notes.
func (p *postfixInstance) problems() (problems, notes []string) {
	for _, line := range strings.Split(readLogFile(p.Log), "\n") {
		switch {
		case postfixFatalRE.MatchString(line) || lmtpWarningRE.MatchString(line):
			problems = append(problems, line)
		case postfixWarningR.MatchString(line):
			notes = append(notes, line)
		}
	}
	return problems, notes
}

// --- Dovecot (as a reader: doveadm) -----------------------------------------

type dovecotInstance struct {
	Conf, Dir string
	Owner     mailOwner
	doveadm   string
}

// startDovecotForDoveadm starts a private Dovecot without any protocol:
// doveadm needs its auth process for the userdb lookup. The static userdb
// gives every user the mailbox owner's uid and gid.
func startDovecotForDoveadm(t testing.TB, owner mailOwner) *dovecotInstance {
	t.Helper()
	dir, conf, doveadm := startPrivateDovecot(t, "reader", owner, "", "home=%[1]s/home", "")
	waitAccept(t, "unix", filepath.Join(dir, "run", "auth-userdb"), 15*time.Second)
	return &dovecotInstance{Conf: conf, Dir: dir, Owner: owner, doveadm: doveadm}
}

// startPrivateDovecot writes the configuration of a private Dovecot in a
// new directory dir (dir/run, dir/state, dir/home owned by owner, the log
// dir/dovecot.log) and runs it until the test ends: the given protocols, a
// static passdb, a static userdb giving every user owner's uid and gid
// and then userdb's arguments (formatted with dir as %[1]s), and extra.
// It returns dir, the configuration file and doveadm.
func startPrivateDovecot(t testing.TB, name string, owner mailOwner, protocols, userdb, extra string) (dir, conf, doveadm string) {
	t.Helper()
	rootOrSkip(t, "a private Dovecot instance")
	dovecot := toolOrSkip(t, "Dovecot", "/usr/sbin/dovecot")
	doveadm = toolOrSkip(t, "doveadm", "/usr/bin/doveadm")
	dir = sharedTempDir(t)
	conf = filepath.Join(dir, "dovecot.conf")
	d := rig.Dovecot{Dir: dir, Instance: fmt.Sprintf("vtest-%s-%d", name, os.Getpid()), Protocols: protocols,
		UID: owner.UID, GID: owner.GID, InternalUser: "dovecot", LoginUser: "dovenull", Userdb: fmt.Sprintf(userdb, dir), Extra: extra}
	if err := d.Dirs(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o755); err != nil {
		t.Fatal(err)
	}
	chownTree(t, filepath.Join(dir, "home"), owner)
	writeTestFile(t, conf, d.Config())
	runDovecot(t, dovecot, conf, filepath.Join(dir, "dovecot.log"))
	return dir, conf, doveadm
}

// runDovecot runs `dovecot -F -c conf` until the test ends (SIGTERM, then
// SIGKILL after 10 s). If the test failed, its output and the log file
// logFile (when set) are shown.
func runDovecot(t testing.TB, dovecot, conf, logFile string) {
	t.Helper()
	cmd := exec.Command(dovecot, "-F", "-c", conf)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() && logFile != "" {
			b, _ := os.ReadFile(logFile)
			t.Logf("dovecot output:\n%s\n%s:\n%s", out.String(), filepath.Base(logFile), b)
		}
	})
}
