// Runs in: the front (and the lookup, check-config and makemap commands).

package cdb

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vlmtpd/vlmtpd/maps"
)

// MakeResult says what a build stored.
type MakeResult struct {
	File       string // the .cdb file written
	Entries    int
	Duplicates int
}

// Make builds name + ".cdb" from a postmap(1) source read from src, as
// `postmap cdb:name` does; srcName labels warnings ("file:line: …").
// Lines postmap would skip are skipped with a warning; a read or write
// error leaves the existing table untouched.
func Make(name string, src io.Reader, srcName string, opts WriteOptions) (MakeResult, error) {
	w, err := NewWriter(name, opts)
	if err != nil {
		return MakeResult{}, err
	}
	warn := func(msg string) { w.opts.Logger.Warn(msg) }
	err = maps.ScanSource(src, srcName, warn, func(e maps.Entry) error {
		return w.Add(Entry{Key: e.Key, Value: e.Value, Where: fmt.Sprintf("%s:%d", srcName, e.Line)})
	})
	if err != nil {
		w.Abort()
		return MakeResult{}, fmt.Errorf("reading %s: %w", srcName, err)
	}
	res := MakeResult{File: w.target, Entries: w.Len(), Duplicates: w.Duplicates()}
	if err := w.Commit(); err != nil {
		return MakeResult{}, fmt.Errorf("writing %s: %w", res.File, err)
	}
	return res, nil
}

// MakeFile builds name + ".cdb" from the source file name itself.
func MakeFile(name string, opts WriteOptions) (MakeResult, error) {
	f, err := os.Open(name)
	if err != nil {
		return MakeResult{}, err
	}
	defer f.Close()
	return Make(name, f, name, opts)
}

// SpecName returns the file name of a "cdb:NAME" spec, refusing other
// table types with a hint.
func SpecName(spec string) (string, error) {
	typ, name, ok := strings.Cut(spec, ":")
	switch {
	case !ok:
		return "", fmt.Errorf("%q: expected cdb:FILE", spec)
	case typ != "cdb":
		return "", fmt.Errorf("%q: only cdb: tables can be built (texthash:, regexp: and pcre: files are read as they are)", spec)
	case name == "":
		return "", fmt.Errorf("%q: missing file name", spec)
	}
	return name, nil
}
