// Runs in: the front.

// Package lmtp is vlmtpd's LMTP protocol engine (RFC 2033, with
// PIPELINING, ENHANCEDSTATUSCODES, 8BITMIME, SMTPUTF8, CHUNKING, SIZE and
// DSN). It runs in the front. It owns the wire: command parsing, the
// transaction's state, reading DATA and BDAT bodies, timeouts and every
// reply's text; a Backend decides what each envelope command and message
// gets.
//
// It exists because go-smtp's server (v0.25.1) cannot be made safe from
// outside: it stores a BDAT chunk cut short as a whole message, turns a
// read timeout inside a chunk into a 554 and then parses the rest of the
// chunk as commands, executes a partial command line at a timeout or EOF,
// accepts a nested MAIL, answers recipients its backend never answered
// with its own 250, rejects recipients over an ORCPT it cannot decode,
// and reads DATA a byte at a time.
package lmtp
