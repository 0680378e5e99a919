// Runs in: the front (and the lookup, check-config and makemap commands).

package maps

import (
	"context"
	"io"
)

func init() { Register("texthash", openTextHash) }

// textHash is a texthash: table: a postmap(1) source file held in memory,
// keys as written (virtual(8) opens it without folding: a key with upper
// case never matches, and loading warns about it), first entry winning.
// Unlike Postfix it follows changes to the file (see WatchedFile).
type textHash struct {
	spec string
	file *WatchedFile[map[string]string]
}

func openTextHash(name string, opts Options) (Map, error) {
	path, err := FilePath(name, opts)
	if err != nil {
		return nil, err
	}
	t := &textHash{spec: "texthash:" + name}
	if t.file, err = WatchFile(path, t.spec, opts.Logger, loadTextHash, defaultWatch); err != nil {
		return nil, err
	}
	return t, nil
}

func loadTextHash(r io.Reader, name string, warn Warn) (map[string]string, error) {
	m := map[string]string{}
	err := ScanSource(r, name, warn, func(e Entry) error {
		k := e.Key
		if Unfolded(k) {
			warn.at(name, e.Line, "%s", UnfoldedWarning(k))
		}
		if _, dup := m[k]; dup {
			warn.at(name, e.Line, "duplicate entry: %q (the first one wins)", k)
			return nil
		}
		m[k] = e.Value
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (t *textHash) Lookup(_ context.Context, key string) (string, bool, error) {
	return t.file.Lookup(func(m map[string]string) (string, bool, error) {
		v, ok := m[key]
		return v, ok, nil
	})
}

func (t *textHash) Spec() string  { return t.spec }
func (t *textHash) Pattern() bool { return false }
