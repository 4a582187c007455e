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
	return queueAndWait(ctx, b.in, &batchReq{reports: reports, done: make(chan batchResult, 1)})
}

// queueAndWait queues req on in and waits for its batch's answer.
func queueAndWait(ctx context.Context, in chan<- *batchReq, req *batchReq) (int, uint64, error) {
	select {
	case in <- req:
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

// gather adds to the batch started by first what arrives on in within
// window, while fits accepts it (batchMax reports at most). It returns the
// batch, its report count, the request that did not fit (nil if none),
// and whether stop closed meanwhile (the batch is then failed).
func gather(in <-chan *batchReq, stop <-chan struct{}, first *batchReq, window time.Duration, fits func(n int, r *batchReq) bool) (batch []*batchReq, n int, next *batchReq, stopped bool) {
	batch, n = []*batchReq{first}, len(first.reports)
	timer := time.NewTimer(window)
	defer timer.Stop()
	for n < batchMax {
		select {
		case r := <-in:
			if n+len(r.reports) > batchMax || !fits(n, r) {
				return batch, n, r, false
			}
			batch = append(batch, r)
			n += len(r.reports)
		case <-timer.C:
			return batch, n, nil, false
		case <-stop:
			failBatch(batch, ErrNotLeader)
			return nil, 0, nil, true
		}
	}
	return batch, n, nil, false
}

// reportsOf is every report of batch (n of them), in order.
func reportsOf(batch []*batchReq, n int) []plan.Report {
	all := make([]plan.Report, 0, n)
	for _, r := range batch {
		all = append(all, r.reports...)
	}
	return all
}

// answerBatch tells every request of batch that it committed at idx.
func answerBatch(batch []*batchReq, idx uint64) {
	for _, r := range batch {
		r.done <- batchResult{applied: len(r.reports), index: idx}
	}
}

// failBatch answers every request of batch with err.
func failBatch(batch []*batchReq, err error) {
	for _, r := range batch {
		r.done <- batchResult{err: err}
	}
}

func (b *reportBatcher) run(stop <-chan struct{}) {
	var next *batchReq // the request that did not fit the last batch
	for {
		first := next
		if first == nil {
			select {
			case <-stop:
				return
			case first = <-b.in:
			}
		}
		batch, n, rest, stopped := gather(b.in, stop, first, batchWindow, func(int, *batchReq) bool { return true })
		if stopped {
			if rest != nil {
				failBatch([]*batchReq{rest}, ErrNotLeader)
			}
			return
		}
		next = rest
		b.commit(batch, n)
	}
}

func (b *reportBatcher) commit(batch []*batchReq, n int) {
	all := reportsOf(batch, n)
	start := time.Now()
	_, err := b.s.apply(ReportsType, ReportsCmd{Reports: all, Time: time.Now().UnixMilli()})
	if err != nil {
		failBatch(batch, err)
		return
	}
	b.s.observeBatch(all, time.Since(start))
	answerBatch(batch, b.s.State().Index())
}
