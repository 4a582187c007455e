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
func (s *State) beginApply(idx uint64) {
	clear(s.owned)
	s.at = applyAt{index: idx}
}

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

// ownIn returns m[key] as this Apply may change it: on first use in the
// Apply, a copy (made by clone) stored in place of the value readers may
// hold. It returns nil when there is no such value.
func ownIn[T any](s *State, m map[string]*T, kind, key string, clone func(T) T) *T {
	v := m[key]
	if v == nil || s.own(kind+"/"+key) {
		return v
	}
	cp := clone(*v)
	m[key] = &cp
	return &cp
}

// ownService returns the service this Apply may change, or nil.
func (s *State) ownService(name string) *plan.Service {
	return ownIn(s, s.data.Services, "svc", name, func(c plan.Service) plan.Service {
		c.Inputs, c.Lock, c.Removed = maps.Clone(c.Inputs), maps.Clone(c.Lock), slices.Clone(c.Removed)
		c.Stale = slices.Clone(c.Stale)
		return c
	})
}

// ownNode is ownService for a node.
func (s *State) ownNode(name string) *plan.Node {
	return ownIn(s, s.data.Nodes, "node", name, func(c plan.Node) plan.Node {
		c.Labels, c.AgentLabels, c.OperatorLabels = maps.Clone(c.Labels), maps.Clone(c.AgentLabels), maps.Clone(c.OperatorLabels)
		return c
	})
}

// ownOp is ownService for an op. Its result and done lists are clipped, so
// that an append makes new arrays rather than writing past what an earlier
// reader's slices show.
func (s *State) ownOp(id string) *plan.Op {
	return ownIn(s, s.data.Ops, "op", id, func(c plan.Op) plan.Op {
		c.Results, c.Done = slices.Clip(c.Results), slices.Clip(c.Done)
		return c
	})
}

// ownJoinToken is ownService for a join token.
func (s *State) ownJoinToken(id string) *api.JoinToken {
	return ownIn(s, s.data.Trust.Tokens, "jt", id, func(c api.JoinToken) api.JoinToken {
		c.Labels = maps.Clone(c.Labels)
		return c
	})
}

// ownPending is ownService for an enrollment request.
func (s *State) ownPending(name string) *api.PendingNode {
	return ownIn(s, s.data.Trust.Pending, "pending", name, func(c api.PendingNode) api.PendingNode { return c })
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
	c.History = maps.Clone(d.History)
	c.Generations = maps.Clone(d.Generations)
	c.Events.Entries = slices.Clip(d.Events.Entries)
	c.Recursive = maps.Clone(d.Recursive)
	c.Recompile = maps.Clone(d.Recompile)
	return c
}
