package coordinator

import (
	"errors"
	"reflect"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// Several agents' results in one entry are applied as each would be
// alone: results appended in order, finals recorded, a resend after the
// final ignored, an unknown op refused without failing the others.
func TestFSM_OpResultsBatch_AppliesEachAgentsResults(t *testing.T) {
	h, op := dryRunHarness(t)
	rep := func(agent string) []plan.Report {
		st := op.Steps[agent][0]
		return []plan.Report{{Node: agent, Service: "g", StepID: st.ID, Action: st.Action, State: plan.StepOK, Prediction: plan.PredictNoChange}}
	}
	resp := h.mustApply(OpResultsBatchType|IgnoreUnknownFlag, OpResultsBatchCmd{Results: []OpResultsCmd{
		{ID: "op1", Node: "w0001", Reports: rep("w0001"), Final: true, Time: 5},
		{ID: "op1", Node: "w0002", Reports: rep("w0002"), Time: 5},
		{ID: "nope", Node: "w0003", Reports: rep("w0003"), Final: true, Time: 5},
		{ID: "op1", Node: "w0001", Reports: rep("w0001"), Final: true, Time: 5}, // a resend
	}}).([]any)
	if len(resp) != 4 || !errors.Is(resp[2].(error), ErrNotFound) {
		t.Fatalf("answers %v", resp)
	}
	for _, i := range []int{0, 1, 3} {
		if _, ok := resp[i].(*plan.Op); !ok {
			t.Fatalf("answer %d: %v", i, resp[i])
		}
	}
	got := h.fsm.State().Op("op1")
	var nodes []string
	for _, r := range got.Results {
		nodes = append(nodes, r.Node)
	}
	if !reflect.DeepEqual(nodes, []string{"w0001", "w0002"}) || !reflect.DeepEqual(got.Done, []string{"w0001"}) || got.Index != h.index {
		t.Fatalf("results from %v, done %v, index %d", nodes, got.Done, got.Index)
	}
	// What a reader held before is not changed by the next entry.
	held := got
	h.mustApply(OpResultsBatchType|IgnoreUnknownFlag, OpResultsBatchCmd{Results: []OpResultsCmd{{ID: "op1", Node: "w0002", Final: true, Time: 6}}})
	if len(held.Done) != 1 || len(h.fsm.State().Op("op1").Done) != 2 {
		t.Fatalf("held %v, now %v", held.Done, h.fsm.State().Op("op1").Done)
	}
}
