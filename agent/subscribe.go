package agent

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/dtkhq/dtk/actions"

	"github.com/dtkhq/dtk/plan"
)

// runAgain says whether a step whose digest is unchanged since its last
// run (rec) runs again in this converge, why, and what it runs: once per
// force request (deploy --force), its create action; after a step it
// subscribes to changed something in this converge, its refresh action
// (create when it has none).
func (a *Agent) runAgain(st *plan.Step, rec *stepRecord) (run *plan.Step, why string) {
	if st.Force > rec.Force {
		return st, "forced"
	}
	var changed []string
	for _, id := range st.Subscribe {
		if a.changed[id] {
			changed = append(changed, "component."+stepInstance(id))
		}
	}
	if len(changed) == 0 {
		return st, ""
	}
	why = "refreshed: " + strings.Join(changed, ", ") + " changed"
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
