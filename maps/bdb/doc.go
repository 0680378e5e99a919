// Runs in: the front (and the lookup, check-config and makemap commands).

// Package bdb reads the Berkeley DB files that Postfix's `postmap hash:FILE`
// and `postmap btree:FILE` build as FILE.db (Berkeley DB 5.3 on Debian), and
// registers the "hash" and "btree" table types.
//
// It is a read-only reader of the on-disk page format, written here because
// no maintained Go library reads Berkeley DB 5 hash and btree files (the
// rpmdb readers only walk hash pages for values), and cgo against libdb
// would add a C build dependency and libdb's own locking to a static
// binary. Only what postmap writes is read: a single database per file, no
// duplicates, no checksums or encryption; both byte orders and every page
// size are. Every offset is checked against its page and every page number
// against the file, and every chain walk is bounded by the number of pages,
// so a corrupt file is an error, never a panic or a loop.
package bdb
