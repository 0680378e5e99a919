// Runs in: the front (its pool of workers).

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
	rep, err := query(p, ctx, r, frameQuota, frameQuotaReply,
		func(seq uint64) []byte { return (&quotaRequest{Seq: seq, Rcpt: r, Recalc: recalc}).encode() },
		func(b []byte) (*quotaReply, uint64, error) {
			rep, err := decodeQuotaReply(b)
			if err != nil {
				return nil, 0, err
			}
			return rep, rep.Seq, nil
		})
	if err != nil {
		return store.QuotaUsage{}, err
	}
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
