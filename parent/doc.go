// Runs in: the parent (root).

// Package parent is vlmtpd's privileged parent, the only code that runs as
// root: it opens the listeners, starts the front as the unprivileged
// configured user (the hidden front command) and from then on only starts
// delivery workers on the front's request, after checking its own policy
// (store.IDPolicy), because the front parses network input and may be
// compromised.
package parent
