// Runs in: a worker, as the mailbox owner.

package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/sieve"
)

// scriptCache keeps compiled scripts for as long as their file and the
// files it includes do not change: a worker lives for many deliveries, and
// compiling is far more work than a few stats. A compile error is cached
// too, so a broken script is reported (and its .log written) once per
// version, not once per message.
type scriptCache struct {
	mu      sync.Mutex
	entries map[string]*cachedScript
}

type cachedScript struct {
	stamp  fileStamp
	script *sieve.Script
	err    error
	// includes are the files the compiler asked for, as they were then
	// (a missing one too: when it appears, the script compiles anew).
	includes []includedFile
}

// includedFile is one script an include named, and its version when the
// script was compiled; open opens it again the same way.
type includedFile struct {
	open    func() (int, error)
	stamp   fileStamp
	missing bool
}

// changed reports whether an included file is not the version compiled.
func (f includedFile) changed() bool {
	fd, err := f.open()
	if err != nil {
		return !f.missing || (err != unix.ENOENT && err != unix.ENOTDIR)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	return f.missing || unix.Fstat(fd, &st) != nil || stampOf(&st) != f.stamp
}

// fileStamp tells one version of a file from another.
type fileStamp struct {
	dev, ino   uint64
	size       int64
	mtim, ctim unix.Timespec
}

func stampOf(st *unix.Stat_t) fileStamp {
	return fileStamp{dev: st.Dev, ino: st.Ino, size: st.Size, mtim: st.Mtim, ctim: st.Ctim}
}

// maxCachedScripts bounds the cache; past it, it starts over.
const maxCachedScripts = 1024

func (c *scriptCache) get(key string, stamp fileStamp) (*cachedScript, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.stamp != stamp {
		return nil, false
	}
	for _, inc := range e.includes {
		if inc.changed() {
			return nil, false
		}
	}
	return e, true
}

func (c *scriptCache) put(key string, e *cachedScript) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxCachedScripts {
		c.entries = map[string]*cachedScript{}
	}
	c.entries[key] = e
}

// sieveScripts returns the scripts to run for r, in Pigeonhole's order:
// sieve_before, the user's, sieve_after. A script that is missing or does
// not compile is left out and logged; the user's compile errors also go to
// its .log file.
func (l *Writer) sieveScripts(r Recipient, log *slog.Logger) []*sieve.Script {
	var out []*sieve.Script
	admin := func(p string) {
		s, err := l.adminScript(p)
		switch {
		case errors.Is(err, errNoScript):
			log.Warn("sieve: administrator's script is missing, skipped", "script", p)
		case err != nil:
			log.Error("sieve: administrator's script not run", "script", p, "err", err)
		default:
			out = append(out, s)
		}
	}
	for _, p := range l.opts.Sieve.Before {
		admin(p)
	}
	if r.Sieve != "" {
		s, err := l.userScript(r.Sieve, log)
		switch {
		case errors.Is(err, errNoScript):
			// No script: the implicit keep, as with no entry.
		case err != nil:
			log.Warn("sieve: the user's script is not run, message kept", "script", r.Sieve, "err", err)
		default:
			out = append(out, s)
		}
	}
	for _, p := range l.opts.Sieve.After {
		admin(p)
	}
	return out
}

func (l *Writer) maxScript() int {
	if n := l.opts.Sieve.MaxScriptSize; n > 0 {
		return n
	}
	return DefaultSieveMaxBytes
}

// userScript opens the user's script beneath the base, without following
// a symlink except one that stays in the script's own directory tree (the
// way ManageSieve makes .dovecot.sieve point into sieve/), and compiles it
// or takes it from the cache.
func (l *Writer) userScript(rel string, log *slog.Logger) (*sieve.Script, error) {
	mp, err := parsePath(rel)
	if err != nil {
		return nil, fmt.Errorf("bad script path: %w", err)
	}
	fd, err := l.openScript(mp)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return nil, errNoScript
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	key := "user:" + mp.rel
	src, stamp, cached, err := l.readScript(fd, key)
	if cached != nil {
		return cached.script, cached.err
	}
	if err != nil {
		return nil, err
	}
	include, seen := l.includes(mp)
	opts := &sieve.Options{
		Name:          path.Base(mp.rel),
		MaxScriptSize: l.maxScript(),
		Include:       include,
	}
	s, err := sieve.Compile(src, opts)
	l.scripts.put(key, &cachedScript{stamp: stamp, script: s, err: err, includes: *seen})
	if err != nil {
		if lerr := l.scriptLog(mp.rel, err); lerr != nil {
			log.Warn("sieve: cannot write the script's .log file", "script", mp.rel, "err", lerr)
		}
		return nil, err
	}
	return s, nil
}

// openScript opens the script file for reading beneath the base.
func (l *Writer) openScript(mp mailboxPath) (int, error) {
	fd, err := openBeneath(l.base, mp.rel, readNonblock, 0)
	if err != unix.ELOOP {
		return fd, err
	}
	// A symlink as the last component: follow it once if its target is a
	// relative path that stays beneath the link's directory, opened
	// again without following anything.
	dir, err := openBeneath(l.base, mp.dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dir)
	buf := make([]byte, 1024)
	n, err := unix.Readlinkat(dir, mp.name, buf)
	if err != nil {
		return -1, unix.ELOOP
	}
	target := string(buf[:n])
	tp, err := parsePath(target)
	if strings.HasPrefix(target, "/") || err != nil {
		return -1, unix.ELOOP
	}
	return openBeneath(dir, tp.rel, readNonblock, 0)
}

// readScript checks the open file (a regular file within the size limit)
// and reads it, unless the cache holds this version.
func (l *Writer) readScript(fd int, key string) ([]byte, fileStamp, *cachedScript, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fileStamp{}, nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fileStamp{}, nil, errors.New("not a regular file")
	}
	if st.Size > int64(l.maxScript()) {
		return nil, fileStamp{}, nil, fmt.Errorf("%d bytes, more than sieve_max_script_size %d", st.Size, l.maxScript())
	}
	stamp := stampOf(&st)
	if e, ok := l.scripts.get(key, stamp); ok {
		return nil, stamp, e, nil
	}
	src, err := readAllFD(fd, l.maxScript())
	return src, stamp, nil, err
}

func readAllFD(fd, max int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
		if len(out) > max {
			return nil, fmt.Errorf("more than sieve_max_script_size %d bytes", max)
		}
	}
}

// includes loads include :personal "name" from the sieve/ directory
// beside the active script (Dovecot's default layout: ~/.dovecot.sieve and
// ~/sieve/name.sieve), beneath the base, and include :global "name" from
// sieve_global_dir (the administrator's, read by path). What it read (or
// found missing) is recorded in seen, for the cache to check later.
func (l *Writer) includes(script mailboxPath) (sieve.IncludeLoader, *[]includedFile) {
	seen := new([]includedFile)
	load := func(loc sieve.IncludeLocation, name string) ([]byte, error) {
		if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
			return nil, fmt.Errorf("include %q: not a script name", name)
		}
		var open func() (int, error)
		if loc == sieve.Global {
			if l.opts.Sieve.GlobalDir == "" {
				return nil, fmt.Errorf("global include %q: sieve_global_dir is not set: %w", name, fs.ErrNotExist)
			}
			p := l.opts.Sieve.GlobalDir + "/" + name + ".sieve"
			open = func() (int, error) { return unix.Open(p, readNonblock|unix.O_CLOEXEC, 0) }
		} else {
			rel := "sieve/" + name + ".sieve"
			if script.dir != "." {
				rel = script.dir + "/" + rel
			}
			open = func() (int, error) { return openBeneath(l.base, rel, readNonblock, 0) }
		}
		fd, err := open()
		if err == unix.ENOENT || err == unix.ENOTDIR {
			*seen = append(*seen, includedFile{open: open, missing: true})
			return nil, fmt.Errorf("include %q: %w", name, fs.ErrNotExist)
		}
		if err != nil {
			return nil, fmt.Errorf("include %q: %w", name, err)
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, fmt.Errorf("include %q: %w", name, err)
		}
		*seen = append(*seen, includedFile{open: open, stamp: stampOf(&st)})
		return readAllFD(fd, l.maxScript())
	}
	return load, seen
}

// adminScript reads and compiles an administrator's script (sieve_before,
// sieve_after) by its absolute path. It is read with the mailbox owner's
// rights, so it must be readable by every mailbox owner; a symlink is
// followed (the administrator's files, outside every mailbox).
func (l *Writer) adminScript(p string) (*sieve.Script, error) {
	fd, err := unix.Open(p, readNonblock|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return nil, errNoScript
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	key := "admin:" + p
	src, stamp, cached, err := l.readScript(fd, key)
	if cached != nil {
		return cached.script, cached.err
	}
	if err != nil {
		return nil, err
	}
	users, seen := l.includes(mailboxPath{dir: "."})
	globalOnly := func(loc sieve.IncludeLocation, name string) ([]byte, error) {
		if loc != sieve.Global {
			return nil, fmt.Errorf("include %q: an administrator's script has no personal scripts: %w", name, fs.ErrNotExist)
		}
		return users(loc, name)
	}
	s, err := sieve.Compile(src, &sieve.Options{Name: p, MaxScriptSize: l.maxScript(), Include: globalOnly})
	l.scripts.put(key, &cachedScript{stamp: stamp, script: s, err: err, includes: *seen})
	return s, err
}

// readNonblock opens files a user controls for reading: O_NONBLOCK makes a
// FIFO planted in a script's place fail instead of hanging the worker
// (regular files ignore it).
const readNonblock = unix.O_RDONLY | unix.O_NONBLOCK
