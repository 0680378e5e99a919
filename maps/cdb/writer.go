// Runs in: the front (and the lookup, check-config and makemap commands).

package cdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vlmtpd/vlmtpd/maps"
)

// Entry is one key/value pair to store.
type Entry struct {
	Key, Value string
	// Where is the entry's origin for warnings ("file:line"); may be empty.
	Where string
}

// WriteOptions are postmap's build flags.
type WriteOptions struct {
	// KeepCase stores keys as given (postmap -f); by default they are
	// lowercased, as Postfix folds keys before every lookup.
	KeepCase bool
	// AppendNUL stores keys and values with a trailing NUL byte (postmap
	// -N). Readers, ours and Postfix's, find both forms.
	AppendNUL bool
	// Logger receives duplicate-key warnings; nil means slog.Default().
	Logger *slog.Logger
}

// Writer builds a cdb file under a temporary name and renames it into
// place on Commit, so readers see the old file or the new one, never a
// mix. Use NewWriter, Add each entry, then Commit (or Abort).
type Writer struct {
	opts   WriteOptions
	target string
	f      *os.File
	w      *bufio.Writer
	pos    uint64
	seen   map[string]struct{}
	slots  [256][]slot
	dups   int
	done   bool
}

type slot struct{ hash, pos uint32 }

// NewWriter starts building path + ".cdb" (path is the table's name, as in
// cdb:path). The temporary file lives in the same directory.
func NewWriter(path string, opts WriteOptions) (*Writer, error) {
	if path == "" {
		return nil, errors.New("cdb: missing file name")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	target := path + ".cdb"
	f, err := os.CreateTemp(filepath.Dir(target), filepath.Base(target)+".tmp.*")
	if err != nil {
		return nil, err
	}
	w := &Writer{opts: opts, target: target, f: f, w: bufio.NewWriterSize(f, 1<<16), pos: headerSize, seen: map[string]struct{}{}}
	if _, err := w.w.Write(make([]byte, headerSize)); err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// Add stores one entry. A key seen before is skipped with a warning: the
// first entry wins, as with postmap.
func (w *Writer) Add(e Entry) error {
	if w.done {
		return errors.New("cdb: writer already finished")
	}
	key, value := e.Key, e.Value
	if !w.opts.KeepCase {
		key = maps.FoldKey(key)
	}
	if _, dup := w.seen[key]; dup {
		w.dups++
		args := []any{"file", w.target}
		if e.Where != "" {
			args = append(args, "at", e.Where)
		}
		w.opts.Logger.Warn(fmt.Sprintf("duplicate entry: %q; keeping the first", key), args...)
		return nil
	}
	w.seen[key] = struct{}{}
	if w.opts.AppendNUL {
		key += "\x00"
		value += "\x00"
	}
	size := uint64(recordHead + len(key) + len(value))
	// Records, then tables of two slots per record, must stay addressable
	// by uint32 offsets.
	if w.pos+size+uint64(len(w.seen))*2*slotSize > maxFile {
		return errors.New("cdb: table would exceed the format's 4 GiB limit")
	}
	var head [recordHead]byte
	binary.LittleEndian.PutUint32(head[0:], uint32(len(key)))
	binary.LittleEndian.PutUint32(head[4:], uint32(len(value)))
	if _, err := w.w.Write(head[:]); err != nil {
		return err
	}
	if _, err := w.w.WriteString(key); err != nil {
		return err
	}
	if _, err := w.w.WriteString(value); err != nil {
		return err
	}
	h := hash(key)
	w.slots[h&255] = append(w.slots[h&255], slot{h, uint32(w.pos)})
	w.pos += size
	return nil
}

// Len is the number of entries stored; Duplicates the number skipped.
func (w *Writer) Len() int        { return len(w.seen) }
func (w *Writer) Duplicates() int { return w.dups }

// Commit writes the hash tables and header, syncs the file and renames it
// over the target, then syncs the directory. The new file gets the mode
// and owner of the file it replaces, or 0644 for a new table (postmap's
// default under the usual umask).
func (w *Writer) Commit() error {
	if w.done {
		return errors.New("cdb: writer already finished")
	}
	err := w.finish()
	if err != nil {
		w.Abort()
		return err
	}
	w.done = true
	return nil
}

func (w *Writer) finish() error {
	var header [headerSize]byte
	var buf []slot
	for i := range w.slots {
		n := uint32(len(w.slots[i]) * 2)
		binary.LittleEndian.PutUint32(header[i*8:], uint32(w.pos))
		binary.LittleEndian.PutUint32(header[i*8+4:], n)
		if n == 0 {
			continue
		}
		buf = append(buf[:0], make([]slot, n)...)
		for _, s := range w.slots[i] {
			j := (s.hash >> 8) % n
			for buf[j].pos != 0 {
				if j++; j == n {
					j = 0
				}
			}
			buf[j] = s
		}
		var b [slotSize]byte
		for _, s := range buf {
			binary.LittleEndian.PutUint32(b[0:], s.hash)
			binary.LittleEndian.PutUint32(b[4:], s.pos)
			if _, err := w.w.Write(b[:]); err != nil {
				return err
			}
		}
		w.pos += uint64(n) * slotSize
	}
	if err := w.w.Flush(); err != nil {
		return err
	}
	if _, err := w.f.WriteAt(header[:], 0); err != nil {
		return err
	}
	if err := w.copyOwnership(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	if err := os.Rename(w.f.Name(), w.target); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(w.target)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("sync directory of %s: %w", w.target, err)
		}
	}
	return nil
}

func (w *Writer) copyOwnership() error {
	st, err := os.Stat(w.target)
	if errors.Is(err, os.ErrNotExist) {
		return w.f.Chmod(0o644)
	}
	if err != nil {
		return err
	}
	if err := w.f.Chmod(st.Mode().Perm()); err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		if err := w.f.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// Abort removes the temporary file; the target is left as it was.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// Write builds path + ".cdb" from entries in one go.
func Write(path string, entries []Entry, opts WriteOptions) error {
	w, err := NewWriter(path, opts)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := w.Add(e); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit()
}

// Dump calls fn for every record of a cdb file in file order, with the
// bytes as stored (no NUL stripping).
func Dump(path string, fn func(key, value []byte) error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	r, err := newReader(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var ferr error
	err = r.each(func(k, v []byte) bool {
		ferr = fn(k, v)
		return ferr == nil
	})
	if ferr != nil {
		return ferr
	}
	return err
}

var _ io.Closer = (*Table)(nil)
