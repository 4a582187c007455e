package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/api"
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
	CreateOpType
	OpResultsType
	PutModulesType // PutModulesCmd: a bundle import, all or nothing
	CoordinatorsType
	CreateTokenType
	DeleteTokenType
	EnrollType
	PendingType
	RejectType
	RemoveNodeType
	PutCAType
	NodeLabelsType
	// Access control (coordinator/acl*.go) and the audit trail
	// (coordinator/audit.go).
	ACLBootstrapType
	ACLPolicyType
	ACLDeletePolicyType
	ACLTokenType
	ACLDeleteTokenType
	AuditType
	DataKeyType
	// Garbage collection (coordinator/gc.go).
	DeleteModuleType
	// History and events (coordinator/history.go): a coordinator became
	// the leader. Sent with IgnoreUnknownFlag.
	LeaderType
	// Rollouts (coordinator/rollout.go).
	RolloutType
	RolloutTickType
	RevertServiceType
	// Several agents' operation results in one entry (coordinator/
	// opbatch.go). Sent with IgnoreUnknownFlag.
	OpResultsBatchType
	// A deploy the leader compiled (planner.go). Never sent with
	// IgnoreUnknownFlag: a coordinator that skipped it would diverge.
	PlannedDeployType
	// A recompile the leader made (recompile.go). Never sent with
	// IgnoreUnknownFlag.
	RecompileType
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
	// Lock pins required modules (name → version), resolved by the
	// leader from the pushed versions.
	Lock map[string]string `json:"lock,omitempty"`
	Time int64             `json:"time_ms"`
	// Upgrade: a re-stage on another module version (dtkctl service
	// upgrade), recorded in the history as such.
	Upgrade bool `json:"upgrade,omitempty"`
	Caller
}

// Caller is who asked for a command, as the audit trail names them (the
// caller's identity and ACL token name): the history records it.
type Caller struct {
	By    string `json:"by,omitempty"`
	Token string `json:"token,omitempty"`
}

// SetInputsCmd changes a service's operator inputs; an empty value unsets.
type SetInputsCmd struct {
	Name   string            `json:"name"`
	Inputs map[string]string `json:"inputs"`
	Time   int64             `json:"time_ms,omitempty"`
	Caller
}

// DeployServiceCmd compiles a service's plan and publishes it, through a
// rollout when the template's strategy (or Rollout) stages it.
type DeployServiceCmd struct {
	Name    string                `json:"name"`
	Rollout *plan.RolloutOverride `json:"rollout,omitempty"`
	Time    int64                 `json:"time_ms,omitempty"`
	Caller
	// Recursive then deploys the services below it, one by one
	// (cascade.go).
	Recursive bool `json:"recursive,omitempty"`
	// Force and Restore: force.go.
	Force   *api.Part `json:"force,omitempty"`
	Restore *api.Part `json:"restore,omitempty"`
}

// DeleteServiceCmd publishes a service's delete steps (or removes a service
// that has nothing to undo). Node and Component limit it to part of the
// service; Recursive deletes its children first, leaves first.
type DeleteServiceCmd struct {
	Name      string `json:"name"`
	Node      string `json:"node,omitempty"`
	Component string `json:"component,omitempty"`
	Recursive bool   `json:"recursive,omitempty"`
	Time      int64  `json:"time_ms,omitempty"`
	Caller
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

// CreateOpCmd records a one-off operation for nodes to pick up.
type CreateOpCmd struct {
	Op plan.Op `json:"op"`
	Caller
}

// OpResultsCmd records an agent's results for an operation.
type OpResultsCmd struct {
	ID      string        `json:"id"`
	Node    string        `json:"node"`
	Reports []plan.Report `json:"reports"`
	Final   bool          `json:"final"`
	Time    int64         `json:"time_ms,omitempty"`
}

// LeaderCmd records that a coordinator became the leader.
type LeaderCmd struct {
	Name string `json:"name"`
	Time int64  `json:"time_ms"`
}

// CoordinatorsCmd records how to reach coordinators (upsert by name).
type CoordinatorsCmd struct {
	Coordinators []CoordinatorInfo `json:"coordinators"`
}

// maxOps is how many operations the state keeps (oldest dropped first).
const maxOps = 200

// Logs operations (their results are whole step logs) are kept fewer and
// shorter.
const (
	maxLogOps = 10
	maxLogAge = 10 * time.Minute
)

// Errors an FSM command returns (as its response, not as a Raft failure).
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
	// ErrUnauthorized is a credential that does not work (a join token).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrTooMany is a bounded table that is full.
	ErrTooMany = errors.New("too many")
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
	keys  dataKeys
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
	data := l.Data
	if MessageType(data[0]) == SealedEntryType {
		if data = f.unsealEntry(data[1:], l.Index); len(data) == 0 {
			panic(fmt.Sprintf("fsm: empty sealed entry at index %d", l.Index))
		}
	}
	t := MessageType(data[0])
	ignoreUnknown := t&IgnoreUnknownFlag != 0
	t &^= IgnoreUnknownFlag
	buf := data[1:]
	s := f.state
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beginApply(l.Index)
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
	case CoordinatorsType:
		var c CoordinatorsCmd
		mustDecode(buf, &c, t)
		for i := range c.Coordinators {
			ci := c.Coordinators[i]
			if s.data.Coordinators == nil {
				s.data.Coordinators = map[string]*CoordinatorInfo{}
			}
			s.data.Coordinators[ci.Name] = &ci
		}
	case CreateOpType:
		var c CreateOpCmd
		mustDecode(buf, &c, t)
		resp, keys = s.createOp(l.Index, &c)
	case OpResultsType:
		var c OpResultsCmd
		mustDecode(buf, &c, t)
		resp, keys = s.opResults(l.Index, &c)
	case PutModulesType:
		var c PutModulesCmd
		mustDecode(buf, &c, t)
		resp, keys = s.putModules(l.Index, &c)
	case CreateTokenType:
		var c CreateTokenCmd
		mustDecode(buf, &c, t)
		resp, keys = s.createToken(l.Index, &c)
	case DeleteTokenType:
		var c DeleteTokenCmd
		mustDecode(buf, &c, t)
		resp, keys = s.deleteToken(l.Index, &c)
	case EnrollType:
		var c EnrollCmd
		mustDecode(buf, &c, t)
		resp, keys = s.enroll(l.Index, &c)
	case PendingType:
		var c PendingCmd
		mustDecode(buf, &c, t)
		resp, keys = s.addPending(l.Index, &c)
	case RejectType:
		var c RejectCmd
		mustDecode(buf, &c, t)
		resp, keys = s.reject(l.Index, &c)
	case RemoveNodeType:
		var c RemoveNodeCmd
		mustDecode(buf, &c, t)
		resp, keys = s.removeNode(l.Index, &c)
	case PutCAType:
		var c PutCACmd
		mustDecode(buf, &c, t)
		resp, keys = s.putCA(l.Index, &c)
	case NodeLabelsType:
		var c NodeLabelsCmd
		mustDecode(buf, &c, t)
		resp, keys = s.nodeLabels(l.Index, &c)
	case ACLBootstrapType:
		var c ACLBootstrapCmd
		mustDecode(buf, &c, t)
		resp, keys = s.aclBootstrap(l.Index, &c)
	case ACLPolicyType:
		var c ACLPolicyCmd
		mustDecode(buf, &c, t)
		resp, keys = s.aclPolicy(l.Index, &c)
	case ACLDeletePolicyType:
		var c ACLDeletePolicyCmd
		mustDecode(buf, &c, t)
		resp, keys = s.aclDeletePolicy(l.Index, &c)
	case ACLTokenType:
		var c ACLTokenCmd
		mustDecode(buf, &c, t)
		resp, keys = s.aclToken(l.Index, &c)
	case DataKeyType:
		var c DataKeyCmd
		mustDecode(buf, &c, t)
		resp, keys = s.putDataKey(l.Index, &c, &f.keys)
	case AuditType:
		var c AuditCmd
		mustDecode(buf, &c, t)
		resp, keys = s.appendAudit(l.Index, &c)
	case DeleteModuleType:
		var c DeleteModuleCmd
		mustDecode(buf, &c, t)
		resp, keys = s.deleteModule(l.Index, &c)
	case ACLDeleteTokenType:
		var c ACLDeleteTokenCmd
		mustDecode(buf, &c, t)
		resp, keys = s.aclDeleteToken(l.Index, &c)
	case RolloutType:
		var c RolloutCmd
		mustDecode(buf, &c, t)
		resp, keys = s.rolloutCmd(l.Index, &c)
	case RolloutTickType:
		var c RolloutTickCmd
		mustDecode(buf, &c, t)
		resp, keys = s.rolloutTick(l.Index, &c)
	case RevertServiceType:
		var c RevertServiceCmd
		mustDecode(buf, &c, t)
		resp, keys = s.revertService(l.Index, &c)
	case OpResultsBatchType:
		var c OpResultsBatchCmd
		mustDecode(buf, &c, t)
		resp, keys = s.opResultsBatch(l.Index, &c)
	case PlannedDeployType:
		var c PlannedDeployCmd
		mustDecode(buf, &c, t)
		resp, keys = s.plannedDeploy(l.Index, &c)
	case RecompileType:
		var c RecompileCmd
		mustDecode(buf, &c, t)
		resp, keys = s.recompile(l.Index, &c)
	case LeaderType:
		var c LeaderCmd
		mustDecode(buf, &c, t)
		s.setAt(c.Time, "", "")
		s.emit(api.Event{Type: api.EventLeaderChanged, Coordinator: c.Name, Message: c.Name + " is the leader"})
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
	if !compileNeutral[t] {
		s.compileInputsChanged()
	}
	// Stale services and recursive deploys follow what the entry changed.
	keys = append(keys, s.afterApply(l.Index)...)
	s.data.Index = l.Index
	s.reindexOwned()
	s.watch.notify(append(append(keys, s.at.keys...), anyKey)...)
	return resp
}

func mustDecode(buf []byte, v any, t MessageType) {
	if err := json.Unmarshal(buf, v); err != nil {
		panic(fmt.Sprintf("fsm: corrupt command type %d: %v", t, err))
	}
}

func (s *State) registerNode(idx uint64, c *RegisterNodeCmd) (any, []string) {
	n := c.Node
	n.Status = plan.NodeUp
	n.LastSeen = c.Time
	n.ModifyIndex = idx
	// The node's own labels never override an operator's.
	n.AgentLabels, n.OperatorLabels = n.Labels, nil
	if old := s.data.Nodes[n.Name]; old != nil {
		n.CreateIndex = old.CreateIndex
		n.RegisteredAt = old.RegisteredAt
		n.OperatorLabels = old.OperatorLabels
	} else {
		n.CreateIndex = idx
		n.RegisteredAt = c.Time
		if e := s.data.Trust.Enrolled[n.Name]; e != nil {
			n.OperatorLabels = maps.Clone(e.Labels)
		}
	}
	n.Labels = mergeLabels(n.AgentLabels, n.OperatorLabels)
	s.setAt(c.Time, "", "")
	switch old := s.data.Nodes[n.Name]; {
	case old == nil:
		s.emit(api.Event{Type: api.EventNodeUp, Node: n.Name, Message: "registered"})
	case old.Status != plan.NodeUp:
		s.emit(api.Event{Type: api.EventNodeUp, Node: n.Name, Message: "registered again"})
	}
	// A new incarnation (the agent lost its data dir) numbers its reports
	// from 1 again: forget the sequence of the one it replaces.
	if old := s.data.Nodes[n.Name]; old != nil && old.Incarnation != "" && n.Incarnation != old.Incarnation {
		delete(s.data.NodeSeq, seqKey(n.Name, old.Incarnation))
		delete(s.data.NodeSeq, n.Name) // from before incarnations
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
	s.setAt(c.Time, "", "")
	for _, u := range c.Updates {
		if n := s.data.Nodes[u.Name]; n == nil || n.Status == u.Status {
			continue
		}
		n := s.ownNode(u.Name)
		n.Status = u.Status
		n.ModifyIndex = idx
		if u.Status == plan.NodeUp {
			n.LastSeen = c.Time
			s.emit(api.Event{Type: api.EventNodeUp, Node: u.Name})
		} else {
			s.emit(api.Event{Type: api.EventNodeDown, Node: u.Name})
		}
		keys = append(keys, nodeKey(u.Name))
		// Services on this node show the change in their status.
		for _, svc := range s.data.Services {
			if svc.Plan == nil {
				continue
			}
			for _, np := range svc.Plan.Nodes {
				if np.Agent == u.Name {
					s.ownService(svc.Name).ModifyIndex = idx
					keys = append(keys, serviceKey(svc.Name))
					break
				}
			}
		}
	}
	// A rollout does not wait for a node that went down.
	for _, name := range sortedKeys(s.data.Services) {
		if rolloutActive(s.data.Services[name]) {
			svc := s.ownService(name)
			s.advanceRollout(idx, svc, c.Time, &keys, false)
			s.refreshState(svc)
			s.trackService(svc)
		}
	}
	return len(keys), keys
}

func (s *State) createOp(idx uint64, c *CreateOpCmd) (any, []string) {
	op := c.Op
	op.Index = idx
	s.data.Ops[op.ID] = &op
	s.setAt(op.Created, c.By, c.Token)
	s.startOpRecord(&op)
	keys := []string{opKey(op.ID)}
	for node := range op.Steps {
		s.data.OpsIndex[node] = idx
		keys = append(keys, nodeOpsKey(node))
	}
	// Fetched logs are big and read once: they go after maxLogAge, and
	// only the newest maxLogOps are kept (from the new op's clock, so that
	// every replica drops the same ones).
	var logOps []*plan.Op
	for id, o := range s.data.Ops {
		if o.Kind != plan.OpLogs || o.ID == op.ID {
			continue
		}
		if o.Created+maxLogAge.Milliseconds() < op.Created {
			delete(s.data.Ops, id)
			continue
		}
		logOps = append(logOps, o)
	}
	sort.Slice(logOps, func(i, j int) bool {
		return logOps[i].Created < logOps[j].Created || (logOps[i].Created == logOps[j].Created && logOps[i].ID < logOps[j].ID)
	})
	for i := 0; i < len(logOps)-maxLogOps; i++ {
		delete(s.data.Ops, logOps[i].ID)
	}
	// Keep the most recent ops only: drop the oldest (by creation, then ID).
	for len(s.data.Ops) > maxOps {
		var oldest *plan.Op
		for _, o := range s.data.Ops {
			if oldest == nil || o.Created < oldest.Created || (o.Created == oldest.Created && o.ID < oldest.ID) {
				oldest = o
			}
		}
		delete(s.data.Ops, oldest.ID)
	}
	return &op, keys
}

func (s *State) opResults(idx uint64, c *OpResultsCmd) (any, []string) {
	op := s.data.Ops[c.ID]
	if op == nil {
		return fmt.Errorf("%w: operation %q (it may have expired)", ErrNotFound, c.ID), nil
	}
	if slices.Contains(op.Done, c.Node) {
		return op, nil // a resend
	}
	op = s.ownOp(c.ID)
	op.Results = append(op.Results, c.Reports...)
	keys := []string{opKey(op.ID)}
	if c.Final {
		op.Done = append(op.Done, c.Node)
		s.data.OpsIndex[c.Node] = idx
		keys = append(keys, nodeOpsKey(c.Node))
	}
	op.Index = idx
	s.setAt(c.Time, "", "")
	s.trackOp(op)
	return op, keys
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
	s.setAt(c.Time, c.By, c.Token)
	svc := s.ownService(c.Name)
	restaged := svc != nil
	if svc == nil {
		svc = &plan.Service{Name: c.Name, State: plan.StateStaged, CreatedAt: c.Time, CreateIndex: idx}
		s.data.Services[c.Name] = svc
		s.own("svc/" + c.Name)
	} else {
		if svc.State == plan.StateDeleting {
			return fmt.Errorf("%w: service %q is being deleted", ErrConflict, c.Name), nil
		}
		if svc.Parent != c.Parent {
			return fmt.Errorf("%w: service %q is staged under parent %q; delete it to move it", ErrConflict, c.Name, svc.Parent), nil
		}
	}
	if restaged {
		var what []string
		if svc.Module != c.Module || svc.Version != c.Version {
			what = append(what, svc.Module+"@"+svc.Version+" → "+c.Module+"@"+c.Version)
		}
		if svc.Template != c.Template {
			what = append(what, "template "+svc.Template+" → "+c.Template)
		}
		if m := inputsMessage(c.Inputs); m != "" {
			what = append(what, "inputs: "+m)
		}
		if len(what) > 0 || c.Upgrade {
			kind := api.HistoryUpgrade
			if len(what) == 1 && strings.HasPrefix(what[0], "inputs: ") && !c.Upgrade {
				kind = api.HistoryInputs
			}
			if len(what) == 0 {
				what = append(what, "already at "+c.Module+"@"+c.Version)
			}
			s.instantRecord(svc, kind, strings.Join(what, "; "))
		}
	}
	svc.Module, svc.Version, svc.Template, svc.Parent = c.Module, c.Version, c.Template, c.Parent
	svc.Lock = c.Lock
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
	svc := s.ownService(c.Name)
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
	s.setAt(c.Time, c.By, c.Token)
	s.instantRecord(svc, api.HistoryInputs, inputsMessage(c.Inputs))
	return svc, []string{serviceKey(c.Name)}
}

func (s *State) deployService(idx uint64, c *DeployServiceCmd) (any, []string) {
	return s.deployServiceWith(idx, c, s.compileNow)
}

// deployServiceWith is deployService with the plan from compiled: the
// compiler here, or what the leader compiled (planner.go).
func (s *State) deployServiceWith(idx uint64, c *DeployServiceCmd, compiled compiledFn) (any, []string) {
	svc := s.ownService(c.Name)
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, c.Name), nil
	}
	undo, msg, err := s.prepareDeploy(svc, c)
	if err != nil {
		return err, nil
	}
	resp, keys := s.deployWith(idx, svc, c.Rollout, c.Time, c.By, c.Token, msg, compiled)
	if _, failed := resp.(error); failed {
		undo()
	} else {
		markForce(svc.Plan, idx, c.Force)
	}
	if _, failed := resp.(error); !failed && c.Recursive {
		keys = append(keys, s.startRecursive(idx, svc)...)
	}
	return resp, keys
}

// deploy compiles svc's next generation and publishes it, to every node at
// once or through a rollout (rollout.go). svc is owned by this Apply.
func (s *State) deploy(idx uint64, svc *plan.Service, o *plan.RolloutOverride, now int64, by, token, msg string) (any, []string) {
	return s.deployWith(idx, svc, o, now, by, token, msg, s.compileNow)
}

// compiledFn gives a service's plan of a generation: its violations, or an
// error when there is no plan to store (a stale planned deploy).
type compiledFn func(svc *plan.Service, gen uint64) (*plan.Plan, plan.Violations, error)

// compileNow is the compiledFn that runs the compiler in Apply.
func (s *State) compileNow(svc *plan.Service, gen uint64) (*plan.Plan, plan.Violations, error) {
	p, viol := s.compile(svc, gen)
	return p, viol, nil
}

// deployWith is deploy with the plan from compiled: everything but the
// compile, which both deploy entry types share.
func (s *State) deployWith(idx uint64, svc *plan.Service, o *plan.RolloutOverride, now int64, by, token, msg string, compiled compiledFn) (any, []string) {
	if svc.State == plan.StateDeleting {
		return fmt.Errorf("%w: service %q is being deleted", ErrConflict, svc.Name), nil
	}
	strat := s.strategy(svc, o)
	if err := strat.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err), nil
	}
	gen := svc.Generation + 1
	p, viol, err := compiled(svc, gen)
	if err != nil {
		return err, nil
	}
	if viol != nil {
		return viol, nil
	}
	s.setAt(now, by, token)
	prev := svc.Plan
	// What the agents have: a rollout under way left some on From.
	have := effectivePlan(svc)
	keys := s.setPlan(idx, svc, withRemovals(have, p, gen))
	svc.Generation = gen
	svc.State = plan.StateDeploying
	svc.Rollout = nil
	s.startPlanRecord(svc, api.HistoryDeploy, gen, prev, svc.Plan, msg)
	if strat.Staged() {
		keys = append(keys, s.startRollout(idx, svc, have, strat, now)...)
	}
	s.refreshState(svc)
	s.trackService(svc)
	s.deployed(svc)
	return svc, keys
}

// compile runs the compiler on the current state.
func (s *State) compile(svc *plan.Service, gen uint64) (*plan.Plan, plan.Violations) {
	return s.compileWith(svc, gen, nil)
}

// compileWith is compile with some ancestors (by name) standing in for the
// state's: a preview of their staged changes (cascade.go).
func (s *State) compileWith(svc *plan.Service, gen uint64, ancestors map[string]*plan.Service) (*plan.Plan, plan.Violations) {
	return compileFn(s.compileInput(svc, gen, ancestors))
}

// compileInput is what the compiler reads of the state, under its lock.
func (s *State) compileInput(svc *plan.Service, gen uint64, ancestors map[string]*plan.Service) plan.CompileInput {
	in := plan.CompileInput{
		Service:    svc,
		Module:     s.data.Modules[svc.Module+"@"+svc.Version],
		Modules:    s.data.Modules,
		Nodes:      sortedValues(s.data.Nodes),
		Generation: gen,
		Previous:   svc.Plan,
		Outputs:    s.data.Outputs,
		Done:       map[string]string{},
	}
	for id, r := range s.data.Reports {
		if d, ok := doneDigest(r); ok {
			in.Done[id] = d
		}
	}
	seen := map[string]bool{svc.Name: true}
	for p := svc.Parent; p != "" && !seen[p]; {
		seen[p] = true
		a := s.data.Services[p]
		if o := ancestors[p]; o != nil {
			a = o
		}
		if a == nil {
			break
		}
		in.Ancestors = append(in.Ancestors, plan.Ancestor{Service: a, Module: s.data.Modules[a.Module+"@"+a.Version]})
		p = a.Parent
	}
	return in
}

// withRemovals adds to a new plan the delete steps of create steps that
// the previous plan had and the new one has not (a component taken out of
// the template): their delete actions run, and show in status.
func withRemovals(prev, next *plan.Plan, gen uint64) *plan.Plan {
	if prev == nil {
		return next
	}
	have := map[string]bool{}
	for _, np := range next.Nodes {
		for _, st := range np.Steps {
			have[st.ID] = true
		}
	}
	for _, np := range prev.Nodes {
		var undo []*plan.Step
		for i := len(np.Steps) - 1; i >= 0; i-- {
			st := np.Steps[i]
			if st.Action != "create" || have[st.ID] {
				continue
			}
			if d := plan.UndoStep(st, gen); d != nil {
				undo = append(undo, d)
			}
		}
		if len(undo) == 0 {
			continue
		}
		var target *plan.NodePlan
		for _, n := range next.Nodes {
			if n.Agent == np.Agent {
				target = n
			}
		}
		if target == nil {
			target = &plan.NodePlan{Name: np.Name, Agent: np.Agent}
			next.Nodes = append(next.Nodes, target)
		}
		target.Steps = append(target.Steps, undo...)
	}
	return next
}

func (s *State) deleteService(idx uint64, c *DeleteServiceCmd) (any, []string) {
	svc := s.ownService(c.Name)
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, c.Name), nil
	}
	s.setAt(c.Time, c.By, c.Token)
	if c.Node != "" || c.Component != "" {
		return s.deletePart(idx, svc, c)
	}
	children := s.children(c.Name)
	if len(children) > 0 && !c.Recursive {
		return fmt.Errorf("%w: service %q has child services (%s); delete them first, or use --recursive", ErrConflict, c.Name, strings.Join(children, ", ")), nil
	}
	var keys []string
	resp := s.deleteTree(idx, svc, &keys)
	return resp, keys
}

// children lists the services staged with respect to name.
func (s *State) children(name string) []string {
	var out []string
	for _, other := range s.data.Services {
		if other.Parent == name {
			out = append(out, other.Name)
		}
	}
	sortStrings(out)
	return out
}

// deleteTree deletes a service after its children, leaves first: a service
// with children is marked, and its own delete starts when the last child
// is gone.
func (s *State) deleteTree(idx uint64, svc *plan.Service, keys *[]string) any {
	children := s.children(svc.Name)
	if len(children) > 0 {
		if !svc.DeleteRecursive {
			s.startPlanRecord(svc, api.HistoryDelete, svc.Generation+1, nil, nil, "after its child services: "+strings.Join(children, ", "))
		}
		svc.DeleteRecursive = true
		svc.State = plan.StateDeleting
		svc.ModifyIndex = idx
		*keys = append(*keys, serviceKey(svc.Name))
		for _, ch := range children {
			s.deleteTree(idx, s.ownService(ch), keys)
		}
		return svc
	}
	return s.startDelete(idx, svc, keys)
}

// startDelete publishes a service's delete steps, or removes it at once
// when it has nothing to undo.
func (s *State) startDelete(idx uint64, svc *plan.Service, keys *[]string) any {
	svc.DeleteRecursive = false
	if svc.Plan == nil {
		s.startDeleteRecord(svc, svc.Generation, nil, nil)
		return s.removeService(idx, svc, keys)
	}
	gen := svc.Generation + 1
	var dp *plan.Plan
	if svc.State == plan.StateDeleting && isDeletePlan(svc.Plan) {
		// Deleting again (after a failed delete step): re-run the same
		// delete steps under a new generation.
		dp = redoDelete(svc.Plan, gen)
	} else {
		dp = plan.DeletePlan(svc.Plan, gen)
	}
	s.startDeleteRecord(svc, gen, svc.Plan, dp)
	*keys = append(*keys, s.setPlan(idx, svc, dp)...)
	svc.Generation = gen
	svc.State = plan.StateDeleting
	if planEmpty(dp) {
		return s.removeService(idx, svc, keys)
	}
	return svc
}

func isDeletePlan(p *plan.Plan) bool {
	for _, np := range p.Nodes {
		for _, st := range np.Steps {
			if st.Action != "delete" {
				return false
			}
		}
	}
	return true
}

// deletePart undoes part of a deployed service: the instances on one
// template node (--node) and/or of one name (--component). Later deploys
// leave the part out.
func (s *State) deletePart(idx uint64, svc *plan.Service, c *DeleteServiceCmd) (any, []string) {
	if svc.Plan == nil {
		return fmt.Errorf("%w: service %q is not deployed", ErrConflict, svc.Name), nil
	}
	if svc.State == plan.StateDeleting {
		return fmt.Errorf("%w: service %q is being deleted", ErrConflict, svc.Name), nil
	}
	gen := svc.Generation + 1
	next := &plan.Plan{Service: svc.Name, Generation: gen, Inputs: svc.Plan.Inputs, Exports: svc.Plan.Exports}
	matched := 0
	removed := map[string]bool{}
	for _, np := range svc.Plan.Nodes {
		base := baseNode(np.Name)
		nodeMatch := onNode(np, c.Node)
		selected := func(st *plan.Step) bool {
			return st.Action == "create" && nodeMatch && (c.Component == "" || c.Component == st.Instance)
		}
		dn := &plan.NodePlan{Name: np.Name, Agent: np.Agent, Steps: []*plan.Step{}}
		for _, st := range np.Steps {
			if !selected(st) {
				cp := *st
				cp.Generation = gen
				dn.Steps = append(dn.Steps, &cp)
			}
		}
		for i := len(np.Steps) - 1; i >= 0; i-- {
			st := np.Steps[i]
			if !selected(st) {
				continue
			}
			matched++
			// Aimed at one member of a node group (by agent or by
			// "group[agent]"), the removal is that member's, not the
			// group's: the other members stay, in this and later deploys.
			key := base
			if c.Node != "" && c.Node != base && np.Name != base {
				key = np.Name
			}
			if c.Component == "" {
				removed[key] = true
			} else {
				removed[key+"/"+st.Instance] = true
			}
			if d := plan.UndoStep(st, gen); d != nil {
				dn.Steps = append(dn.Steps, d)
			}
		}
		next.Nodes = append(next.Nodes, dn)
	}
	if matched == 0 {
		return fmt.Errorf("%w: nothing in service %q matches node %q component %q", ErrNotFound, svc.Name, c.Node, c.Component), nil
	}
	for k := range removed {
		if !slices.Contains(svc.Removed, k) {
			svc.Removed = append(svc.Removed, k)
		}
	}
	sortStrings(svc.Removed)
	prev := svc.Plan
	keys := s.setPlan(idx, svc, next)
	svc.Generation = gen
	svc.State = plan.StateDeploying
	s.startPlanRecord(svc, api.HistoryDeletePart, gen, prev, next, strings.TrimPrefix(where(&api.OpRequest{Node: c.Node, Component: c.Component}), " "))
	s.refreshState(svc)
	s.trackService(svc)
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
	s.compileInputsChanged() // a service's plan is the next compile's Previous, or an ancestor's
	s.notePlan(svc, p)
	svc.Plan = p
	svc.ModifyIndex = idx
	return append(keys, serviceKey(svc.Name))
}

func (s *State) removeService(idx uint64, svc *plan.Service, keys *[]string) *plan.Service {
	s.compileInputsChanged()
	s.finishDeleteRecord(svc)
	if svc.Plan != nil {
		for _, np := range svc.Plan.Nodes {
			s.data.SliceIndex[np.Agent] = idx
			*keys = append(*keys, nodeKey(np.Agent))
		}
	}
	prefix := svc.Name + "/"
	for id := range s.data.Reports {
		if strings.HasPrefix(id, prefix) {
			delete(s.data.Reports, id)
		}
	}
	for id := range s.data.Outputs {
		if strings.HasPrefix(id, prefix) {
			delete(s.data.Outputs, id)
		}
	}
	svc.ModifyIndex = idx
	delete(s.data.Services, svc.Name)
	delete(s.data.Recursive, svc.Name) // its last recursive deploy (cascade.go)
	delete(s.data.Recompile, svc.Name) // a pending recompile (recompile.go)
	*keys = append(*keys, serviceKey(svc.Name))
	// A parent deleted recursively goes once its last child is gone.
	if p := s.data.Services[svc.Parent]; p != nil && p.DeleteRecursive && len(s.children(p.Name)) == 0 {
		s.startDelete(idx, s.ownService(p.Name), keys)
	}
	return svc
}

func (s *State) applyReports(idx uint64, c *ReportsCmd) (any, []string) {
	touched := map[string]bool{}
	recompile := map[string]bool{}
	applied := 0
	converged := false // some create step converged in this batch
	s.setAt(c.Time, "", "")
	secrets := map[string][]string{}
	for i := range c.Reports {
		r := c.Reports[i]
		inc, seq := reportSeq(r.ID)
		key := seqKey(r.Node, inc)
		if seq != 0 && seq <= s.data.NodeSeq[key] {
			continue // a resend of a report already applied
		}
		// Sequences are kept for the registered incarnation only (and for
		// old agents without one), so that made-up incarnations cannot
		// grow the map; a new one's first reports, sent before it
		// registers, are applied without a record.
		if n := s.data.Nodes[r.Node]; seq != 0 && (inc == "" || n == nil || n.Incarnation == "" || n.Incarnation == inc) {
			s.data.NodeSeq[key] = seq
		}
		if n := s.data.Nodes[r.Node]; n != nil && n.LastSeen != c.Time {
			s.ownNode(r.Node).LastSeen = c.Time
		}
		svc := s.data.Services[r.Service]
		if svc == nil {
			continue
		}
		old := s.data.Reports[r.StepID]
		if old != nil && old.Generation > r.Generation {
			continue
		}
		if !sameDone(old, &r) {
			s.reportInputsChanged() // the compiler's Done
		}
		keepLastRun(&r, old)
		if r.State == plan.StepOK && r.Action == "create" && r.Outputs != nil {
			if !sameOutputs(s.data.Outputs[r.StepID], r.Outputs) {
				s.reportInputsChanged()
				recompile[r.Service] = true
				for _, ch := range s.descendants(r.Service) {
					recompile[ch] = true
				}
			}
			s.data.Outputs[r.StepID] = r.Outputs
		}
		if (r.State == plan.StepOK || r.State == plan.StepSkipped) && r.Action == "create" {
			converged = true
		}
		s.data.Reports[r.StepID] = &r
		touched[r.Service] = true
		applied++
		s.reportEvents(&r, secrets)
	}
	if converged {
		// Someone may wait for one of those steps: look once per batch,
		// not once per report (a batch holds up to 2048).
		for name, other := range s.data.Services {
			if hasWaiting(other.Plan) {
				recompile[name] = true
			}
		}
	}
	var keys []string
	if s.data.LeaderRecompiles {
		// The leader compiles them (recompile.go); until then they are
		// not converged.
		for name := range recompile {
			if svc := s.data.Services[name]; svc != nil && svc.Plan != nil && svc.State != plan.StateDeleting {
				s.mark(name)
				touched[name] = true
			}
		}
		clear(recompile)
	}
	for _, name := range s.parentsFirst(sortedKeys(recompile)) {
		svc := s.data.Services[name]
		if svc == nil || svc.Plan == nil || svc.State == plan.StateDeleting {
			continue
		}
		svc = s.ownService(name)
		// Same generation: what the operator asked for has not changed,
		// but an output it depends on has arrived or changed.
		p, viol := s.compile(svc, svc.Generation)
		if viol != nil {
			continue
		}
		p = withRemovals(svc.Plan, p, svc.Generation)
		if samePlan(p, svc.Plan) {
			continue
		}
		keys = append(keys, s.setPlan(idx, svc, p)...)
		touched[name] = true
	}
	for _, name := range sortedKeys(touched) {
		if svc := s.ownService(name); svc != nil {
			s.serviceChanged(idx, svc, c.Time, &keys)
		}
	}
	return applied, keys
}

// serviceChanged follows a change to svc's reports or plan: its rollout,
// state, finished deletes. svc is owned by this Apply.
func (s *State) serviceChanged(idx uint64, svc *plan.Service, now int64, keys *[]string) {
	svc.ModifyIndex = idx
	*keys = append(*keys, serviceKey(svc.Name))
	s.advanceRollout(idx, svc, now, keys, false)
	s.refreshState(svc)
	switch {
	case svc.State == plan.StateDeleting:
		if !svc.DeleteRecursive && isDeletePlan(svc.Plan) && s.deleteDone(svc) {
			s.removeService(idx, svc, keys)
		}
	default:
		*keys = append(*keys, s.dropFinishedDeletes(idx, svc)...)
	}
	if s.data.Services[svc.Name] != nil {
		s.trackService(svc)
	}
}

// keepLastRun gives a skipped report the output, exit code and times of
// the step's last run (at the same digest), so that status and logs keep
// showing what that run printed.
func keepLastRun(r, old *plan.Report) {
	if r.State != plan.StepSkipped || old == nil || old.Digest != r.Digest || (old.State != plan.StepOK && old.State != plan.StepSkipped) {
		return
	}
	r.Output, r.ExitCode, r.DurationMs, r.StartedAt, r.FinishedAt = old.Output, old.ExitCode, old.DurationMs, old.StartedAt, old.FinishedAt
}

// descendants lists every service below name.
func (s *State) descendants(name string) []string {
	var out []string
	for _, ch := range s.children(name) {
		out = append(out, ch)
		out = append(out, s.descendants(ch)...)
	}
	return out
}

// dropFinishedDeletes removes from a live service's plan the delete steps
// (of removed components) that have succeeded.
func (s *State) dropFinishedDeletes(idx uint64, svc *plan.Service) []string {
	if svc.Plan == nil {
		return nil
	}
	changed := false
	var nodes []*plan.NodePlan
	for _, np := range svc.Plan.Nodes {
		steps := []*plan.Step{}
		for _, st := range np.Steps {
			r := s.data.Reports[st.ID]
			if st.Action == "delete" && r != nil && r.Digest == st.Digest && r.State == plan.StepOK {
				changed = true
				delete(s.data.Reports, st.ID)
				create := plan.StepID(st.Service, st.Node, st.Instance, "create")
				delete(s.data.Reports, create)
				delete(s.data.Outputs, create)
				continue
			}
			steps = append(steps, st)
		}
		if len(steps) == 0 && len(np.Steps) > 0 {
			changed = true
			continue // the node has nothing left of this service
		}
		cp := *np
		cp.Steps = steps
		nodes = append(nodes, &cp)
	}
	if !changed {
		return nil
	}
	p := *svc.Plan
	p.Nodes = nodes
	keys := s.setPlan(idx, svc, &p)
	s.refreshState(svc)
	return keys
}

// doneDigest is the digest a create step converged at, as the compiler's
// Done holds it: ok is false when the report is no such step.
func doneDigest(r *plan.Report) (digest string, ok bool) {
	if r != nil && r.Action == "create" && (r.State == plan.StepOK || r.State == plan.StepSkipped) {
		return r.Digest, true
	}
	return "", false
}

func sameDone(a, b *plan.Report) bool {
	da, oka := doneDigest(a)
	db, okb := doneDigest(b)
	return da == db && oka == okb
}

func hasWaiting(p *plan.Plan) bool {
	if p == nil {
		return false
	}
	for _, np := range p.Nodes {
		for _, st := range np.Steps {
			if len(st.Waiting) > 0 {
				return true
			}
		}
	}
	return false
}

func sameOutputs(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if string(b[k]) != string(v) {
			return false
		}
	}
	return true
}

func samePlan(a, b *plan.Plan) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}

// refreshState sets a deploying, converged or failed service's state from
// its steps.
func (s *State) refreshState(svc *plan.Service) {
	svc.State = s.deriveState(svc.State, svc)
	if svc.State == plan.StateConverged && s.pendingRecompile(svc.Name) {
		// What it runs may still change (recompile.go).
		svc.State = plan.StateDeploying
	}
	// A rollout that stopped (failed without a revert, or aborted) leaves
	// the nodes it did not reach on the old plan: the deploy failed.
	if r := svc.Rollout; r != nil && r.Generation == svc.Generation && svc.State == plan.StateDeploying &&
		(r.Status == plan.RolloutFailed || r.Status == plan.RolloutAborted) {
		svc.State = plan.StateFailed
	}
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

// reportSeq reads the agent's incarnation and the sequence number from a
// report ID "node:incarnation:seq", or "node:seq" from an agent older than
// incarnations (inc is then empty).
func reportSeq(id string) (inc string, seq uint64) {
	i := strings.LastIndexByte(id, ':')
	if i < 0 {
		return "", 0
	}
	seq, _ = strconv.ParseUint(id[i+1:], 10, 64)
	if j := strings.IndexByte(id[:i], ':'); j >= 0 {
		inc = id[j+1 : i]
	}
	return inc, seq
}

// seqKey keys NodeSeq: the node name for reports without an incarnation
// (as before incarnations), "node:incarnation" for the others. Node names
// hold no ':'.
func seqKey(node, inc string) string {
	if inc == "" {
		return node
	}
	return node + ":" + inc
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// Snapshot captures the state as of now. Under the lock it only copies the
// maps (their values are immutable, cow.go), so a large state does not stop
// Apply and every reader while it is encoded.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.state.mu.RLock()
	d := f.state.data.shallowCopy()
	f.state.mu.RUnlock()
	b, err := json.Marshal(d)
	sealedKey := d.DataKey
	if err != nil {
		return nil, fmt.Errorf("snapshot state: %w", err)
	}
	if b, err = f.encodeSnapshot(b, sealedKey); err != nil {
		return nil, fmt.Errorf("seal snapshot: %w", err)
	}
	return &fsmSnapshot{data: b}, nil
}

// Restore replaces the state with a snapshot's and wakes every watcher of
// the old state.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if raw, err = f.decodeSnapshot(raw); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	d := newStateData()
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if d.DataKey != "" {
		if err := f.keys.open(d.DataKey); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
	}
	d.Trust.fill()
	d.ACL.fill()
	f.state.mu.Lock()
	f.state.data = d
	f.state.rebuildSliceIndex()
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
