// Runs in: the front (and the lookup, check-config and makemap commands).

package cdb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/maps"
)

func init() {
	maps.Register("cdb", func(name string, opts maps.Options) (maps.Map, error) {
		return Open(name, opts)
	})
}

// Timings, variables so tests can shorten them; a table keeps the values
// it was opened with. See maps.Watch.
var (
	// checkInterval is how often a lookup may stat the file to notice
	// that it was replaced. Postfix notices a changed table by restarting
	// its daemons; a long-running vlmtpd has to look itself.
	checkInterval = time.Second
	// reloadGrace is maps.ReloadGrace.
	reloadGrace = maps.ReloadGrace
)

// ErrClosed is a lookup in a table after Close.
var ErrClosed = maps.ErrClosed

// Table is an open cdb: table. It is safe for concurrent use.
//
// postmap and `vlmtpd makemap` write a new file and rename it over the
// old one, so a mapping of a version never changes under its lookups.
// maps.WatchedFile follows the file: the lookup that finds a check due
// stats it first (a mapping is cheap to make, and the first recipient
// after a quiet spell must see a table rebuilt meanwhile), a new version
// is mapped and its header checked before it is swapped in, and the keys
// of a replaced version stay deferred for maps.ReloadGrace. The file is
// not settled first: a renamed file is complete, a truncated one fails
// the header check, and a file being rewritten in place changes the
// version in service anyway (its lookups then fail with ErrCorrupt).
// Lookups take no lock and no reference count: a version stays mapped
// while anything can reach it and is unmapped by a cleanup after that.
type Table struct {
	spec   string
	logger *slog.Logger
	file   *maps.WatchedFile[*mapping]
	opened bool // the first version is loaded: later ones are reloads
}

// mapping is one memory-mapped version of the file. It is unmapped by a
// cleanup once unreachable, so whoever reads r must keep the mapping
// itself alive until done (runtime.KeepAlive): r.data is not Go memory
// and does not keep anything alive.
type mapping struct {
	r reader
}

// liveMappings counts the mappings not yet unmapped (tests).
var liveMappings atomic.Int64

// Open opens the cdb table name (the "cdb:" spec without its prefix); the
// file read is name + ".cdb", as for postmap. A relative name is taken
// from opts.Dir.
func Open(name string, opts maps.Options) (*Table, error) {
	path, err := maps.FilePath(name, opts)
	if err != nil {
		return nil, fmt.Errorf("cdb: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	t := &Table{spec: "cdb:" + name, logger: logger}
	t.file, err = maps.WatchFile(path+".cdb", t.spec, logger, t.load, maps.Watch{
		Every: checkInterval, Grace: reloadGrace, CheckFirst: true,
	})
	if err != nil {
		return nil, err
	}
	t.opened = true
	return t, nil
}

// load maps one version of the file, which maps.WatchedFile has opened.
func (t *Table) load(r io.Reader, path string, _ maps.Warn) (*mapping, error) {
	f, ok := r.(*os.File)
	if !ok {
		return nil, fmt.Errorf("%s: not a file", path)
	}
	m, err := mapFile(f, path)
	if err != nil {
		return nil, err
	}
	if !t.opened {
		t.warnUnfolded(m) // before Open returns: `vlmtpd check-config` shows them
	} else {
		// A reload is made by the lookup that found the file replaced,
		// and a scan of every key of a large file takes tens of
		// milliseconds: that lookup does not wait for the warnings.
		go t.warnUnfolded(m)
	}
	return m, nil
}

// warnUnfolded warns about keys that are not case-folded (a file built
// with `postmap -f`, `vlmtpd makemap -f` or another cdb tool): lookups
// are folded and keys are not, as in virtual(8), so they never match.
// The scan reads the mapped file once, at every load: keys that are plain
// lower-case ASCII cost one byte test each and no allocation.
func (t *Table) warnUnfolded(m *mapping) {
	var u maps.UnfoldedKeys
	_ = guardedEach(m.r, func(key, _ []byte) bool {
		u.AddStored(key)
		return true
	})
	u.Warn(t.logger, t.spec)
}

func guardedEach(r reader, fn func(key, value []byte) bool) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer guardFault(&err)
	return r.each(fn)
}

// mapFile maps f, the file path, and checks its header.
func mapFile(f *os.File, path string) (*mapping, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size < headerSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, shorter than the %d-byte header", path, ErrCorrupt, st.Size, headerSize)
	}
	if uint64(st.Size) > maxFile {
		return nil, fmt.Errorf("%s: %w: larger than 4 GiB", path, ErrCorrupt)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	r, err := newReaderGuarded(data)
	if err != nil {
		_ = unix.Munmap(data)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m := &mapping{r: r}
	liveMappings.Add(1)
	runtime.AddCleanup(m, unmap, data)
	return m, nil
}

func unmap(data []byte) {
	_ = unix.Munmap(data)
	liveMappings.Add(-1)
}

// newReaderGuarded is newReader on mapped memory, which faults (SIGBUS)
// if the file was truncated under us.
func newReaderGuarded(data []byte) (r reader, err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer guardFault(&err)
	return newReader(data)
}

// guardFault turns a memory fault in mapped memory (a file truncated in
// place by a careless rebuild) into ErrCorrupt instead of a crash. It must
// be deferred by the function that reads the mapping.
func guardFault(err *error) {
	if e := recover(); e != nil {
		if re, ok := e.(interface{ Addr() uintptr }); ok && re != nil {
			*err = fmt.Errorf("%w: memory fault reading the mapped file (was it truncated in place?)", ErrCorrupt)
			return
		}
		panic(e)
	}
}

func (t *Table) Spec() string  { return t.spec }
func (t *Table) Pattern() bool { return false }

// Path is the file the table reads.
func (t *Table) Path() string { return t.file.Path() }

// Lookup finds key (already case-folded) without a trailing NUL, then with
// one (a file built with `postmap -N`); a trailing NUL is cut from the
// value.
func (t *Table) Lookup(_ context.Context, key string) (string, bool, error) {
	return t.file.Lookup(func(m *mapping) (string, bool, error) {
		v, found, err := lookupGuarded(m.r, key)
		runtime.KeepAlive(m) // until the value is copied out of the mapping
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", t.file.Path(), err)
		}
		return v, found, nil
	})
}

func lookupGuarded(r reader, key string) (v string, found bool, err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer guardFault(&err)
	b, found, err := r.get(key)
	if err == nil && !found {
		b, found, err = r.get(key + "\x00")
	}
	if err != nil || !found {
		return "", false, err
	}
	if n := len(b); n > 0 && b[n-1] == 0 {
		b = b[:n-1]
	}
	return string(b), true, nil // string() copies out of the mapping
}

// Close drops the table's versions; they are unmapped once running
// lookups are done with them (at a garbage collection after that), and
// later lookups fail with ErrClosed.
func (t *Table) Close() error {
	t.file.Close()
	return nil
}
