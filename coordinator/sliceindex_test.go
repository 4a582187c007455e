package coordinator

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// fullWalkSlice is a node's slice computed the slow way: every service's
// plan (or, for a node a rollout has not reached, the plan it keeps).
func fullWalkSlice(s *State, node string) []*plan.Step {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []*plan.Step{}
	for _, svc := range sortedValues(s.data.Services) {
		p := svc.Plan
		if p == nil {
			continue
		}
		if waitingAgents(svc)[node] {
			p = svc.Rollout.From
		}
		for _, np := range p.Nodes {
			if np.Agent == node {
				out = append(out, np.Steps...)
			}
		}
	}
	return out
}

func checkSlices(t *testing.T, s *State, what string) {
	t.Helper()
	for _, n := range s.Nodes() {
		want, _ := json.Marshal(fullWalkSlice(s, n.Name))
		got, _ := json.Marshal(s.Slice(n.Name).Steps)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: %s's indexed slice differs from a full walk:\n got %s\nwant %s", what, n.Name, got, want)
		}
	}
}

func TestSliceIndex_MatchesAFullWalkThroughRolloutsDeletesAndRestore(t *testing.T) {
	h := rolloutHarness(t, 4, &plan.Rollout{MaxParallel: "1", Canary: "1"})
	st := h.fsm.State()
	checkSlices(t, st, "generation 1")
	// A second service on the same nodes.
	h.mustApply(StageServiceType, StageServiceCmd{Name: "other", Module: "g", Version: "1.0.0", Template: "t", Time: 5})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "other", Time: 5, Rollout: &plan.RolloutOverride{AllAtOnce: true}})
	checkSlices(t, st, "two services")
	if n := len(st.Slice("w1").Steps); n != 2 {
		t.Fatalf("w1 runs %d steps of two services", n)
	}
	h.redeploy("new", nil, 10)
	checkSlices(t, st, "rollout started")
	for i, a := range h.rollout().Order {
		h.reportSlice(a, plan.StepOK, int64(11+i))
		checkSlices(t, st, "rollout step")
	}
	// A snapshot restored mid-way rebuilds the index.
	h.redeploy("newer", nil, 20)
	snap, _ := h.fsm.Snapshot()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t)
	if err := h2.fsm.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	checkSlices(t, h2.fsm.State(), "restored")
	// Deleting a service takes it out of the slices once its delete ran.
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "other", Time: 30})
	checkSlices(t, st, "deleting")
	for _, a := range []string{"w1", "w2", "w3", "w4"} {
		for _, s := range st.Slice(a).Steps {
			if s.Service == "other" {
				h.seq++
				h.mustApply(ReportsType, ReportsCmd{Time: 31, Reports: []plan.Report{{ID: a + ":" + itoa(uint64(h.seq)), Node: a, Service: "other",
					StepID: s.ID, Action: s.Action, Generation: s.Generation, Digest: s.Digest, State: plan.StepOK}}})
			}
		}
	}
	if st.Service("other") != nil {
		t.Fatal("service other not removed")
	}
	checkSlices(t, st, "deleted")
}
