package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/plan"
)

// MessageType is the first byte of every Raft log entry; the rest is the
// command's JSON encoding.
type MessageType uint8

// Commands. Never renumber: the numbers are in every existing log.
const (
	RegisterNodeType MessageType = iota + 1
	PutModuleType
	StageServiceType
	SetInputsType
	DeployServiceType
	DeleteServiceType
	ReportsType
	NodeStatusType
	ResliceType
)

// IgnoreUnknownFlag marks a command that an older coordinator which does not
// know it may skip instead of treating the log as corrupt.
const IgnoreUnknownFlag MessageType = 128

// RegisterNodeCmd adds or updates a node.
type RegisterNodeCmd struct {
	Node plan.Node `json:"node"`
	Time int64     `json:"time_ms"`
}

// PutModuleCmd records a pushed module whose blob is already stored.
type PutModuleCmd struct {
	Module plan.Module `json:"module"`
}

// StageServiceCmd stages a new service, or re-stages an existing one on
// another module version or template.
type StageServiceCmd struct {
	Name     string            `json:"name"`
	Module   string            `json:"module"`
	Version  string            `json:"version"`
	Template string            `json:"template"`
	Parent   string            `json:"parent,omitempty"`
	Inputs   map[string]string `json:"inputs,omitempty"`
	Time     int64             `json:"time_ms"`
}

// SetInputsCmd changes a service's operator inputs; an empty value unsets.
type SetInputsCmd struct {
	Name   string            `json:"name"`
	Inputs map[string]string `json:"inputs"`
}

// DeployServiceCmd compiles a service's plan and publishes it.
type DeployServiceCmd struct {
	Name string `json:"name"`
}

// DeleteServiceCmd publishes a service's delete steps (or removes a service
// that has nothing to undo).
type DeleteServiceCmd struct {
	Name string `json:"name"`
}

// ReportsCmd applies a batch of step reports.
type ReportsCmd struct {
	Reports []plan.Report `json:"reports"`
	Time    int64         `json:"time_ms"`
}

// NodeStatusCmd marks nodes up or down (from gossip health).
type NodeStatusCmd struct {
	Updates []NodeStatusUpdate `json:"updates"`
	Time    int64              `json:"time_ms"`
}

// NodeStatusUpdate is one node's new status.
type NodeStatusUpdate struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// ResliceCmd moves every node's slice index to the entry's index, so that
// agents pull again after a snapshot restore (whose indexes are older than
// what agents have seen).
type ResliceCmd struct{}

// Errors an FSM command returns (as its response, not as a Raft failure).
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// Encode builds a log entry.
func Encode(t MessageType, cmd any) ([]byte, error) {
	b, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command %d: %w", t, err)
	}
	return append([]byte{byte(t)}, b...), nil
}

// FSM applies commands to a State.
type FSM struct {
	state *State
	log   *slog.Logger
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an FSM over an empty state.
func NewFSM(log *slog.Logger) *FSM {
	return &FSM{state: NewState(), log: log.With("component", "fsm")}
}

// State is the state the FSM maintains.
func (f *FSM) State() *State { return f.state }

// Apply applies one log entry. An entry that cannot be decoded means a
// corrupt log and panics; a command that fails on the state returns the
// error as the response and changes nothing.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	t := MessageType(l.Data[0])
	ignoreUnknown := t&IgnoreUnknownFlag != 0
	t &^= IgnoreUnknownFlag
	buf := l.Data[1:]
	s := f.state
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	var resp any
	switch t {
	case RegisterNodeType:
		var c RegisterNodeCmd
		mustDecode(buf, &c, t)
		resp, keys = s.registerNode(l.Index, &c)
	case PutModuleType:
		var c PutModuleCmd
		mustDecode(buf, &c, t)
		resp, keys = s.putModule(l.Index, &c)
	case StageServiceType:
		var c StageServiceCmd
		mustDecode(buf, &c, t)
		resp, keys = s.stageService(l.Index, &c)
	case SetInputsType:
		var c SetInputsCmd
		mustDecode(buf, &c, t)
		resp, keys = s.setInputs(l.Index, &c)
	case DeployServiceType:
		var c DeployServiceCmd
		mustDecode(buf, &c, t)
		resp, keys = s.deployService(l.Index, &c)
	case DeleteServiceType:
		var c DeleteServiceCmd
		mustDecode(buf, &c, t)
		resp, keys = s.deleteService(l.Index, &c)
	case ReportsType:
		var c ReportsCmd
		mustDecode(buf, &c, t)
		resp, keys = s.applyReports(l.Index, &c)
	case NodeStatusType:
		var c NodeStatusCmd
		mustDecode(buf, &c, t)
		resp, keys = s.nodeStatus(l.Index, &c)
	case ResliceType:
		for name := range s.data.Nodes {
			s.data.SliceIndex[name] = l.Index
			keys = append(keys, nodeKey(name))
		}
	default:
		if !ignoreUnknown {
			panic(fmt.Sprintf("fsm: unknown command type %d at index %d", t, l.Index))
		}
		f.log.Warn("ignoring unknown command", "type", t, "index", l.Index)
	}
	s.data.Index = l.Index
	s.watch.notify(append(keys, anyKey)...)
	return resp
}

func mustDecode(buf []byte, v any, t MessageType) {
	if err := json.Unmarshal(buf, v); err != nil {
		panic(fmt.Sprintf("fsm: corrupt command type %d: %v", t, err))
	}
}

func (s *State) registerNode(idx uint64, c *RegisterNodeCmd) (any, []string) {
	n := c.Node
	n.Status = "up"
	n.LastSeen = c.Time
	n.ModifyIndex = idx
	if old := s.data.Nodes[n.Name]; old != nil {
		n.CreateIndex = old.CreateIndex
		n.RegisteredAt = old.RegisteredAt
	} else {
		n.CreateIndex = idx
		n.RegisteredAt = c.Time
	}
	s.data.Nodes[n.Name] = &n
	// A new node gets a slice index so that its first poll returns at once.
	if s.data.SliceIndex[n.Name] == 0 {
		s.data.SliceIndex[n.Name] = idx
	}
	return &n, []string{nodeKey(n.Name)}
}

func (s *State) nodeStatus(idx uint64, c *NodeStatusCmd) (any, []string) {
	var keys []string
	for _, u := range c.Updates {
		n := s.data.Nodes[u.Name]
		if n == nil || n.Status == u.Status {
			continue
		}
		n.Status = u.Status
		n.ModifyIndex = idx
		if u.Status == "up" {
			n.LastSeen = c.Time
		}
		keys = append(keys, nodeKey(u.Name))
		// Services on this node show the change in their status.
		for _, svc := range s.data.Services {
			if svc.Plan == nil {
				continue
			}
			for _, np := range svc.Plan.Nodes {
				if np.Agent == u.Name {
					svc.ModifyIndex = idx
					keys = append(keys, serviceKey(svc.Name))
				}
			}
		}
	}
	return len(keys), keys
}

func (s *State) putModule(idx uint64, c *PutModuleCmd) (any, []string) {
	m := c.Module
	key := m.Ref()
	if old := s.data.Modules[key]; old != nil {
		if old.Digest == m.Digest {
			return old, nil
		}
		return fmt.Errorf("%w: module %s is already pushed with other content (%s); bump the version", ErrConflict, key, shortDigest(old.Digest)), nil
	}
	s.data.Modules[key] = &m
	return &m, nil
}

func (s *State) stageService(idx uint64, c *StageServiceCmd) (any, []string) {
	mod := s.data.Modules[c.Module+"@"+c.Version]
	if mod == nil {
		return fmt.Errorf("%w: module %s@%s", ErrNotFound, c.Module, c.Version), nil
	}
	if mod.Templates[c.Template] == nil {
		return fmt.Errorf("%w: module %s@%s has no template %q%s", ErrNotFound, c.Module, c.Version, c.Template, templateHint(mod)), nil
	}
	if c.Parent != "" && s.data.Services[c.Parent] == nil {
		return fmt.Errorf("%w: parent service %q", ErrNotFound, c.Parent), nil
	}
	svc := s.data.Services[c.Name]
	if svc == nil {
		svc = &plan.Service{Name: c.Name, State: plan.StateStaged, CreatedAt: c.Time, CreateIndex: idx}
		s.data.Services[c.Name] = svc
	} else {
		if svc.State == plan.StateDeleting {
			return fmt.Errorf("%w: service %q is being deleted", ErrConflict, c.Name), nil
		}
		if svc.Parent != c.Parent {
			return fmt.Errorf("%w: service %q is staged under parent %q; delete it to move it", ErrConflict, c.Name, svc.Parent), nil
		}
	}
	svc.Module, svc.Version, svc.Template, svc.Parent = c.Module, c.Version, c.Template, c.Parent
	if svc.Inputs == nil {
		svc.Inputs = map[string]string{}
	}
	for k, v := range c.Inputs {
		svc.Inputs[k] = v
	}
	svc.ModifyIndex = idx
	return svc, []string{serviceKey(c.Name)}
}

func templateHint(m *plan.Module) string {
	var names []string
	for n := range m.Templates {
		names = append(names, n)
	}
	if len(names) == 0 {
		return ""
	}
	sortStrings(names)
	return " (it has: " + strings.Join(names, ", ") + ")"
}

func (s *State) setInputs(idx uint64, c *SetInputsCmd) (any, []string) {
	svc := s.data.Services[c.Name]
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, c.Name), nil
	}
	if svc.Inputs == nil {
		svc.Inputs = map[string]string{}
	}
	for k, v := range c.Inputs {
		if v == "" {
			delete(svc.Inputs, k)
		} else {
			svc.Inputs[k] = v
		}
	}
	svc.ModifyIndex = idx
	return svc, []string{serviceKey(c.Name)}
}

func (s *State) deployService(idx uint64, c *DeployServiceCmd) (any, []string) {
	svc := s.data.Services[c.Name]
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, c.Name), nil
	}
	if svc.State == plan.StateDeleting {
		return fmt.Errorf("%w: service %q is being deleted", ErrConflict, c.Name), nil
	}
	gen := svc.Generation + 1
	p, viol := plan.Compile(plan.CompileInput{
		Service:    svc,
		Module:     s.data.Modules[svc.Module+"@"+svc.Version],
		Nodes:      sortedValues(s.data.Nodes),
		Generation: gen,
	})
	if viol != nil {
		return viol, nil
	}
	keys := s.setPlan(idx, svc, p)
	svc.Generation = gen
	svc.State = plan.StateDeploying
	s.refreshState(svc)
	return svc, keys
}

func (s *State) deleteService(idx uint64, c *DeleteServiceCmd) (any, []string) {
	svc := s.data.Services[c.Name]
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, c.Name), nil
	}
	for _, other := range s.data.Services {
		if other.Parent == c.Name {
			return fmt.Errorf("%w: service %q has child services (%s); delete them first", ErrConflict, c.Name, other.Name), nil
		}
	}
	if svc.Plan == nil {
		return s.removeService(idx, svc), []string{serviceKey(c.Name)}
	}
	gen := svc.Generation + 1
	dp := plan.DeletePlan(svc.Plan, gen)
	if svc.State == plan.StateDeleting {
		// Deleting again (after a failed delete step): re-run the same
		// delete steps under a new generation.
		dp = redoDelete(svc.Plan, gen)
	}
	keys := s.setPlan(idx, svc, dp)
	svc.Generation = gen
	svc.State = plan.StateDeleting
	if planEmpty(dp) {
		return s.removeService(idx, svc), keys
	}
	return svc, keys
}

func redoDelete(p *plan.Plan, gen uint64) *plan.Plan {
	out := &plan.Plan{Service: p.Service, Generation: gen}
	for _, np := range p.Nodes {
		dn := &plan.NodePlan{Name: np.Name, Agent: np.Agent}
		for _, st := range np.Steps {
			d := *st
			d.Generation = gen
			d.Digest = strings.SplitN(st.Digest, "/", 2)[0] + "/" + strconv.FormatUint(gen, 10)
			dn.Steps = append(dn.Steps, &d)
		}
		out.Nodes = append(out.Nodes, dn)
	}
	return out
}

func planEmpty(p *plan.Plan) bool {
	for _, np := range p.Nodes {
		if len(np.Steps) > 0 {
			return false
		}
	}
	return true
}

// setPlan replaces a service's plan and moves the slice index of every
// agent in the old or the new plan.
func (s *State) setPlan(idx uint64, svc *plan.Service, p *plan.Plan) []string {
	var keys []string
	touch := func(pl *plan.Plan) {
		if pl == nil {
			return
		}
		for _, np := range pl.Nodes {
			s.data.SliceIndex[np.Agent] = idx
			keys = append(keys, nodeKey(np.Agent))
		}
	}
	touch(svc.Plan)
	touch(p)
	svc.Plan = p
	svc.ModifyIndex = idx
	return append(keys, serviceKey(svc.Name))
}

func (s *State) removeService(idx uint64, svc *plan.Service) *plan.Service {
	if svc.Plan != nil {
		for _, np := range svc.Plan.Nodes {
			s.data.SliceIndex[np.Agent] = idx
			s.watch.notify(nodeKey(np.Agent))
			for _, st := range np.Steps {
				delete(s.data.Reports, st.ID)
				delete(s.data.Reports, plan.StepID(st.Service, st.Node, st.Instance, "create"))
			}
		}
	}
	delete(s.data.Services, svc.Name)
	svc.ModifyIndex = idx
	return svc
}

func (s *State) applyReports(idx uint64, c *ReportsCmd) (any, []string) {
	touched := map[string]bool{}
	applied := 0
	for i := range c.Reports {
		r := c.Reports[i]
		seq := reportSeq(r.ID)
		if seq != 0 && seq <= s.data.NodeSeq[r.Node] {
			continue // a resend of a report already applied
		}
		if seq != 0 {
			s.data.NodeSeq[r.Node] = seq
		}
		if n := s.data.Nodes[r.Node]; n != nil {
			n.LastSeen = c.Time
		}
		svc := s.data.Services[r.Service]
		if svc == nil {
			continue
		}
		if old := s.data.Reports[r.StepID]; old != nil && old.Generation > r.Generation {
			continue
		}
		s.data.Reports[r.StepID] = &r
		touched[r.Service] = true
		applied++
	}
	var keys []string
	for name := range touched {
		svc := s.data.Services[name]
		svc.ModifyIndex = idx
		keys = append(keys, serviceKey(name))
		s.refreshState(svc)
		if svc.State == plan.StateDeleting && s.deleteDone(svc) {
			s.removeService(idx, svc)
		}
	}
	return applied, keys
}

// refreshState sets a deploying, converged or failed service's state from
// its steps.
func (s *State) refreshState(svc *plan.Service) {
	svc.State = deriveState(svc.State, s.statusLocked(svc))
}

func (s *State) deleteDone(svc *plan.Service) bool {
	st := s.statusLocked(svc)
	for _, n := range st.Nodes {
		for _, step := range n.Steps {
			if step.State != plan.StepOK && step.State != plan.StepSkipped {
				return false
			}
		}
	}
	return true
}

// reportSeq reads the sequence number from a report ID "node:seq".
func reportSeq(id string) uint64 {
	i := strings.LastIndexByte(id, ':')
	if i < 0 {
		return 0
	}
	n, _ := strconv.ParseUint(id[i+1:], 10, 64)
	return n
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// Snapshot captures the state as of now. The copy is taken under the lock;
// Persist writes it out without holding anything.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.state.mu.RLock()
	b, err := json.Marshal(f.state.data)
	f.state.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("snapshot state: %w", err)
	}
	return &fsmSnapshot{data: b}, nil
}

// Restore replaces the state with a snapshot's and wakes every watcher of
// the old state.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	d := newStateData()
	if err := json.NewDecoder(rc).Decode(&d); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.state.mu.Lock()
	f.state.data = d
	f.state.mu.Unlock()
	f.state.watch.notifyAll()
	return nil
}

type fsmSnapshot struct{ data []byte }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
