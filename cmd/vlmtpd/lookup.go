// Runs in: an administrator's command (one-shot process).

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vlmtpd/vlmtpd/maps"
	"github.com/vlmtpd/vlmtpd/server"
	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/server/lmtp"
)

func init() {
	commands["lookup"] = command{"explain how recipients resolve: tables, keys, mailbox, uid, gid, reply", runLookup}
}

func runLookup(args []string) int {
	cfg, fs, code := loadConfig("lookup", defaultConfig, args)
	if cfg == nil {
		return code
	}
	if fs.NArg() == 0 {
		printUsage(os.Stderr, fs)
		return 2
	}
	r, err := server.NewResolver(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd:", err)
		return 1
	}
	defer r.Close()
	for _, a := range fs.Args() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res := r.Resolve(ctx, a)
		cancel()
		explain(os.Stdout, cfg, a, res)
		if res.Err != nil {
			code = 1
		}
	}
	return code
}

func explain(w io.Writer, cfg *config.Config, addr string, res *server.Resolution) {
	fmt.Fprintf(w, "%s\n", addr)
	fmt.Fprintf(w, "  lookup address:  %s\n", res.Address.Quoted())
	if res.Domain != "" {
		fmt.Fprintf(w, "  %-16s %s\n", "domain:", res.Domain)
	}
	hit := func(name string, h maps.Hit) {
		if h.Table != "" {
			fmt.Fprintf(w, "  %-16s %q  (table %s, key %q)\n", name+":", h.Value, h.Table, h.Key)
		}
	}
	hit("mailbox", res.Mailbox)
	hit("uid", res.UID)
	hit("gid", res.GID)
	if res.Err == nil {
		rc := res.Recipient
		fmt.Fprintf(w, "  path:            %s/%s\n", cfg.VirtualMailboxBase, rc.Path)
		fmt.Fprintf(w, "  format:          %s\n", rc.Format())
		fmt.Fprintf(w, "  owner:           %d:%d\n", rc.UID, rc.GID)
		if rc.Limit > 0 {
			fmt.Fprintf(w, "  mailbox limit:   %d bytes (%s)\n", rc.Limit, limitWhat(rc.Format().String()))
		} else {
			fmt.Fprintf(w, "  mailbox limit:   none\n")
		}
		fmt.Fprintf(w, "  message limit:   %d bytes\n", cfg.MessageSizeLimit)
		if rc.Sieve != "" {
			// Named, not read: the script is the user's, read only by the worker.
			fmt.Fprintf(w, "  sieve script:    %s/%s\n", cfg.VirtualMailboxBase, rc.Sieve)
		}
		quotaLines(w, res)
		fmt.Fprintf(w, "  RCPT reply:      %s\n", lmtp.RcptOK.Wire(res.Address.Quoted()))
		return
	}
	fmt.Fprintf(w, "  RCPT reply:      %s\n", res.Err.Wire(res.Address.Quoted()))
	if res.Err.Detail != "" {
		fmt.Fprintf(w, "  why:             %s\n", res.Err.Detail)
	}
}

func limitWhat(format string) string {
	if format == "maildir" {
		return "each message file"
	}
	return "mbox size after the append"
}
