package coordinator

import (
	"fmt"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// statusDerived is the service state as the status shows it: what
// deriveState must agree with (it skips building the status).
func statusDerived(base string, st *api.ServiceStatus) string {
	if !derivable(base) {
		return base
	}
	var t stepTally
	for _, n := range st.Nodes {
		downMember := n.Status == plan.NodeDown && strings.Contains(n.TemplateNode, "[")
		for _, s := range n.Steps {
			t.add(s.State, downMember)
		}
	}
	return t.state(base)
}

// groupDeployed is a harness with service "g" deployed on n group
// workers and db1.
func groupDeployed(t testing.TB, n int) *fsmHarness {
	h := newHarness(t)
	for _, e := range groupEntries(n) {
		h.mustApply(e.typ, e.cmd)
	}
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	return h
}

// The service state that report batches derive agrees with the status
// shown, step by step through a deploy: pending, some done, a group
// member down, a failure, a stale report of an older digest, all done.
func TestState_DeriveState_AgreesWithStatus(t *testing.T) {
	h := groupDeployed(t, 4)
	st := h.fsm.State()
	var steps []*plan.Step
	for _, np := range st.Service("g").Plan.Nodes {
		steps = append(steps, np.Steps...)
	}
	report := func(seq int, step *plan.Step, state, digest string) {
		h.mustApply(ReportsType, ReportsCmd{Time: 3, Reports: []plan.Report{{ID: fmt.Sprintf("%s:%d", step.Node, seq), Node: step.Node, Service: "g",
			StepID: step.ID, Action: step.Action, Generation: step.Generation, Digest: digest, State: state}}})
	}
	check := func(when string) {
		t.Helper()
		st.mu.RLock()
		defer st.mu.RUnlock()
		svc := st.data.Services["g"]
		for _, base := range []string{plan.StateDeploying, plan.StateConverged, plan.StateFailed, plan.StateDeleting, plan.StateStaged} {
			if got, want := st.deriveState(base, svc), statusDerived(base, st.statusLocked(svc)); got != want {
				t.Fatalf("%s, from %s: derived %s, the status says %s", when, base, got, want)
			}
		}
	}
	check("nothing reported")
	for i, s := range steps[:len(steps)/2] {
		report(i+1, s, plan.StepOK, s.Digest)
	}
	check("half reported")
	last := steps[len(steps)-1]
	report(100, last, plan.StepOK, "sha256:older")
	check("a report of another digest")
	h.mustApply(NodeStatusType, NodeStatusCmd{Time: 4, Updates: []NodeStatusUpdate{{Name: last.Node, Status: plan.NodeDown}}})
	check("a group member down")
	report(101, last, plan.StepFailed, last.Digest)
	check("a down member failed")
	for i, s := range steps {
		report(200+i, s, plan.StepOK, s.Digest)
	}
	check("all done")
	if got := st.Service("g").State; got != plan.StateConverged {
		t.Fatalf("service state %s after every step reported ok, want converged", got)
	}
}

// Refreshing the state of a 1,000-node service, which every report batch
// does for each service it touches on every replica, allocates nothing
// (building its status for it allocated a node and step status per agent).
func TestState_RefreshState_NoAllocations(t *testing.T) {
	h := groupDeployed(t, 1000)
	st := h.fsm.State()
	st.mu.Lock()
	defer st.mu.Unlock()
	svc := st.ownService("g")
	if allocs := testing.AllocsPerRun(20, func() { st.refreshState(svc) }); allocs != 0 {
		t.Fatalf("refreshState allocated %.0f times, want 0", allocs)
	}
}
