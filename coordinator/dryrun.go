package coordinator

import (
	"fmt"
	"maps"
	"slices"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// OpStatus is an operation as the API answers it: redacted, and for a dry
// run with the service's agents clustered by the change the deploy would
// make on each (docs/dry-run.md). Brief leaves out the steps and the
// clusters (api.BriefParam).
func (s *State) OpStatus(op *plan.Op, brief bool) *api.OpStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := &api.OpStatus{Op: *s.redactOpLocked(op, brief)}
	if op.Kind == plan.OpDryRun && !brief {
		out.Clusters, out.BaseGeneration, _ = s.dryRunClustersLocked(op, false)
	}
	return out
}

// DryRunClusters is a dry run's clusters as the API answers them (GET
// /v1/ops/{id}/clusters).
func (s *State) DryRunClusters(op *plan.Op) *api.DryRunClusters {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := &api.DryRunClusters{Op: op.ID, Service: op.Service, Index: op.Index}
	out.Clusters, out.BaseGeneration, out.Runs = s.dryRunClustersLocked(op, true)
	return out
}

// dryRunClustersLocked clusters a dry run's agents: the change from the
// service's current plan to the plan the dry run compiled (the steps it
// asked each agent to predict), and the predictions received so far. It
// reads the state and the op, and changes neither: the clusters are
// computed for each answer, not stored (plan.Clusters takes about 20 ms on
// 1,000 agents). runs are the steps predicted unchanged that the deploy
// may run all the same, with why (plan.PredictedReruns), when withRuns.
func (s *State) dryRunClustersLocked(op *plan.Op, withRuns bool) (cs []plan.Cluster, base uint64, runs map[string]string) {
	var old *plan.Plan
	if svc := s.data.Services[op.Service]; svc != nil && svc.Plan != nil {
		old = svc.Plan
	}
	next := &plan.Plan{Service: op.Service}
	for _, agent := range slices.Sorted(maps.Keys(op.Steps)) {
		np := &plan.NodePlan{Agent: agent, Steps: op.Steps[agent]}
		if len(np.Steps) > 0 {
			np.Name = np.Steps[0].Node
		}
		next.Nodes = append(next.Nodes, np)
	}
	// Agents left out because they were down are in neither the dry run's
	// plan nor its answers: leave them out of the current plan too (else
	// their steps would read as removed) and count them as unpredicted.
	skipped := map[string]bool{}
	for _, a := range op.Skipped {
		skipped[a] = true
	}
	if old != nil {
		base = old.Generation
		if len(skipped) > 0 {
			cp := *old
			cp.Nodes = nil
			for _, np := range old.Nodes {
				if !skipped[np.Agent] {
					cp.Nodes = append(cp.Nodes, np)
				}
			}
			old = &cp
		}
	}
	preds := map[string]map[string]string{}
	for _, r := range op.Results {
		if r.Prediction == "" {
			continue
		}
		m := preds[r.Node]
		if m == nil {
			m = map[string]string{}
			preds[r.Node] = m
		}
		m[r.StepID] = r.Prediction
	}
	cs = plan.Clusters(old, next, preds)
	if len(op.Skipped) > 0 {
		cs = withDown(cs, op.Skipped)
	}
	if withRuns { // a status poll does not show them: not computed for it
		runs = plan.PredictedReruns(old, next, preds)
	}
	return cs, base, runs
}

// withDown adds the agents that were down to the cannot-predict cluster,
// saying how many did not answer and how many were down.
func withDown(cs []plan.Cluster, down []string) []plan.Cluster {
	i := -1
	for j := range cs {
		if cs[j].Key == plan.ClusterCannotPredict {
			i = j
		}
	}
	if i < 0 {
		cs = append(cs, plan.Cluster{Key: plan.ClusterCannotPredict})
		i = len(cs) - 1
	}
	c := &cs[i]
	c.Summary = nil
	if n := len(c.Agents); n > 0 {
		c.Summary = append(c.Summary, fmt.Sprintf("cannot predict: %s did not answer", nodes(n)))
	}
	c.Summary = append(c.Summary, fmt.Sprintf("cannot predict: %s down when the dry run started", nodes(len(down))))
	c.Agents = append(c.Agents, down...)
	slices.Sort(c.Agents)
	plan.SortClusters(cs)
	return cs
}

func nodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}
