package coordinator

import (
	"fmt"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// BenchmarkFSM_Reports_450_1000Nodes times the Apply of one report batch
// as the write path commits them (450 reports of steps already converged
// at the same digest, as `make bench`'s write path sends) on a service of
// 1,000 nodes.
func BenchmarkFSM_Reports_450_1000Nodes(b *testing.B) {
	h := groupHarnessOf(b, 1000)
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	var steps []*plan.Step
	for _, np := range h.fsm.State().Service("g").Plan.Nodes {
		steps = append(steps, np.Steps...)
	}
	batch := func(seq int) ReportsCmd {
		c := ReportsCmd{Time: 3}
		for i := range 450 {
			st := steps[i%len(steps)]
			c.Reports = append(c.Reports, plan.Report{ID: fmt.Sprintf("%s:%d:%d", st.Node, seq, i), Node: st.Node, Service: "g",
				StepID: st.ID, Action: st.Action, Generation: st.Generation, Digest: st.Digest, State: plan.StepOK})
		}
		return c
	}
	h.mustApply(ReportsType, batch(0))
	b.ResetTimer()
	for i := 1; b.Loop(); i++ {
		h.mustApply(ReportsType, batch(i))
	}
}
