package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
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
// only marks the services to recompile (State.marks, on every replica, not
// in the snapshot) and the leader's recompileLoop compiles them, parents
// first, and commits each plan with a precondition:
//
//   - ShapeIndex is CompileIndex without the report-driven changes (a
//     step's converged digest, its outputs). A recompile read before a
//     report is still accepted: that report marked the service again (at a
//     later index than the read), so the leader compiles it once more. Any
//     other change the compiler reads (a deploy, a module, a node, another
//     plan stored) makes it stale, and the leader compiles it again.
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
// recompile did in one entry). InApply asks the FSM to compile them (the
// fallback after stale tries). An entry without services only turns leader
// recompiles on.
type RecompileCmd struct {
	Services   []RecompiledService `json:"services,omitempty"`
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
		s.data.LeaderRecompiles = true
		s.data.ShapeIndex = idx
		s.compileInputsChanged()
		// Everything that was due is compiled again under the new rule.
		for name := range s.data.Services {
			s.mark(name)
		}
		return fmt.Errorf("%w: %w at index %d", ErrStalePlan, errRecompileStarts, idx), nil
	}
	if !c.InApply && s.data.ShapeIndex != c.ShapeIndex {
		return fmt.Errorf("%w: recompiled at index %d; the compiler's inputs changed at %d", ErrStalePlan, c.ShapeIndex, s.data.ShapeIndex), nil
	}
	s.setAt(c.Time, "", "")
	var keys []string
	for _, r := range c.Services {
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
		s.serviceChanged(idx, svc, c.Time, &keys)
	}
	return nil, keys
}

// mark records that name is to be compiled again (by the leader), at the
// running entry's index. Marks are not replicated state: every replica
// keeps them so that a new leader starts from its own, and a new leader
// marks every service anyway.
func (s *State) mark(name string) {
	if s.marks == nil {
		s.marks = map[string]uint64{}
	}
	s.marks[name] = s.at.index
	s.at.keys = append(s.at.keys, recompileKey)
}

// marked lists the services marked for a recompile, parents first, with
// the index of the last entry applied.
func (s *State) marked() ([]string, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.marks))
	for n := range s.marks {
		names = append(names, n)
	}
	sort.Strings(names)
	return s.parentsFirst(names), s.data.Index
}

// unmark drops the marks of names unless an entry after index set them
// again.
func (s *State) unmark(names []string, index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range names {
		if s.marks[name] <= index {
			delete(s.marks, name)
		}
	}
}

// markAll marks every service (a new leader: it cannot know what the old
// one had left to do).
func (s *State) markAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.marks == nil {
		s.marks = map[string]uint64{}
	}
	for name := range s.data.Services {
		s.marks[name] = s.data.Index
	}
	s.watch.notify(recompileKey)
}

// recompileKey is the watch key the FSM notifies when it marks a service.
const recompileKey = "recompile"

// leaderRecompiles reports whether the log has turned leader recompiles on.
func (s *State) leaderRecompiles() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.LeaderRecompiles
}

// PlanRecompile compiles the services names (parents first) again at
// their generations against the state as it is, each against its
// ancestors' new plans. The command holds those whose plan changes: none
// when a service is gone, being deleted, has no plan, does not compile (as
// before, a recompile with violations is dropped: the plan stays), or
// compiles to the plan it has. index is the last entry the read saw.
func (s *State) PlanRecompile(names []string) (c RecompileCmd, index uint64) {
	type job struct {
		in   plan.CompileInput
		prev *plan.Plan
	}
	var jobs []job
	s.mu.RLock()
	index, c.ShapeIndex = s.data.Index, s.data.ShapeIndex
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
	return c, index
}

// recompileLoop runs until shutdown: on the leader, once every coordinator
// can apply RecompileType, it turns leader recompiles on and commits the
// marked services' plans.
func (s *Server) recompileLoop() {
	wasLeader := false
	for {
		st := s.State()
		ch, cancel := st.watch.wait(recompileKey)
		leader := s.raft.State() == raft.Leader
		if leader && !wasLeader {
			st.markAll()
		}
		wasLeader = leader
		wait := true
		if leader && s.clusterHas(FeaturePlannedRecompile) {
			if !st.leaderRecompiles() {
				_, err := s.apply(RecompileType, RecompileCmd{Time: time.Now().UnixMilli()})
				if !errors.Is(err, errRecompileStarts) {
					s.log.Warn("turning leader recompiles on", "err", err)
				}
			} else if names, _ := st.marked(); len(names) > 0 {
				wait = !s.recompileMarked(names)
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
		c, index := st.PlanRecompile(names)
		if len(c.Services) == 0 {
			st.unmark(names, index)
			return true
		}
		c.Time = time.Now().UnixMilli()
		_, err := s.apply(RecompileType, c)
		switch {
		case err == nil:
			s.metrics.recompiles.With("planned").Add(len(c.Services))
			st.unmark(names, index)
			return true
		case errors.Is(err, ErrStalePlan):
			s.metrics.recompiles.With("stale").Add(len(c.Services))
			s.log.Debug("recompile was stale; planning again", "services", len(c.Services), "err", err)
		default:
			s.log.Warn("recompile not committed", "services", len(c.Services), "err", err)
			return false // still marked: the next round tries again
		}
	}
	_, index := st.marked()
	c := RecompileCmd{InApply: true, Time: time.Now().UnixMilli()}
	for _, name := range names {
		c.Services = append(c.Services, RecompiledService{Name: name, Generation: st.serviceGeneration(name)})
	}
	s.log.Warn("recompile stale on every try; compiling in Apply", "services", len(names), "tries", planTries)
	if _, err := s.apply(RecompileType, c); err != nil {
		s.log.Warn("recompile in Apply not committed", "err", err)
		return false
	}
	s.metrics.recompiles.With("in_apply").Add(len(names))
	st.unmark(names, index)
	return true
}

// serviceGeneration is name's current generation (0 when there is no such
// service).
func (s *State) serviceGeneration(name string) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if svc := s.data.Services[name]; svc != nil {
		return svc.Generation
	}
	return 0
}
