// Runs in: an administrator's command (one-shot process).

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vlmtpd/vlmtpd/internal/metrics"
	"github.com/vlmtpd/vlmtpd/internal/stderrlog"
	"github.com/vlmtpd/vlmtpd/server"
	"github.com/vlmtpd/vlmtpd/server/config"
	"github.com/vlmtpd/vlmtpd/server/lmtp"
	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/worker"
)

func init() {
	commands["quota"] = command{"show recipients' quota, usage and the RCPT reply; -recalc rebuilds maildirsize", runQuota}
}

func runQuota(args []string) int {
	fs := newFlagSet("quota")
	path := fs.String("config", defaultConfig, "configuration file")
	size := fs.Int64("size", 0, "SIZE= of the message the RCPT reply is for (0: none given)")
	recalc := fs.Bool("recalc", false, "rebuild maildirsize from the Maildir's files first")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 || *size < 0 {
		printUsage(os.Stderr, fs)
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd:", err)
		return 1
	}
	r, err := server.NewResolver(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd:", err)
		return 1
	}
	defer r.Close()
	// The usage is read by a worker running as the mailbox's owner, as
	// the server does: this needs root, or to be that owner.
	d, closeD, err := newDeliverer(cfg, &worker.LocalSpawner{Config: workerConfig(cfg)}, stderrlog.New(os.Stderr, "warn", cfg.LogFormat))
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlmtpd:", err)
		return 1
	}
	defer closeD()
	code := 0
	for _, a := range fs.Args() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if !showQuota(ctx, os.Stdout, cfg, r, d, a, *size, *recalc) {
			code = 1
		}
		cancel()
	}
	return code
}

// showQuota prints one address's quota; false if it could not.
func showQuota(ctx context.Context, w io.Writer, cfg *config.Config, r *server.Resolver, d store.Deliverer, addr string, size int64, recalc bool) bool {
	fmt.Fprintf(w, "%s\n", addr)
	res := r.Resolve(ctx, addr)
	if res.Err != nil {
		fmt.Fprintf(w, "  RCPT reply:      %s\n", res.Err.Wire(res.Address.Quoted()))
		if res.Err.Detail != "" {
			fmt.Fprintf(w, "  why:             %s\n", res.Err.Detail)
		}
		return false
	}
	box := res.Recipient
	fmt.Fprintf(w, "  mailbox:         %s/%s (%s, owner %d:%d)\n", cfg.VirtualMailboxBase, box.Path, box.Format(), box.UID, box.GID)
	quotaLines(w, res)
	if !box.Quota.Set {
		return true
	}
	ok := true
	if recalc {
		if qr, isQR := d.(store.QuotaReporter); isQR && box.Format() == store.Maildir {
			if _, err := qr.Quota(ctx, box, true); err != nil {
				fmt.Fprintf(w, "  recalculation:   failed: %v\n", err)
				ok = false
			} else {
				fmt.Fprintf(w, "  recalculation:   maildirsize rebuilt\n")
			}
		}
	}
	qd := server.CheckQuota(ctx, cfg, d, box, size)
	if qd.Err != nil {
		fmt.Fprintf(w, "  usage:           unknown: %v\n", qd.Err)
		return false
	}
	fmt.Fprintf(w, "  usage:           %d bytes in %d messages%s\n", qd.Usage.Bytes, qd.Usage.Count, percent(qd))
	if qd.Recalculated != "" {
		fmt.Fprintf(w, "  maildirsize:     recalculated (%s)\n", qd.Recalculated)
	}
	fmt.Fprintf(w, "  reservations:    %s\n", reservations(ctx, cfg, box))
	what := "RCPT reply:"
	if size > 0 {
		what = fmt.Sprintf("RCPT SIZE=%d:", size)
	}
	rep := qd.Reply
	if rep == nil {
		rep = lmtp.RcptOK
	}
	fmt.Fprintf(w, "  %-16s %s\n", what, rep.Wire(res.Address.Quoted()))
	return ok
}

func percent(qd server.QuotaDecision) string {
	s := ""
	if qd.Limits.Bytes > 0 {
		s += fmt.Sprintf(", %.1f%% of bytes", 100*float64(qd.Usage.Bytes)/float64(qd.Limits.Bytes))
	}
	if qd.Limits.Count > 0 {
		s += fmt.Sprintf(", %.1f%% of messages", 100*float64(qd.Usage.Count)/float64(qd.Limits.Count))
	}
	return s
}

// quotaLines explains the quota entry and the +detail folder of a
// resolved recipient (vlmtpd lookup and vlmtpd quota).
func quotaLines(w io.Writer, res *server.Resolution) {
	box := res.Recipient
	if res.Quota.Table != "" {
		fmt.Fprintf(w, "  %-16s %q  (table %s, key %q)\n", "quota entry:", res.Quota.Value, res.Quota.Table, res.Quota.Key)
	}
	switch {
	case !box.Quota.Set:
		fmt.Fprintf(w, "  quota:           none (no virtual_mailbox_limit_maps entry)\n")
	case box.Format() == store.Maildir:
		fmt.Fprintf(w, "  quota:           %s for the whole Maildir++ tree (maildirsize %s)\n", box.Quota.Limits, maildirsizeMode(box.Quota))
	default:
		fmt.Fprintf(w, "  quota:           %s (mbox size after the append)\n", box.Quota.Limits)
	}
	if box.Folder != "" {
		if f, ok := store.DetailFolder(box.Folder); ok {
			how := "if it exists, else INBOX"
			if box.CreateFolder {
				how = "created if missing"
			}
			fmt.Fprintf(w, "  detail folder:   .%s/ (%s)\n", f, how)
		} else {
			fmt.Fprintf(w, "  detail folder:   none: %q is not a safe folder name, INBOX\n", box.Folder)
		}
	}
}

func maildirsizeMode(q store.Quota) string {
	switch {
	case !q.Extended:
		return "not kept: usage recalculated each time"
	case q.Create:
		return "kept, created when missing"
	default:
		return "kept when it exists"
	}
}

// reservations asks the running server, through its metrics listener,
// what its deliveries in flight hold against box: only it knows.
func reservations(ctx context.Context, cfg *config.Config, box store.Recipient) string {
	if cfg.MetricsListen == "" {
		return "not known here: set metrics_listen so vlmtpd quota can ask the running server"
	}
	r, err := metrics.FetchReservation(ctx, cfg.MetricsListen, box)
	if err != nil {
		return "unknown: " + err.Error()
	}
	if r.Deliveries == 0 {
		return "none (no delivery in flight in the running server)"
	}
	return fmt.Sprintf("%d deliveries in flight in the running server, holding %d bytes and %d messages", r.Deliveries, r.Bytes, r.Messages)
}
