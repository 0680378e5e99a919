// Runs in: the front (and the lookup, check-config and makemap commands).

package cdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
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

// checkInterval is how often a lookup may stat the file to notice that it
// was replaced. Postfix notices a changed table by restarting its
// daemons; a long-running vlmtpd has to look itself.
var checkInterval = time.Second // a variable so tests can shorten it

// ErrClosed is a lookup in a table after Close.
var ErrClosed = errors.New("cdb table is closed")

// Table is an open cdb: table. It is safe for concurrent use.
type Table struct {
	spec   string
	path   string // the FILE.cdb that is read
	logger *slog.Logger

	cur       atomic.Pointer[mapping]
	nextCheck atomic.Int64 // unix nanoseconds of the next stat

	reloadMu sync.Mutex // one reopen at a time; guards the fields below
	failed   fileID     // a replacement that could not be opened, to log it once
	missing  bool       // the file's absence was logged
	closed   bool
}

// fileID tells one version of a file from the next.
type fileID struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

func idOf(st *unix.Stat_t) fileID {
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size, mtime: st.Mtim.Nano()}
}

// mapping is one mmapped version of the file. refs counts the table's own
// reference plus every lookup in progress; whoever drops it to zero unmaps.
// A lookup can only take a reference while refs is above zero, so once the
// table has swapped in a newer mapping and let go of this one, no new
// lookup can start on it, and the last running lookup unmaps it.
type mapping struct {
	r    reader
	id   fileID
	refs atomic.Int64
}

func (m *mapping) acquire() bool {
	for {
		n := m.refs.Load()
		if n <= 0 {
			return false
		}
		if m.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (m *mapping) release() {
	if m.refs.Add(-1) == 0 && len(m.r.data) > 0 {
		_ = unix.Munmap(m.r.data)
	}
}

// Open opens the cdb table name (the "cdb:" spec without its prefix); the
// file read is name + ".cdb", as for postmap. A relative name is taken
// from opts.Dir.
func Open(name string, opts maps.Options) (*Table, error) {
	if name == "" {
		return nil, errors.New("cdb: missing file name")
	}
	path := name
	if !filepath.IsAbs(path) && opts.Dir != "" {
		path = filepath.Join(opts.Dir, path)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	t := &Table{spec: "cdb:" + name, path: path + ".cdb", logger: logger}
	m, err := openMapping(t.path)
	if err != nil {
		return nil, err
	}
	t.cur.Store(m)
	t.nextCheck.Store(time.Now().Add(checkInterval).UnixNano())
	t.warnUnfolded(m)
	return t, nil
}

// warnUnfolded warns about keys that are not case-folded (a file built
// with `postmap -f`, `vlmtpd makemap -f` or another cdb tool): lookups
// are folded and keys are not, as in virtual(8), so they never match.
// The scan reads the mapped file once; keys that are plain lower-case
// ASCII cost one byte test each.
func (t *Table) warnUnfolded(m *mapping) {
	var u maps.UnfoldedKeys
	_ = guardedEach(m.r, func(key, _ []byte) bool {
		u.Add(strings.TrimSuffix(string(key), "\x00"))
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

func openMapping(path string) (*mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
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
	m := &mapping{r: r, id: idOf(&st)}
	m.refs.Store(1)
	return m, nil
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
func (t *Table) Path() string { return t.path }

// Lookup finds key (already case-folded) without a trailing NUL, then with
// one (a file built with `postmap -N`); a trailing NUL is cut from the
// value.
func (t *Table) Lookup(ctx context.Context, key string) (string, bool, error) {
	if now := time.Now().UnixNano(); now >= t.nextCheck.Load() {
		t.maybeReopen(now)
	}
	m, err := t.acquire()
	if err != nil {
		return "", false, err
	}
	defer m.release()
	v, found, err := lookupGuarded(m.r, key)
	if err != nil {
		// Look at the file again on the next lookup: a replacement may
		// already be there.
		t.nextCheck.Store(0)
		return "", false, fmt.Errorf("%s: %w", t.path, err)
	}
	return v, found, nil
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

func (t *Table) acquire() (*mapping, error) {
	for {
		m := t.cur.Load()
		if m == nil {
			return nil, ErrClosed
		}
		if m.acquire() {
			return m, nil
		}
		// m was swapped out and released between Load and acquire; the
		// pointer already holds its successor.
	}
}

// maybeReopen stats the file, at most once per checkInterval across all
// goroutines, and swaps in a new mapping if the file was replaced. If the
// new file cannot be opened the old one stays in use and the problem is
// logged once per version of the file.
func (t *Table) maybeReopen(now int64) {
	next := t.nextCheck.Load()
	if now < next || !t.nextCheck.CompareAndSwap(next, now+int64(checkInterval)) {
		return // another goroutine is checking
	}
	var st unix.Stat_t
	err := unix.Stat(t.path, &st)
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	if t.closed {
		return
	}
	if err != nil {
		if !t.missing {
			t.missing = true
			t.logger.Error("cannot stat cdb table file; still using the version opened earlier", "table", t.spec, "err", err)
		}
		return
	}
	t.missing = false
	id := idOf(&st)
	if m := t.cur.Load(); m == nil || m.id == id || id == t.failed {
		return
	}
	nm, err := openMapping(t.path)
	if err != nil {
		t.failed = id
		t.logger.Error("cdb table changed but cannot be opened; still using the version opened earlier", "table", t.spec, "err", err)
		return
	}
	t.failed = fileID{}
	old := t.cur.Swap(nm)
	if old != nil {
		old.release()
	}
	t.logger.Info("cdb table reopened", "table", t.spec, "file", t.path)
}

// Close unmaps the file once running lookups are done; later lookups fail.
func (t *Table) Close() error {
	t.reloadMu.Lock()
	t.closed = true
	t.reloadMu.Unlock()
	if m := t.cur.Swap(nil); m != nil {
		m.release()
	}
	return nil
}
