package worker

import (
	"context"
	"errors"

	"github.com/vlmtpd/vlmtpd/store"
	"github.com/vlmtpd/vlmtpd/store/maildirpp"
)

var _ store.QuotaReporter = (*Pool)(nil)

// Quota implements store.QuotaReporter by asking a worker of the
// mailbox's owner: the front never reads users' files.
func (p *Pool) Quota(ctx context.Context, r store.Recipient, recalc bool) (store.QuotaUsage, error) {
	k := ids{r.UID, r.GID}
	deadline := p.deadline(ctx, p.opts.QueryTimeout)
	gctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	w, err := p.get(gctx, k)
	if err != nil {
		p.logSpawnError("", k, err)
		return store.QuotaUsage{}, failure(err, r.Path)
	}
	w.seq++
	req := &quotaRequest{Seq: w.seq, Rcpt: r, Recalc: recalc}
	payload, err := p.roundTrip(w, deadline, frameQuota, req.encode(), -1, frameQuotaReply)
	var rep *quotaReply
	if err == nil {
		rep, err = decodeQuotaReply(payload)
	}
	if err == nil && rep.Seq != req.Seq {
		err = protoErr("quota reply %d to request %d", rep.Seq, req.Seq)
	}
	if err != nil {
		p.kill(w, err)
		p.put(w, true)
		return store.QuotaUsage{}, failure(err, r.Path)
	}
	p.put(w, w.stopped)
	return store.QuotaUsage{Usage: maildirpp.Usage{Bytes: rep.Bytes, Count: rep.Count}, Recalculated: rep.Recalculated}, rep.Result.err()
}

// quota answers a quota query inside the worker.
func (s *server) quota(ctx context.Context, req *quotaRequest) *quotaReply {
	out := &quotaReply{Seq: req.Seq}
	if err := s.permitted(req.Rcpt); err != nil {
		out.Result = resultOf(err)
		return out
	}
	qr, ok := s.d.(store.QuotaReporter)
	if !ok {
		out.Result = resultOf(&store.Error{Status: store.Temporary, Op: "quota", Path: req.Rcpt.Path, Err: errors.New("this writer cannot report quota")})
		return out
	}
	u, err := qr.Quota(ctx, req.Rcpt, req.Recalc)
	out.Bytes, out.Count, out.Recalculated, out.Result = max(u.Usage.Bytes, 0), max(u.Usage.Count, 0), u.Recalculated, resultOf(err)
	return out
}
