package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/plan"
)

// Recompiles on the leader.
//
// When a report brings an output that a service's steps read, or converges
// a step that another node's step waits for, the service's plan must be
// compiled again at the same generation. That used to happen inside the
// report batch's Apply, on every replica, under the write lock — and during
// a rollout a batch converges steps every few milliseconds. Now, once every
// coordinator can apply RecompileType (FeaturePlannedRecompile), the FSM
// only marks the services to recompile (stateData.Recompile: service →
// index of the entry that marked it, replicated like the rest of the
// state), and the leader's recompileLoop compiles them, parents first, and
// commits the changed plans and the marks it has dealt with in one entry:
//
//   - A marked service is not converged (refreshState): what it runs may
//     still change, so `deploy --wait` and the converged event wait for the
//     recompile, as they did when it ran in the report's Apply.
//   - ShapeIndex is CompileIndex without the report-driven changes (a
//     step's converged digest, its outputs). A recompile read before a
//     report is still accepted: that report marked the service again (at a
//     later index than the read), so the mark stays and the leader compiles
//     it once more. Any other change the compiler reads (a deploy, a
//     module, a node, another plan stored) makes it stale, and the leader
//     compiles it again.
//   - After planTries stale tries the leader commits the recompile to run in
//     Apply, which cannot be stale, so a recompile always lands.
//
// The same ShapeIndex lets a planned deploy land during heavy report traffic
// (planner.go): accepted when only reports moved since its read, it marks
// the service so that the reports it did not see are compiled in.
//
// Like LeaderPlans, ShapeIndex is the same on every replica only from a
// common point: the first RecompileType entry in the log only turns it on
// (LeaderRecompiles), on every replica at the same index.

// FeaturePlannedRecompile is the capability of applying RecompileType, and
// of marking instead of recompiling in a report's Apply once it is on.
const FeaturePlannedRecompile = "planned-recompile"

// RecompileCmd holds services' plans compiled again at their generations,
// parents first, as the leader compiled them against the state as of
// ShapeIndex (a child against its parent's new plan, as the FSM's own
// recompile did in one entry), and the marked services it compiled (Done,
// as of Index: their marks go unless a later entry set them again).
// InApply asks the FSM to compile Done (the fallback after stale tries).
// An entry with neither only turns leader recompiles on.
type RecompileCmd struct {
	Services   []RecompiledService `json:"services,omitempty"`
	Done       []string            `json:"done,omitempty"`
	Index      uint64              `json:"index,omitempty"`
	ShapeIndex uint64              `json:"shape_index,omitempty"`
	InApply    bool                `json:"in_apply,omitempty"`
	Time       int64               `json:"time,omitempty"`
}

// RecompiledService is one service's recompile: its plan at Generation
// (none with InApply).
type RecompiledService struct {
	Name       string     `json:"name"`
	Generation uint64     `json:"generation"`
	Plan       *plan.Plan `json:"plan,omitempty"`
}

// errRecompileStarts answers the entry that turns leader recompiles on.
var errRecompileStarts = errors.New("leader recompiles start here")

// recompile applies a RecompileCmd.
func (s *State) recompile(idx uint64, c *RecompileCmd) (any, []string) {
	if !s.data.LeaderRecompiles {
		// Until now reports recompiled in Apply: nothing is left to do.
		s.data.LeaderRecompiles = true
		s.data.ShapeIndex = idx
		s.compileInputsChanged()
		return fmt.Errorf("%w: %w at index %d", ErrStalePlan, errRecompileStarts, idx), nil
	}
	if !c.InApply && s.data.ShapeIndex != c.ShapeIndex {
		return fmt.Errorf("%w: recompiled at index %d; the compiler's inputs changed at %d", ErrStalePlan, c.ShapeIndex, s.data.ShapeIndex), nil
	}
	s.setAt(c.Time, "", "")
	services := c.Services
	if c.InApply {
		services = nil
		for _, name := range c.Done {
			if svc := s.data.Services[name]; svc != nil {
				services = append(services, RecompiledService{Name: name, Generation: svc.Generation})
			}
		}
	}
	var keys []string
	changed := map[string]bool{}
	for _, r := range services {
		svc := s.data.Services[r.Name]
		if svc == nil || svc.Plan == nil || svc.State == plan.StateDeleting || svc.Generation != r.Generation {
			continue // gone, going, or deployed since (with every output)
		}
		p := r.Plan
		if c.InApply {
			var viol plan.Violations
			if p, viol = s.compile(svc, svc.Generation); viol != nil {
				continue // as before: a recompile that does not compile is dropped
			}
			p = withRemovals(svc.Plan, p, svc.Generation)
		}
		if p == nil || samePlan(p, svc.Plan) {
			continue
		}
		svc = s.ownService(svc.Name)
		keys = append(keys, s.setPlan(idx, svc, p)...)
		changed[svc.Name] = true
	}
	upTo := c.Index
	if c.InApply {
		upTo = idx
	}
	for _, name := range c.Done {
		if at, ok := s.data.Recompile[name]; ok && at <= upTo {
			delete(s.data.Recompile, name)
			changed[name] = true
		}
	}
	for _, name := range sortedKeys(changed) {
		if svc := s.ownService(name); svc != nil {
			s.serviceChanged(idx, svc, c.Time, &keys)
		}
	}
	return nil, keys
}

// mark records, in the running Apply, that name is to be compiled again
// (by the leader). A marked service is not converged.
func (s *State) mark(name string) {
	if s.data.Recompile == nil {
		s.data.Recompile = map[string]uint64{}
	}
	s.data.Recompile[name] = s.at.index
	s.at.keys = append(s.at.keys, recompileKey)
}

// pendingRecompile reports whether svc waits for a recompile.
func (s *State) pendingRecompile(name string) bool {
	_, ok := s.data.Recompile[name]
	return ok
}

// marked lists the services marked for a recompile, parents first.
func (s *State) marked() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.parentsFirst(sortedKeys(s.data.Recompile))
}

// recompileKey is the watch key the FSM notifies when it marks a service.
const recompileKey = "recompile"

// leaderRecompiles reports whether the log has turned leader recompiles on.
func (s *State) leaderRecompiles() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.LeaderRecompiles
}

// PlanRecompile compiles the marked services names (parents first) again
// at their generations against the state as it is, each against its
// ancestors' new plans: the entry that deals with their marks. It holds
// the plans that change: none when a service is gone, being deleted, has
// no plan, does not compile (as before, a recompile with violations is
// dropped: the plan stays), or compiles to the plan it has.
func (s *State) PlanRecompile(names []string) (c RecompileCmd) {
	type job struct {
		in   plan.CompileInput
		prev *plan.Plan
	}
	var jobs []job
	s.mu.RLock()
	c.Done, c.Index, c.ShapeIndex = names, s.data.Index, s.data.ShapeIndex
	var modules map[string]*plan.Module
	var outputs map[string]map[string]json.RawMessage
	for _, name := range names {
		svc := s.data.Services[name]
		if svc == nil || svc.Plan == nil || svc.State == plan.StateDeleting {
			continue
		}
		in := s.compileInput(svc, svc.Generation, nil)
		if modules == nil {
			modules, outputs = maps.Clone(in.Modules), maps.Clone(in.Outputs)
		}
		in.Modules, in.Outputs = modules, outputs
		jobs = append(jobs, job{in, svc.Plan})
	}
	s.mu.RUnlock()
	recompiled := map[string]*plan.Service{}
	for _, j := range jobs {
		for i, a := range j.in.Ancestors {
			if n := recompiled[a.Service.Name]; n != nil {
				j.in.Ancestors[i].Service = n
			}
		}
		p, viol := compileFn(j.in)
		if viol != nil {
			continue
		}
		p = withRemovals(j.prev, p, j.in.Generation)
		if samePlan(p, j.prev) {
			continue
		}
		cp := *j.in.Service
		cp.Plan = p
		recompiled[cp.Name] = &cp
		c.Services = append(c.Services, RecompiledService{Name: cp.Name, Generation: j.in.Generation, Plan: p})
	}
	return c
}

// recompileLoop runs until shutdown: on the leader, once every coordinator
// can apply RecompileType, it turns leader recompiles on and commits the
// marked services' plans.
func (s *Server) recompileLoop() {
	for {
		st := s.State()
		ch, cancel := st.watch.wait(recompileKey)
		wait := true
		switch {
		case s.raft.State() != raft.Leader:
		case st.leaderRecompiles():
			if names := st.marked(); len(names) > 0 {
				wait = !s.recompileMarked(names)
			}
		case s.clusterHas(FeaturePlannedRecompile):
			// Once on, it stays on: the feature is checked only until then.
			_, err := s.apply(RecompileType, RecompileCmd{Time: time.Now().UnixMilli()})
			if !errors.Is(err, errRecompileStarts) {
				s.log.Warn("turning leader recompiles on", "err", err)
			}
		}
		if wait {
			select {
			case <-s.stop:
				cancel()
				return
			case <-ch:
			case <-time.After(time.Second): // leadership, features, a retry
			}
		}
		cancel()
	}
}

// recompileMarked commits the plans of the marked services in one entry,
// planning them again while it is stale, up to planTries times, then in
// Apply. It reports whether it got anywhere.
func (s *Server) recompileMarked(names []string) bool {
	st := s.State()
	for range planTries {
		c := st.PlanRecompile(names)
		c.Time = time.Now().UnixMilli()
		_, err := s.apply(RecompileType, c)
		switch {
		case err == nil:
			s.metrics.recompiles.With("planned").Add(len(c.Services))
			return true
		case errors.Is(err, ErrStalePlan):
			s.metrics.recompiles.With("stale").Add(len(c.Services))
			s.log.Debug("recompile was stale; planning again", "services", len(c.Services), "err", err)
		default:
			s.log.Warn("recompile not committed", "services", len(c.Services), "err", err)
			return false // still marked: the next round tries again
		}
	}
	s.log.Warn("recompile stale on every try; compiling in Apply", "services", len(names), "tries", planTries)
	if _, err := s.apply(RecompileType, RecompileCmd{Done: names, InApply: true, Time: time.Now().UnixMilli()}); err != nil {
		s.log.Warn("recompile in Apply not committed", "err", err)
		return false
	}
	s.metrics.recompiles.With("in_apply").Add(len(names))
	return true
}
