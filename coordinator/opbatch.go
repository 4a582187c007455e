package coordinator

import (
	"context"
	"fmt"
	"time"
)

// OpResultsBatchCmd records the results several agents sent for
// operations, as one entry: each is applied as its OpResultsCmd would be.
// A dry run of a fleet is answered by every agent at once; one entry per
// answer would make it a write storm (Raft entries, and a copy of the
// op's growing results for each), as reports would be without their
// batcher.
type OpResultsBatchCmd struct {
	Results []OpResultsCmd `json:"results"`
}

// opResultsBatch applies each agent's results in order; the answer lists
// each one's (the op, or an error).
func (s *State) opResultsBatch(idx uint64, c *OpResultsBatchCmd) (any, []string) {
	resps := make([]any, len(c.Results))
	var keys []string
	for i := range c.Results {
		r, k := s.opResults(idx, &c.Results[i])
		resps[i] = r
		keys = append(keys, k...)
	}
	return resps, keys
}

// opResultsBatcher is reportBatcher for operation results: what agents
// send within batchWindow of each other goes into one Raft entry
// (OpResultsBatchType, which an older coordinator skips), and each request
// is answered once its entry is committed.
type opResultsBatcher struct {
	s  *Server
	in chan *opResultsReq
}

type opResultsReq struct {
	cmd  OpResultsCmd
	done chan error
}

// opBatchMax bounds the agents' messages in one entry (each holds at most
// a report body's worth: limits.report_body_bytes).
const opBatchMax = 64

func newOpResultsBatcher(s *Server) *opResultsBatcher {
	return &opResultsBatcher{s: s, in: make(chan *opResultsReq, 1024)}
}

// submit queues an agent's results and waits for the entry holding them
// to commit; the error is the FSM's answer for them, or Raft's.
func (b *opResultsBatcher) submit(ctx context.Context, cmd OpResultsCmd) error {
	req := &opResultsReq{cmd: cmd, done: make(chan error, 1)}
	select {
	case b.in <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		// The entry may still commit: the agent sends again, and a resend
		// after the final message is recognized (Op.Done).
		return ctx.Err()
	}
}

func (b *opResultsBatcher) run(stop <-chan struct{}) {
	for {
		var first *opResultsReq
		select {
		case <-stop:
			return
		case first = <-b.in:
		}
		batch := []*opResultsReq{first}
		bytes := reportsSize(first.cmd)
		timer := time.NewTimer(batchWindow)
	collect:
		for len(batch) < opBatchMax && bytes < maxOpBatchBytes {
			select {
			case r := <-b.in:
				batch = append(batch, r)
				bytes += reportsSize(r.cmd)
			case <-timer.C:
				break collect
			case <-stop:
				timer.Stop()
				for _, r := range batch {
					r.done <- ErrNotLeader
				}
				return
			}
		}
		timer.Stop()
		b.commit(batch)
	}
}

// maxOpBatchBytes bounds an entry's reports (outputs and errors): a few
// agents' dry-run outputs, not a fleet's, per entry.
const maxOpBatchBytes = 4 << 20

func reportsSize(c OpResultsCmd) int {
	n := 0
	for _, r := range c.Reports {
		n += len(r.Output) + len(r.Error) + 256
	}
	return n
}

func (b *opResultsBatcher) commit(batch []*opResultsReq) {
	cmd := OpResultsBatchCmd{Results: make([]OpResultsCmd, len(batch))}
	for i, r := range batch {
		cmd.Results[i] = r.cmd
	}
	resp, err := b.s.apply(OpResultsBatchType|IgnoreUnknownFlag, cmd)
	resps, ok := resp.([]any)
	if err == nil && (!ok || len(resps) != len(batch)) {
		err = fmt.Errorf("op results: unexpected answer %T", resp)
	}
	for i, r := range batch {
		if err != nil {
			r.done <- err
			continue
		}
		if e, ok := resps[i].(error); ok {
			r.done <- e
			continue
		}
		r.done <- nil
	}
}
