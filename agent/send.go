package agent

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// A batch of reports is bounded by count and by bytes, well under the
// coordinators' 4 MiB request body limit, so that one batch of large
// outputs cannot be refused as a whole.
const (
	maxBatchReports = 256
	maxBatchBytes   = 1 << 20
	// truncatedTail is how much of a too-large report's output and error
	// is kept.
	truncatedTail = 1024
)

// reserveDelay is how long a running report waits for a write to store
// its sequence before the sender stores it alone (a step that runs that
// long); checkpointDelay how long the sender, idle, leaves the journal and
// the delivered reports before a checkpoint.
const (
	reserveDelay    = 250 * time.Millisecond
	checkpointDelay = time.Second
)

// truncationMarker starts a trimmed output or error.
const truncationMarker = "[dtk-agent: truncated, the report was larger than the coordinator accepts; the step's full log is on the node]\n"

// sendLoop sends the outbox in batches; a report leaves the outbox only
// once a coordinator has acknowledged (committed) it, or refused it for
// good (too large even truncated, or invalid): one bad report never holds
// back the ones after it.
func (a *Agent) sendLoop(ctx context.Context) {
	b := newBackoff()
	for {
		batch, err := a.store.peek(maxBatchReports, maxBatchBytes)
		if err != nil {
			a.log.Error("read the report outbox", "err", err)
			if !b.wait(ctx) {
				return
			}
			continue
		}
		if len(batch) == 0 {
			// Volatile reports wait for their sequence to be stored,
			// which the step's final report does for free unless the
			// step runs for long; the journal and the acknowledged
			// reports wait for a checkpoint, which the end of a
			// converge pass or an idle second brings.
			var wake <-chan time.Time
			var idle func() error
			switch {
			case a.store.unsendable():
				wake, idle = time.After(reserveDelay), a.store.reserve
			case a.store.checkpointPending():
				wake, idle = time.After(checkpointDelay), a.store.checkpoint
			}
			select {
			case <-ctx.Done():
				return
			case <-a.flush:
			case <-wake:
				if err := idle(); err != nil {
					a.log.Error("write the agent database", "err", err)
					if !b.wait(ctx) {
						return
					}
				}
			}
			continue
		}
		if err := a.deliver(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return
			}
			n, _ := a.store.queued()
			a.log.Warn("send reports failed, will retry", "err", err, "queued", n)
			if !b.wait(ctx) {
				return
			}
			continue
		}
		b.reset()
	}
}

// deliver sends a batch and removes what a coordinator took (or refused
// for good) from the outbox. A batch refused as too large (413) is split
// in half and each half sent in turn; a single report still too large is
// sent again truncated, then as a failure that says why, then dropped. A
// report refused as invalid (400, 422) is isolated the same way and
// dropped, with an error logged that names its step. Other errors are
// returned: the caller backs off and tries the same reports again.
func (a *Agent) deliver(ctx context.Context, batch []pending) error {
	reports := make([]plan.Report, len(batch))
	seqs := make([]uint64, len(batch))
	for i, p := range batch {
		reports[i], seqs[i] = p.report, p.seq
	}
	_, err := a.client.Reports(ctx, a.cfg.Name, reports)
	if err == nil {
		return a.store.ack(seqs...)
	}
	var ae *api.APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Code {
	case http.StatusRequestEntityTooLarge, http.StatusBadRequest, http.StatusUnprocessableEntity:
	default:
		return err
	}
	if len(batch) > 1 {
		h := len(batch) / 2
		a.log.Info("coordinator refused a batch of reports, splitting it", "reports", len(batch), "code", ae.Code)
		if err := a.deliver(ctx, batch[:h]); err != nil {
			return err
		}
		return a.deliver(ctx, batch[h:])
	}
	p := batch[0]
	r := p.report
	if ae.Code == http.StatusRequestEntityTooLarge && p.shrunk < 2 {
		a.log.Warn("report too large for the coordinator, sending it trimmed", "step", r.StepID, "id", r.ID, "bytes", p.size)
		return a.deliver(ctx, []pending{{seq: p.seq, report: shrinkReport(r, p.shrunk), shrunk: p.shrunk + 1}})
	}
	a.log.Error("coordinator refused a report, dropping it", "step", r.StepID, "state", r.State, "id", r.ID, "code", ae.Code, "err", err)
	return a.store.ack(p.seq)
}

// shrinkReport makes a smaller version of a report the coordinator found
// too large: at stage 0 its output and error trimmed to their tails; at
// stage 1 a failure without outputs that says why, so that the operator
// sees the step rather than nothing (the agent keeps its full log).
func shrinkReport(r plan.Report, stage int) plan.Report {
	r.Output, r.Error = trimTail(r.Output), trimTail(r.Error)
	if stage == 0 {
		return r
	}
	r.Outputs, r.Output = nil, truncationMarker
	if r.State == plan.StepOK || r.State == plan.StepSkipped {
		r.State = plan.StepFailed
	}
	r.Error = "the report of this step (its outputs) is larger than a coordinator accepts"
	return r
}

// trimTail keeps the last truncatedTail bytes of s after the marker.
func trimTail(s string) string {
	if len(s) <= truncatedTail+len(truncationMarker) {
		return s
	}
	return truncationMarker + s[len(s)-truncatedTail:]
}
