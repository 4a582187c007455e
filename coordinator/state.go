package coordinator

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// State is the coordinator's replicated state: what the FSM builds from the
// Raft log. All mutation happens in the FSM's Apply (one goroutine), copy on
// write (cow.go): readers take the read lock, and what they get never
// changes after, so they may encode it once the lock is released. They must
// not modify it.
type State struct {
	mu    sync.RWMutex
	data  stateData
	watch *watchSet
	// owned is what the running Apply has copied and may change (cow.go).
	owned map[string]bool
	// at is the running Apply's entry (history.go).
	at applyAt
	// slices indexes what each agent runs (sliceindex.go).
	slices *sliceIndex
}

// stateData is the serialized form of State (snapshots).
type stateData struct {
	Index    uint64                   `json:"index"`
	Nodes    map[string]*plan.Node    `json:"nodes"`
	Modules  map[string]*plan.Module  `json:"modules"` // by name@version
	Services map[string]*plan.Service `json:"services"`
	// Reports holds the latest report per step ID.
	Reports map[string]*plan.Report `json:"reports"`
	// NodeSeq is the highest report sequence applied per node and agent
	// incarnation (see seqKey), so that a resent report is applied once.
	NodeSeq map[string]uint64 `json:"node_seq"`
	// SliceIndex is the Raft index at which each node's slice last changed.
	SliceIndex map[string]uint64 `json:"slice_index"`
	// Outputs holds the outputs last reported per create step ID.
	Outputs map[string]map[string]json.RawMessage `json:"outputs"`
	// Coordinators is the directory of coordinators (by name), so that a
	// coordinator that lost the gossip pool still finds its peers.
	Coordinators map[string]*CoordinatorInfo `json:"coordinators"`
	// Ops are the recent one-off operations (dry runs, exec, cancel).
	Ops map[string]*plan.Op `json:"ops"`
	// OpsIndex is the Raft index at which each node's ops last changed.
	OpsIndex map[string]uint64 `json:"ops_index"`
	// Trust holds join tokens, enrollments, revocations and the sealed CA.
	Trust trustData `json:"trust"`
	// ACL holds access-control policies and tokens (hashed).
	ACL aclData `json:"acl"`
	// Audit is the bounded trail of accepted writes.
	Audit auditData `json:"audit"`
	// History holds each service's recent records, oldest first
	// (history.go); Events the recent cluster events.
	History map[string][]*api.HistoryRecord `json:"history"`
	Events  eventData                       `json:"events"`
	// Recursive holds the last recursive deploy started from each service
	// (cascade.go).
	Recursive map[string]*api.RecursiveDeploy `json:"recursive_deploys,omitempty"`
	// Generations keeps each service's recent generations (rollout.go).
	Generations map[string][]*GenerationRecord `json:"generations,omitempty"`
	// DataKey is the key that seals the log and snapshots, itself sealed
	// with the coordinators' key-encryption key (datakey.go).
	DataKey string `json:"data_key_sealed,omitempty"`
	// CompileIndex is the index of the last entry that changed something
	// the compiler reads: a planned deploy compiled before it is stale
	// (planner.go).
	CompileIndex uint64 `json:"compile_index,omitempty"`
	// LeaderPlans: the log holds a planned deploy, from which on every
	// replica's CompileIndex is the same (planner.go).
	LeaderPlans bool `json:"leader_plans,omitempty"`
	// ShapeIndex is CompileIndex without the changes reports make (a
	// step's converged digest, its outputs): a recompile or planned deploy
	// read before it is stale (recompile.go). LeaderRecompiles: the log
	// holds a RecompileType entry, from which on ShapeIndex is the same on
	// every replica and reports mark services instead of recompiling them.
	ShapeIndex       uint64 `json:"shape_index,omitempty"`
	LeaderRecompiles bool   `json:"leader_recompiles,omitempty"`
	// Recompile holds the services the leader is to compile again, with
	// the index of the entry that marked them (recompile.go).
	Recompile map[string]uint64 `json:"recompile,omitempty"`
}

func newStateData() stateData {
	return stateData{
		Nodes:        map[string]*plan.Node{},
		Modules:      map[string]*plan.Module{},
		Services:     map[string]*plan.Service{},
		Reports:      map[string]*plan.Report{},
		NodeSeq:      map[string]uint64{},
		SliceIndex:   map[string]uint64{},
		Outputs:      map[string]map[string]json.RawMessage{},
		Ops:          map[string]*plan.Op{},
		Coordinators: map[string]*CoordinatorInfo{},
		OpsIndex:     map[string]uint64{},
		History:      map[string][]*api.HistoryRecord{},
		Recursive:    map[string]*api.RecursiveDeploy{},
		Generations:  map[string][]*GenerationRecord{},
		Recompile:    map[string]uint64{},
		Trust:        newTrustData(),
		ACL:          aclData{Policies: map[string]*api.ACLPolicy{}, Tokens: map[string]*api.ACLToken{}},
	}
}

// NewState returns an empty state.
func NewState() *State {
	return &State{data: newStateData(), watch: newWatchSet(), slices: newSliceIndex()}
}

// Watch keys.
func nodeKey(name string) string    { return "node/" + name }
func serviceKey(name string) string { return "service/" + name }

const anyKey = "*"

// Index is the Raft index of the last applied entry.
func (s *State) Index() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.Index
}

// Node returns a registered node or nil.
func (s *State) Node(name string) *plan.Node {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.Nodes[name]
}

// Nodes returns every node sorted by name.
func (s *State) Nodes() []*plan.Node {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedValues(s.data.Nodes)
}

// Module returns name@version or nil.
func (s *State) Module(name, version string) *plan.Module {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.Modules[name+"@"+version]
}

// LatestModule returns the highest version of a module by semver, or nil.
func (s *State) LatestModule(name string) *plan.Module {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *plan.Module
	for _, m := range s.data.Modules {
		if m.Name == name && (best == nil || plan.CompareVersions(m.Version, best.Version) > 0) {
			best = m
		}
	}
	return best
}

// Modules returns every module sorted by name then version.
func (s *State) Modules() []*plan.Module {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*plan.Module, 0, len(s.data.Modules))
	for _, m := range s.data.Modules {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return plan.CompareVersions(out[i].Version, out[j].Version) < 0
	})
	return out
}

// Service returns a service or nil.
func (s *State) Service(name string) *plan.Service {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.Services[name]
}

// Services returns every service sorted by name.
func (s *State) Services() []*plan.Service {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedValues(s.data.Services)
}

// Slice returns a node's part of every service's plan and the index at which
// it last changed.
func (s *State) Slice(node string) *plan.Slice {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.sliceLocked(node)
}

func (s *State) sliceLocked(node string) *plan.Slice {
	sl := &plan.Slice{Node: node, Index: s.data.SliceIndex[node], Steps: []*plan.Step{}}
	for _, name := range s.slices.services(node) {
		svc := s.data.Services[name]
		for _, np := range s.slices.byNode[node][name] {
			sl.Steps = append(sl.Steps, np.Steps...)
		}
		if rolloutActive(svc) && svc.Rollout.Strategy.Health == plan.HealthCheck && svc.Rollout.Strategy.MinHealthySeconds > 0 && !s.slices.bySvc[name].waiting[node] {
			withHealthSeconds(sl.Steps, svc)
		}
	}
	return sl
}

// WaitSlice blocks until the node's slice index passes index or done is
// closed, and returns the slice.
func (s *State) WaitSlice(done <-chan struct{}, node string, index uint64) *plan.Slice {
	for {
		s.mu.RLock()
		ch, release := s.watch.wait(nodeKey(node))
		// A node that is gone (removed, collected) wakes its polls too.
		if s.data.SliceIndex[node] > index || s.data.Nodes[node] == nil {
			sl := s.sliceLocked(node)
			s.mu.RUnlock()
			release()
			return sl
		}
		s.mu.RUnlock()
		select {
		case <-ch:
			release()
		case <-done:
			release()
			return s.Slice(node)
		}
	}
}

// WaitService blocks until the service's modify index passes index (or the
// service disappears) or done is closed.
func (s *State) WaitService(done <-chan struct{}, name string, index uint64) {
	for {
		s.mu.RLock()
		svc := s.data.Services[name]
		if svc == nil || svc.ModifyIndex > index {
			s.mu.RUnlock()
			return
		}
		ch, release := s.watch.wait(serviceKey(name))
		s.mu.RUnlock()
		select {
		case <-ch:
			release()
		case <-done:
			release()
			return
		}
	}
}

func opKey(id string) string        { return "op/" + id }
func nodeOpsKey(node string) string { return "ops/" + node }

// Op returns an operation or nil.
func (s *State) Op(id string) *plan.Op {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.data.Ops[id]
}

// WaitOp blocks until the op changes past index (or done is closed).
func (s *State) WaitOp(done <-chan struct{}, id string, index uint64) *plan.Op {
	s.waitKey(done, opKey(id), func() bool {
		op := s.data.Ops[id]
		return op == nil || op.Index > index
	})
	return s.Op(id)
}

// waitKey blocks until ready (called under the read lock) holds or done is
// closed, waking when key is notified.
func (s *State) waitKey(done <-chan struct{}, key string, ready func() bool) {
	for {
		s.mu.RLock()
		if ready() {
			s.mu.RUnlock()
			return
		}
		ch, release := s.watch.wait(key)
		s.mu.RUnlock()
		select {
		case <-ch:
			release()
		case <-done:
			release()
			return
		}
	}
}

// NodeOps is what an agent pulls besides its slice: the ops with steps for
// it that it has not finished, and the index they are at.
func (s *State) NodeOps(done <-chan struct{}, node string, index uint64) ([]*plan.Op, uint64) {
	for {
		s.mu.RLock()
		if idx := s.data.OpsIndex[node]; idx > index || done == nil || s.data.Nodes[node] == nil {
			var out []*plan.Op
			for _, id := range sortedKeys(s.data.Ops) {
				op := s.data.Ops[id]
				steps, ok := op.Steps[node]
				if !ok || slices.Contains(op.Done, node) {
					continue
				}
				out = append(out, &plan.Op{ID: op.ID, Kind: op.Kind, Service: op.Service, Action: op.Action, LogBytes: op.LogBytes,
					Created: op.Created, Steps: map[string][]*plan.Step{node: steps}})
			}
			s.mu.RUnlock()
			return out, idx
		}
		ch, release := s.watch.wait(nodeOpsKey(node))
		s.mu.RUnlock()
		select {
		case <-ch:
			release()
		case <-done:
			release()
			done = nil
		}
	}
}

// CoordinatorInfo is how to reach a coordinator.
type CoordinatorInfo struct {
	Name     string `json:"name"`
	HTTPAddr string `json:"http_addr"`
	RaftAddr string `json:"raft_addr"`
	SerfAddr string `json:"serf_addr"`
}

// CoordinatorDirectory lists the known coordinators.
func (s *State) CoordinatorDirectory() []*CoordinatorInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedValues(s.data.Coordinators)
}

// Preview compiles a service's next plan without changing anything and
// compares it with the current one. Sensitive values are redacted. The
// plan assumes its ancestors' staged changes deployed (PreviewPending).
func (s *State) Preview(name string) *api.PlanPreview { return s.PreviewPending(name, true) }

// PreviewPending is Preview; without pending, against the ancestors as
// deployed (what deploying the service alone would do now).
func (s *State) PreviewPending(name string, pending bool) *api.PlanPreview {
	s.mu.RLock()
	defer s.mu.RUnlock()
	svc := s.data.Services[name]
	if svc == nil {
		return nil
	}
	pv := &api.PlanPreview{Service: name, Generation: svc.Generation + 1, Nodes: []plan.NodeDiff{}, Inputs: []*plan.Value{}, Violations: []plan.Violation{}}
	var p *plan.Plan
	var viol plan.Violations
	var pc pendingChanges
	if pending {
		p, pc, viol = s.compilePending(svc, svc.Generation+1)
		pv.Notes = pc.notes
	} else {
		p, viol = s.compile(svc, svc.Generation+1)
	}
	if viol != nil {
		pv.Violations = viol
		return pv
	}
	p = plan.RedactPlan(withRemovals(svc.Plan, p, svc.Generation+1))
	if pv.Pending = markPending(p, pc.exports); len(pv.Pending) > 0 {
		pv.Notes = append(pv.Notes, pc.assumes(name))
	}
	pv.Nodes = plan.Diff(svc.Plan, p)
	pv.Inputs, pv.Exports = p.Inputs, p.Exports
	if pv.Inputs == nil {
		pv.Inputs = []*plan.Value{}
	}
	return pv
}

// Status derives a service's status from its plan and the latest reports,
// with its sensitive values redacted (it is what operators see).
func (s *State) Status(name string) *api.ServiceStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	svc := s.data.Services[name]
	if svc == nil {
		return nil
	}
	st := s.statusLocked(svc)
	s.redactStatusLocked(svc, st)
	return st
}

func (s *State) statusLocked(svc *plan.Service) *api.ServiceStatus {
	st := &api.ServiceStatus{
		Name: svc.Name, Module: svc.Module, Version: svc.Version, Template: svc.Template,
		Parent: svc.Parent, State: svc.State, Generation: svc.Generation,
		Inputs: svc.Inputs, Index: svc.ModifyIndex, Nodes: []api.NodeStatus{},
		Stale: svc.Stale, Recursive: s.data.Recursive[svc.Name],
	}
	if svc.Plan == nil {
		return st
	}
	for _, np := range svc.Plan.Nodes {
		ns := api.NodeStatus{Name: np.Agent, TemplateNode: np.Name, Status: "unknown", Steps: []api.StepStatus{}}
		if n := s.data.Nodes[np.Agent]; n != nil {
			ns.Status = n.Status
		}
		for _, step := range np.Steps {
			ns.Steps = append(ns.Steps, stepStatus(step, s.data.Reports[step.ID]))
		}
		ns.Rollout = nodeRolloutState(svc, np.Agent)
		st.Nodes = append(st.Nodes, ns)
	}
	st.Rollout = rolloutStatus(svc)
	return st
}

func stepStatus(step *plan.Step, r *plan.Report) api.StepStatus {
	ss := api.StepStatus{
		ID: step.ID, Component: step.Component, Instance: step.Instance,
		Action: step.Action, State: plan.StepPending, DependsOn: step.DependsOn, Waiting: step.Waiting,
	}
	if reportCounts(step, r) {
		ss.State = r.State
		ss.ExitCode = r.ExitCode
		ss.DurationMs = r.DurationMs
		ss.Output = r.Output
		ss.Error = r.Error
		ss.Generation = r.Generation
		ss.Changed, ss.Drift, ss.FinishedAt = r.Changed, r.Drift, r.FinishedAt
		ss.StartedAt = r.StartedAt
		ss.Reason = r.Reason
	}
	return ss
}

// reportCounts says whether r is the report of step as planned now (the
// same digest, this generation or later); otherwise the step is pending.
func reportCounts(step *plan.Step, r *plan.Report) bool {
	return r != nil && r.Digest == step.Digest && r.Generation >= step.Generation
}

// deriveState computes a deployed service's state from its step states,
// as statusLocked shows them, without building the status: every report
// batch asks it of each service it touches, on every replica.
func (s *State) deriveState(base string, svc *plan.Service) string {
	if !derivable(base) {
		return base
	}
	var t stepTally
	var nodes []*plan.NodePlan
	if svc.Plan != nil {
		nodes = svc.Plan.Nodes
	}
	for _, np := range nodes {
		// A node group member that is down is reported (its node shows
		// down, its steps pending), not waited for; a node block is.
		n := s.data.Nodes[np.Agent]
		downMember := n != nil && n.Status == plan.NodeDown && strings.Contains(np.Name, "[")
		for _, step := range np.Steps {
			state := plan.StepPending
			if r := s.data.Reports[step.ID]; reportCounts(step, r) {
				state = r.State
			}
			t.add(state, downMember)
		}
	}
	return t.state(base)
}

// derivable says whether a service in state base takes its state from its
// steps.
func derivable(base string) bool {
	return base == plan.StateDeploying || base == plan.StateDeleting || base == plan.StateConverged || base == plan.StateFailed
}

// stepTally gathers a service's step states into its state.
type stepTally struct{ failed, pending bool }

// add counts a step in state; a down node group member's steps count only
// when they failed.
func (t *stepTally) add(state string, downMember bool) {
	if downMember && state != plan.StepFailed {
		return
	}
	switch state {
	case plan.StepFailed:
		t.failed = true
	case plan.StepOK, plan.StepSkipped:
	default:
		t.pending = true
	}
}

// state is the service state the steps give, from base.
func (t stepTally) state(base string) string {
	switch {
	case t.failed:
		return plan.StateFailed
	case !t.pending && base == plan.StateDeleting:
		return plan.StateDeleting // the FSM removes the service
	case !t.pending:
		return plan.StateConverged
	case base == plan.StateDeleting:
		return plan.StateDeleting
	default:
		return plan.StateDeploying
	}
}

func sortedValues[T any](m map[string]*T) []*T {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// watchSet hands out channels that are closed when a key changes. Each
// channel counts its waiters and goes when the last one leaves, so that
// waits on names that never change (GET /v1/services/<random>?index=1)
// leave nothing behind.
type watchSet struct {
	mu sync.Mutex
	ch map[string]*watchEntry
}

type watchEntry struct {
	ch   chan struct{}
	refs int
}

func newWatchSet() *watchSet { return &watchSet{ch: map[string]*watchEntry{}} }

// wait returns a channel closed at the key's next change and the function
// to call when the caller stops waiting on it.
func (w *watchSet) wait(key string) (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.ch[key]
	if !ok {
		e = &watchEntry{ch: make(chan struct{})}
		w.ch[key] = e
	}
	e.refs++
	return e.ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		// Once notified the entry is gone (or replaced by a newer one).
		if cur := w.ch[key]; cur == e {
			if e.refs--; e.refs == 0 {
				delete(w.ch, key)
			}
		}
	}
}

// size is the number of keys waited on.
func (w *watchSet) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ch)
}

func (w *watchSet) notify(keys ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		if e, ok := w.ch[k]; ok {
			close(e.ch)
			delete(w.ch, k)
		}
	}
}

func (w *watchSet) notifyAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, e := range w.ch {
		close(e.ch)
		delete(w.ch, k)
	}
}

func sortStrings(s []string) { sort.Strings(s) }
