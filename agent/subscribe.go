package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dtkhq/dtk/actions"

	"github.com/dtkhq/dtk/plan"
)

// runAgain says whether a step whose digest is unchanged since its last
// run (rec) runs again in this converge, why, and what it runs: once per
// force request (deploy --force), its create action; after a step it
// subscribes to changed something (rec.Refresh), its refresh action
// (create when it has none).
func (a *Agent) runAgain(st *plan.Step, rec *stepRecord) (run *plan.Step, why string) {
	if st.Force > rec.Force {
		return st, "forced"
	}
	if len(rec.Refresh) == 0 {
		return st, ""
	}
	why = "refreshed: component." + strings.Join(rec.Refresh, ", component.") + " changed"
	if st.RefreshRun == nil {
		return st, why
	}
	// The refresh action runs in the create step's place: its report is
	// the create step's, with no outputs of its own (the create run's
	// stay).
	r := *st
	r.Action, r.Run, r.Outputs = st.RefreshAction, *st.RefreshRun, nil
	return &r, why + " (ran " + st.RefreshAction + ")"
}

// subscribers maps each step of a slice to the steps that subscribe to it.
func subscribers(sl *plan.Slice) map[string][]string {
	out := map[string][]string{}
	for _, st := range sl.Steps {
		for _, id := range st.Subscribe {
			out[id] = append(out[id], st.ID)
		}
	}
	return out
}

// notifySubscribers marks the records of the steps that subscribe to step
// id, which just changed something, in the change that records id's run:
// each runs its refresh at its turn (a.mu held). A subscriber without a
// record has not run yet, and runs anyway.
func (a *Agent) notifySubscribers(id string, change *recordChange) {
	inst := stepInstance(id)
	for _, sub := range a.subscribers[id] {
		rec := a.state.Steps[sub]
		if rec == nil || slices.Contains(rec.Refresh, inst) {
			continue
		}
		next := *rec // records handed out are not changed
		next.Refresh = append(slices.Clone(rec.Refresh), inst)
		a.state.Steps[sub] = &next
		if err := change.putRecord(sub, &next); err != nil {
			a.log.Error("encode step record", "step", sub, "err", err)
		}
	}
}

// stepInstance is the instance part of a step ID
// "service/node/instance/action".
func stepInstance(id string) string {
	parts := strings.Split(id, "/")
	if len(parts) < 4 {
		return id
	}
	return parts[len(parts)-2]
}

// lastLog is the log file of a step's last run: its refresh action's when
// that ran after its create action.
func (a *Agent) lastLog(st *plan.Step) string {
	path := filepath.Join(a.cfg.DataDir, "steps", scratchName(st), actions.LogFile)
	if st.RefreshAction == "" {
		return path
	}
	r := *st
	r.Action = st.RefreshAction
	refresh := filepath.Join(a.cfg.DataDir, "steps", scratchName(&r), actions.LogFile)
	if fr, err := os.Stat(refresh); err == nil {
		if fc, err := os.Stat(path); err != nil || fr.ModTime().After(fc.ModTime()) {
			return refresh
		}
	}
	return path
}
