// Runs in: the parent, or the front in single-user mode (starting workers).

package worker

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/store"
)

// Process is a started worker as the front sees it.
type Process struct {
	// Conn is the front's end of the worker's socketpair; the pool takes
	// it over.
	Conn *os.File
	// PID is the worker's process id, for logs.
	PID int
	// Kill ends the worker at once (SIGKILL). The front may not be allowed
	// to signal a worker of another uid itself, so this may be a request to
	// the parent.
	Kill func() error
	// Stop asks the worker to give up (SIGTERM): it cancels what it waits
	// for, answers the request in progress and exits. Optional.
	Stop func() error
}

// Spawner starts worker processes for the Pool.
type Spawner interface {
	// Spawn starts a worker that runs as exactly uid and gid. A refusal by
	// policy is a *store.Error with Status NotPermitted.
	Spawn(ctx context.Context, uid, gid int) (*Process, error)
	// Permits tells without starting anything whether Spawn could ever
	// run a worker as uid/gid: the same refusal, as a *store.Error with
	// Status NotPermitted.
	Permits(uid, gid int) error
}

// SelfExe is the binary workers are started from: the running binary's
// own inode, even after the file on disk was replaced by an upgrade, and
// reachable for any uid whatever the permissions of its directory.
const SelfExe = "/proc/self/exe"

// Start starts a worker for cfg from exe and returns it with the caller's
// end of its socket. The worker gets an empty environment, /dev/null as
// stdin and stdout, stderr as its stderr, the socket as fd 3 and nothing
// else. Running it as another uid or gid than the caller's needs root;
// then its supplementary group list is emptied.
func Start(exe string, cfg Config, stderr *os.File) (*os.Process, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "worker")
	theirs := os.NewFile(uintptr(fds[1]), "front")
	defer theirs.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		ours.Close()
		return nil, nil, err
	}
	defer null.Close()
	if stderr == nil {
		stderr = os.Stderr
	}
	sys := &syscall.SysProcAttr{Setsid: true}
	if cfg.UID != os.Getuid() || cfg.GID != os.Getgid() || os.Getuid() == 0 {
		sys.Credential = &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), Groups: []uint32{}}
	}
	// argv[0] shows the role in ps; argv[1] is what main dispatches on.
	argv := append([]string{fmt.Sprintf("vlmtpd: worker %d:%d", cfg.UID, cfg.GID), workerArg}, cfg.Args()...)
	p, err := os.StartProcess(exe, argv, &os.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []*os.File{null, null, stderr, theirs},
		Sys:   sys,
	})
	if err != nil {
		ours.Close()
		return nil, nil, fmt.Errorf("start worker for %d:%d: %w", cfg.UID, cfg.GID, err)
	}
	return p, ours, nil
}

// LocalSpawner starts workers directly, without a privileged parent. Run
// as root it starts them for any uid and gid except 0 (tests and embedding;
// vlmtpd serve as root uses the parent instead). Run as anyone else — the
// single-user mode — it starts workers only as the caller's own uid and
// gid, and refuses others with NotPermitted.
type LocalSpawner struct {
	// Exe is the binary to run; default SelfExe.
	Exe string
	// Config is the template for every worker; UID, GID and KeepGroups
	// are set per spawn.
	Config Config
	// Stderr receives the workers' logs; default os.Stderr.
	Stderr *os.File
}

// Permits implements Spawner: without root only the caller's own
// uid and gid, never 0.
func (s *LocalSpawner) Permits(uid, gid int) error {
	me, mygid := os.Getuid(), os.Getgid()
	if me != 0 && (uid != me || gid != mygid) {
		return &store.Error{Status: store.NotPermitted, Op: "spawn",
			Err: fmt.Errorf("privileges missing: vlmtpd runs as uid %d gid %d without root and cannot deliver as uid %d gid %d", me, mygid, uid, gid)}
	}
	if err := (store.IDPolicy{}).Check(uid, gid); err != nil {
		return &store.Error{Status: store.NotPermitted, Op: "spawn", Err: err}
	}
	return nil
}

// Spawn implements Spawner.
func (s *LocalSpawner) Spawn(ctx context.Context, uid, gid int) (*Process, error) {
	if err := s.Permits(uid, gid); err != nil {
		return nil, err
	}
	me := os.Getuid()
	cfg := s.Config
	cfg.UID, cfg.GID, cfg.KeepGroups = uid, gid, me != 0
	exe := s.Exe
	if exe == "" {
		exe = SelfExe
	}
	p, f, err := Start(exe, cfg, s.Stderr)
	if err != nil {
		return nil, err
	}
	go p.Wait() // reap; the pool notices the exit by EOF
	stop := func() error { return p.Signal(syscall.SIGTERM) }
	return &Process{Conn: f, PID: p.Pid, Kill: p.Kill, Stop: stop}, nil
}
