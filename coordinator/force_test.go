package coordinator

import (
	"errors"
	"slices"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

func planStep(t *testing.T, st *State, id string) *plan.Step {
	t.Helper()
	for _, np := range st.Service("s").Plan.Nodes {
		for _, s := range np.Steps {
			if s.ID == id {
				return s
			}
		}
	}
	return nil
}

// A forced deploy marks the create steps it names with its index, which
// later deploys keep; a force naming nothing deployed changes nothing.
func TestFSM_DeployForce_MarksNamedStepsAndKeepsThem(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Force: &api.Part{Component: "two"}})
	forced := h.index
	st := h.fsm.State()
	for id, want := range map[string]uint64{"s/a/one/create": 0, "s/a/two/create": forced, "s/b/three/create": 0} {
		if got := planStep(t, st, id).Force; got != want {
			t.Errorf("%s: force %d, want %d", id, got, want)
		}
	}
	gen := st.Service("s").Generation
	for _, f := range []*api.Part{{Node: "c"}, {Component: "four"}, {Node: "b", Component: "two"}} {
		if err, _ := h.apply(DeployServiceType, DeployServiceCmd{Name: "s", Force: f}).(error); !errors.Is(err, ErrNotFound) {
			t.Errorf("force %+v: %v, want not found", f, err)
		}
	}
	if g := st.Service("s").Generation; g != gen {
		t.Errorf("a refused force deployed generation %d", g)
	}
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Force: &api.Part{Node: "n2"}})
	if got := planStep(t, st, "s/a/two/create").Force; got != forced {
		t.Errorf("two: force %d after another deploy, want %d", got, forced)
	}
	if got := planStep(t, st, "s/b/three/create").Force; got != h.index {
		t.Errorf("three: force %d, want %d", got, h.index)
	}
}

// A restore takes a partial delete back: the next plan has the component
// again; one that matches nothing removed is refused.
func TestFSM_DeployRestore_BringsBackADeletedComponent(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "s", Component: "two"})
	h.report("n1", "s/a/two/delete", 1, plan.StepOK)
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	st := h.fsm.State()
	if planStep(t, st, "s/a/two/create") != nil || !slices.Equal(st.Service("s").Removed, []string{"a/two"}) {
		t.Fatalf("after the partial delete: removed %v", st.Service("s").Removed)
	}
	if err, _ := h.apply(DeployServiceType, DeployServiceCmd{Name: "s", Restore: &api.Part{Component: "one"}}).(error); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restore of what was not removed: %v", err)
	}
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Restore: &api.Part{Node: "n1", Component: "two"}})
	if planStep(t, st, "s/a/two/create") == nil || len(st.Service("s").Removed) != 0 {
		t.Fatalf("after restore: removed %v, two in plan: %v", st.Service("s").Removed, planStep(t, st, "s/a/two/create") != nil)
	}
	// A whole node, by its template node's name.
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "s", Node: "b"})
	h.report("n2", "s/b/three/delete", 2, plan.StepOK)
	if !slices.Equal(st.Service("s").Removed, []string{"b"}) {
		t.Fatalf("after deleting node b: removed %v", st.Service("s").Removed)
	}
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Restore: &api.Part{Node: "b"}})
	if planStep(t, st, "s/b/three/create") == nil || len(st.Service("s").Removed) != 0 {
		t.Fatalf("after restoring node b: removed %v", st.Service("s").Removed)
	}
}

// A restore whose deploy is refused leaves the removed part removed.
func TestFSM_DeployRestore_RefusedDeployKeepsItRemoved(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "s", Component: "two"})
	bad := &plan.RolloutOverride{MaxParallel: "-1"}
	if err, _ := h.apply(DeployServiceType, DeployServiceCmd{Name: "s", Rollout: bad, Restore: &api.Part{Component: "two"}}).(error); err == nil {
		t.Fatal("a deploy with a bad rollout was accepted")
	}
	if got := h.fsm.State().Service("s").Removed; !slices.Equal(got, []string{"a/two"}) {
		t.Fatalf("after a refused restore: removed %v", got)
	}
}

// A skipped step's report keeps the output and exit code of its last run.
func TestFSM_Reports_SkippedKeepsLastRunOutput(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	two := planStep(t, h.fsm.State(), "s/a/two/create")
	h.mustApply(ReportsType, ReportsCmd{Reports: []plan.Report{{ID: "n1:1", Node: "n1", Service: "s", StepID: two.ID, Action: "create",
		Generation: two.Generation, Digest: two.Digest, State: plan.StepOK, Output: "installed\n", DurationMs: 12, StartedAt: 5, FinishedAt: 17}}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	two = planStep(t, h.fsm.State(), "s/a/two/create")
	h.mustApply(ReportsType, ReportsCmd{Reports: []plan.Report{{ID: "n1:2", Node: "n1", Service: "s", StepID: two.ID, Action: "create",
		Generation: two.Generation, Digest: two.Digest, State: plan.StepSkipped}}})
	for _, n := range h.fsm.State().Status("s").Nodes {
		for _, s := range n.Steps {
			if s.ID == two.ID && (s.State != plan.StepSkipped || s.Output != "installed\n" || s.DurationMs != 12 || s.FinishedAt != 17) {
				t.Errorf("skipped step status = %+v", s)
			}
		}
	}
}
