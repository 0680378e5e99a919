// Runs in: the front (its pool of workers).

// Package worker runs mailbox deliveries in separate processes that hold
// exactly one mailbox owner's uid and gid: the worker process itself (Main),
// the protocol between the front and a worker, and the Pool of long-lived
// workers that implements store.Deliverer for the front.
//
// The worker protocol runs over a UNIX stream socketpair. Every frame is a 4-byte
// big-endian length, a type byte and a payload; a delivery request carries
// the read-only spool descriptor as SCM_RIGHTS on its first byte. The front
// sends one request at a time per worker and waits for its reply.
package worker
