package coordinator

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// Recursive change (docs/recursive.md).
//
// A service's exports are its children's inputs: when they change, what
// runs below it was resolved against the old values. Three things follow.
//
// Stale services. setPlan notes every plan an entry sets (notePlan), with
// the names of the exports whose value changed, appeared or went; at the
// end of the entry (afterApply) every service below that consumes one of
// them gets "export NAME of SERVICE" in its Stale list, and an event. What
// a service consumes is read from its plan's provenance: an input whose
// source is "export of SERVICE" (compared by value, so a plan that already
// has the new value is not stale), an attribute of an injected component
// whose source names "export NAME of SERVICE", and, for an export that
// appeared or went, an input of that name that came from a default or from
// an ancestor farther up (the new export now shadows it). A plan set later
// in the same entry (the FSM recompiles descendants when an output
// changes; a recursive deploy deploys them) was compiled against the new
// values and is not marked. A deploy of the service clears its list.
//
// Recursive deploys. DeployServiceCmd with Recursive records an
// api.RecursiveDeploy in the state (stateData.Recursive, by root): the
// root, then every service below it, parents first and by name among
// siblings. At the end of every entry afterApply looks at the service it
// is deploying: converged, the next one is deployed through deployService
// itself (compile, setPlan, history record, rollout), as the caller who
// started it, at the time of the entry that made the previous one
// converge; failed, the
// recursive deploy stops there. A service whose plan would not change and
// that is converged is passed over ("unchanged"), and one that was never
// deployed or is being deleted is skipped. As it lives in the replicated
// state and moves only in Apply, it carries on after the CLI goes and
// across leader changes and snapshots.
//
// Pending changes in previews. compilePending compiles the ancestors of a
// service with their staged (undeployed) changes, farthest first, and the
// service against those that would export something else: `dtkctl service
// plan CHILD` shows what the parent's pending change will do to it.

// planNote is what setPlan tells the end of the entry: a service got a new
// plan (or, for a recursive deploy's unchanged service, was found current),
// in this order (seq), and which of its exports changed.
type planNote struct {
	service string
	seq     int
	changed []string
	// moved names the changed exports that appeared or went (they may
	// shadow, or stop shadowing, an ancestor's export or a default).
	moved map[string]bool
}

// notePlan is setPlan's hook: it records the plan change for afterApply.
func (s *State) notePlan(svc *plan.Service, next *plan.Plan) {
	n := planNote{service: svc.Name, seq: len(s.at.plans) + 1}
	if svc.Plan != nil && next != nil {
		n.changed, n.moved = exportChanges(svc.Plan.Exports, next.Exports)
	}
	s.at.plans = append(s.at.plans, n)
}

// exportChanges names the exports whose value (or sensitivity) differs
// between two plans, sorted; moved says which of them one plan lacks.
func exportChanges(old, next []*plan.Value) ([]string, map[string]bool) {
	find := func(vs []*plan.Value, name string) *plan.Value {
		for _, v := range vs {
			if v.Name == name {
				return v
			}
		}
		return nil
	}
	var changed []string
	moved := map[string]bool{}
	for _, vs := range [][]*plan.Value{old, next} {
		for _, v := range vs {
			if slices.Contains(changed, v.Name) {
				continue
			}
			a, b := find(old, v.Name), find(next, v.Name)
			switch {
			case a == nil || b == nil:
				changed = append(changed, v.Name)
				moved[v.Name] = true
			case string(a.Value) != string(b.Value) || a.Sensitive != b.Sensitive:
				changed = append(changed, v.Name)
			}
		}
	}
	sortStrings(changed)
	return changed, moved
}

// staleName is how a stale list names an export.
func staleName(export, service string) string { return "export " + export + " of " + service }

// afterApply is Apply's hook, run at the end of every entry: recursive
// deploys move on, then the services below those whose exports changed
// are marked stale. It returns the watch keys it changed.
func (s *State) afterApply(idx uint64) []string {
	if len(s.at.plans) == 0 && !s.recursiveRunning() {
		return nil
	}
	keys := s.advanceRecursive(idx)
	return append(keys, s.markStale(idx)...)
}

// deployed is deploy's hook, once the new plan is set (a deploy, a revert):
// it compiled against the ancestors' current exports, so the service is no
// longer stale. (deployService starts a recursive deploy after it.)
func (s *State) deployed(svc *plan.Service) {
	svc.Stale = nil
}

// --- stale services ---

// markStale marks the services below those whose exports changed in this
// entry (see the package comment above).
func (s *State) markStale(idx uint64) []string {
	last := map[string]int{} // service → seq of its last plan in this entry
	for _, n := range s.at.plans {
		last[n.service] = n.seq
	}
	add := map[string][]string{}
	for _, n := range s.at.plans {
		a := s.data.Services[n.service]
		if len(n.changed) == 0 || a == nil {
			continue
		}
		for _, name := range s.descendants(a.Name) {
			d := s.data.Services[name]
			if d == nil || d.Plan == nil || d.State == plan.StateDeleting {
				continue
			}
			fresh := last[name] > n.seq
			for _, x := range n.changed {
				if s.consumes(d, a, x, n.moved[x], fresh) {
					add[name] = append(add[name], staleName(x, a.Name))
				}
			}
		}
	}
	var keys []string
	for _, name := range sortedKeys(add) {
		d := s.ownService(name)
		merged := append(slices.Clone(d.Stale), add[name]...)
		sortStrings(merged)
		merged = slices.Compact(merged)
		var fresh []string
		for _, e := range merged {
			if !slices.Contains(d.Stale, e) {
				fresh = append(fresh, e)
			}
		}
		if len(fresh) == 0 {
			continue
		}
		d.Stale = merged
		d.ModifyIndex = idx
		keys = append(keys, serviceKey(name))
		s.emit(api.Event{Type: api.EventServiceStale, Service: name, Generation: d.Generation,
			Message: strings.Join(fresh, ", ") + " changed since it was deployed"})
	}
	return keys
}

// consumes says whether d's plan was resolved against an old value of
// export x of a (moved: x appeared in or went from a's exports; fresh:
// d's plan was set after a's in this entry).
func (s *State) consumes(d, a *plan.Service, x string, moved, fresh bool) bool {
	for _, in := range d.Plan.Inputs {
		if in.Name != x {
			continue
		}
		switch from, ok := strings.CutPrefix(in.Source, "export of "); {
		case ok && from == a.Name:
			// By value: the plan records what it was given.
			var cur *plan.Value
			if a.Plan != nil {
				for _, e := range a.Plan.Exports {
					if e.Name == x {
						cur = e
					}
				}
			}
			return cur == nil || string(cur.Value) != string(in.Value)
		case moved && !fresh && (in.Source == "default" || ok && s.isAncestor(from, a.Name)):
			return true
		}
	}
	if fresh {
		return false
	}
	want := staleName(x, a.Name)
	for _, np := range d.Plan.Nodes {
		for _, st := range np.Steps {
			for _, src := range st.Sources {
				if slices.Contains(strings.Split(src, ", "), want) {
					return true
				}
			}
		}
	}
	return false
}

// isAncestor says whether anc is above name.
func (s *State) isAncestor(anc, name string) bool {
	seen := map[string]bool{}
	for svc := s.data.Services[name]; svc != nil && svc.Parent != "" && !seen[svc.Parent]; svc = s.data.Services[svc.Parent] {
		if svc.Parent == anc {
			return true
		}
		seen[svc.Parent] = true
	}
	return false
}

// depth is how many ancestors a service has.
func (s *State) depth(name string) int {
	n := 0
	seen := map[string]bool{name: true}
	for svc := s.data.Services[name]; svc != nil && svc.Parent != "" && !seen[svc.Parent]; svc = s.data.Services[svc.Parent] {
		seen[svc.Parent] = true
		n++
	}
	return n
}

// parentsFirst orders sorted service names so that each comes after its
// ancestors (by depth, then name): a recompile then sees the exports its
// ancestors' recompiles just changed.
func (s *State) parentsFirst(names []string) []string {
	sort.SliceStable(names, func(i, j int) bool { return s.depth(names[i]) < s.depth(names[j]) })
	return names
}

// --- recursive deploys ---

func (s *State) recursiveRunning() bool {
	for _, rd := range s.data.Recursive {
		if rd.Status == api.RecursiveRunning {
			return true
		}
	}
	return false
}

// startRecursive records a recursive deploy from root, whose own deploy
// this entry just made.
func (s *State) startRecursive(idx uint64, root *plan.Service) []string {
	var keys []string
	if old := s.data.Recursive[root.Name]; old != nil && old.Status == api.RecursiveRunning {
		cp := cloneRecursive(old)
		s.finishRecursive(idx, cp, api.RecursiveFailed, "superseded by a new recursive deploy")
		keys = append(keys, serviceKey(root.Name))
	}
	order := append([]string{root.Name}, s.descendants(root.Name)...)
	rd := &api.RecursiveDeploy{
		ID: recordID(root.Name, idx) + "-recursive", Service: root.Name, Status: api.RecursiveRunning,
		By: s.at.by, Token: s.at.token, StartedMS: s.at.time, Index: idx,
	}
	for i, name := range order {
		rs := api.RecursiveService{Name: name, Parent: s.data.Services[name].Parent, Result: api.RecursivePending}
		if i == 0 {
			rs.Result, rs.Generation = api.RecursiveDeploying, root.Generation
		}
		rd.Services = append(rd.Services, rs)
	}
	s.data.Recursive[root.Name] = rd
	msg := "no services below it"
	if len(order) > 1 {
		msg = "then " + strings.Join(order[1:], ", ")
	}
	rec := s.newRecord(root.Name, api.HistoryDeployRecursive, root.Generation)
	rec.ID, rec.Message = rd.ID, msg
	s.addRecord(rec)
	s.emit(api.Event{Type: api.EventRecursiveStarted, Service: root.Name, Generation: root.Generation, Message: msg})
	return append(keys, serviceKey(root.Name))
}

func cloneRecursive(rd *api.RecursiveDeploy) *api.RecursiveDeploy {
	cp := *rd
	cp.Services = slices.Clone(rd.Services)
	return &cp
}

// advanceRecursive moves every running recursive deploy as far as the
// state allows. (A finished one goes with its service: removeService.)
func (s *State) advanceRecursive(idx uint64) []string {
	var keys []string
	for _, root := range sortedKeys(s.data.Recursive) {
		rd := s.data.Recursive[root]
		if rd.Status != api.RecursiveRunning {
			continue
		}
		cp := cloneRecursive(rd)
		if k, moved := s.stepRecursive(idx, cp); moved {
			keys = append(keys, k...)
			if cp.Status == api.RecursiveRunning {
				s.storeRecursive(idx, cp)
			}
			keys = append(keys, serviceKey(root))
		}
	}
	return keys
}

// storeRecursive stores a changed recursive deploy, and moves its root's
// modify index so that those who follow its status see the change.
func (s *State) storeRecursive(idx uint64, rd *api.RecursiveDeploy) {
	rd.Index = idx
	s.data.Recursive[rd.Service] = rd
	if s.data.Services[rd.Service] != nil {
		s.ownService(rd.Service).ModifyIndex = idx
	}
}

// stepRecursive moves rd (a copy this entry owns) on: it follows the
// service being deployed and deploys the next ones while they finish at
// once. It says whether anything changed.
func (s *State) stepRecursive(idx uint64, rd *api.RecursiveDeploy) ([]string, bool) {
	var keys []string
	moved := false
	for rd.Current < len(rd.Services) {
		cur := &rd.Services[rd.Current]
		if cur.Result == api.RecursivePending {
			keys = append(keys, s.startOne(idx, rd, cur)...)
			moved = true
			switch cur.Result {
			case api.RecursiveFailedOne:
				s.finishRecursive(idx, rd, api.RecursiveFailed, cur.Name+": "+cur.Message)
				return keys, true
			case api.RecursiveDeploying:
			default: // unchanged, skipped
				rd.Current++
				continue
			}
		}
		svc := s.data.Services[cur.Name]
		outcome, why := s.deployOutcome(svc, cur.Generation)
		if outcome != api.RecursiveFailedOne && svc.Generation > cur.Generation {
			// Deployed again meanwhile (by an operator): follow that.
			cur.Generation = svc.Generation
			cur.Message = joinMessage(cur.Message, fmt.Sprintf("deployed again at generation %d", svc.Generation))
			moved = true
			outcome, why = s.deployOutcome(svc, cur.Generation)
		}
		switch outcome {
		case api.RecursiveDone:
			cur.Result = api.RecursiveDone
			rd.Current++
			moved = true
		case api.RecursiveFailedOne:
			cur.Result, cur.Message = api.RecursiveFailedOne, why
			s.finishRecursive(idx, rd, api.RecursiveFailed, fmt.Sprintf("%s: %s", cur.Name, why))
			return keys, true
		default:
			return keys, moved
		}
	}
	s.finishRecursive(idx, rd, api.RecursiveConverged, "")
	return keys, true
}

// deployOutcome says how the deploy of svc at generation gen went:
// converged, failed (and why) or still deploying. Its rollout decides while
// it runs or when it stopped: one that failed, was aborted or was
// auto-reverted (the revert is a later generation that may converge) is a
// failure.
func (s *State) deployOutcome(svc *plan.Service, gen uint64) (string, string) {
	switch {
	case svc == nil:
		return api.RecursiveFailedOne, "it was deleted"
	case svc.State == plan.StateDeleting:
		return api.RecursiveFailedOne, "it is being deleted"
	}
	if r := svc.Rollout; r != nil && (r.Generation == gen || r.Generation == svc.Generation) {
		switch r.Status {
		case plan.RolloutFailed, plan.RolloutReverted, plan.RolloutAborted:
			why := fmt.Sprintf("rollout %s at generation %d", r.Status, r.Generation)
			if r.Reason != "" && r.Reason != r.Status {
				why += ": " + r.Reason
			}
			return api.RecursiveFailedOne, why
		case plan.RolloutRunning, plan.RolloutPromote:
			if r.Generation == svc.Generation {
				return api.RecursiveDeploying, ""
			}
		}
	}
	switch svc.State {
	case plan.StateConverged:
		return api.RecursiveDone, ""
	case plan.StateFailed:
		_, _, failed, _ := s.stepCounts(svc)
		return api.RecursiveFailedOne, fmt.Sprintf("deploy failed at generation %d (%d failed)", svc.Generation, failed)
	}
	return api.RecursiveDeploying, ""
}

// startOne deploys one service of a recursive deploy after the root, or
// passes it over: never deployed or being deleted (skipped), converged
// with a plan that would not change (unchanged), already deploying the
// same plan (followed).
func (s *State) startOne(idx uint64, rd *api.RecursiveDeploy, cur *api.RecursiveService) []string {
	svc := s.data.Services[cur.Name]
	switch {
	case svc == nil:
		cur.Result, cur.Message = api.RecursiveSkipped, "deleted"
		return nil
	case svc.State == plan.StateDeleting:
		cur.Result, cur.Message = api.RecursiveSkipped, "being deleted"
		return nil
	case svc.Plan == nil:
		cur.Result, cur.Message = api.RecursiveSkipped, "staged, never deployed"
		return nil
	}
	if svc.State == plan.StateConverged || svc.State == plan.StateDeploying {
		if p, viol := s.compile(svc, svc.Generation); viol == nil && samePlan(withRemovals(svc.Plan, p, svc.Generation), svc.Plan) {
			cur.Generation = svc.Generation
			// Its plan is current: it consumes no changed value.
			s.at.plans = append(s.at.plans, planNote{service: svc.Name, seq: len(s.at.plans) + 1})
			var keys []string
			if len(svc.Stale) > 0 {
				own := s.ownService(svc.Name)
				own.Stale, own.ModifyIndex = nil, idx
				keys = append(keys, serviceKey(svc.Name))
			}
			if svc.State == plan.StateConverged {
				cur.Result = api.RecursiveUnchanged
			} else {
				cur.Result, cur.Message = api.RecursiveDeploying, "already deploying this plan"
			}
			return keys
		}
	}
	// The same path as an operator's deploy, as the recursive deploy's
	// caller, at this entry's time.
	at := s.at
	resp, keys := s.deployService(idx, &DeployServiceCmd{Name: svc.Name, Time: at.time, Caller: Caller{By: rd.By, Token: rd.Token}})
	s.setAt(at.time, at.by, at.token)
	if err, ok := resp.(error); ok {
		cur.Result, cur.Message = api.RecursiveFailedOne, "cannot deploy: "+cutMessage(err.Error())
		return keys
	}
	svc = s.data.Services[cur.Name]
	cur.Result, cur.Generation = api.RecursiveDeploying, svc.Generation
	if i, r := s.openPlanRecord(svc.Name); r != nil && r.Generation == svc.Generation {
		cp := *r
		cp.Message = joinMessage(cp.Message, "recursive deploy from "+rd.Service)
		s.replaceRecord(svc.Name, i, &cp)
	}
	return keys
}

// finishRecursive ends a recursive deploy: the services not reached stay
// as they were; the root's history record and an event say how it went.
func (s *State) finishRecursive(idx uint64, rd *api.RecursiveDeploy, status, reason string) {
	rd.Status, rd.Reason, rd.EndedMS = status, reason, s.at.time
	for i := range rd.Services {
		if r := &rd.Services[i]; r.Result == api.RecursivePending {
			r.Result = api.RecursiveNotReached
		}
	}
	rd.Current = len(rd.Services)
	s.storeRecursive(idx, rd)
	result := api.ResultConverged
	if status == api.RecursiveFailed {
		result = api.ResultFailed
	}
	msg := recursiveSummary(rd)
	if recs := s.data.History[rd.Service]; recs != nil {
		if i := slices.IndexFunc(recs, func(r *api.HistoryRecord) bool { return r.ID == rd.ID }); i >= 0 {
			cp := *recs[i]
			cp.Result, cp.EndedMS, cp.Message = result, s.at.time, msg
			s.replaceRecord(rd.Service, i, &cp)
		}
	}
	ev := result
	if reason != "" {
		ev += ": " + reason
	}
	s.emit(api.Event{Type: api.EventRecursiveFinished, Service: rd.Service, Message: cutMessage(ev)})
}

// recursiveSummary says in words what a recursive deploy did, by result:
// "converged: net (5), app (3); unchanged: db".
func recursiveSummary(rd *api.RecursiveDeploy) string {
	byResult := map[string][]string{}
	var results []string
	for _, r := range rd.Services {
		name := r.Name
		if r.Generation > 0 && (r.Result == api.RecursiveDone || r.Result == api.RecursiveFailedOne) {
			name = fmt.Sprintf("%s (%d)", r.Name, r.Generation)
		}
		if r.Result == api.RecursiveFailedOne && r.Message != "" {
			name += " " + r.Message
		}
		if byResult[r.Result] == nil {
			results = append(results, r.Result)
		}
		byResult[r.Result] = append(byResult[r.Result], name)
	}
	parts := make([]string, 0, len(results))
	for _, res := range results {
		parts = append(parts, res+": "+strings.Join(byResult[res], ", "))
	}
	msg := strings.Join(parts, "; ")
	if rd.Reason != "" && rd.Status == api.RecursiveFailed && !strings.Contains(msg, rd.Reason) {
		msg = joinMessage(msg, rd.Reason)
	}
	return msg
}

// --- pending changes in previews ---

// pendingChanges is what compilePending found above a service.
type pendingChanges struct {
	// exports are the ancestors' exports that their staged changes would
	// change ("export NAME of SERVICE").
	exports []string
	// top is the farthest ancestor whose staged change stands in.
	top string
	// notes name ancestors whose staged change does not compile.
	notes []string
}

// assumes is the preview's note when the plan reads pending exports.
func (pc pendingChanges) assumes(name string) string {
	return fmt.Sprintf("the plan assumes the undeployed changes above %s are deployed first (\"dtkctl service deploy %s --recursive\" does that); "+
		"deployed alone now, %s would read the exports as deployed (see it with --without-pending)", name, pc.top, name)
}

// compilePending compiles svc at generation gen as `service plan` shows
// it: against its ancestors as they would be once their staged changes are
// deployed. Each deployed ancestor, farthest first, is compiled again
// against those above it; one whose exports would change stands in for the
// deployed one.
func (s *State) compilePending(svc *plan.Service, gen uint64) (*plan.Plan, pendingChanges, plan.Violations) {
	var chain []*plan.Service // nearest first
	seen := map[string]bool{svc.Name: true}
	for p := svc.Parent; p != "" && !seen[p]; {
		seen[p] = true
		a := s.data.Services[p]
		if a == nil {
			break
		}
		chain = append(chain, a)
		p = a.Parent
	}
	over := map[string]*plan.Service{}
	var pc pendingChanges
	for i := len(chain) - 1; i >= 0; i-- {
		a := chain[i]
		if a.Plan == nil || a.State == plan.StateDeleting {
			continue
		}
		p, viol := s.compileWith(a, a.Generation+1, over)
		if viol != nil {
			pc.notes = append(pc.notes, fmt.Sprintf("%s has staged changes that do not compile (see \"dtkctl service plan %s\"): its exports are taken as deployed", a.Name, a.Name))
			continue
		}
		changed, _ := exportChanges(a.Plan.Exports, p.Exports)
		if len(changed) == 0 {
			continue
		}
		cp := *a
		cp.Plan = p
		over[a.Name] = &cp
		if pc.top == "" {
			pc.top = a.Name
		}
		for _, x := range changed {
			pc.exports = append(pc.exports, staleName(x, a.Name))
		}
	}
	p, viol := s.compileWith(svc, gen, over)
	return p, pc, viol
}

// markPending adds " (pending change)" to the sources of a plan (a copy the
// caller owns) that come from pending exports, and returns those the plan
// consumes, sorted.
func markPending(p *plan.Plan, pending []string) []string {
	if len(pending) == 0 {
		return nil
	}
	used := map[string]bool{}
	for _, in := range p.Inputs {
		if from, ok := strings.CutPrefix(in.Source, "export of "); ok && slices.Contains(pending, staleName(in.Name, from)) {
			used[staleName(in.Name, from)] = true
			in.Source += " (pending change)"
		}
	}
	for _, np := range p.Nodes {
		for _, st := range np.Steps {
			for k, src := range st.Sources {
				parts := strings.Split(src, ", ")
				for i, part := range parts {
					if slices.Contains(pending, part) {
						used[part] = true
						parts[i] = part + " (pending change)"
						continue
					}
					// "input x (export of net)"
					if rest, ok := strings.CutPrefix(part, "input "); ok {
						if name, from, ok := strings.Cut(strings.TrimSuffix(rest, ")"), " (export of "); ok && slices.Contains(pending, staleName(name, from)) {
							used[staleName(name, from)] = true
							parts[i] = strings.TrimSuffix(part, ")") + ", pending change)"
						}
					}
				}
				st.Sources[k] = strings.Join(parts, ", ")
			}
		}
	}
	return sortedKeys(used)
}
