// Package privsep is vlmtpd's privileged parent: started as root, it opens
// the listeners, starts the front as the unprivileged configured user and
// from then on only starts delivery workers on the front's request, after
// checking its own policy, because the front parses network input and may
// be compromised. It also holds the front's side of that control channel.
//
// The control channel is a SOCK_SEQPACKET socketpair: one request or reply
// per packet, fixed layouts, the worker's socket as SCM_RIGHTS on a spawn
// reply.
package privsep
