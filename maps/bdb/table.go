package bdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vlmtpd/vlmtpd/maps"
)

func init() {
	for _, k := range []Kind{Hash, Btree} {
		maps.Register(k.String(), func(name string, opts maps.Options) (maps.Map, error) {
			return Open(k, name, opts)
		})
	}
}

// Timings, variables so tests can shorten them; a table keeps the values
// it was opened with.
var (
	// checkInterval is how often a lookup may look at the file to notice
	// that it changed. Postfix notices by restarting its daemons; a
	// long-running vlmtpd has to look itself.
	checkInterval = time.Second
	// settleTime is how long a changed file must have stayed unmodified
	// before it is read, when its writer holds no lock (cp, an editor):
	// postmap holds an exclusive lock while it rebuilds, which a reload
	// waits for anyway.
	settleTime = time.Second
	// openLockWait is how long Open waits for a postmap that is rebuilding
	// the file at the moment the table is opened.
	openLockWait = 10 * time.Second
)

// ErrClosed is a lookup in a table after Close.
var ErrClosed = errors.New("table is closed")

// errBusy is a file that postmap holds locked: it is being rebuilt.
var errBusy = errors.New("locked by a writer (postmap is rebuilding it)")

// Table is an open hash: or btree: table. It is safe for concurrent use.
//
// Debian's postmap rebuilds FILE.db in place (same inode: it truncates the
// file under an exclusive flock and writes it again), so a memory mapping
// of the file would change under running lookups. The table therefore
// reads the whole file into memory under a shared flock, checks its whole
// structure, and serves lookups from that copy without locks or system
// calls. At most once per checkInterval a lookup looks at the file first;
// a changed file is read again and swapped in, and a version that cannot
// be read keeps the previous one in service.
type Table struct {
	kind   Kind
	spec   string
	path   string // the FILE.db that is read
	logger *slog.Logger
	every  time.Duration // checkInterval and settleTime when opened
	settle time.Duration

	cur       atomic.Pointer[snapshot]
	nextCheck atomic.Int64 // unix nanoseconds of the next look at the file

	mu      sync.Mutex // held by the running check; guards the fields below
	failed  fileID     // a version that could not be read, to log it once
	missing bool       // the file's absence was logged
	closed  bool
}

// snapshot is one version of the file.
type snapshot struct {
	db       *db
	id       fileID
	entries  int
	unfolded maps.UnfoldedKeys // keys that can never match, warned once
	// nul latches which key form this file holds, as Postfix's dict_db
	// does once a lookup succeeds: 0 not known yet, 1 keys without a
	// trailing NUL, 2 keys with one.
	nul atomic.Int32
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

// Open opens the table name (the spec without its "hash:" or "btree:"
// prefix); the file read is name + ".db", as for postmap. A relative name
// is taken from opts.Dir.
func Open(kind Kind, name string, opts maps.Options) (*Table, error) {
	if name == "" {
		return nil, errors.New("missing file name")
	}
	path := name
	if !filepath.IsAbs(path) && opts.Dir != "" {
		path = filepath.Join(opts.Dir, path)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	t := &Table{kind: kind, spec: kind.String() + ":" + name, path: path + ".db", logger: logger,
		every: checkInterval, settle: settleTime}
	s, err := load(t.path, kind, openLockWait)
	if err != nil {
		return nil, err
	}
	t.cur.Store(s)
	s.unfolded.Warn(t.logger, t.spec)
	t.nextCheck.Store(time.Now().Add(t.every).UnixNano())
	return t, nil
}

// load reads and checks one version of the file under a shared flock,
// waiting up to wait for a writer's exclusive lock.
func load(path string, kind Kind, wait time.Duration) (*snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fd := int(f.Fd())
	deadline := time.Now().Add(wait)
	for {
		err = unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %w", path, errBusy)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Closing f releases the lock.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	data := make([]byte, st.Size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if idOf(&after) != idOf(&st) {
		return nil, fmt.Errorf("%s changed while it was being read (written without a lock?)", path)
	}
	d, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if d.kind != kind {
		return nil, fmt.Errorf("%s is a Berkeley DB %s file: use %s:%s", path, d.kind, d.kind, path[:len(path)-len(".db")])
	}
	s := &snapshot{db: d, id: idOf(&st)}
	if err := d.each(func(key, _ []byte) error {
		s.entries++
		s.unfolded.Add(strings.TrimSuffix(string(key), "\x00"))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func (t *Table) Spec() string  { return t.spec }
func (t *Table) Pattern() bool { return false }

// Path is the file the table reads.
func (t *Table) Path() string { return t.path }

// Len is the number of entries in the version of the file in use.
func (t *Table) Len() int {
	if s := t.cur.Load(); s != nil {
		return s.entries
	}
	return 0
}

// Lookup finds key (already case-folded) without a trailing NUL, then with
// one, as for cdb: tables; once one form is found in a version of the
// file, only that form is tried in it (postmap writes every key of a file
// the same way: with the NUL by default on Linux, without for -n). A
// trailing NUL is cut from the value.
func (t *Table) Lookup(_ context.Context, key string) (string, bool, error) {
	// The lookup that finds a check due makes it before it looks up, so
	// that the first recipient after a quiet spell sees a table rebuilt
	// meanwhile (a new mailbox must not get a 5.1.1 from the old version);
	// lookups running at the same time use the version in service.
	if now := time.Now().UnixNano(); now >= t.nextCheck.Load() && t.mu.TryLock() {
		t.nextCheck.Store(now + int64(t.every))
		t.check()
		t.mu.Unlock()
	}
	s := t.cur.Load()
	if s == nil {
		return "", false, ErrClosed
	}
	var (
		v     []byte
		found bool
		err   error
	)
	form := s.nul.Load()
	if form != 2 {
		v, found, err = s.db.get([]byte(key))
		if found {
			s.nul.CompareAndSwap(0, 1)
		}
	}
	if err == nil && !found && form != 1 {
		v, found, err = s.db.get(append([]byte(key), 0))
		if found {
			s.nul.CompareAndSwap(0, 2)
		}
	}
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", t.path, err)
	}
	if !found {
		return "", false, nil
	}
	if n := len(v); n > 0 && v[n-1] == 0 {
		v = v[:n-1]
	}
	return string(v), true, nil
}

// check reads the file again if it changed. Called with t.mu held.
func (t *Table) check() {
	if t.closed {
		return
	}
	var st unix.Stat_t
	if err := unix.Stat(t.path, &st); err != nil {
		if !t.missing {
			t.missing = true
			t.logger.Error("cannot stat Berkeley DB table file; still using the version read earlier", "table", t.spec, "err", err)
		}
		return
	}
	t.missing = false
	id := idOf(&st)
	if cur := t.cur.Load(); cur == nil || cur.id == id || id == t.failed {
		return
	}
	if time.Since(time.Unix(0, st.Mtim.Nano())) < t.settle {
		return // perhaps still being written: look again at the next check
	}
	s, err := load(t.path, t.kind, 0)
	if errors.Is(err, errBusy) {
		return // postmap is at work: look again at the next check
	}
	if err != nil {
		t.failed = id
		t.logger.Error("Berkeley DB table changed but cannot be read; still using the version read earlier", "table", t.spec, "err", err)
		return
	}
	t.failed = fileID{}
	t.cur.Store(s)
	t.logger.Info("Berkeley DB table reloaded", "table", t.spec, "file", t.path, "entries", s.entries)
	s.unfolded.Warn(t.logger, t.spec)
}

// Close drops the table's contents; later lookups fail.
func (t *Table) Close() error {
	t.mu.Lock()
	t.closed = true
	t.cur.Store(nil)
	t.mu.Unlock()
	return nil
}

// Dump calls fn for every record of a hash or btree file, with the bytes
// as stored (no NUL stripping), in the file's order.
func Dump(path string, fn func(key, value []byte) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	d, err := parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return d.each(fn)
}

var _ io.Closer = (*Table)(nil)
