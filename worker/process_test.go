package worker

import (
	"github.com/vlmtpd/vlmtpd/internal/proctree"
	"github.com/vlmtpd/vlmtpd/internal/testutil"

	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/store"
)

func requireRoot(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t, "starting workers as other uids")
}

// ownedDir creates base/name owned by uid:gid, mode 0700, as a mail
// administrator would prepare a user's directory.
func ownedDir(t testing.TB, base, name string, uid, gid int) string {
	t.Helper()
	d := filepath.Join(base, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, uid, gid); err != nil {
		t.Fatal(err)
	}
	return d
}

func newRealPool(t testing.TB, base string, opts PoolOptions) *Pool {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger(t)
	}
	p := NewPool(&LocalSpawner{Config: Config{Base: base, Writer: store.WriterOptions{Hostname: "test.example"}}}, opts)
	t.Cleanup(func() { p.Close() })
	return p
}

// workerPIDs lists the pool's idle workers.
func (p *Pool) workerPIDs() map[ids][]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[ids][]int{}
	for k, ws := range p.idle {
		for _, w := range ws {
			out[k] = append(out[k], w.p.PID)
		}
	}
	return out
}

func checkOwner(t *testing.T, path string, uid, gid int, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Error(err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != mode {
		t.Errorf("%s: owner %d:%d mode %v, want %d:%d %v", path, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid, mode)
	}
}

func onlyFile(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("%s: %v, %v; want exactly one file", dir, ents, err)
	}
	return filepath.Join(dir, ents[0].Name())
}

func TestWorkersDeliverAsEachOwner(t *testing.T) {
	requireRoot(t)
	base := mailBase(t)
	owners := [][2]int{{5001, 5001}, {5002, 5002}, {5003, 5004}}
	for _, o := range owners {
		ownedDir(t, base, "u"+strconv.Itoa(o[0]), o[0], o[1])
	}
	p := newRealPool(t, base, PoolOptions{})
	msg := spoolFile(t, "Subject: hello\n\nFrom the test.\n")
	rcpts := []store.Recipient{
		{Address: "a@example.com", Path: "u5001/Maildir/", UID: 5001, GID: 5001},
		{Address: "b@example.com", Path: "u5002/mbox", UID: 5002, GID: 5002},
		{Address: "c@example.com", Path: "u5003/Maildir/", UID: 5003, GID: 5004},
		{Address: "a2@example.com", Path: "u5001/mbox", UID: 5001, GID: 5001},
	}
	for i, err := range p.Deliver(context.Background(), msg, rcpts) {
		if err != nil {
			t.Fatalf("%s: %v", rcpts[i].Address, err)
		}
	}
	for _, o := range owners {
		if o[0] == 5002 {
			continue
		}
		md := filepath.Join(base, "u"+strconv.Itoa(o[0]), "Maildir")
		for _, d := range []string{"", "tmp", "new", "cur"} {
			checkOwner(t, filepath.Join(md, d), o[0], o[1], 0o700)
		}
		f := onlyFile(t, filepath.Join(md, "new"))
		checkOwner(t, f, o[0], o[1], 0o600)
		if b, _ := os.ReadFile(f); !strings.Contains(string(b), "From the test.") {
			t.Errorf("%s holds %q", f, b)
		}
	}
	checkOwner(t, filepath.Join(base, "u5002/mbox"), 5002, 5002, 0o600)
	checkOwner(t, filepath.Join(base, "u5001/mbox"), 5001, 5001, 0o600)
	if b, _ := os.ReadFile(filepath.Join(base, "u5002/mbox")); !strings.HasPrefix(string(b), "From sender@example.org ") {
		t.Errorf("mbox holds %q", b)
	}

	// One worker per (uid, gid), each with nothing but its ids.
	pids := p.workerPIDs()
	if len(pids) != 3 {
		t.Fatalf("workers %v, want one for each of 3 owners", pids)
	}
	for k, ps := range pids {
		if len(ps) != 1 {
			t.Errorf("%v: %d workers", k, len(ps))
		}
		c, err := proctree.ReadCreds(ps[0])
		if err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			if c.UIDs[i] != k.uid || c.GIDs[i] != k.gid {
				t.Errorf("worker %d: uids %v gids %v, want %d:%d", ps[0], c.UIDs, c.GIDs, k.uid, k.gid)
			}
		}
		if len(c.Groups) != 0 || c.CapEff != 0 || c.CapPrm != 0 || c.CapAmb != 0 || c.CapInh != 0 || !c.NoNewPrivs {
			t.Errorf("worker %d: %+v", ps[0], c)
		}
		if env, err := os.ReadFile("/proc/" + strconv.Itoa(ps[0]) + "/environ"); err != nil || len(env) != 0 {
			t.Errorf("worker %d environment %q, %v", ps[0], env, err)
		}
		if cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(ps[0]) + "/cmdline"); landlockABI() > 0 && !strings.Contains(string(cmd), "-dropped=landlock") {
			t.Errorf("worker %d is not confined by Landlock: %q", ps[0], cmd)
		}
	}

	// The size query runs in the owner's worker.
	n, err := p.MailboxSize(context.Background(), rcpts[1])
	if fi, _ := os.Stat(filepath.Join(base, "u5002/mbox")); err != nil || n != fi.Size() {
		t.Errorf("MailboxSize = %d, %v; want %d", n, err, fi.Size())
	}
}

func TestWorkerRefusesRoot(t *testing.T) {
	requireRoot(t)
	p := newRealPool(t, mailBase(t), PoolOptions{})
	for _, r := range []store.Recipient{{Path: "x/", UID: 0, GID: 5001}, {Path: "x/", UID: 5001, GID: 0}} {
		errs := p.Deliver(context.Background(), spoolFile(t, "x\n"), []store.Recipient{r})
		if store.StatusOf(errs[0]) != store.NotPermitted {
			t.Errorf("%d:%d: %v, want not-permitted", r.UID, r.GID, errs[0])
		}
	}
	// And the worker itself refuses, whoever starts it.
	proc, f, err := Start(SelfExe, Config{Base: "/", UID: 0, GID: 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if st, _ := proc.Wait(); st.ExitCode() == 0 {
		t.Error("a worker started as root ran")
	}
}

func TestPathAttacksThroughWorker(t *testing.T) {
	requireRoot(t)
	base := mailBase(t)
	home := ownedDir(t, base, "u5001", 5001, 5001)
	outside := ownedDir(t, filepath.Dir(base), "outside", 5001, 5001)
	os.Chmod(outside, 0o755)
	target := filepath.Join(outside, "target")
	if err := os.WriteFile(target, []byte("untouched\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(target, 5001, 5001)
	mustSymlink := func(old, new string) {
		if err := os.Symlink(old, new); err != nil {
			t.Fatal(err)
		}
		os.Lchown(new, 5001, 5001)
	}
	mustSymlink(outside, filepath.Join(home, "evil"))
	mustSymlink(target, filepath.Join(home, "linkbox"))
	if err := os.Link(target, filepath.Join(home, "hardbox")); err != nil {
		t.Fatal(err)
	}
	p := newRealPool(t, base, PoolOptions{})
	msg := spoolFile(t, "Subject: attack\n\nx\n")
	paths := []string{
		"u5001/evil/Maildir/", // directory component is a symlink out of the base
		"u5001/evil/mbox",     // same for an mbox
		"u5001/linkbox",       // the mbox is a symlink
		"u5001/hardbox",       // the mbox is a hard link
		"u5001/../../outside/dotdot",
		"../outside/dotdot2/",
	}
	var rcpts []store.Recipient
	for _, path := range paths {
		rcpts = append(rcpts, store.Recipient{Address: "a@example.com", Path: path, UID: 5001, GID: 5001})
	}
	for i, err := range p.Deliver(context.Background(), msg, rcpts) {
		st := store.StatusOf(err)
		t.Logf("%s: %v", paths[i], err)
		if st == store.OK || st == store.OverLimit {
			t.Errorf("%s: %v, want a temporary failure", paths[i], err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "untouched\n" {
		t.Errorf("target changed: %q", b)
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 {
		t.Errorf("outside the base: %v, want only the target", ents)
	}
	ents, _ = os.ReadDir(filepath.Dir(base))
	for _, e := range ents {
		if e.Name() != "mail" && e.Name() != "outside" {
			t.Errorf("written beside the base: %s", e.Name())
		}
	}
}

func TestWorkerKilledMidWrite(t *testing.T) {
	requireRoot(t)
	base := mailBase(t)
	ownedDir(t, base, "u5001", 5001, 5001)
	ownedDir(t, base, "u5002", 5002, 5002)
	p := newRealPool(t, base, PoolOptions{})
	victim := store.Recipient{Address: "v@example.com", Path: "u5001/Maildir/", UID: 5001, GID: 5001}
	other := store.Recipient{Address: "o@example.com", Path: "u5002/Maildir/", UID: 5002, GID: 5002}
	// Warm the victim's worker so the test knows its pid.
	if _, err := p.MailboxSize(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	pid := p.workerPIDs()[ids{5001, 5001}][0]

	big := strings.Repeat(strings.Repeat("x", 999)+"\n", 96<<10) // 96 MB
	msg := spoolFile(t, "Subject: big\n\n"+big)
	tmp := filepath.Join(base, "u5001/Maildir/tmp")
	killed := make(chan error, 1)
	go func() {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
				killed <- syscall.Kill(pid, syscall.SIGKILL)
				return
			}
		}
		killed <- os.ErrDeadlineExceeded
	}()
	errs := p.Deliver(context.Background(), msg, []store.Recipient{victim, other})
	if err := <-killed; err != nil {
		t.Fatalf("kill: %v", err)
	}
	if store.StatusOf(errs[0]) != store.WorkerFailed {
		t.Errorf("victim: %v, want worker-failed", errs[0])
	}
	if errs[1] != nil {
		t.Errorf("other recipient: %v", errs[1])
	}
	if ents, _ := os.ReadDir(filepath.Join(base, "u5001/Maildir/new")); len(ents) != 0 {
		t.Errorf("partial message visible in new/: %v", ents)
	}
	if fi, err := os.Stat(onlyFile(t, filepath.Join(base, "u5002/Maildir/new"))); err != nil || fi.Size() < msg.Size {
		t.Errorf("other recipient's copy: %v, %v; want at least %d bytes", fi, err, msg.Size)
	}

	// The next message to that uid goes to a fresh worker.
	small := spoolFile(t, "Subject: after\n\nok\n")
	if errs := p.Deliver(context.Background(), small, []store.Recipient{victim}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if got := p.workerPIDs()[ids{5001, 5001}]; len(got) != 1 || got[0] == pid {
		t.Errorf("worker pids %v after the kill of %d", got, pid)
	}
	onlyFile(t, filepath.Join(base, "u5001/Maildir/new"))
}

// A real worker stuck waiting for an mbox lock past the delivery deadline
// is stopped with SIGTERM: it gives up the wait, answers, exits, and the
// mbox is untouched.
func TestLateWorkerStopsCleanly(t *testing.T) {
	requireRoot(t)
	base := mailBase(t)
	home := ownedDir(t, base, "u5001", 5001, 5001)
	mbox := filepath.Join(home, "mbox")
	if err := os.WriteFile(mbox, []byte("From a@b Thu Jan  1 00:00:00 1970\n\nold\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(mbox, 5001, 5001)
	// Someone else holds the dotlock, fresh, so the writer waits.
	if err := os.WriteFile(mbox+".lock", nil, 0); err != nil {
		t.Fatal(err)
	}
	p := NewPool(&LocalSpawner{Config: Config{Base: base, Writer: store.WriterOptions{LockTimeout: time.Minute}}},
		PoolOptions{Logger: quietLogger(t), DeliveryTimeout: 500 * time.Millisecond})
	defer p.Close()
	rc := store.Recipient{Address: "a@example.com", Path: "u5001/mbox", UID: 5001, GID: 5001}
	if _, err := p.MailboxSize(context.Background(), rc); err != nil {
		t.Fatal(err)
	}
	pid := p.workerPIDs()[ids{5001, 5001}][0]
	t0 := time.Now()
	errs := p.Deliver(context.Background(), spoolFile(t, "Subject: late\n\nx\n"), []store.Recipient{rc})
	if st := store.StatusOf(errs[0]); st == store.OK || st == store.WorkerFailed {
		t.Errorf("got %v, want the worker's own temporary failure", errs[0])
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if b, _ := os.ReadFile(mbox); string(b) != "From a@b Thu Jan  1 00:00:00 1970\n\nold\n\n" {
		t.Errorf("mbox changed: %q", b)
	}
	for i := 0; i < 200; i++ {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("worker %d still runs after SIGTERM", pid)
}

// A worker started wrongly refuses to run, whoever started it.
func TestWorkerRefusesBadStart(t *testing.T) {
	requireRoot(t)
	base := mailBase(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cred := func(uid, gid uint32, groups ...uint32) *syscall.SysProcAttr {
		return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: append([]uint32{}, groups...)}}
	}
	cases := []struct {
		name  string
		sys   *syscall.SysProcAttr
		env   []string
		extra []*os.File
		uid   int
		want  string
	}{
		{"supplementary groups", cred(5001, 5001, 5005), nil, nil, 5001, "supplementary groups"},
		{"environment", cred(5001, 5001), []string{"HOME=/"}, nil, 5001, "environment"},
		{"listener", cred(5001, 5001), nil, []*os.File{lf}, 5001, "network socket"},
		{"other uid", cred(5001, 5001), nil, nil, 5002, "uid set"},
		{"root", &syscall.SysProcAttr{}, nil, nil, 5001, "uid set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "theirs")
			defer ours.Close()
			r, w, _ := os.Pipe()
			defer r.Close()
			env := c.env
			if env == nil {
				env = []string{}
			}
			cfg := Config{Base: base, UID: c.uid, GID: 5001}
			p, err := os.StartProcess(SelfExe, append([]string{"vlmtpd", workerArg}, cfg.Args()...), &os.ProcAttr{
				Env: env, Files: append([]*os.File{nil, nil, w, theirs}, c.extra...), Sys: c.sys})
			w.Close()
			theirs.Close()
			if err != nil {
				t.Fatal(err)
			}
			out, _ := io.ReadAll(r)
			st, _ := p.Wait()
			if st.ExitCode() == 0 || !strings.Contains(string(out), "refusing to run") || !strings.Contains(string(out), c.want) {
				t.Errorf("exit %d, stderr %q; want a refusal naming %q", st.ExitCode(), out, c.want)
			}
		})
	}
}
