// Runs in: an administrator's command (one-shot process).

package main

// Table types that live outside package maps register themselves when
// imported; list each backend package here.
import (
	_ "github.com/vlmtpd/vlmtpd/maps"
	_ "github.com/vlmtpd/vlmtpd/maps/bdb"
	_ "github.com/vlmtpd/vlmtpd/maps/cdb"
	_ "github.com/vlmtpd/vlmtpd/maps/ldap"
	_ "github.com/vlmtpd/vlmtpd/maps/socketmap"
	_ "github.com/vlmtpd/vlmtpd/maps/sql"
)
