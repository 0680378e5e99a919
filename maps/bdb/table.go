// Runs in: the front (and the lookup, check-config and makemap commands).

package bdb

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

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
// it was opened with. See maps.Watch.
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
	// reloadGrace is maps.ReloadGrace.
	reloadGrace = maps.ReloadGrace
)

// ErrClosed is a lookup in a table after Close.
var ErrClosed = maps.ErrClosed

// Table is an open hash: or btree: table. It is safe for concurrent use.
//
// Debian's postmap rebuilds FILE.db in place (same inode: it truncates the
// file under an exclusive flock and writes it again), so a memory mapping
// of the file would change under running lookups. The table therefore
// reads the whole file into memory under a shared flock, checks its whole
// structure, and serves lookups from that copy without locks or system
// calls; maps.WatchedFile follows the file (a version renamed over it, or
// rebuilt in place) and keeps the keys of a replaced version deferred for
// maps.ReloadGrace. The lookup that finds a check due makes it first, so
// that the first recipient after a quiet spell sees a table rebuilt
// meanwhile.
type Table struct {
	spec string
	file *maps.WatchedFile[*version]
}

// version is one version of the file.
type version struct {
	db      *db
	entries int
	// nul latches which key form this file holds, as Postfix's dict_db
	// does once a lookup succeeds: 0 not known yet, 1 keys without a
	// trailing NUL, 2 keys with one.
	nul atomic.Int32
}

// Open opens the table name (the spec without its "hash:" or "btree:"
// prefix); the file read is name + ".db", as for postmap. A relative name
// is taken from opts.Dir.
func Open(kind Kind, name string, opts maps.Options) (*Table, error) {
	path, err := maps.FilePath(name, opts)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	t := &Table{spec: kind.String() + ":" + name}
	load := func(r io.Reader, name string, _ maps.Warn) (*version, error) {
		v, unfolded, err := readVersion(r, name, kind)
		if err == nil {
			unfolded.Warn(logger, t.spec)
		}
		return v, err
	}
	t.file, err = maps.WatchFile(path+".db", t.spec, logger, load, maps.Watch{
		Every: checkInterval, Settle: settleTime, Grace: reloadGrace,
		Locked: true, LockWait: openLockWait, CheckFirst: true,
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// readVersion reads and checks one version of the file path from r.
func readVersion(r io.Reader, path string, kind Kind) (*version, *maps.UnfoldedKeys, error) {
	data, err := readAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	d, err := parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if d.kind != kind {
		return nil, nil, fmt.Errorf("%s is a Berkeley DB %s file: use %s:%s", path, d.kind, d.kind, strings.TrimSuffix(path, ".db"))
	}
	v := &version{db: d}
	var unfolded maps.UnfoldedKeys
	if err := d.each(func(key, _ []byte) error {
		v.entries++
		unfolded.AddStored(key)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, &unfolded, nil
}

// readAll reads r, in one allocation of the file's size when r is a file
// (a table file can be tens of megabytes).
func readAll(r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			b.Grow(int(st.Size()) + bytes.MinRead)
		}
	}
	_, err := b.ReadFrom(r)
	return b.Bytes(), err
}

func (t *Table) Spec() string  { return t.spec }
func (t *Table) Pattern() bool { return false }

// Path is the file the table reads.
func (t *Table) Path() string { return t.file.Path() }

// current is the version in service, nil once closed.
func (t *Table) current() *version {
	v, _ := t.file.Current()
	return v
}

// Len is the number of entries in the version of the file in use.
func (t *Table) Len() int {
	if v := t.current(); v != nil {
		return v.entries
	}
	return 0
}

// Lookup finds key (already case-folded) without a trailing NUL, then with
// one, as for cdb: tables; once one form is found in a version of the
// file, only that form is tried in it (postmap writes every key of a file
// the same way: with the NUL by default on Linux, without for -n). A
// trailing NUL is cut from the value.
func (t *Table) Lookup(_ context.Context, key string) (string, bool, error) {
	return t.file.Lookup(func(v *version) (string, bool, error) {
		value, found, err := v.get(key)
		if err != nil {
			err = fmt.Errorf("%s: %w", t.file.Path(), err)
		}
		return value, found, err
	})
}

func (s *version) get(key string) (string, bool, error) {
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
		return "", false, err
	}
	if !found {
		return "", false, nil
	}
	if n := len(v); n > 0 && v[n-1] == 0 {
		v = v[:n-1]
	}
	return string(v), true, nil
}

// Close drops the table's contents; later lookups fail.
func (t *Table) Close() error {
	t.file.Close()
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
