package coordinator

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// Rollouts (docs/rollouts.md). A deploy with a staged strategy (a canary,
// or a bound on parallelism) does not give every node the new plan at once:
// the service's RolloutState lists the nodes the deploy changes (canaries
// first), and only the first Admitted of them get the new plan in their
// slices; the others keep the plan they had (From). Apply moves the
// rollout on as reports arrive (advanceRollout), and a tick from the
// leader (RolloutTickCmd) when only time passes (min_healthy_time). All of
// it is state: a new leader continues where the old one stopped.

// RolloutCmd acts on a running rollout: pause, resume, promote or abort.
type RolloutCmd struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Time   int64  `json:"time_ms,omitempty"`
	Caller
}

// Rollout actions (RolloutCmd.Action).
const (
	RolloutPause   = "pause"
	RolloutResume  = "resume"
	RolloutPromote = "promote"
	RolloutAbort   = "abort"
)

// RolloutTickCmd moves the rollouts on whose nodes' min_healthy_time has
// passed; the leader sends it (tickRollouts).
type RolloutTickCmd struct {
	Time int64 `json:"time_ms"`
}

// RevertServiceCmd deploys a kept generation's configuration again: To, or
// (0) the newest converged generation before the current one.
type RevertServiceCmd struct {
	Name    string                `json:"name"`
	To      uint64                `json:"to,omitempty"`
	Rollout *plan.RolloutOverride `json:"rollout,omitempty"`
	Time    int64                 `json:"time_ms,omitempty"`
	Caller
}

// GenerationRecord is one generation of a service as it was deployed: its
// configuration (what revert stages again) and its plan (what auto-revert
// deploys), and whether it converged.
type GenerationRecord struct {
	Generation uint64            `json:"generation"`
	Module     string            `json:"module"`
	Version    string            `json:"version"`
	Template   string            `json:"template"`
	Inputs     map[string]string `json:"inputs,omitempty"`
	Lock       map[string]string `json:"lock,omitempty"`
	Removed    []string          `json:"removed,omitempty"`
	Plan       *plan.Plan        `json:"plan,omitempty"`
	Converged  bool              `json:"converged,omitempty"`
}

// maxGenerations is how many generations are kept per service (the newest
// converged one is kept beyond it).
const maxGenerations = 10

// waitingAgents are the agents a rollout of svc's current generation has
// not reached: they keep From's part of the plan (nil: none).
func waitingAgents(svc *plan.Service) map[string]bool {
	r := svc.Rollout
	if svc.Plan == nil || r == nil || r.Generation != svc.Generation || r.Admitted >= len(r.Order) {
		return nil
	}
	out := make(map[string]bool, len(r.Order)-r.Admitted)
	for _, a := range r.Order[r.Admitted:] {
		out[a] = true
	}
	return out
}

// rolloutActive says a rollout of svc's current generation is under way.
func rolloutActive(svc *plan.Service) bool {
	r := svc.Rollout
	return r != nil && r.Generation == svc.Generation && (r.Status == plan.RolloutRunning || r.Status == plan.RolloutPromote)
}

// withHealthSeconds marks svc's create steps that have a check, among
// steps, for the agent to verify for min_healthy_time (health = "check").
func withHealthSeconds(steps []*plan.Step, svc *plan.Service) {
	for i, st := range steps {
		if st.Service == svc.Name && st.Check != nil && st.Action == "create" {
			cp := *st
			cp.HealthSeconds = svc.Rollout.Strategy.MinHealthySeconds
			steps[i] = &cp
		}
	}
}

// effectivePlan is what the agents have of svc: the plan, with the nodes a
// rollout has not reached taking From's part.
func effectivePlan(svc *plan.Service) *plan.Plan {
	waiting := waitingAgents(svc)
	if waiting == nil {
		return svc.Plan
	}
	r := svc.Rollout
	out := *svc.Plan
	out.Nodes = nil
	for _, np := range svc.Plan.Nodes {
		if !waiting[np.Agent] {
			out.Nodes = append(out.Nodes, np)
		}
	}
	if r.From != nil {
		for _, np := range r.From.Nodes {
			if waiting[np.Agent] {
				out.Nodes = append(out.Nodes, np)
			}
		}
	}
	return &out
}

// strategy is the rollout a deploy of svc uses: its template's rollout
// block with the deploy's overrides.
func (s *State) strategy(svc *plan.Service, o *plan.RolloutOverride) *plan.Rollout {
	var base *plan.Rollout
	if m := s.data.Modules[svc.Module+"@"+svc.Version]; m != nil {
		if t := m.Templates[svc.Template]; t != nil {
			base = t.Rollout
		}
	}
	return base.Override(o)
}

// agentDigests maps each agent of p to its steps' digests, in order.
func agentDigests(p *plan.Plan) map[string]string {
	out := map[string]string{}
	if p == nil {
		return out
	}
	for _, np := range p.Nodes {
		var b strings.Builder
		for _, st := range np.Steps {
			b.WriteString(st.ID)
			b.WriteByte('=')
			b.WriteString(st.Digest)
			b.WriteByte(';')
		}
		out[np.Agent] += b.String()
	}
	return out
}

// changeClusters groups the agents whose part of the plan changes from old
// to next by what changes (plan.Clusters), largest group first; every agent
// in next or old is in changed or unchanged.
func changeClusters(old, next *plan.Plan) (clusters [][]string, unchanged []string) {
	before, after := agentDigests(old), agentDigests(next)
	changed := map[string]bool{}
	for _, a := range sortedKeys(after) {
		if before[a] == after[a] {
			unchanged = append(unchanged, a)
		} else {
			changed[a] = true
		}
	}
	for a := range before {
		if _, ok := after[a]; !ok {
			changed[a] = true
		}
	}
	if len(changed) == 0 {
		return nil, unchanged
	}
	for _, c := range plan.Clusters(old, next, nil) {
		var agents []string
		for _, a := range c.Agents {
			if changed[a] {
				agents = append(agents, a)
				delete(changed, a)
			}
		}
		if len(agents) > 0 {
			clusters = append(clusters, agents)
		}
	}
	if len(changed) > 0 { // not in either plan's clusters: keep them anyway
		clusters = append(clusters, sortedKeys(changed))
	}
	return clusters, unchanged
}

// rolloutOrder lists the changed agents in the order the rollout admits
// them: the agents holding a once = true step first, then one canary from
// each cluster in turn (largest cluster first) until there are canaries,
// then the rest in plan order.
func rolloutOrder(next *plan.Plan, clusters [][]string, canaries int) []string {
	changed := map[string]bool{}
	for _, c := range clusters {
		for _, a := range c {
			changed[a] = true
		}
	}
	var order []string
	taken := map[string]bool{}
	take := func(a string) {
		if changed[a] && !taken[a] {
			taken[a] = true
			order = append(order, a)
		}
	}
	if next != nil {
		for _, np := range next.Nodes {
			for _, st := range np.Steps {
				if st.Once {
					take(np.Agent)
				}
			}
		}
	}
	for round := 0; len(order) < canaries; round++ {
		progress := false
		for _, c := range clusters {
			if round < len(c) && len(order) < canaries {
				take(c[round])
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	if next != nil {
		for _, np := range next.Nodes {
			take(np.Agent)
		}
	}
	for _, c := range clusters { // agents only in the old plan
		for _, a := range c {
			take(a)
		}
	}
	return order
}

// startRollout begins a staged rollout of svc's new plan (already set),
// from what the agents had. It returns the keys it touched, or nil and
// leaves svc.Rollout nil when the deploy changes no agent.
func (s *State) startRollout(idx uint64, svc *plan.Service, from *plan.Plan, strat *plan.Rollout, now int64) []string {
	clusters, unchanged := changeClusters(from, svc.Plan)
	n := 0
	for _, c := range clusters {
		n += len(c)
	}
	if n == 0 {
		return nil
	}
	r := &plan.RolloutState{
		Generation: svc.Generation, Strategy: *strat, From: from, Unchanged: unchanged,
		MaxParallel: plan.ResolveShare(strat.MaxParallel, n, true, n),
		Canaries:    plan.ResolveShare(strat.Canary, n, true, 0),
		MaxFailures: plan.ResolveShare(strat.MaxFailures, n, false, 0),
		Status:      plan.RolloutRunning, HealthyAt: map[string]int64{}, StartedAt: now, UpdatedAt: now,
	}
	if r.MaxParallel <= 0 {
		r.MaxParallel = n
	}
	if g := s.lastConverged(svc.Name, svc.Generation); g != nil && g.Plan != nil {
		r.RevertTo = g.Plan
	}
	r.Order = rolloutOrder(svc.Plan, clusters, r.Canaries)
	svc.Rollout = r
	s.emit(api.Event{Type: api.EventRolloutStarted, Service: svc.Name, Generation: svc.Generation,
		Message: fmt.Sprintf("%d nodes change: %s", n, describeStrategy(r))})
	var keys []string
	s.advanceRollout(idx, svc, now, &keys, false)
	return keys
}

func describeStrategy(r *plan.RolloutState) string {
	parts := []string{fmt.Sprintf("max_parallel %d", r.MaxParallel)}
	if r.Canaries > 0 {
		parts = append(parts, fmt.Sprintf("%d canaries", r.Canaries))
	}
	if r.Strategy.MinHealthySeconds > 0 {
		parts = append(parts, fmt.Sprintf("min_healthy_time %ds", r.Strategy.MinHealthySeconds))
	}
	parts = append(parts, fmt.Sprintf("max_failures %d", r.MaxFailures))
	if r.Strategy.AutoRevert {
		parts = append(parts, "auto_revert")
	}
	return strings.Join(parts, ", ")
}

// cloneRollout copies a rollout state for this Apply to change.
func cloneRollout(r *plan.RolloutState) *plan.RolloutState {
	cp := *r
	cp.HealthyAt = maps.Clone(r.HealthyAt)
	if cp.HealthyAt == nil {
		cp.HealthyAt = map[string]int64{}
	}
	cp.Failed = slices.Clip(r.Failed)
	cp.Order = slices.Clip(r.Order)
	return &cp
}

// Node health during a rollout.
const (
	healthPending = iota
	healthOK
	healthFailed
)

// nodeParts maps each agent of p to its node plans: one pass, so that a
// rollout looks up each admitted agent without scanning the plan for it.
func nodeParts(p *plan.Plan) map[string][]*plan.NodePlan {
	out := make(map[string][]*plan.NodePlan, len(p.Nodes))
	for _, np := range p.Nodes {
		out[np.Agent] = append(out[np.Agent], np)
	}
	return out
}

// agentHealth says whether an agent's steps (its node plans) are all done
// (ok or skipped), one failed, or some are still to run.
func (s *State) agentHealth(parts []*plan.NodePlan) int {
	out := healthOK
	for _, np := range parts {
		for _, st := range np.Steps {
			state := plan.StepPending
			if r := s.data.Reports[st.ID]; r != nil && r.Digest == st.Digest && r.Generation >= st.Generation {
				state = r.State
			}
			switch state {
			case plan.StepFailed:
				return healthFailed
			case plan.StepOK, plan.StepSkipped:
			default:
				out = healthPending
			}
		}
	}
	return out
}

func (s *State) agentDown(agent string) bool {
	n := s.data.Nodes[agent]
	return n != nil && n.Status == plan.NodeDown
}

// minHealthyMs is how long a healthy node waits before it counts as done:
// with health = "check" the agent has verified the checks already.
func minHealthyMs(r *plan.RolloutState) int64 {
	if r.Strategy.Health == plan.HealthCheck {
		return 0
	}
	return int64(r.Strategy.MinHealthySeconds) * 1000
}

// advanceRollout moves svc's rollout on: it records which admitted nodes
// are healthy or failed, stops the rollout when too many failed (and
// reverts, with auto_revert), and admits the next nodes while fewer than
// max_parallel are in flight. svc is owned by this Apply.
func (s *State) advanceRollout(idx uint64, svc *plan.Service, now int64, keys *[]string, tick bool) {
	if !rolloutActive(svc) || svc.Plan == nil {
		return
	}
	// A copy whose HealthyAt is copied only when it changes: most report
	// batches change nobody's health, and the map has an entry per node.
	cp := *svc.Rollout
	r := &cp
	r.Failed, r.Order = slices.Clip(r.Failed), slices.Clip(r.Order)
	ownHealthy := false
	setHealthy := func(a string, t int64) {
		if !ownHealthy {
			r.HealthyAt, ownHealthy = maps.Clone(r.HealthyAt), true
			if r.HealthyAt == nil {
				r.HealthyAt = map[string]int64{}
			}
		}
		if t == 0 {
			delete(r.HealthyAt, a)
		} else {
			r.HealthyAt[a] = t
		}
	}
	parts := nodeParts(svc.Plan)
	changed := false
	if tick {
		r.CheckedAt, changed = now, true
	}
	for _, a := range r.Order[:r.Admitted] {
		if slices.Contains(r.Failed, a) {
			continue
		}
		switch s.agentHealth(parts[a]) {
		case healthFailed:
			r.Failed = append(r.Failed, a)
			setHealthy(a, 0)
			changed = true
		case healthOK:
			if r.HealthyAt[a] == 0 {
				setHealthy(a, now)
				changed = true
			}
		default:
			if r.HealthyAt[a] != 0 { // it runs again (drift, a recompile)
				setHealthy(a, 0)
				changed = true
			}
		}
	}
	if len(r.Failed) > r.MaxFailures {
		r.Status = plan.RolloutFailed
		r.Reason = fmt.Sprintf("%d of %d nodes failed (%s), more than max_failures %d", len(r.Failed), len(r.Order), strings.Join(r.Failed, ", "), r.MaxFailures)
		r.UpdatedAt = now
		svc.Rollout = r
		s.emit(api.Event{Type: api.EventRolloutFailed, Service: svc.Name, Generation: svc.Generation, Message: r.Reason})
		*keys = append(*keys, serviceKey(svc.Name))
		if r.Strategy.AutoRevert {
			s.revertRollout(idx, svc, now, keys)
		}
		return
	}
	wait := minHealthyMs(r)
	done := func(a string) bool {
		t := r.HealthyAt[a]
		return t != 0 && now-t >= wait
	}
	inflight, canariesDone := 0, true
	for i, a := range r.Order[:r.Admitted] {
		if slices.Contains(r.Failed, a) || done(a) || s.agentDown(a) {
			continue
		}
		inflight++
		if i < r.Canaries {
			canariesDone = false
		}
	}
	limit := r.MaxParallel
	if r.Canaries > 0 && !r.Promoted {
		limit = r.Canaries // the canaries go together, first
		if r.Admitted >= r.Canaries && canariesDone {
			if r.Strategy.ManualPromote {
				if r.Status != plan.RolloutPromote {
					r.Status, changed = plan.RolloutPromote, true
					s.emit(api.Event{Type: api.EventRolloutCanaries, Service: svc.Name, Generation: svc.Generation,
						Message: "canaries healthy; waiting for dtkctl service promote " + svc.Name})
				}
			} else {
				r.Promoted, changed = true, true
				limit = r.MaxParallel
				s.emit(api.Event{Type: api.EventRolloutCanaries, Service: svc.Name, Generation: svc.Generation,
					Message: "canaries healthy; promoted"})
			}
		}
	}
	var admitted []string
	if !r.Paused && r.Status == plan.RolloutRunning {
		for inflight < limit && r.Admitted < len(r.Order) {
			admitted = append(admitted, r.Order[r.Admitted])
			r.Admitted++
			inflight++
		}
		admitted = append(admitted, s.pullForward(svc, r, parts)...)
	}
	if len(admitted) > 0 {
		changed = true
		for _, a := range admitted {
			s.data.SliceIndex[a] = idx
			*keys = append(*keys, nodeKey(a))
		}
		s.emit(api.Event{Type: api.EventRolloutBatch, Service: svc.Name, Generation: svc.Generation,
			Message: fmt.Sprintf("nodes %s get generation %d (%d of %d)", strings.Join(admitted, ", "), svc.Generation, r.Admitted, len(r.Order))})
	}
	if r.Admitted == len(r.Order) && inflight == 0 && r.Status == plan.RolloutRunning {
		r.Status, changed = plan.RolloutDone, true
		msg := fmt.Sprintf("%d nodes", len(r.Order))
		if len(r.Failed) > 0 {
			msg += fmt.Sprintf(", %d failed (%s)", len(r.Failed), strings.Join(r.Failed, ", "))
		}
		s.emit(api.Event{Type: api.EventRolloutDone, Service: svc.Name, Generation: svc.Generation, Message: msg})
	}
	if changed {
		r.UpdatedAt = now
		svc.Rollout = r
		svc.ModifyIndex = idx
		*keys = append(*keys, serviceKey(svc.Name))
	}
}

// pullForward admits, out of turn, the nodes that an admitted node's
// waiting steps wait for (a cross-node dependency in the new plan), so that
// a rollout never waits on a node it has not reached.
func (s *State) pullForward(svc *plan.Service, r *plan.RolloutState, parts map[string][]*plan.NodePlan) []string {
	var stepAgent map[string]string
	var out []string
	for again := true; again; {
		again = false
		for _, a := range r.Order[:r.Admitted] {
			for _, np := range parts[a] {
				for _, st := range np.Steps {
					if len(st.Waiting) == 0 {
						continue
					}
					if stepAgent == nil {
						stepAgent = map[string]string{}
						for _, n := range svc.Plan.Nodes {
							for _, x := range n.Steps {
								stepAgent[x.ID] = n.Agent
							}
						}
					}
					for _, dep := range st.DependsOn {
						b := stepAgent[dep]
						i := slices.Index(r.Order, b)
						if i < r.Admitted {
							continue
						}
						// Move b to the end of the admitted nodes.
						r.Order = slices.Delete(slices.Clone(r.Order), i, i+1)
						r.Order = slices.Insert(r.Order, r.Admitted, b)
						r.Admitted++
						out = append(out, b)
						again = true
					}
				}
			}
		}
	}
	return out
}

// revertRollout deploys the last converged generation's plan to the nodes a
// failed rollout changed (the others have it already, and see no change):
// a new generation, with the configuration of the one it reverts to.
func (s *State) revertRollout(idx uint64, svc *plan.Service, now int64, keys *[]string) {
	r := cloneRollout(svc.Rollout)
	if r.RevertTo == nil {
		r.Reason += "; not reverted: no earlier generation converged"
		svc.Rollout = r
		return
	}
	gen := svc.Generation + 1
	have := effectivePlan(svc)
	target := restamp(r.RevertTo, gen)
	p := withRemovals(have, target, gen)
	prev := svc.Plan
	*keys = append(*keys, s.setPlan(idx, svc, p)...)
	from := r.RevertTo.Generation
	if g := s.generation(svc.Name, from); g != nil {
		restoreConfig(svc, g)
	}
	svc.Generation = gen
	svc.State = plan.StateDeploying
	r.Status = plan.RolloutReverted
	r.Reason += fmt.Sprintf("; reverted to generation %d as generation %d", from, gen)
	r.UpdatedAt = now
	svc.Rollout = r
	msg := fmt.Sprintf("auto-revert to generation %d (rollout of generation %d failed)", from, r.Generation)
	s.startPlanRecord(svc, api.HistoryDeploy, gen, prev, p, msg)
	s.emit(api.Event{Type: api.EventRolloutReverted, Service: svc.Name, Generation: gen, Message: msg})
	s.refreshState(svc)
	s.noteGeneration(svc)
}

// restamp copies p as generation gen (digests unchanged: an agent that has
// a step already sees no change).
func restamp(p *plan.Plan, gen uint64) *plan.Plan {
	out := *p
	out.Generation = gen
	out.Nodes = make([]*plan.NodePlan, len(p.Nodes))
	for i, np := range p.Nodes {
		n := *np
		n.Steps = make([]*plan.Step, len(np.Steps))
		for j, st := range np.Steps {
			c := *st
			c.Generation = gen
			n.Steps[j] = &c
		}
		out.Nodes[i] = &n
	}
	return &out
}

func restoreConfig(svc *plan.Service, g *GenerationRecord) {
	svc.Module, svc.Version, svc.Template = g.Module, g.Version, g.Template
	svc.Inputs, svc.Lock, svc.Removed = maps.Clone(g.Inputs), maps.Clone(g.Lock), slices.Clone(g.Removed)
}

// rolloutCmd applies pause, resume, promote or abort.
func (s *State) rolloutCmd(idx uint64, c *RolloutCmd) (any, []string) {
	svc := s.data.Services[c.Name]
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, c.Name), nil
	}
	if !rolloutActive(svc) {
		what := "no rollout"
		if r := svc.Rollout; r != nil {
			what = fmt.Sprintf("the rollout of generation %d is %s", r.Generation, r.Status)
		}
		return fmt.Errorf("%w: service %q has no running rollout (%s)", ErrConflict, c.Name, what), nil
	}
	s.setAt(c.Time, c.By, c.Token)
	svc = s.ownService(c.Name)
	r := cloneRollout(svc.Rollout)
	var keys []string
	event, msg := "", ""
	switch c.Action {
	case RolloutPause:
		r.Paused, event, msg = true, api.EventRolloutPaused, "paused"
	case RolloutResume:
		r.Paused, event, msg = false, api.EventRolloutPaused, "resumed"
	case RolloutPromote:
		if r.Canaries == 0 || r.Promoted {
			return fmt.Errorf("%w: service %q: the rollout has no canaries waiting for promotion", ErrConflict, c.Name), nil
		}
		if r.Status != plan.RolloutPromote {
			return fmt.Errorf("%w: service %q: the canaries are not healthy yet (%d of %d admitted nodes healthy)", ErrConflict, c.Name, len(r.HealthyAt), r.Admitted), nil
		}
		r.Promoted, r.Status, event, msg = true, plan.RolloutRunning, api.EventRolloutCanaries, "promoted"
	case RolloutAbort:
		r.Status, event = plan.RolloutAborted, api.EventRolloutFailed
		r.Reason = "aborted"
		if c.By != "" {
			r.Reason += " by " + c.By
		}
		msg = r.Reason
	default:
		return fmt.Errorf("%w: rollout action %q (want pause, resume, promote or abort)", ErrInvalid, c.Action), nil
	}
	if msg != "" {
		msg = "rollout " + msg
	}
	r.UpdatedAt = c.Time
	svc.Rollout = r
	svc.ModifyIndex = idx
	keys = append(keys, serviceKey(c.Name))
	s.emit(api.Event{Type: event, Service: c.Name, Generation: svc.Generation, Message: msg})
	s.instantRecord(svc, api.HistoryRollout, msg)
	if c.Action == RolloutAbort && r.Strategy.AutoRevert {
		s.revertRollout(idx, svc, c.Time, &keys)
	} else {
		s.advanceRollout(idx, svc, c.Time, &keys, false)
	}
	s.refreshState(svc)
	s.trackService(svc)
	return svc, keys
}

// rolloutTick moves every running rollout on at the leader's time.
func (s *State) rolloutTick(idx uint64, c *RolloutTickCmd) (any, []string) {
	var keys []string
	s.setAt(c.Time, "", "")
	for _, name := range sortedKeys(s.data.Services) {
		if !rolloutActive(s.data.Services[name]) {
			continue
		}
		svc := s.ownService(name)
		s.advanceRollout(idx, svc, c.Time, &keys, true)
		s.refreshState(svc)
		s.trackService(svc)
	}
	return nil, keys
}

// RolloutDue says whether a running rollout waits only for time to pass:
// an admitted node whose min_healthy_time ran out by now (ms) and after
// the last tick.
func (s *State) RolloutDue(now int64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, svc := range s.data.Services {
		if !rolloutActive(svc) {
			continue
		}
		r := svc.Rollout
		wait := minHealthyMs(r)
		for _, a := range r.Order[:r.Admitted] {
			if t := r.HealthyAt[a]; t != 0 && t+wait <= now && t+wait > r.CheckedAt {
				return true
			}
		}
	}
	return false
}

// noteGeneration keeps svc's current generation's configuration and plan,
// and marks it converged when it is (a rollout of it done, too).
func (s *State) noteGeneration(svc *plan.Service) {
	if svc.Plan == nil || svc.State == plan.StateDeleting {
		return
	}
	recs := s.data.Generations[svc.Name]
	conv := svc.State == plan.StateConverged && !rolloutActive(svc)
	if n := len(recs); n > 0 && recs[n-1].Generation == svc.Generation {
		last := recs[n-1]
		if last.Plan == svc.Plan && (last.Converged || !conv) {
			return
		}
		cp := *last
		cp.Plan, cp.Converged = svc.Plan, last.Converged || conv
		out := slices.Clone(recs)
		out[n-1] = &cp
		s.data.Generations[svc.Name] = keepPlans(out)
		return
	}
	rec := &GenerationRecord{
		Generation: svc.Generation, Module: svc.Module, Version: svc.Version, Template: svc.Template,
		Inputs: maps.Clone(svc.Inputs), Lock: maps.Clone(svc.Lock), Removed: slices.Clone(svc.Removed),
		Plan: svc.Plan, Converged: conv,
	}
	out := make([]*GenerationRecord, 0, min(len(recs)+1, maxGenerations+1))
	// The oldest go beyond maxGenerations, except the newest converged one.
	drop := len(recs) + 1 - maxGenerations
	var keep *GenerationRecord
	for i, g := range recs {
		if i < drop {
			if g.Converged {
				keep = g
			}
			continue
		}
		out = append(out, g)
	}
	if keep != nil && !slices.ContainsFunc(out, func(g *GenerationRecord) bool { return g.Converged }) {
		out = append([]*GenerationRecord{keep}, out...)
	}
	s.data.Generations[svc.Name] = keepPlans(append(out, rec))
}

// keepPlans leaves a plan only on the records that are read for one: the
// newest (the current generation's, the same plan as the service's) and
// the newest converged (a rollout's RevertTo: what an automatic revert
// deploys again). A revert to any other kept generation compiles its
// configuration again (revertService), so their plans — a whole plan
// each, for up to 10 generations of every service — were kept for
// nothing: with one node per agent, 10 plans were most of the state a
// fleet costs per agent (docs/performance.md, "Memory per connected
// agent"). recs is the caller's new slice: stripped records are copies.
func keepPlans(recs []*GenerationRecord) []*GenerationRecord {
	conv := -1
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Converged {
			conv = i
			break
		}
	}
	for i, g := range recs {
		if i == len(recs)-1 || i == conv || g.Plan == nil {
			continue
		}
		cp := *g
		cp.Plan = nil
		recs[i] = &cp
	}
	return recs
}

// lastConverged is svc's newest converged generation up to gen. Only the
// newest converged record keeps its plan (keepPlans): one before it has
// its configuration alone.
func (s *State) lastConverged(name string, gen uint64) *GenerationRecord {
	recs := s.data.Generations[name]
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Converged && recs[i].Generation <= gen {
			return recs[i]
		}
	}
	return nil
}

func (s *State) generation(name string, gen uint64) *GenerationRecord {
	for _, g := range s.data.Generations[name] {
		if g.Generation == gen {
			return g
		}
	}
	return nil
}

// revertService stages a kept generation's configuration again and deploys
// it (with the template's rollout, or the command's).
func (s *State) revertService(idx uint64, c *RevertServiceCmd) (any, []string) {
	svc := s.data.Services[c.Name]
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, c.Name), nil
	}
	if svc.State == plan.StateDeleting {
		return fmt.Errorf("%w: service %q is being deleted", ErrConflict, c.Name), nil
	}
	var g *GenerationRecord
	if c.To != 0 {
		if g = s.generation(c.Name, c.To); g == nil {
			return fmt.Errorf("%w: service %q: generation %d is not kept (kept: %s)", ErrNotFound, c.Name, c.To, s.keptGenerations(c.Name)), nil
		}
	} else {
		// The newest converged generation before the current one (or
		// before the one a revert deployed).
		cur := svc.Generation
		if svc.State == plan.StateConverged {
			cur--
		}
		if g = s.lastConverged(c.Name, cur); g == nil || g.Generation == svc.Generation {
			return fmt.Errorf("%w: service %q has no earlier converged generation to revert to (kept: %s); name one with --to", ErrConflict, c.Name, s.keptGenerations(c.Name)), nil
		}
	}
	if s.data.Modules[g.Module+"@"+g.Version] == nil {
		return fmt.Errorf("%w: generation %d used module %s@%s, which was deleted; push it again", ErrConflict, g.Generation, g.Module, g.Version), nil
	}
	svc = s.ownService(c.Name)
	saved := *svc
	restoreConfig(svc, g)
	resp, keys := s.deploy(idx, svc, c.Rollout, c.Time, c.By, c.Token, fmt.Sprintf("revert to generation %d", g.Generation))
	if _, failed := resp.(error); failed {
		*svc = saved
	}
	return resp, keys
}

func (s *State) keptGenerations(name string) string {
	var parts []string
	for _, g := range s.data.Generations[name] {
		p := fmt.Sprint(g.Generation)
		if g.Converged {
			p += " (converged)"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Generations lists a service's kept generations, newest last (without
// their plans' values: for listing).
func (s *State) Generations(name string) []api.Generation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []api.Generation{}
	for _, g := range s.data.Generations[name] {
		out = append(out, api.Generation{Generation: g.Generation, Module: g.Module, Version: g.Version, Converged: g.Converged})
	}
	return out
}

// rolloutStatus is what status shows of svc's rollout.
func rolloutStatus(svc *plan.Service) *api.RolloutStatus {
	r := svc.Rollout
	if r == nil {
		return nil
	}
	out := &api.RolloutStatus{
		Generation: r.Generation, Status: r.Status, Paused: r.Paused, Strategy: r.Strategy,
		MaxParallel: r.MaxParallel, Canaries: r.Canaries, MaxFailures: r.MaxFailures,
		Nodes: len(r.Order), Admitted: slices.Clone(r.Order[:r.Admitted]), Waiting: slices.Clone(r.Order[r.Admitted:]),
		Failed: slices.Clone(r.Failed), Reason: r.Reason, StartedAt: r.StartedAt, UpdatedAt: r.UpdatedAt,
	}
	if r.Canaries > 0 {
		out.Canary = slices.Clone(r.Order[:min(r.Canaries, len(r.Order))])
	}
	if r.RevertTo != nil {
		out.RevertTo = r.RevertTo.Generation
	}
	wait := minHealthyMs(r)
	for _, a := range r.Order[:r.Admitted] {
		if t := r.HealthyAt[a]; t != 0 && r.UpdatedAt-t >= wait {
			out.Healthy = append(out.Healthy, a)
		}
	}
	return out
}

// nodeRolloutState names where agent is in svc's rollout: canary,
// admitted, healthy, failed or waiting ("" outside a rollout).
func nodeRolloutState(svc *plan.Service, agent string) string {
	r := svc.Rollout
	if r == nil || r.Generation != svc.Generation {
		return ""
	}
	i := slices.Index(r.Order, agent)
	switch {
	case i < 0:
		return ""
	case slices.Contains(r.Failed, agent):
		return "failed"
	case i >= r.Admitted:
		return "waiting"
	case r.HealthyAt[agent] != 0:
		return "healthy"
	case i < r.Canaries:
		return "canary"
	default:
		return "admitted"
	}
}
