// Runs in: the front.
//
// The hidden front command, started by the root parent: it takes over the
// descriptors the parent passed and serves.

package main

import (
	"fmt"
	"os"

	"github.com/vlmtpd/vlmtpd/privsep"
	"github.com/vlmtpd/vlmtpd/server/config"
)

// The front command has no summary, so usage does not list it: only the
// parent runs it (parent.Run), as the configured user, with the
// descriptors named by privsep.InheritArgs.
func init() {
	commands["front"] = command{"", runFront}
}

func runFront(args []string) int {
	fs := newFlagSet("front")
	path := fs.String("config", defaultConfig, "configuration file")
	owner := fs.String("mailbox-owner", "", "UID:GID that owns every mailbox (quickstart's try-out mode)")
	inherit := privsep.InheritFlags(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	uid, gid := -1, -1
	if *owner != "" {
		if _, err := fmt.Sscanf(*owner, "%d:%d", &uid, &gid); err != nil || uid < 0 || gid < 0 {
			fmt.Fprintf(os.Stderr, "vlmtpd front: -mailbox-owner %q: want UID:GID\n", *owner)
			return 2
		}
	}
	load := func() (*config.Config, error) {
		cfg, err := config.Load(*path)
		if err == nil && uid >= 0 {
			asOwner(cfg, uid, gid)
		}
		return cfg, err
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd:", err)
		return 1
	}
	fr, err := inherit()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd front:", err)
		return 1
	}
	return serve(cfg, load, fr)
}
