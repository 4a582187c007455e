package coordinator

import (
	"context"
	"time"

	"github.com/dtkhq/dtk/plan"
)

// Batching limits: reports that arrive within batchWindow of each other go
// into one Raft entry of at most batchMax reports.
const (
	batchWindow = 2 * time.Millisecond
	batchMax    = 2048
)

// reportBatcher turns many agents' report requests into few Raft entries,
// so that a fleet reporting at once is not a write storm. A request is
// answered only once its batch is committed.
type reportBatcher struct {
	s  *Server
	in chan *batchReq
}

type batchReq struct {
	reports []plan.Report
	// size is the request's body size (a follower's batches are bounded
	// by it: fwdbatch.go).
	size int64
	done chan batchResult
}

type batchResult struct {
	applied int
	index   uint64
	err     error
}

func newReportBatcher(s *Server) *reportBatcher {
	return &reportBatcher{s: s, in: make(chan *batchReq, 1024)}
}

// submit queues reports and waits for the batch holding them to commit.
func (b *reportBatcher) submit(ctx context.Context, reports []plan.Report) (int, uint64, error) {
	if len(reports) == 0 {
		return 0, b.s.State().Index(), nil
	}
	req := &batchReq{reports: reports, done: make(chan batchResult, 1)}
	select {
	case b.in <- req:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	select {
	case r := <-req.done:
		return r.applied, r.index, r.err
	case <-ctx.Done():
		// The batch may still commit; the agent resends and the resend is
		// recognized by its report IDs.
		return 0, 0, ctx.Err()
	}
}

func (b *reportBatcher) run(stop <-chan struct{}) {
	for {
		var first *batchReq
		select {
		case <-stop:
			return
		case first = <-b.in:
		}
		batch := []*batchReq{first}
		n := len(first.reports)
		timer := time.NewTimer(batchWindow)
	collect:
		for n < batchMax {
			select {
			case r := <-b.in:
				batch = append(batch, r)
				n += len(r.reports)
			case <-timer.C:
				break collect
			case <-stop:
				timer.Stop()
				b.fail(batch, ErrNotLeader)
				return
			}
		}
		timer.Stop()
		b.commit(batch, n)
	}
}

func (b *reportBatcher) commit(batch []*batchReq, n int) {
	all := make([]plan.Report, 0, n)
	for _, r := range batch {
		all = append(all, r.reports...)
	}
	start := time.Now()
	_, err := b.s.apply(ReportsType, ReportsCmd{Reports: all, Time: time.Now().UnixMilli()})
	if err != nil {
		b.fail(batch, err)
		return
	}
	b.s.observeBatch(all, time.Since(start))
	idx := b.s.State().Index()
	for _, r := range batch {
		r.done <- batchResult{applied: len(r.reports), index: idx}
	}
}

func (b *reportBatcher) fail(batch []*batchReq, err error) {
	for _, r := range batch {
		r.done <- batchResult{err: err}
	}
}
