package coordinator

import (
	"maps"
	"slices"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// Copy-on-write.
//
// Every object the state holds (a node, a service and its plan, an op, a
// report, a token) is immutable once the Apply that stored it has returned:
// a reader may keep what it got and encode it after the lock is released,
// and a later entry never changes it under the reader. The FSM changes an
// object by storing a changed copy in its place, as Nomad's state store
// copies on every write. Within one Apply the copy is made once (owned) and
// is then changed freely: no reader can see it before the lock is released.
//
// Plans are never changed after they are built: a new generation, a
// recompile or a dropped delete step makes a new *plan.Plan (steps are
// shared between plans, and never changed either).
//
// go-memdb was the other candidate: immutable radix trees give the same
// guarantee for whole tables, plus indexes and watch sets. The state is a
// handful of maps keyed by name whose readers already go through State's
// methods and whose watches are per key; copying the one object an entry
// changes gives readers the same guarantee without rewriting the FSM around
// transactions, and keeps snapshots in today's format (upgrade safety).

// beginApply starts the set of objects this Apply owns.
func (s *State) beginApply() { clear(s.owned) }

func (s *State) own(key string) bool {
	if s.owned == nil {
		s.owned = map[string]bool{}
	}
	if s.owned[key] {
		return true
	}
	s.owned[key] = true
	return false
}

// ownService returns the service this Apply may change (a copy stored in
// place of the one readers may hold), or nil.
func (s *State) ownService(name string) *plan.Service {
	svc := s.data.Services[name]
	if svc == nil || s.own("svc/"+name) {
		return svc
	}
	cp := *svc
	cp.Inputs = maps.Clone(svc.Inputs)
	cp.Lock = maps.Clone(svc.Lock)
	cp.Removed = slices.Clone(svc.Removed)
	s.data.Services[name] = &cp
	return &cp
}

// ownNode is ownService for a node.
func (s *State) ownNode(name string) *plan.Node {
	n := s.data.Nodes[name]
	if n == nil || s.own("node/"+name) {
		return n
	}
	cp := *n
	cp.Labels = maps.Clone(n.Labels)
	cp.AgentLabels = maps.Clone(n.AgentLabels)
	cp.OperatorLabels = maps.Clone(n.OperatorLabels)
	s.data.Nodes[name] = &cp
	return &cp
}

// ownOp is ownService for an op. Its result and done lists are clipped, so
// that an append makes new arrays rather than writing past what an earlier
// reader's slices show.
func (s *State) ownOp(id string) *plan.Op {
	op := s.data.Ops[id]
	if op == nil || s.own("op/"+id) {
		return op
	}
	cp := *op
	cp.Results = slices.Clip(op.Results)
	cp.Done = slices.Clip(op.Done)
	s.data.Ops[id] = &cp
	return &cp
}

// ownJoinToken is ownService for a join token.
func (s *State) ownJoinToken(id string) *api.JoinToken {
	t := s.data.Trust.Tokens[id]
	if t == nil || s.own("jt/"+id) {
		return t
	}
	cp := *t
	cp.Labels = maps.Clone(t.Labels)
	s.data.Trust.Tokens[id] = &cp
	return &cp
}

// ownPending is ownService for an enrollment request.
func (s *State) ownPending(name string) *api.PendingNode {
	p := s.data.Trust.Pending[name]
	if p == nil || s.own("pending/"+name) {
		return p
	}
	cp := *p
	s.data.Trust.Pending[name] = &cp
	return &cp
}

// shallowCopy copies every map and list of the state, not the values in
// them (which never change): a consistent view that the FSM's later writes
// do not touch, taken in time proportional to the number of entries.
func (d *stateData) shallowCopy() stateData {
	c := *d
	c.Nodes = maps.Clone(d.Nodes)
	c.Modules = maps.Clone(d.Modules)
	c.Services = maps.Clone(d.Services)
	c.Reports = maps.Clone(d.Reports)
	c.NodeSeq = maps.Clone(d.NodeSeq)
	c.SliceIndex = maps.Clone(d.SliceIndex)
	c.Outputs = maps.Clone(d.Outputs)
	c.Coordinators = maps.Clone(d.Coordinators)
	c.Ops = maps.Clone(d.Ops)
	c.OpsIndex = maps.Clone(d.OpsIndex)
	c.Trust.Tokens = maps.Clone(d.Trust.Tokens)
	c.Trust.Pending = maps.Clone(d.Trust.Pending)
	c.Trust.Enrolled = maps.Clone(d.Trust.Enrolled)
	c.Trust.Revoked = maps.Clone(d.Trust.Revoked)
	c.Trust.Removed = maps.Clone(d.Trust.Removed)
	c.ACL.Policies = maps.Clone(d.ACL.Policies)
	c.ACL.Tokens = maps.Clone(d.ACL.Tokens)
	c.Audit.Entries = slices.Clip(d.Audit.Entries)
	return c
}
