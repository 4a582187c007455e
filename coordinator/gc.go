package coordinator

import (
	"github.com/dtkhq/dtk/plan"
)

// forgetNode drops a node and everything kept for it (its indexes and
// report sequence), and takes it out of every plan: a live service is
// compiled again without it (a node block moves to another matching agent,
// a node group shrinks), and a service being deleted stops waiting for it.
// Watchers of the node (its long-polls) wake and find it gone.
func (s *State) forgetNode(idx uint64, name string) []string {
	delete(s.data.Nodes, name)
	delete(s.data.SliceIndex, name)
	delete(s.data.OpsIndex, name)
	delete(s.data.NodeSeq, name)
	keys := []string{nodeKey(name), nodeOpsKey(name)}
	for _, svcName := range sortedKeys(s.data.Services) {
		svc := s.data.Services[svcName]
		if svc.Plan == nil || !planHasAgent(svc.Plan, name) {
			continue
		}
		svc = s.ownService(svcName)
		var next *plan.Plan
		if svc.State != plan.StateDeleting {
			if p, viol := s.compile(svc, svc.Generation); viol == nil {
				next = withoutAgent(withRemovals(svc.Plan, p, svc.Generation), name)
			}
		}
		if next == nil {
			// Being deleted, or no longer compiling without the node
			// (a node block no other agent matches): the node's part goes.
			next = withoutAgent(svc.Plan, name)
		}
		for _, np := range svc.Plan.Nodes {
			if np.Agent != name {
				continue
			}
			for _, st := range np.Steps {
				delete(s.data.Reports, st.ID)
				delete(s.data.Outputs, st.ID)
			}
		}
		keys = append(keys, s.setPlan(idx, svc, next)...)
		s.refreshState(svc)
		if svc.State == plan.StateDeleting && !svc.DeleteRecursive && isDeletePlan(svc.Plan) && s.deleteDone(svc) {
			s.removeService(idx, svc, &keys)
		}
	}
	// setPlan moved the forgotten node's slice index: drop it again.
	delete(s.data.SliceIndex, name)
	return keys
}

func planHasAgent(p *plan.Plan, agent string) bool {
	for _, np := range p.Nodes {
		if np.Agent == agent {
			return true
		}
	}
	return false
}

// withoutAgent is a copy of p without the agent's node plans.
func withoutAgent(p *plan.Plan, agent string) *plan.Plan {
	cp := *p
	cp.Nodes = nil
	for _, np := range p.Nodes {
		if np.Agent != agent {
			cp.Nodes = append(cp.Nodes, np)
		}
	}
	return &cp
}
