package coordinator

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/acl"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// Logs operations (dtkctl service logs): how much of each step log's end an
// agent sends, by default and at most.
const (
	DefaultLogBytes = 64 << 10
	MaxLogBytes     = 1 << 20
)

func newOpID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// opSteps builds an operation's steps per agent from the state.
func (s *State) opSteps(svcName string, req *api.OpRequest, kind string) (map[string][]*plan.Step, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	svc := s.data.Services[svcName]
	if svc == nil {
		return nil, fmt.Errorf("%w: service %q", ErrNotFound, svcName)
	}
	out := map[string][]*plan.Step{}
	switch kind {
	case plan.OpDryRun:
		p, viol := s.compile(svc, svc.Generation+1)
		if viol != nil {
			return nil, viol
		}
		for _, np := range p.Nodes {
			out[np.Agent] = append(out[np.Agent], np.Steps...)
		}
	case plan.OpLogs, plan.OpCancel, plan.OpExec:
		if svc.Plan == nil {
			return nil, fmt.Errorf("%w: service %q is not deployed", ErrConflict, svcName)
		}
	}
	switch kind {
	case plan.OpLogs:
		for np, st := range selectSteps(svc.Plan, req) {
			// Only what names the log: no attributes, no actions.
			out[np.Agent] = append(out[np.Agent], &plan.Step{ID: st.ID, Service: st.Service, Node: st.Node,
				Instance: st.Instance, Component: st.Component, Action: st.Action, RefreshAction: st.RefreshAction})
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: no step of service %q%s", ErrNotFound, svcName, where(req))
		}
	case plan.OpCancel:
		for _, np := range svc.Plan.Nodes {
			out[np.Agent] = []*plan.Step{}
		}
	case plan.OpExec:
		for np, st := range selectSteps(svc.Plan, req) {
			if st.Action != "create" {
				continue
			}
			comp := s.componentOf(st)
			if comp == nil || comp.Actions[req.Action] == nil {
				continue
			}
			x := *st
			x.ID = plan.StepID(st.Service, st.Node, st.Instance, req.Action)
			x.Action = req.Action
			x.Run = *comp.Actions[req.Action]
			x.Attributes = withParams(st.Attributes, req.Params)
			x.Undo, x.Check, x.Waiting, x.DependsOn, x.Outputs = nil, nil, nil, nil, nil
			out[np.Agent] = append(out[np.Agent], &x)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: no component of service %q has an action %q%s", ErrNotFound, svcName, req.Action, where(req))
		}
	}
	return out, nil
}

// selectSteps yields the plan's steps on the node (agent, template node or
// group member) and of the component instance the request names (all when
// it names none).
func selectSteps(p *plan.Plan, req *api.OpRequest) iter.Seq2[*plan.NodePlan, *plan.Step] {
	return func(yield func(*plan.NodePlan, *plan.Step) bool) {
		for _, np := range p.Nodes {
			if !onNode(np, req.Node) {
				continue
			}
			for _, st := range np.Steps {
				if req.Component != "" && req.Component != st.Instance {
					continue
				}
				if !yield(np, st) {
					return
				}
			}
		}
	}
}

func where(req *api.OpRequest) string {
	s := ""
	if req.Node != "" {
		s += " on node " + req.Node
	}
	if req.Component != "" {
		s += " named " + req.Component
	}
	return s
}

func baseNode(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '[' {
			return name[:i]
		}
	}
	return name
}

// componentOf finds the component a step was compiled from.
func (s *State) componentOf(st *plan.Step) *plan.Component {
	m := s.data.Modules[st.Module]
	if m == nil {
		return nil
	}
	return m.Components[st.Component]
}

// withParams adds an exec's parameters to a step's attributes (as strings).
func withParams(attrs map[string]json.RawMessage, params map[string]string) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(attrs)+len(params))
	for k, v := range attrs {
		out[k] = v
	}
	for k, v := range params {
		b, _ := json.Marshal(v)
		out[k] = b
	}
	return out
}

// startOp handles POST /v1/services/{name}/{dry-run,exec,cancel}.
func (s *Server) startOp(kind string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var req api.OpRequest
		if kind == plan.OpLogs && r.ContentLength != 0 {
			if err := decode(w, r, &req); err != nil {
				return err
			}
			if req.LogBytes < 0 || req.LogBytes > MaxLogBytes {
				return badRequest("log_bytes must be 1 to %d, got %d", MaxLogBytes, req.LogBytes)
			}
		}
		if kind == plan.OpExec {
			if err := decode(w, r, &req); err != nil {
				return err
			}
			if req.Action == "" || req.Action == "create" || req.Action == "delete" {
				return badRequest("exec needs a custom action name (not create or delete), got %q", req.Action)
			}
		}
		steps, err := s.State().opSteps(r.PathValue("name"), &req, kind)
		if err != nil {
			return err
		}
		op := plan.Op{ID: newOpID(), Kind: kind, Service: r.PathValue("name"), Action: req.Action,
			Created: time.Now().UnixMilli(), Steps: steps}
		if kind == plan.OpLogs {
			op.LogBytes = cmp.Or(req.LogBytes, DefaultLogBytes)
		}
		// A node that is down would never answer: leave it out and say so,
		// rather than keep the operator waiting.
		for agent := range steps {
			if n := s.State().Node(agent); n == nil || n.Status == plan.NodeDown {
				delete(op.Steps, agent)
				op.Skipped = append(op.Skipped, agent)
			}
		}
		sort.Strings(op.Skipped)
		if len(op.Steps) == 0 {
			return &api.APIError{Code: http.StatusConflict, Message: fmt.Sprintf("every node of service %q is down (%s): nothing to %s", op.Service, strings.Join(op.Skipped, ", "), kind)}
		}
		resp, err := s.apply(CreateOpType, CreateOpCmd{Op: op, Caller: callerFor(r)})
		if err != nil {
			return err
		}
		created, ok := resp.(*plan.Op)
		if !ok {
			return fmt.Errorf("create op: unexpected answer %T", resp)
		}
		return writeJSON(w, http.StatusOK, s.State().OpStatus(created, r.URL.Query().Has(api.BriefParam)))
	}
}

func (s *Server) getOp(w http.ResponseWriter, r *http.Request) error {
	op, err := s.readOp(r)
	if err != nil {
		return err
	}
	w.Header().Set(IndexHeader, strconv.FormatUint(op.Index, 10))
	return writeJSON(w, http.StatusOK, s.State().OpStatus(op, r.URL.Query().Has(api.BriefParam)))
}

// getOpClusters handles GET /v1/ops/{id}/clusters: a dry run's clusters
// alone (docs/dry-run.md), blocking as GET /v1/ops/{id} does.
func (s *Server) getOpClusters(w http.ResponseWriter, r *http.Request) error {
	op, err := s.readOp(r)
	if err != nil {
		return err
	}
	if op.Kind != plan.OpDryRun {
		return fmt.Errorf("%w: operation %q is %s, not a dry run: it has no clusters", ErrConflict, op.ID, articled(op.Kind))
	}
	w.Header().Set(IndexHeader, strconv.FormatUint(op.Index, 10))
	return writeJSON(w, http.StatusOK, s.State().DryRunClusters(op))
}

func articled(kind string) string {
	if kind == plan.OpExec {
		return "an exec"
	}
	return "a " + kind
}

// readOp reads the operation a request names: at once, or with ?index=
// once it has changed past it (blocking); an op this coordinator has not
// applied yet (a follower that forwarded its creation a moment ago) is
// waited for too. The caller's rights on the op's service are checked
// here as well, since a route's check cannot see an op that is not known
// yet.
func (s *Server) readOp(r *http.Request) (*plan.Op, error) {
	index, wait, err := blockingParams(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	var op *plan.Op
	if r.URL.Query().Has("index") {
		done, stop := waitDone(r, wait)
		defer stop()
		if s.State().waitOpKnown(done, id) {
			op = s.State().WaitOp(done, id, index)
		}
	} else {
		op = s.State().Op(id)
	}
	if op == nil {
		return nil, fmt.Errorf("%w: operation %q", ErrNotFound, id)
	}
	if err := allow(r, acl.Need{Kind: acl.KindService, Name: op.Service, Level: acl.Read}); err != nil {
		return nil, err
	}
	return op, nil
}

func (s *Server) nodeOps(w http.ResponseWriter, r *http.Request) error {
	index, wait, err := blockingParams(r)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if s.State().Node(name) == nil {
		return fmt.Errorf("%w: node %q is not registered", ErrNotFound, name)
	}
	done, stop := waitDone(r, wait)
	defer stop()
	ops, idx := s.State().NodeOps(done, name, index)
	if err := s.stillAllowed(r); err != nil {
		return err
	}
	if s.State().Node(name) == nil {
		return fmt.Errorf("%w: node %q was removed", ErrNotFound, name)
	}
	if ops == nil {
		ops = []*plan.Op{}
	}
	// Sensitive values go in clear to the node itself only.
	if !callerOf(r).isNode(r.PathValue("name")) {
		ops = redactOps(ops)
	}
	w.Header().Set(IndexHeader, strconv.FormatUint(idx, 10))
	return writeJSON(w, http.StatusOK, api.NodeOps{Index: idx, Ops: ops})
}

func (s *Server) opResults(w http.ResponseWriter, r *http.Request) error {
	var req api.OpResultsRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if op := s.State().Op(r.PathValue("id")); op != nil && op.Kind == plan.OpLogs {
		// Logs are what the operator asked for: cut to the op's bound
		// (and the marker), not to the report tail.
		for i := range req.Reports {
			req.Reports[i].Output = cutTail(req.Reports[i].Output, op.LogBytes+256)
		}
	} else {
		s.cutReports(req.Reports)
	}
	err := s.opBatcher.submit(r.Context(), OpResultsCmd{ID: r.PathValue("id"), Node: r.PathValue("name"), Reports: req.Reports, Final: req.Final, Time: time.Now().UnixMilli()})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"ok": "recorded"})
}

// waitOpKnown blocks until the state holds the op (or done is closed) and
// says whether it does.
func (s *State) waitOpKnown(done <-chan struct{}, id string) bool {
	s.waitKey(done, opKey(id), func() bool { return s.data.Ops[id] != nil })
	return s.Op(id) != nil
}

// waitDone closes its channel after wait or when the client goes away.
// It starts no goroutine: thousands of agents' long-polls wait at once,
// and a goroutine each (its stack, at least 2 KiB and usually more) was a
// large part of what a connected agent costs the coordinator
// (docs/performance.md, "Memory per connected agent"). The timer and the
// request's cancellation close the channel themselves.
func waitDone(r *http.Request, wait time.Duration) (<-chan struct{}, func()) {
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	return ctx.Done(), cancel
}
