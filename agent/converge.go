package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dtkhq/dtk/actions"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/plan"
)

// converge brings the node to its slice: undo steps that left the plan
// (newest first), then run every step whose digest differs from its last
// success, in order. A failed step stops the rest of its service's steps on
// this node. Unchanged steps spawn no process, except that with checks set
// (the reconcile interval) an unchanged step's check runs (see
// runCheck), and a check that finds drift re-runs its create action,
// reported as drift repaired with what the check found.
func (a *Agent) converge(ctx context.Context, sl *plan.Slice, checks bool) {
	if !a.waitCleared(ctx) {
		return
	}
	a.convergeMu.Lock()
	defer a.convergeMu.Unlock()
	defer a.cfg.Metrics.converged(checks, time.Now())
	a.running.reset()
	a.subscribers = subscribers(sl)
	defer func() {
		a.convergedMu.Lock()
		a.converges++
		a.convergedMu.Unlock()
	}()
	// Deferred calls run last first: the skipped reports are queued, then
	// the journal goes into the database.
	defer a.checkpoint()
	defer a.queueSkipped()
	undone := a.undoRemoved(ctx, sl)
	failed := map[string]bool{}
	var ran, skipped, nfailed, blocked int
	for _, st := range sl.Steps {
		if ctx.Err() != nil {
			return
		}
		if failed[st.Service] || a.running.isCancelled(st.Service) {
			blocked++
			continue
		}
		if len(st.Waiting) > 0 {
			// It needs an output or a step of another node: the
			// coordinator republishes it when that arrives. What comes
			// after it in its service waits too.
			failed[st.Service] = true
			blocked++
			continue
		}
		did, ok := a.runStep(ctx, st, checks)
		switch {
		case !ok:
			failed[st.Service] = true
			nfailed++
		case did:
			ran++
		default:
			skipped++
		}
	}
	a.log.Info("converged", "index", sl.Index, "ran", ran, "unchanged", skipped,
		"failed", nfailed, "blocked", blocked, "undone", undone)
}

// undoRemoved runs the delete action of every create step that succeeded
// here but is no longer in the slice (and is not being deleted explicitly).
func (a *Agent) undoRemoved(ctx context.Context, sl *plan.Slice) (undone int) {
	present := map[string]bool{}
	explicit := map[string]bool{}
	for _, st := range sl.Steps {
		present[st.ID] = true
		if st.Action == "delete" {
			explicit[plan.StepID(st.Service, st.Node, st.Instance, "create")] = true
		}
	}
	a.mu.Lock()
	var gone []string
	for id, rec := range a.state.Steps {
		if !present[id] && !(explicit[id] && rec.Action == "create") {
			gone = append(gone, id)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return a.state.Steps[gone[i]].Order > a.state.Steps[gone[j]].Order })
	recs := make([]*stepRecord, len(gone))
	for i, id := range gone {
		recs[i] = a.state.Steps[id]
	}
	a.mu.Unlock()
	for i, id := range gone {
		if ctx.Err() != nil {
			return undone
		}
		rec := recs[i]
		if rec.Action != "create" || rec.Undo == nil {
			a.forget(id)
			continue
		}
		st := &plan.Step{
			ID: plan.StepID(rec.Service, rec.Node, rec.Instance, "delete"), Service: rec.Service,
			Node: rec.Node, Instance: rec.Instance, Action: "delete", ModuleDigest: rec.ModuleDigest,
			Run: *rec.Undo, Attributes: rec.Attributes,
		}
		res := a.execute(ctx, st)
		undone++
		a.log.Info("undid removed step", "step", id, "state", res.State, "exit", res.ExitCode)
		if res.State != actions.Failed {
			a.forget(id)
			a.dropScratch(st) // no record keeps this delete's folder
		}
	}
	return undone
}

// forget drops the record of a step that left the plan, and its scratch
// folders.
func (a *Agent) forget(id string) {
	a.mu.Lock()
	rec := a.state.Steps[id]
	delete(a.state.Steps, id)
	a.mu.Unlock()
	a.commit(nil, &recordChange{del: []string{id}})
	if rec != nil {
		a.dropScratch(&plan.Step{ID: id, Action: rec.Action, RefreshAction: rec.RefreshAction})
	}
}

// dropScratch removes the scratch folders of a step that is gone (its
// own, its check's and its refresh action's) with everything in them. It removes only entries
// of the agent's steps folder and follows no symbolic link (os.Root).
func (a *Agent) dropScratch(st *plan.Step) {
	root, err := os.OpenRoot(filepath.Join(a.cfg.DataDir, "steps"))
	if err != nil {
		return // no steps folder: nothing ran
	}
	defer root.Close()
	names := []string{scratchName(st)}
	// The check's folder, and the refresh action's (subscribe) when it has
	// one: each run in a folder of its own.
	for _, action := range []string{"check", st.RefreshAction} {
		if action != "" {
			other := *st
			other.Action = action
			names = append(names, scratchName(&other))
		}
	}
	for _, name := range names {
		if name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
			continue
		}
		if err := root.RemoveAll(name); err != nil {
			a.log.Warn("remove a step's scratch folder", "step", st.ID, "folder", name, "err", err)
		}
	}
}

// runStep converges one step and reports it. It says whether it ran a
// process and whether the step is in its desired state.
func (a *Agent) runStep(ctx context.Context, st *plan.Step, checks bool) (ran, ok bool) {
	a.mu.Lock()
	rec := a.state.Steps[st.ID]
	a.mu.Unlock()
	var found []string // what a check found out of the desired state
	if rec != nil && rec.Digest == st.Digest && checks && st.Action == "create" && stepCheck(st) != nil {
		found = a.drifted(ctx, st)
	}
	drift := found != nil
	a.mu.Lock()
	failedBefore := a.state.Failed[st.ID] == failKey(st)
	a.mu.Unlock()
	if failedBefore && !drift {
		return false, false // not retried until the plan changes
	}
	unchanged := rec != nil && rec.Digest == st.Digest && !drift
	run, why := st, ""
	if unchanged {
		run, why = a.runAgain(st, rec)
	}
	if unchanged && why == "" {
		a.mu.Lock()
		stale := rec.ReportedGeneration < st.Generation
		a.mu.Unlock()
		if stale { // queueSkipped updates and saves the record
			a.skipped = append(a.skipped, plan.Report{
				Service: st.Service, StepID: st.ID, Action: st.Action, Generation: st.Generation,
				Digest: st.Digest, State: plan.StepSkipped,
			})
		}
		return false, true
	}
	a.queueSkipped() // reports stay in step order
	// The running report and the final one carry the same start, so that
	// status shows one run from started_at to finished_at.
	started := time.Now()
	running := plan.Report{
		Service: st.Service, StepID: st.ID, Action: st.Action, Generation: st.Generation,
		Digest: st.Digest, State: plan.StepRunning, StartedAt: started.UnixMilli(),
	}
	a.enqueueRunning(running)
	stopProgress := a.reportProgress(running, filepath.Join(a.cfg.DataDir, "steps", scratchName(run), actions.LogFile))
	res := a.execute(ctx, run)
	// Retries, where the action asks for them, with a doubling delay.
	for try := 1; res.State == actions.Failed && try <= run.Run.Retries && ctx.Err() == nil &&
		!a.running.isCancelled(st.Service) && !errors.Is(res.Err, actions.ErrCancelled); try++ {
		delay := retryDelay(run.Run, try)
		a.log.Warn("step failed, retrying", "step", st.ID, "exit", res.ExitCode, "retry", try, "of", run.Run.Retries, "in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		res = a.execute(ctx, run)
		if res.State == actions.Failed && try == run.Run.Retries && res.Err == nil {
			res.Err = fmt.Errorf("exit code %d after %d retries", res.ExitCode, try)
		}
	}
	stopProgress()
	rep := plan.Report{
		Service: st.Service, StepID: st.ID, Action: st.Action, Generation: st.Generation, Drift: drift,
		Digest: st.Digest, State: plan.StepOK, ExitCode: res.ExitCode, Changed: res.State == actions.Changed,
		DurationMs: res.Duration.Milliseconds(), Output: res.Output, Reason: why,
		StartedAt: started.UnixMilli(), FinishedAt: time.Now().UnixMilli(),
	}
	if drift {
		rep.Output = repairOutput(found, res.Output)
	}
	if res.Err != nil {
		rep.Error = res.Err.Error()
	}
	if res.State != actions.Failed {
		outs, err := declaredOutputs(run, res.Outputs)
		if err != nil {
			res.State, rep.Error = actions.Failed, err.Error()
		}
		rep.Outputs = outs
	}
	ok = res.State != actions.Failed
	if ok && st.Action == "create" && st.Check != nil && st.HealthSeconds > 0 {
		// A rollout with health = "check": the step is ok only if its
		// check keeps passing for a while after the run.
		if err := a.verifyHealth(ctx, st, running, res.Output); err != nil {
			ok, rep.Error = false, err.Error()
		}
		rep.FinishedAt = time.Now().UnixMilli()
	}
	if !ok && ctx.Err() != nil {
		// The agent is shutting down and killed the step (or its health
		// verification): not a failure of the step. Nothing is recorded,
		// so it runs again after the restart.
		return true, false
	}
	switch {
	case !ok:
		a.cfg.Metrics.stepRan(st.Run.Kind, "failed")
	case rep.Changed:
		a.cfg.Metrics.stepRan(st.Run.Kind, "changed")
	default:
		a.cfg.Metrics.stepRan(st.Run.Kind, "ok")
	}
	if !ok {
		rep.State = plan.StepFailed
		a.log.Warn("step failed", "step", st.ID, "exit", res.ExitCode, "err", res.Err)
	} else {
		a.log.Info("step done", "step", st.ID, "took", res.Duration.Round(time.Millisecond))
	}
	a.mu.Lock()
	a.state.Seq++ // orders records
	change := &recordChange{seq: a.state.Seq}
	if ok {
		if st.Action == "delete" {
			id := plan.StepID(st.Service, st.Node, st.Instance, "create")
			created := &plan.Step{ID: id, Action: "create"}
			if old := a.state.Steps[id]; old != nil {
				created.RefreshAction = old.RefreshAction
			}
			delete(a.state.Steps, id)
			change.del = append(change.del, id)
			// The undone create's folders go (the delete's own keeps its
			// log until its record is forgotten).
			defer a.dropScratch(created)
		}
		rec := &stepRecord{
			Digest: st.Digest, ReportedGeneration: st.Generation, Service: st.Service, Node: st.Node,
			Instance: st.Instance, Action: st.Action, ModuleDigest: st.ModuleDigest, Undo: st.Undo,
			Attributes: st.Attributes, Order: a.state.Seq, Force: st.Force, RefreshAction: st.RefreshAction,
		}
		a.state.Steps[st.ID] = rec
		if rep.Changed {
			a.notifySubscribers(st.ID, change)
		}
		delete(a.state.Failed, st.ID)
		change.unfail = []string{st.ID}
		if err := change.putRecord(st.ID, rec); err != nil {
			a.log.Error("encode step record", "step", st.ID, "err", err)
		}
	} else {
		delete(a.state.Steps, st.ID)
		a.state.Failed[st.ID] = failKey(st)
		change.del = append(change.del, st.ID)
		change.fail = map[string]string{st.ID: failKey(st)}
	}
	a.mu.Unlock()
	// The final report and the record in one write, flushed before the
	// next step starts: a crash before it runs the step again (the
	// running report, in memory only, is lost with it); after it, the
	// step is not run again and its report is sent.
	a.commit([]plan.Report{rep}, change)
	return true, ok
}

// queueSkipped queues the pass's "skipped" reports and the records'
// reported generation in one write, instead of one per step: an
// unchanged redeploy of 100 steps went from 100 fsyncs (about 0.5 s here)
// to one. A crash before it loses nothing: the saved slice has the new
// generation and the records the old one, so the next pass reports them
// again.
func (a *Agent) queueSkipped() {
	if len(a.skipped) == 0 {
		return
	}
	change := &recordChange{}
	a.mu.Lock()
	for _, r := range a.skipped {
		if rec := a.state.Steps[r.StepID]; rec != nil && rec.ReportedGeneration < r.Generation {
			next := *rec // records handed out are not changed
			next.ReportedGeneration = r.Generation
			a.state.Steps[r.StepID] = &next
			if err := change.putRecord(r.StepID, &next); err != nil {
				a.log.Error("encode step record", "step", r.StepID, "err", err)
			}
		}
	}
	a.mu.Unlock()
	a.commit(a.skipped, change)
	a.skipped = nil
}

// execute fetches the step's module and runs its action.
func (a *Agent) execute(ctx context.Context, st *plan.Step) actions.Result {
	ctx, done := a.running.start(ctx, st.Service)
	defer done()
	return a.executeWith(ctx, st, false)
}

// executeWith runs a step's action, for real or as a dry run.
func (a *Agent) executeWith(ctx context.Context, st *plan.Step, dryRun bool) actions.Result {
	dir, err := a.moduleDir(ctx, st.ModuleDigest)
	if err != nil {
		return actions.Result{State: actions.Failed, ExitCode: -1, Err: err}
	}
	runner, err := a.runner(st.Run.Kind)
	if err != nil {
		return actions.Result{State: actions.Failed, ExitCode: -1, Err: err}
	}
	scratch := filepath.Join(a.cfg.DataDir, "steps", scratchName(st))
	// The files that hand attributes to the asset hold sensitive values:
	// they exist only while the step runs.
	defer scrubScratch(scratch)
	return runner.Run(ctx, actions.Request{
		Action: st.Run, ActionName: st.Action, Sensitive: st.Sensitive, DryRun: dryRun,
		ModuleDir: dir, Attributes: st.Attributes, Service: st.Service,
		Node: a.cfg.Name, StepID: st.ID, DefaultTimeout: a.cfg.DefaultTimeout, DataDir: a.cfg.DataDir,
		StepUser: a.cfg.StepUser, StepGroup: a.cfg.StepGroup,
		ScratchDir: scratch, Processes: stepProcesses{a: a, step: st.ID},
		Origin: st.Origin, Origins: st.Origins,
	})
}

// runner finds the runner of an action kind.
func (a *Agent) runner(kind string) (actions.Runner, error) {
	if a.cfg.Runner != nil {
		return a.cfg.Runner(kind)
	}
	return actions.Lookup(kind)
}

// attributeFiles are the files runners write to hand a step its
// attributes (actions: attributes.json, the container's env file, the
// puppet class and facts, the ansible extra vars and role play).
var attributeFiles = map[string]bool{
	actions.AttributesFile: true, "container.env": true, "dtk_class.pp": true, "dtk.json": true,
	"extra-vars.json": true, "dtk_role.yml": true,
}

// scrubScratch removes a step's attribute files once it has run.
func scrubScratch(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && attributeFiles[d.Name()] {
			os.Remove(p)
		}
		return nil
	})
}

// moduleDir returns the unpacked module for a digest, downloading and
// verifying it the first time.
func (a *Agent) moduleDir(ctx context.Context, digest string) (string, error) {
	hexd, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexd) != 64 || strings.ContainsAny(hexd, "/.") {
		return "", fmt.Errorf("bad module digest %q", digest)
	}
	dir := filepath.Join(a.cfg.DataDir, "modules", hexd)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	// Coordinators come and go (a failover): try them all, with backoff,
	// before calling it a failure.
	b := newBackoff()
	deadline := time.Now().Add(moduleFetchPatience)
	for {
		err := a.fetchModule(ctx, digest, dir)
		if err == nil {
			return dir, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return "", err
		}
		a.log.Warn("module download failed, retrying", "digest", digest, "err", err)
		if !b.wait(ctx) {
			return "", err
		}
	}
}

// moduleFetchPatience is how long a step waits for its module to download.
const moduleFetchPatience = time.Minute

func (a *Agent) fetchModule(ctx context.Context, digest, dir string) error {
	body, err := a.client.Blob(ctx, digest)
	if err != nil {
		return fmt.Errorf("fetch module %s: %w", digest, err)
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Join(a.cfg.DataDir, "modules"), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), body); err != nil {
		if !errors.Is(err, api.ErrTimeout) {
			a.client.Rotate() // a timeout has moved the client already
		}
		return fmt.Errorf("fetch module %s: %w", digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("fetch module: content is %s, expected %s", got, digest)
	}
	if _, err := tmp.Seek(0, 0); err != nil {
		return err
	}
	stage, err := os.MkdirTemp(filepath.Join(a.cfg.DataDir, "modules"), ".unpack-*")
	if err != nil {
		return err
	}
	if err := archive.Unpack(tmp, stage); err != nil {
		os.RemoveAll(stage)
		return fmt.Errorf("unpack module %s: %w", digest, err)
	}
	if err := os.Rename(stage, dir); err != nil {
		os.RemoveAll(stage)
		return err
	}
	return nil
}

// declaredOutputs turns what an asset set into the step's outputs: every
// declared output must be set (an error otherwise); JSON objects and lists
// stay JSON, anything else is a string.
func declaredOutputs(st *plan.Step, got map[string]string) (map[string]json.RawMessage, error) {
	if len(st.Outputs) == 0 {
		return nil, nil
	}
	out := map[string]json.RawMessage{}
	var missing []string
	for _, name := range st.Outputs {
		v, ok := got[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		t := strings.TrimSpace(v)
		if (strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[")) && json.Valid([]byte(t)) {
			out[name] = json.RawMessage(t)
			continue
		}
		b, _ := json.Marshal(v)
		out[name] = b
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("declared outputs not set: %s (write NAME=VALUE lines to $DTK_OUTPUTS)", strings.Join(missing, ", "))
	}
	return out, nil
}

// scratchName is a step's private folder name: its ID, plus the action
// when the action is not the ID's own (a create step's check).
func scratchName(st *plan.Step) string {
	name := strings.ReplaceAll(st.ID, "/", "_")
	if !strings.HasSuffix(st.ID, "/"+st.Action) {
		name += "_" + st.Action
	}
	return name
}

// failKey identifies a failed run: the same step at the same digest and
// generation is not retried.
func failKey(st *plan.Step) string { return fmt.Sprintf("%s#%d", st.Digest, st.Generation) }

// retryDelay is the wait before retry number try (1-based): the action's
// delay (default 5s), doubled for each retry after the first, at most 5m.
func retryDelay(a plan.Action, try int) time.Duration {
	d := 5 * time.Second
	if a.RetryDelaySeconds > 0 {
		d = time.Duration(a.RetryDelaySeconds) * time.Second
	}
	for i := 1; i < try && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}
