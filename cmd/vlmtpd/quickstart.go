// Runs in: the parent and, as its try-out owner, the front.

package main

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/vlmtpd/vlmtpd/server/config"
)

func init() {
	commands["quickstart"] = command{"serve the example configuration as the current user (try-out mode)", runQuickstart}
}

// runQuickstart serves config.example.toml with the mailboxes owned by the
// user running it (nobody when that is root), so a newcomer can deliver a
// first message without creating users or editing the config.
func runQuickstart(args []string) int {
	cfg, _, code := loadConfig("quickstart", "config.example.toml", args)
	if cfg == nil {
		return code
	}
	uid, gid, err := quickstartOwner()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd:", err)
		return 1
	}
	asOwner(cfg, uid, gid)
	if os.Getuid() == 0 {
		cfg.User = "nobody"
	}
	// The example mbox (bob) lives in example.com/, and delivery never
	// creates an mbox's parent: make it here, as an admin would.
	for _, dir := range []string{filepath.Join(cfg.VirtualMailboxBase, "example.com"), cfg.SpoolDirectory} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "vlmtpd:", err)
			return 1
		}
	}
	if os.Getuid() == 0 {
		for _, dir := range []string{cfg.VirtualMailboxBase, filepath.Join(cfg.VirtualMailboxBase, "example.com"), cfg.SpoolDirectory} {
			os.Chown(dir, uid, gid)
		}
	}
	fmt.Fprintf(os.Stderr, "vlmtpd quickstart: %s with mailboxes owned by %d:%d under %s\n",
		cfg.Path, uid, gid, cfg.VirtualMailboxBase)
	// As root, the front runs as nobody with the same mailbox owner, given
	// on its command line.
	frontArgs := []string{"front", "-config", cfg.Path, "-mailbox-owner", fmt.Sprintf("%d:%d", uid, gid)}
	return start(cfg, func() (*config.Config, error) {
		next, err := config.Load(cfg.Path)
		if err == nil {
			asOwner(next, uid, gid)
		}
		return next, err
	}, frontArgs)
}

// quickstartOwner is who owns the try-out mailboxes: the current user,
// nobody when that is root.
func quickstartOwner() (uid, gid int, err error) {
	if os.Getuid() != 0 {
		return os.Getuid(), os.Getgid(), nil
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		return 0, 0, fmt.Errorf("running as root needs the user nobody for the mailboxes: %w", err)
	}
	uid, _ = strconv.Atoi(nobody.Uid)
	gid, _ = strconv.Atoi(nobody.Gid)
	return uid, gid, nil
}

// asOwner makes every mailbox of cfg belong to uid:gid (quickstart's
// try-out mode, in its parent and its front alike).
func asOwner(cfg *config.Config, uid, gid int) {
	cfg.VirtualUIDMaps = []string{"static:" + strconv.Itoa(uid)}
	cfg.VirtualGIDMaps = []string{"static:" + strconv.Itoa(gid)}
	cfg.VirtualMinimumUID = min(cfg.VirtualMinimumUID, uid)
}
