// Runs in: a worker (and the sieve-test and sieve-check commands).

// Package sieve is a Sieve mail filtering language interpreter (RFC 5228
// and the extensions Pigeonhole users rely on), checked against
// Pigeonhole's sieve-test.
//
// The package only decides: Compile parses and checks a script once (errors
// carry line and column), Script.Run or RunSequence evaluates it for one
// message and recipient and returns the ordered actions. Delivering them —
// storing into Maildir folders, replying 550 for reject, submitting
// redirects and vacation replies, recording duplicate and vacation state —
// is the deliverer's job; the package asks it questions through Env's
// interfaces (MailboxChecker, DuplicateTracker, VacationTracker) and
// bounds the work with Limits and the context (the CPU time limit).
//
// Runtime errors never lose the message: the Result then carries the
// implicit keep (RFC 5228 2.10.6), and the error says why.
package sieve
