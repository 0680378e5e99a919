// Runs in: the front (and the lookup, check-config and makemap commands).

// Package maps implements Postfix-style lookup tables: the Map interface, the
// "type:name" registry, lists of maps searched in order, and the address
// lookup order of Postfix's virtual(8).
package maps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// Map is one lookup table. Lookup has three outcomes: found (value, true,
// nil), not found ("", false, nil) and error (a temporary failure: the
// caller defers the recipient, it never bounces it).
//
// Keys reach Lookup already case-folded (FoldKey), and tables take them
// as they are, as virtual(8)'s tables do: Postfix folds the address, never
// the keys, so a mixed-case key can never match. Tables that hold their
// keys (texthash, inline, cdb) warn about such keys when they load.
type Map interface {
	Lookup(ctx context.Context, key string) (value string, found bool, err error)
	// Spec is the "type:name" the table was opened with, for logs and
	// `vlmtpd lookup`.
	Spec() string
	// Pattern reports whether the table matches patterns or partial keys
	// (regexp, pcre, socketmap, SQL/LDAP queries using %u or %d). Such
	// tables are asked only for the full address, as in Postfix.
	Pattern() bool
}

// Options are what an opener may need besides the table's name.
type Options struct {
	// Dir is the directory relative table paths are taken from (the config
	// file's directory). Empty means the process's working directory.
	Dir string
	// Logger receives load warnings (skipped lines, substitutions refused).
	Logger *slog.Logger
	// Observe, if set, is told of every lookup of the table: its spec,
	// "found", "notfound" or "error", and how long it took (metrics).
	Observe func(table, result string, d time.Duration)
}

// Opener opens a table of one type; name is the part after "type:".
type Opener func(name string, opts Options) (Map, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// Register makes a table type available to Open. It is called from init
// functions; registering a type twice panics.
func Register(typ string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[typ]; dup {
		panic("maps: type registered twice: " + typ)
	}
	registry[typ] = open
}

// Types lists the registered table types, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// ErrUnsupported is returned by Open for a type that vlmtpd knows of but
// cannot read; the error text says what to do instead.
var ErrUnsupported = errors.New("unsupported table type")

// Open opens a table from its "type:name" spec. A "proxy:" prefix is
// stripped, as virtual(8) does.
func Open(spec string, opts Options) (Map, error) {
	for {
		rest, ok := strings.CutPrefix(spec, "proxy:")
		if !ok {
			break
		}
		spec = rest
	}
	typ, name, ok := strings.Cut(spec, ":")
	if !ok || typ == "" {
		return nil, fmt.Errorf("table %q: expected type:name", spec)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	registryMu.RLock()
	open := registry[typ]
	registryMu.RUnlock()
	if open == nil {
		if hint, known := unsupportedHints[typ]; known {
			return nil, fmt.Errorf("table %q: %w: %s", spec, ErrUnsupported, hint)
		}
		return nil, fmt.Errorf("table %q: unknown table type %q (known: %s)", spec, typ, strings.Join(Types(), ", "))
	}
	m, err := open(name, opts)
	if err != nil {
		return nil, fmt.Errorf("table %q: %w", spec, err)
	}
	if opts.Observe != nil {
		m = &observed{Map: m, observe: opts.Observe}
	}
	return m, nil
}

// unsupportedHints names Postfix table types vlmtpd deliberately does not
// read, with the conversion an admin can run instead.
var unsupportedHints = map[string]string{
	// postmap -s dumps the table in source syntax; makemap reads it from
	// stdin with -i.
	"lmdb": "LMDB needs cgo and Postfix's own locking; convert with `postmap -s lmdb:FILE | vlmtpd makemap -i cdb:FILE` and use cdb:FILE",
	"tcp":  "tcp: tables are refused by virtual(8) too; use socketmap:",
}

// Close releases a table's resources if it holds any (connections, files).
func Close(m Map) error {
	if c, ok := m.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}
