package coordinator

import (
	"encoding/json"
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

// BenchmarkFSM_ReportOutput_1000Nodes times a replica's Apply of a report
// that brings a new output which 1,000 agents' steps read (a node group
// whose members wait for the db's address): in-apply recompiles the
// service of 1,000 nodes in the report's Apply, as every replica did
// before leader recompiles; leader-marks only marks it (the leader's
// compile and its RecompileType entry are not timed: they are one compile
// on one coordinator instead of one per replica).
func BenchmarkFSM_ReportOutput_1000Nodes(b *testing.B) {
	for _, mode := range []string{"in-apply", "leader-marks"} {
		b.Run(mode, func(b *testing.B) {
			m := groupModule()
			m.Components["c"].Outputs = []*plan.Output{{Name: "v"}}
			m.Templates["t"].Nodes[1].Components[0].Attributes["msg"] = plan.Expr{Source: `node.db.output.pg.v`}
			h := newHarness(b)
			for _, e := range groupEntries(1000) {
				if e.typ == PutModuleType {
					e.cmd = PutModuleCmd{Module: m}
				}
				h.mustApply(e.typ, e.cmd)
			}
			if mode == "leader-marks" {
				h.apply(RecompileType, RecompileCmd{})
			}
			h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
			var pg *plan.Step
			for _, np := range h.fsm.State().Service("g").Plan.Nodes {
				if np.Agent == "db1" {
					pg = np.Steps[0]
				}
			}
			report := func(i int) ReportsCmd {
				return ReportsCmd{Time: 3, Reports: []plan.Report{{ID: fmt.Sprintf("db1:%d", i+1), Node: "db1", Service: "g",
					StepID: pg.ID, Action: pg.Action, Generation: pg.Generation, Digest: pg.Digest, State: plan.StepOK,
					Outputs: map[string]json.RawMessage{"v": json.RawMessage(fmt.Sprintf(`"10.0.0.%d"`, i%250))}}}}
			}
			h.mustApply(ReportsType, report(0))
			b.ResetTimer()
			for i := 1; b.Loop(); i++ {
				h.mustApply(ReportsType, report(i))
			}
		})
	}
}
