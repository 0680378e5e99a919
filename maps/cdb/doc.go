// Runs in: the front (and the lookup, check-config and makemap commands).

// Package cdb reads and writes constant databases in the djb/tinycdb
// format that `postmap cdb:FILE` builds as FILE.cdb, and registers the
// "cdb" table type. Files are memory-mapped, looked up without locks and
// reopened when they are replaced (maps.WatchFile, with maps.ReloadGrace
// for the keys a replaced version held), so `vlmtpd makemap` or `postmap`
// can rebuild a table under a running server.
package cdb
