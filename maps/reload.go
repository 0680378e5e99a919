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
	// prev are the versions this one replaced less than ReloadGrace
	// before until, newest first.
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

// watchedFile holds the parsed contents of a table file and re-reads the
// file when it changes. Postfix never notices a change to texthash: or
// regexp: files (virtual(8) restarts instead); a long-lived server must.
//
// Lookups read the current snapshot with one atomic load. At most once per
// checkInterval a lookup starts a check in the background, which stats the
// file and, if it changed, loads it again and swaps the new snapshot in;
// lookups keep using the old one meanwhile. A reload that fails keeps the
// old contents and logs one warning per distinct error; a version of the
// file that failed is not read again until it changes.
type watchedFile[T any] struct {
	path string
	spec string
	log  *slog.Logger
	load func(r io.Reader, name string, warn Warn) (T, error)

	cur         atomic.Pointer[snapshot[T]]
	nextCheck   atomic.Int64 // UnixNano of the next stat
	mu          sync.Mutex   // held by the running check; guards failed*
	failed      string       // the last reload error, to warn once per error
	failedState fileState    // the file version that failed to load
}

// resolvePath makes a table file name absolute against opts.Dir.
func resolvePath(name string, opts Options) (string, error) {
	if name == "" {
		return "", fmt.Errorf("missing file name")
	}
	if filepath.IsAbs(name) || opts.Dir == "" {
		return name, nil
	}
	return filepath.Join(opts.Dir, name), nil
}

func (w *watchedFile[T]) warn() Warn {
	return func(msg string) { w.log.Warn(msg, "table", w.spec) }
}

// open loads the file for the first time; an error here is an open error.
func (w *watchedFile[T]) open() error {
	snap, err := w.read()
	if err != nil {
		return err
	}
	w.cur.Store(snap)
	w.nextCheck.Store(time.Now().Add(checkInterval).UnixNano())
	return nil
}

// read parses the file, again if it changed while being read (an editor or
// a deploy tool writing in place), up to a few times.
func (w *watchedFile[T]) read() (*snapshot[T], error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		f, err := os.Open(w.path)
		if err != nil {
			return nil, err
		}
		before, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if before.IsDir() {
			f.Close()
			return nil, fmt.Errorf("%s is a directory", w.path)
		}
		data, err := w.load(f, w.path, w.warn())
		f.Close()
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

// lookup asks the current version of the file with find. A miss that a
// version replaced less than ReloadGrace ago would have answered is
// ErrReloading, which defers the recipient instead of bouncing it.
func (w *watchedFile[T]) lookup(find func(T) (string, bool)) (string, bool, error) {
	snap := w.snap()
	v, ok := find(snap.data)
	if ok || len(snap.prev) == 0 {
		return v, ok, nil
	}
	now := time.Now()
	for _, p := range snap.prev {
		if now.Before(p.until) {
			if _, held := find(p.data); held {
				return "", false, ErrReloading
			}
		}
	}
	return "", false, nil
}

// get returns the current contents. When a check is due it starts one in
// the background: a large table takes seconds to parse, and the lookup
// that noticed the change must not wait for that.
func (w *watchedFile[T]) get() T { return w.snap().data }

func (w *watchedFile[T]) snap() *snapshot[T] {
	if now := time.Now().UnixNano(); now >= w.nextCheck.Load() && w.mu.TryLock() {
		w.nextCheck.Store(now + int64(checkInterval))
		go func() {
			defer w.mu.Unlock()
			w.check()
		}()
	}
	return w.cur.Load()
}

// check reloads the file if it changed. Called with w.mu held.
func (w *watchedFile[T]) check() {
	w.expire()
	fi, err := os.Stat(w.path)
	if err == nil && (w.cur.Load().state.same(fi) || w.failedState.same(fi)) {
		return // unchanged, or the version that already failed to load
	}
	if err == nil && time.Since(fi.ModTime()) < settleTime {
		return // perhaps still being written: look again at the next check
	}
	var snap *snapshot[T]
	if err == nil {
		snap, err = w.read()
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
	until := time.Now().Add(ReloadGrace)
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
func (w *watchedFile[T]) expire() {
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

// checkNow runs a check and waits for it (tests).
func (w *watchedFile[T]) checkNow() {
	w.nextCheck.Store(0)
	w.get()
	// The check started by get holds the lock until done: taking it
	// waits for that.
	w.mu.Lock()
	//lint:ignore SA2001 the empty section is the wait described above
	w.mu.Unlock()
}
