package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dtkhq/dtk/actions"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// running tracks the step executing now, so that a cancel operation can
// stop it (its whole process group is killed by the runner).
type running struct {
	mu      sync.Mutex
	service string
	cancel  context.CancelFunc
	// cancelled services skip their remaining steps in this converge.
	cancelled map[string]bool
}

// start registers work of service until the returned function is called:
// a cancel of the service cancels the returned context. Calls nest (a
// health verification registers itself, then each check it runs): the
// inner one's end registers the outer one again.
func (r *running) start(ctx context.Context, service string) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	outerService, outerCancel := r.service, r.cancel
	r.service, r.cancel = service, cancel
	r.mu.Unlock()
	return ctx, func() {
		r.mu.Lock()
		r.service, r.cancel = outerService, outerCancel
		r.mu.Unlock()
		cancel()
	}
}

// stop cancels the running step if it belongs to service, and reports
// whether one was running.
func (r *running) stop(service string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancelled == nil {
		r.cancelled = map[string]bool{}
	}
	r.cancelled[service] = true
	if r.cancel != nil && r.service == service {
		r.cancel()
		return true
	}
	return false
}

func (r *running) isCancelled(service string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cancelled[service]
}

func (r *running) reset() {
	r.mu.Lock()
	r.cancelled = nil
	r.mu.Unlock()
}

// seenOps remembers which of the node's operations the agent has taken
// up. The coordinator answers every poll with the operations it still
// keeps for the node, so only those need remembering: the set is replaced
// by each answer's and never outgrows it.
type seenOps struct {
	mu  sync.Mutex
	ids map[string]bool
}

// fresh returns the operations not taken up before and remembers exactly
// the IDs of ops.
func (s *seenOps) fresh(ops []*plan.Op) []*plan.Op {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*plan.Op
	ids := make(map[string]bool, len(ops))
	for _, op := range ops {
		ids[op.ID] = true
		if !s.ids[op.ID] {
			out = append(out, op)
		}
	}
	s.ids = ids
	return out
}

func (s *seenOps) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

// opsLoop long-polls the node's one-off operations and carries them out:
// cancel at once (it must reach a running converge), dry runs and execs one
// at a time with converges.
func (a *Agent) opsLoop(ctx context.Context) {
	var index uint64
	b := newBackoff()
	for ctx.Err() == nil {
		res, err := a.client.NodeOps(ctx, a.cfg.Name, index, a.cfg.PollWait)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ae *api.APIError
			if !errors.As(err, &ae) || ae.Code != http.StatusNotFound {
				a.log.Debug("ops poll failed", "err", err)
			}
			if errors.Is(err, api.ErrTimeout) {
				continue // the client has moved on to another coordinator
			}
			if !b.wait(ctx) {
				return
			}
			continue
		}
		b.reset()
		if res.Index < index {
			a.client.Rotate()
			continue
		}
		index = res.Index
		a.pages.activity()
		for _, op := range a.ops.fresh(res.Ops) {
			if op.Kind == plan.OpCancel {
				a.cancelOp(ctx, op)
				continue
			}
			if op.Kind == plan.OpLogs {
				go a.logsOp(ctx, op)
				continue
			}
			go a.runOp(ctx, op)
		}
	}
}

func (a *Agent) cancelOp(ctx context.Context, op *plan.Op) {
	stopped := a.running.stop(op.Service)
	msg := "nothing was running"
	if stopped {
		msg = "stopped the running step"
	}
	a.log.Info("cancel", "service", op.Service, "result", msg)
	a.sendOpResults(ctx, op, []plan.Report{{Node: a.cfg.Name, Service: op.Service, State: plan.StepOK, Output: msg}})
}

// A dry run's predictions go out together, with the final message, when
// they come quickly (a fleet's dry run is then one message per node, not
// one per step), and at least every predictionFlush while they take
// longer, as far as the steps allow (a step's prediction is not cut
// short to send the earlier ones).
const predictionFlush = time.Second

// runOp runs a dry run or an exec, between converges.
func (a *Agent) runOp(ctx context.Context, op *plan.Op) {
	if !a.waitCleared(ctx) {
		return
	}
	a.convergeMu.Lock()
	defer a.convergeMu.Unlock()
	var held []plan.Report
	heldBytes, sent := 0, time.Now()
	for _, st := range op.Steps[a.cfg.Name] {
		if ctx.Err() != nil {
			return
		}
		var r plan.Report
		if op.Kind == plan.OpDryRun {
			r = a.predict(ctx, st)
		} else {
			r = a.execOp(ctx, st)
		}
		r.Node, r.Service, r.StepID, r.Action = a.cfg.Name, st.Service, st.ID, st.Action
		if op.Kind != plan.OpDryRun {
			// An exec's results go out as they come, for live output.
			a.sendOpResults(ctx, op, []plan.Report{r}, false)
			continue
		}
		held = append(held, r)
		heldBytes += len(r.Output) + len(r.Error) + 256
		if time.Since(sent) >= predictionFlush || len(held) >= maxBatchReports || heldBytes >= maxBatchBytes {
			a.sendOpResults(ctx, op, held, false)
			held, heldBytes, sent = nil, 0, time.Now()
		}
	}
	a.sendOpResults(ctx, op, held, true)
}

// logsOp sends the end of each step's full output log, as the runner keeps
// it in the data dir (reports carry only a tail). It runs beside converges:
// it only reads.
func (a *Agent) logsOp(ctx context.Context, op *plan.Op) {
	limit := op.LogBytes
	if limit <= 0 || limit > maxLogBytes {
		limit = defaultLogBytes
	}
	for _, st := range op.Steps[a.cfg.Name] {
		if ctx.Err() != nil {
			return
		}
		r := plan.Report{Node: a.cfg.Name, Service: st.Service, StepID: st.ID, Action: st.Action, State: plan.StepOK}
		out, size, err := tailFile(a.lastLog(st), limit)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			r.State, r.Error = plan.StepSkipped, "no log on this node: the step has not run here"
		case err != nil:
			r.State, r.Error = plan.StepFailed, err.Error()
		case size > int64(len(out)):
			r.Output = fmt.Sprintf("[… the first %d of %d bytes left out; --bytes shows more …]\n%s", size-int64(len(out)), size, out)
		default:
			r.Output = out
		}
		a.sendOpResults(ctx, op, []plan.Report{r}, false)
	}
	a.sendOpResults(ctx, op, nil, true)
}

// How much of each step log a logs operation sends, by default and at most.
const (
	defaultLogBytes = 64 << 10
	maxLogBytes     = 1 << 20
)

// tailFile reads at most limit bytes from the end of a file, starting at a
// line when it cuts, and says how big the file is.
func tailFile(path string, limit int) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	size := fi.Size()
	off := max(size-int64(limit), 0)
	b := make([]byte, size-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return "", 0, err
	}
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
			b = b[i+1:]
		}
	}
	return string(b), size, nil
}

// predict answers a dry run for one step without changing anything.
func (a *Agent) predict(ctx context.Context, st *plan.Step) plan.Report {
	if len(st.Waiting) > 0 {
		return plan.Report{State: plan.StepPending, Prediction: "waits for " + strings.Join(st.Waiting, "; ")}
	}
	a.mu.Lock()
	rec := a.state.Steps[st.ID]
	a.mu.Unlock()
	if st.Action == "create" && rec != nil && rec.Digest == st.Digest {
		return plan.Report{State: plan.StepOK, Prediction: plan.PredictUnchangedPlan}
	}
	started := time.Now()
	res := a.executeWith(ctx, st, true)
	r := plan.Report{State: plan.StepOK, ExitCode: res.ExitCode, DurationMs: res.Duration.Milliseconds(), Output: res.Output,
		StartedAt: started.UnixMilli(), FinishedAt: time.Now().UnixMilli()}
	switch {
	case res.State == actions.Failed:
		r.State = plan.StepFailed
		if res.Err != nil {
			r.Error = res.Err.Error()
		}
		r.Prediction = "would fail"
	case res.CannotPredict && st.Check != nil:
		// bash and exec cannot predict; the component's check can tell
		// whether the new desired state already holds.
		if _, drift := a.checkWith(ctx, st); !drift {
			r.Prediction = plan.PredictNoChange
		} else {
			r.Prediction = plan.PredictChange
		}
	case res.CannotPredict:
		r.Prediction = plan.PredictCannot
	case res.State == actions.Changed:
		r.Prediction = plan.PredictChange
	default:
		r.Prediction = plan.PredictNoChange
	}
	return r
}

// execOp runs a custom action for real.
func (a *Agent) execOp(ctx context.Context, st *plan.Step) plan.Report {
	started := time.Now()
	res := a.executeWith(ctx, st, false)
	r := plan.Report{State: plan.StepOK, ExitCode: res.ExitCode, DurationMs: res.Duration.Milliseconds(),
		Output: res.Output, StartedAt: started.UnixMilli(), FinishedAt: time.Now().UnixMilli(), Changed: res.State == actions.Changed}
	if res.State == actions.Failed {
		r.State = plan.StepFailed
	}
	if res.Err != nil {
		r.Error = res.Err.Error()
	}
	return r
}

// sendOpResults delivers results, retrying while the coordinators are
// reachable at all (results of a one-off operation are not kept on disk).
func (a *Agent) sendOpResults(ctx context.Context, op *plan.Op, reports []plan.Report, final ...bool) {
	fin := len(final) == 0 || final[0]
	b := newBackoff()
	for i := 0; i < 20 && ctx.Err() == nil; i++ {
		err := a.client.OpResults(ctx, a.cfg.Name, op.ID, reports, fin)
		if err == nil {
			return
		}
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Code/100 == 4 {
			a.log.Warn("op results refused", "op", op.ID, "err", err)
			return
		}
		if !b.wait(ctx) {
			return
		}
	}
}
