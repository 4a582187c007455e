package agent

import (
	"context"
	"strings"

	"github.com/dtkhq/dtk/actions"
	"github.com/dtkhq/dtk/plan"
)

// stepCheck is the check of a create step: its component's, else, for a
// container, the noop check (is the container there, running, with its
// configuration and image?). nil: the step has none.
func stepCheck(st *plan.Step) *plan.Action {
	switch {
	case st.Check != nil:
		return st.Check
	case st.Run.Kind == "container":
		return &plan.Action{Kind: plan.CheckNoop}
	}
	return nil
}

// checkRun is the step that runs st's check, and whether it runs as a dry
// run. A noop check is the create action itself as a dry run, in the
// create's scratch folder (Puppet's state and the outputs file a manifest
// manages are there: elsewhere they would look out of sync). A check of a
// kind that predicts (puppet, ansible, container) runs as a dry run too: a
// check must not converge. Others (bash, exec) run for real.
func (a *Agent) checkRun(st *plan.Step) (*plan.Step, bool) {
	c := stepCheck(st)
	chk := *st
	if c.Kind == plan.CheckNoop {
		if c.TimeoutSeconds > 0 {
			chk.Run.TimeoutSeconds = c.TimeoutSeconds
		}
		return &chk, true
	}
	chk.Run, chk.Action = *c, "check"
	r, err := a.runner(c.Kind)
	return &chk, err == nil && actions.CanPredict(r)
}

// runCheck runs a create step's check. drift says the component is not in
// its desired state: the check failed, or, run as a dry run, it predicted
// a change.
// It registers as running, so that a cancel of the service stops it.
func (a *Agent) runCheck(ctx context.Context, st *plan.Step) (res actions.Result, drift bool) {
	ctx, done := a.running.start(ctx, st.Service)
	defer done()
	return a.checkWith(ctx, st)
}

// checkWith runs st's check as runCheck does, without registering.
func (a *Agent) checkWith(ctx context.Context, st *plan.Step) (res actions.Result, drift bool) {
	chk, dry := a.checkRun(st)
	res = a.executeWith(ctx, chk, dry)
	return res, res.State == actions.Failed || dry && res.State == actions.Changed
}

// drifted runs a step's check and says what it found out of the desired
// state (nil: nothing).
func (a *Agent) drifted(ctx context.Context, st *plan.Step) []string {
	res, drift := a.runCheck(ctx, st)
	if ctx.Err() != nil || !drift {
		return nil
	}
	found := checkFindings(res)
	a.log.Warn("drift detected, repairing", "step", st.ID, "check", stepCheck(st).Kind, "state", res.State,
		"exit", res.ExitCode, "found", strings.Join(found, "; "))
	return found
}

// checkFindings is what a check that found drift saw: the changes its dry
// run predicted, else the end of its output (or its error).
func checkFindings(res actions.Result) []string {
	if len(res.Changes) > 0 {
		return res.Changes
	}
	return strings.Split(checkTail(res), "\n")
}

// driftPrefix starts the lines of a repair's report that say what the
// check found; dtkctl service status shows them.
const driftPrefix = "dtk: drift: "

// repairOutput is the output of a run that repaired drift: the end of the
// run's own output, then what the check found, within the report's tail.
// The findings come last because a coordinator that keeps less of a
// report's output keeps its end.
func repairOutput(found []string, output string) string {
	var b strings.Builder
	for _, f := range found {
		b.WriteString(driftPrefix + f + "\n")
	}
	note := tailString(b.String(), actions.TailBytes/2)
	if output != "" && !strings.HasSuffix(output, "\n") {
		output += "\n"
	}
	return tailString(output, actions.TailBytes-len(note)) + note
}
