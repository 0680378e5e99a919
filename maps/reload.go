package maps

import (
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

type snapshot[T any] struct {
	data  T
	state fileState
}

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

// get returns the current contents. When a check is due it starts one in
// the background: a large table takes seconds to parse, and the lookup
// that noticed the change must not wait for that.
func (w *watchedFile[T]) get() T {
	if now := time.Now().UnixNano(); now >= w.nextCheck.Load() && w.mu.TryLock() {
		w.nextCheck.Store(now + int64(checkInterval))
		go func() {
			defer w.mu.Unlock()
			w.check()
		}()
	}
	return w.cur.Load().data
}

// check reloads the file if it changed. Called with w.mu held.
func (w *watchedFile[T]) check() {
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
	w.cur.Store(snap)
	w.log.Info("table file changed: reloaded", "table", w.spec)
}

// checkNow runs a check and waits for it (tests).
func (w *watchedFile[T]) checkNow() {
	w.nextCheck.Store(0)
	w.get()
	w.mu.Lock()
	w.mu.Unlock() // the check started by get held the lock until done
}
