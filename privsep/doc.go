// Runs in: the front.

// Package privsep is the control channel between the front and the root
// parent (package parent): the packet layouts both sides use, and the
// front's side of it: the descriptors the parent passed to the front
// (InheritFlags) and the Client that asks the parent for workers. The
// front parses network input and may be compromised, so the parent
// decodes every packet as untrusted and checks its own policy.
//
// The channel is a SOCK_SEQPACKET socketpair: one request or reply per
// packet, fixed layouts, the worker's socket as SCM_RIGHTS on a spawn
// reply.
package privsep
