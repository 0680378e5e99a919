// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// checkInterval is how often a file-backed table looks at its file.
const checkInterval = time.Second

// settleTime is how long a changed file must have stayed unmodified
// before it is loaded. A file rewritten in place (cat new > vmailbox) is
// empty or half-written for a moment, and loading that version would
// bounce its missing recipients with 5.1.1 until the next check.
const settleTime = time.Second

// fileState identifies one version of a file: same inode, size and
// modification time means same contents (as for Postfix's dict_changed).
type fileState struct {
	info os.FileInfo
}

func (s fileState) same(o os.FileInfo) bool {
	return s.info != nil && o != nil && os.SameFile(s.info, o) &&
		s.info.Size() == o.Size() && s.info.ModTime().Equal(o.ModTime())
}

// ReloadGrace is how long after a reload a key that the new version of a
// table file lacks, but a version replaced within that time held, is a
// temporary error instead of "not found". A file rewritten in place can
// stay half-written for longer than settleTime (a slow copy, an editor, a
// deploy tool that pauses), and that version must not bounce anyone; the
// cost is that a user really removed is deferred, not bounced, for this
// long. Update tables by writing a new file and renaming it over the old
// one (as postmap does) and no lookup ever sees a partial version.
const ReloadGrace = time.Minute

// maxPrevious bounds the replaced versions kept for ReloadGrace (memory:
// each is a whole table). A burst of reloads (truncated, then
// half-written, then complete) keeps the last one and the version from
// before the burst.
const maxPrevious = 2

type snapshot[T any] struct {
	data  T
	state fileState
	// prev are the versions this one replaced less than Grace before
	// until, newest first.
	prev []previous[T]
}

type previous[T any] struct {
	data  T
	until time.Time // when the grace for this version ends
}

// ErrReloading is the lookup error for a key that only a version of the
// table file replaced less than ReloadGrace ago holds.
var ErrReloading = errors.New("the table file was just replaced and its new version lacks this key, which the previous one held: " +
	"deferring in case the file is being rewritten in place (replace table files by renaming a complete new file over them)")

// ErrClosed is a lookup in a table after Close.
var ErrClosed = errors.New("table is closed")

// ErrFileLocked is a table file that its writer holds locked (postmap
// rebuilding a hash: or btree: file in place) for longer than the table
// waits when it is opened.
var ErrFileLocked = errors.New("locked by a writer (postmap is rebuilding it)")

// Watch says how a WatchedFile follows its file.
type Watch struct {
	// Every is how often lookups look at the file, Settle how long a
	// changed file must have stayed unmodified before it is read (see
	// settleTime), Grace how long replaced versions still defer the keys
	// they held (see ReloadGrace).
	Every, Settle, Grace time.Duration
	// Locked is for files whose writer holds an exclusive flock(2) while
	// it writes them in place, as Debian's postmap does for hash: and
	// btree: files (it truncates FILE.db and writes it again, same inode):
	// the file is read under a shared flock, so a version is never read
	// half-written. Opening waits up to LockWait for the writer; a reload
	// that finds the file locked tries again at the next check.
	Locked   bool
	LockWait time.Duration
	// CheckFirst makes the lookup that finds a check due make it before it
	// answers, so that the first recipient after a quiet spell sees a file
	// rebuilt meanwhile (a new mailbox must not get a 5.1.1 from the old
	// version); lookups running at the same time use the version in
	// service. Without it the check runs in the background: for files
	// slow to parse (a large texthash: takes seconds), so that the lookup
	// that noticed the change does not wait for it.
	CheckFirst bool
}

// defaultWatch is how texthash:, regexp: and pcre: files are followed.
var defaultWatch = Watch{Every: checkInterval, Settle: settleTime, Grace: ReloadGrace}

// WatchedFile holds the parsed contents of a table file and re-reads the
// file when it changes. Postfix never notices a change to texthash: or
// regexp: files (virtual(8) restarts instead); a long-lived server must.
//
// Lookups read whether a check is due and the current snapshot, two
// atomic loads, no clock. At most once per Watch.Every a lookup starts a
// check, which stats the file and, if it
// changed, loads it again and swaps the new snapshot in; other lookups
// keep using the old one meanwhile. A reload that fails keeps the old
// contents and logs one warning per distinct error; a version of the file
// that failed is not read again until it changes.
type WatchedFile[T any] struct {
	path string
	spec string
	log  *slog.Logger
	load LoadFunc[T]
	how  Watch

	cur atomic.Pointer[snapshot[T]] // nil once closed
	// due is set by timer Watch.Every after a check started: lookups test
	// it instead of reading the clock (time.Now is a good part of a cdb
	// lookup), and a table nobody asks sets no timer again.
	due         atomic.Bool
	timer       *time.Timer
	mu          sync.Mutex // held by the running check; guards the fields below
	failed      string     // the last reload error, to warn once per error
	failedState fileState  // the file version that failed to load
	closed      bool
}

// LoadFunc parses one version of a table file read from r; name is the
// file's path, for messages, and warn takes what is worth logging but not
// refusing (skipped lines, keys that can never match).
type LoadFunc[T any] func(r io.Reader, name string, warn Warn) (T, error)

// FilePath makes a table file name absolute against opts.Dir.
func FilePath(name string, opts Options) (string, error) {
	if name == "" {
		return "", fmt.Errorf("missing file name")
	}
	if filepath.IsAbs(name) || opts.Dir == "" {
		return name, nil
	}
	return filepath.Join(opts.Dir, name), nil
}

// WatchFile loads path for the first time (an error here is the table's
// open error) and follows it as how says; spec names the table in logs.
func WatchFile[T any](path, spec string, log *slog.Logger, load LoadFunc[T], how Watch) (*WatchedFile[T], error) {
	if log == nil {
		log = slog.Default()
	}
	w := &WatchedFile[T]{path: path, spec: spec, log: log, load: load, how: how}
	snap, err := w.read(how.LockWait)
	if err != nil {
		return nil, err
	}
	w.cur.Store(snap)
	w.timer = time.AfterFunc(how.Every, func() { w.due.Store(true) })
	return w, nil
}

func (w *WatchedFile[T]) warn() Warn {
	return func(msg string) { w.log.Warn(msg, "table", w.spec) }
}

// Path is the file read.
func (w *WatchedFile[T]) Path() string { return w.path }

// read parses the file, again if it changed while being read (an editor or
// a deploy tool writing in place, or a new file renamed over it), up to a
// few times. With Watch.Locked it waits up to lockWait for the writer.
func (w *WatchedFile[T]) read(lockWait time.Duration) (*snapshot[T], error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		data, before, err := w.readOnce(lockWait)
		if err != nil {
			return nil, err
		}
		after, err := os.Stat(w.path)
		if err != nil {
			return nil, err
		}
		if (fileState{before}).same(after) {
			return &snapshot[T]{data: data, state: fileState{before}}, nil
		}
		lastErr = fmt.Errorf("%s changed while it was being read", w.path)
	}
	return nil, lastErr
}

// readOnce opens, locks if it must, and loads the file; closing it
// releases the lock.
func (w *WatchedFile[T]) readOnce(lockWait time.Duration) (data T, st os.FileInfo, err error) {
	f, err := os.Open(w.path)
	if err != nil {
		return data, nil, err
	}
	defer f.Close()
	if w.how.Locked {
		if err := lockShared(f, lockWait); err != nil {
			return data, nil, err
		}
	}
	st, err = f.Stat()
	switch {
	case err != nil:
		return data, nil, err
	case st.IsDir():
		return data, nil, fmt.Errorf("%s is a directory", w.path)
	case w.how.Locked && !st.Mode().IsRegular():
		return data, nil, fmt.Errorf("%s: not a regular file", w.path)
	}
	data, err = w.load(f, w.path, w.warn())
	return data, st, err
}

// lockShared takes a shared flock on f, waiting up to wait for a writer's
// exclusive one.
func lockShared(f *os.File, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", f.Name(), ErrFileLocked)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Lookup asks the current version of the file with find. A miss that a
// version replaced less than Watch.Grace ago would have answered is
// ErrReloading, which defers the recipient instead of bouncing it.
func (w *WatchedFile[T]) Lookup(find func(T) (string, bool, error)) (string, bool, error) {
	snap := w.snap()
	if snap == nil {
		return "", false, ErrClosed
	}
	v, ok, err := find(snap.data)
	if ok || err != nil || len(snap.prev) == 0 {
		return v, ok, err
	}
	now := time.Now()
	for _, p := range snap.prev {
		if now.Before(p.until) {
			if _, held, _ := find(p.data); held {
				return "", false, ErrReloading
			}
		}
	}
	return "", false, nil
}

// Current returns the version in service, ok false once closed.
func (w *WatchedFile[T]) Current() (data T, ok bool) {
	if snap := w.snap(); snap != nil {
		return snap.data, true
	}
	return data, false
}

// snap returns the current snapshot, nil once closed. When a check is due
// it makes one, or starts one in the background (Watch.CheckFirst).
func (w *WatchedFile[T]) snap() *snapshot[T] {
	if w.due.Load() && w.mu.TryLock() {
		w.due.Store(false)
		if !w.closed {
			w.timer.Reset(w.how.Every)
		}
		if w.how.CheckFirst {
			w.check()
			w.mu.Unlock()
		} else {
			go func() {
				defer w.mu.Unlock()
				w.check()
			}()
		}
	}
	return w.cur.Load()
}

// check reloads the file if it changed. Called with w.mu held.
func (w *WatchedFile[T]) check() {
	if w.closed {
		return
	}
	w.expire()
	fi, err := os.Stat(w.path)
	if err == nil && (w.cur.Load().state.same(fi) || w.failedState.same(fi)) {
		return // unchanged, or the version that already failed to load
	}
	if err == nil && time.Since(fi.ModTime()) < w.how.Settle {
		return // perhaps still being written: look again at the next check
	}
	var snap *snapshot[T]
	if err == nil {
		snap, err = w.read(0)
	}
	if errors.Is(err, ErrFileLocked) {
		return // its writer is at work: look again at the next check
	}
	if err != nil {
		w.failedState = fileState{fi}
		if msg := err.Error(); msg != w.failed {
			w.failed = msg
			w.log.Warn("table file changed but could not be loaded again; still using the previous contents",
				"table", w.spec, "error", err)
		}
		return
	}
	w.failed, w.failedState = "", fileState{}
	old := w.cur.Load()
	until := time.Now().Add(w.how.Grace)
	snap.prev = append([]previous[T]{{data: old.data, until: until}}, old.prev...)
	if len(snap.prev) > maxPrevious {
		// Keep the newest and the oldest: in a burst of reloads the
		// oldest is the complete version from before the rewrite.
		snap.prev = append(snap.prev[:maxPrevious-1], snap.prev[len(snap.prev)-1])
	}
	w.cur.Store(snap)
	w.log.Info("table file changed: reloaded; keys only the previous version held are deferred, not bounced, for a while",
		"table", w.spec, "until", until.Format(time.RFC3339))
}

// expire drops the versions whose grace has ended, so that their memory
// is freed. Called with w.mu held.
func (w *WatchedFile[T]) expire() {
	cur := w.cur.Load()
	now := time.Now()
	keep := 0
	for _, p := range cur.prev {
		if now.Before(p.until) {
			keep++
		}
	}
	if keep == len(cur.prev) {
		return
	}
	next := *cur
	next.prev = nil
	for _, p := range cur.prev {
		if now.Before(p.until) {
			next.prev = append(next.prev, p)
		}
	}
	w.cur.Store(&next)
}

// Close drops the contents, once a running check is done; later lookups
// fail with ErrClosed.
func (w *WatchedFile[T]) Close() {
	w.mu.Lock()
	w.closed = true
	w.timer.Stop()
	w.cur.Store(nil)
	w.mu.Unlock()
}

// checkNow runs a check and waits for it (tests).
func (w *WatchedFile[T]) checkNow() {
	w.due.Store(true)
	w.snap()
	// The check started by snap holds the lock until done: taking it
	// waits for that.
	w.mu.Lock()
	//lint:ignore SA2001 the empty section is the wait described above
	w.mu.Unlock()
}
