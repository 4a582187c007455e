package coordinator

import (
	"sort"
	"strings"

	"github.com/dtkhq/dtk/plan"
)

// sliceIndex says what each agent runs of each service now: the node plans
// of the service's plan, or (for a node a rollout has not reached) of the
// plan it keeps. It is derived from the services, never stored: Apply
// updates the services it changed (the ones it owns, cow.go) at its end,
// and Restore rebuilds it. A plan long-poll then answers in the size of
// its node's slice, not of every service's plan.
type sliceIndex struct {
	byNode map[string]map[string][]*plan.NodePlan // agent → service → node plans
	bySvc  map[string]indexedService
}

// indexedService is what the index last saw of a service.
type indexedService struct {
	plan    *plan.Plan
	rollout *plan.RolloutState
	gen     uint64
	agents  []string
	// waiting are the agents a rollout has not reached (they keep From).
	waiting map[string]bool
}

func newSliceIndex() *sliceIndex {
	return &sliceIndex{byNode: map[string]map[string][]*plan.NodePlan{}, bySvc: map[string]indexedService{}}
}

// update indexes svc (nil: a service that is gone) under name.
func (x *sliceIndex) update(name string, svc *plan.Service) {
	old, had := x.bySvc[name]
	if svc != nil && had && old.plan == svc.Plan && old.rollout == svc.Rollout && old.gen == svc.Generation {
		return
	}
	for _, a := range old.agents {
		if m := x.byNode[a]; m != nil {
			delete(m, name)
			if len(m) == 0 {
				delete(x.byNode, a)
			}
		}
	}
	delete(x.bySvc, name)
	if svc == nil || svc.Plan == nil {
		return
	}
	waiting := waitingAgents(svc)
	var agents []string
	add := func(np *plan.NodePlan) {
		m := x.byNode[np.Agent]
		if m == nil {
			m = map[string][]*plan.NodePlan{}
			x.byNode[np.Agent] = m
		}
		if _, ok := m[name]; !ok {
			agents = append(agents, np.Agent)
		}
		m[name] = append(m[name], np)
	}
	for _, np := range svc.Plan.Nodes {
		if !waiting[np.Agent] {
			add(np)
		}
	}
	if len(waiting) > 0 && svc.Rollout.From != nil {
		for _, np := range svc.Rollout.From.Nodes {
			if waiting[np.Agent] {
				add(np)
			}
		}
	}
	x.bySvc[name] = indexedService{plan: svc.Plan, rollout: svc.Rollout, gen: svc.Generation, agents: agents, waiting: waiting}
}

// services lists the services agent runs something of, sorted.
func (x *sliceIndex) services(agent string) []string {
	m := x.byNode[agent]
	out := make([]string, 0, len(m))
	for name := range m {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// rebuildSliceIndex indexes every service (after a restore).
func (s *State) rebuildSliceIndex() {
	x := newSliceIndex()
	for name, svc := range s.data.Services {
		x.update(name, svc)
	}
	s.slices = x
}

// reindexOwned updates the index for the services this Apply changed.
func (s *State) reindexOwned() {
	for key := range s.owned {
		if name, ok := strings.CutPrefix(key, "svc/"); ok {
			s.slices.update(name, s.data.Services[name])
		}
	}
}
