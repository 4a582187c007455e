package coordinator

import (
	"fmt"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// BenchmarkFSM_Deploy_1000Nodes times one deploy entry's Apply (compile,
// plan, history record) over a node group of 1,000 agents: every replica
// pays it.
func BenchmarkFSM_Deploy_1000Nodes(b *testing.B) {
	h := newHarness(b)
	for i := range 1000 {
		h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: fmt.Sprintf("w%04d", i), Labels: map[string]string{"role": "w"}}, Time: 1})
	}
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "db1", Labels: map[string]string{"role": "db"}}, Time: 1})
	h.mustApply(PutModuleType, PutModuleCmd{Module: groupModule()})
	h.mustApply(StageServiceType, StageServiceCmd{Name: "g", Module: "g", Version: "1.0.0", Template: "t", Time: 2})
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	}
}
