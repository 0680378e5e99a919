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
	commands["check-config"] = command{"validate the configuration and open every table", runCheckConfig}
}

func runLookup(args []string) int {
	cfg, fs, code := loadConfig("lookup", defaultConfig, args)
	if cfg == nil {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: vlmtpd lookup -config FILE ADDRESS...")
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

func runCheckConfig(args []string) int {
	cfg, _, code := loadConfig("check-config", defaultConfig, args)
	if cfg == nil {
		return code
	}
	r, err := server.NewResolver(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd:", err)
		return 1
	}
	r.Close()
	problems := 0
	if fi, err := os.Stat(cfg.VirtualMailboxBase); err != nil || !fi.IsDir() {
		fmt.Fprintf(os.Stderr, "vlmtpd: virtual_mailbox_base: %s is not an existing directory (create it, writable by the mailbox owners, or try `vlmtpd quickstart`)\n", cfg.VirtualMailboxBase)
		problems++
	}
	if fi, err := os.Stat(cfg.SpoolDirectory); err == nil && !fi.IsDir() {
		fmt.Fprintf(os.Stderr, "vlmtpd: spool_directory: %s is not a directory\n", cfg.SpoolDirectory)
		problems++
	}
	if problems > 0 {
		return 1
	}
	fmt.Printf("%s: OK\n", cfg.Path)
	return 0
}
