// Runs in: the parent (root).

package parent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/privsep"
	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/worker"
)

// Options are what the parent needs from the configuration.
type Options struct {
	// User runs the front; it must exist and must not be root.
	User string
	// FrontArgs is the front's command line after the program name, e.g.
	// front -config /etc/vlmtpd/vlmtpd.toml; Run appends the flags naming
	// the descriptors it passes (privsep.InheritArgs).
	FrontArgs []string
	// Listeners are open already; Run hands them to the front and closes
	// its own copies.
	Listeners []net.Listener
	// Metrics, if not nil, is metrics_listen's listener, opened here as
	// root like Listeners and handed to the front the same way.
	Metrics net.Listener
	// KeepSocketFiles leaves the unix sockets' files in place at exit
	// (systemd's socket activation owns them).
	KeepSocketFiles bool
	// ConfigPath is the configuration file the front will read; it is
	// checked to be readable by the front's user first.
	ConfigPath string
	// SpoolDirectory is created for the user if missing.
	SpoolDirectory string
	Policy         store.IDPolicy
	Worker         worker.Config
	// Exe is the binary for the front and the workers; default
	// worker.SelfExe.
	Exe string
	Log *slog.Logger
}

// frontUser resolves the front's user: uid, gid and its groups.
func frontUser(name string) (uid, gid int, groups []uint32, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("user %q (the front's user in the configuration) does not exist: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return 0, 0, nil, fmt.Errorf("user %q has a non-numeric uid or gid", name)
	}
	if uid == 0 || gid == 0 {
		return 0, 0, nil, fmt.Errorf("user %q is root or in group 0; the front must run unprivileged", name)
	}
	gids, _ := u.GroupIds()
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil && n != 0 {
			groups = append(groups, uint32(n))
		}
	}
	return uid, gid, groups, nil
}

// prepareSpool gives the front a spool directory it can write: a missing
// one is created, mode 0700, and so is an empty one that root owns (an
// administrator's mkdir). Any other is left as the administrator made it;
// if the front cannot write there it says so at startup.
func prepareSpool(dir string, uid, gid int) error {
	if dir == "" {
		return nil
	}
	err := os.Mkdir(dir, 0o700)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("spool_directory %s: %w", dir, err)
	}
	// Opened without following a symlink, so nothing swapped in
	// meanwhile is given away.
	fd, oerr := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if oerr != nil {
		return fmt.Errorf("spool_directory %s: %w", dir, oerr)
	}
	defer unix.Close(fd)
	if err != nil { // it existed
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("spool_directory %s: %w", dir, err)
		}
		if st.Uid != 0 {
			return nil
		}
		if empty, err := emptyDir(fd); err != nil || !empty {
			// A root-owned directory with something in it may be shared
			// (/var/spool itself): never given away.
			return nil
		}
		if err := unix.Fchmod(fd, 0o700); err != nil {
			return fmt.Errorf("spool_directory %s: %w", dir, err)
		}
	}
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("spool_directory %s: %w", dir, err)
	}
	return nil
}

func emptyDir(fd int) (bool, error) {
	d, err := unix.Dup(fd)
	if err != nil {
		return false, err
	}
	f := os.NewFile(uintptr(d), "spool")
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(names) == 0, err
}

// readableBy checks that the front (uid, gid, groups) can read path: every
// directory on the way searchable, the file readable. The front re-reads
// the configuration itself; a path only root can read would otherwise
// fail there with a bare "permission denied".
func readableBy(path string, uid, gid int, groups []uint32) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	allowed := func(st *unix.Stat_t, bits uint32) bool {
		switch {
		case int(st.Uid) == uid:
			return st.Mode&(bits<<6) == bits<<6
		case int(st.Gid) == gid || slices.Contains(groups, st.Gid):
			return st.Mode&(bits<<3) == bits<<3
		}
		return st.Mode&bits == bits
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err == nil && !allowed(&st, 0o1) {
			return fmt.Errorf("%s is not searchable by it", d)
		}
		if d == "/" {
			break
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return err
	}
	if !allowed(&st, 0o4) {
		return fmt.Errorf("%s is not readable by it", abs)
	}
	return nil
}

// Run is `vlmtpd serve` as root: it starts the front as Options.User with
// the listeners and a control socket, serves the control socket, forwards
// SIGTERM, SIGINT and SIGHUP to the front, and returns the front's exit
// code once the front has exited and the workers have followed: 1 if the
// front was killed, or exited 0 although no SIGTERM or SIGINT asked it to.
func Run(o Options) int {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	all := o.Listeners
	if o.Metrics != nil {
		all = append(all[:len(all):len(all)], o.Metrics)
	}
	fail := func(err error) int {
		log.Error("startup failed", "error", err)
		for _, l := range all {
			l.Close()
		}
		return 1
	}
	uid, gid, groups, err := frontUser(o.User)
	if err != nil {
		return fail(err)
	}
	if err := prepareSpool(o.SpoolDirectory, uid, gid); err != nil {
		return fail(err)
	}
	if o.ConfigPath != "" {
		if err := readableBy(o.ConfigPath, uid, gid, groups); err != nil {
			return fail(fmt.Errorf("the front runs as %s (the user setting) and reads the configuration %s itself, but %w: make it and its directories readable by %s", o.User, o.ConfigPath, err, o.User))
		}
	}
	if o.Worker.Base == "" {
		return fail(errors.New("no virtual_mailbox_base"))
	}

	// The front's inheritance: control socket at fd 3, listeners after.
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(fmt.Errorf("control socketpair: %w", err))
	}
	ctl := os.NewFile(uintptr(pair[0]), "control")
	frontCtl := os.NewFile(uintptr(pair[1]), "control-front")
	files := []*os.File{os.Stdin, os.Stdout, os.Stderr, frontCtl}
	var lfds []int
	var sockets []string
	for _, l := range all {
		fl, ok := l.(interface{ File() (*os.File, error) })
		if !ok {
			return fail(fmt.Errorf("listener %s cannot be passed on", l.Addr()))
		}
		f, err := fl.File()
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		lfds = append(lfds, len(files))
		files = append(files, f)
		if ul, ok := l.(*net.UnixListener); ok {
			// The parent removes the socket file at exit, not now.
			ul.SetUnlinkOnClose(false)
			if !o.KeepSocketFiles || l == o.Metrics {
				sockets = append(sockets, ul.Addr().String())
			}
		}
		l.Close()
	}
	exe := o.Exe
	if exe == "" {
		exe = worker.SelfExe
	}
	mfd := -1
	if o.Metrics != nil {
		mfd, lfds = lfds[len(lfds)-1], lfds[:len(lfds)-1]
	}
	// argv[0] shows the role in ps.
	argv := append(append([]string{"vlmtpd: front"}, o.FrontArgs...), privsep.InheritArgs(3, lfds, mfd)...)
	front, err := os.StartProcess(exe, argv, &os.ProcAttr{
		Files: files,
		Sys: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups},
			// Its own process group: a terminal's ^C reaches the parent,
			// which forwards it once.
			Setpgid: true,
		},
	})
	frontCtl.Close()
	if err != nil {
		ctl.Close()
		for _, s := range sockets {
			os.Remove(s)
		}
		return fail(fmt.Errorf("start the front as %s: %w", o.User, err))
	}
	for _, f := range files[4:] {
		f.Close()
	}
	log.Info("started the front", "user", o.User, "uid", uid, "front_pid", front.Pid)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var stopAsked atomic.Bool
	go func() {
		for s := range sigs {
			if s != syscall.SIGHUP {
				stopAsked.Store(true)
			}
			front.Signal(s)
		}
	}()

	p := &Parent{Policy: o.Policy, Worker: o.Worker, Exe: o.Exe, Log: log}
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- p.ServeControl(ctl) }()

	st, err := front.Wait()
	code := 1
	if err == nil {
		code = st.ExitCode()
		if code < 0 {
			code = 1
		}
		log.Info("the front exited", "status", st.String())
	}
	if code == 0 && !stopAsked.Load() {
		// Nobody asked the server to stop: for systemd (Restart=on-failure)
		// and for an administrator this is a failure, not a clean stop.
		log.Error("the front exited without being asked to stop; exiting with an error")
		code = 1
	}
	// The front's exit closed its end of the control socket; its workers
	// see EOF, finish what they were writing and exit.
	if err := <-ctlDone; err != nil {
		log.Warn("control socket", "err", err)
	}
	p.Wait(30 * time.Second)
	for _, s := range sockets {
		os.Remove(s)
	}
	return code
}
