package coordinator

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// Sensitive values (template inputs and component attributes declared
// `sensitive`, and what is computed from them) leave the coordinator in
// clear only in a node's own slice and operations, served to that node.
// Every other answer shows redactedText in their place. Redaction always
// works on copies: what the state holds is never changed, and no answer
// shares memory with it.

// redactedText is shown in place of a sensitive value (plan.Redacted is
// the same text as a JSON string).
const redactedText = "(sensitive)"

// Redact returns a copy of an FSM command's answer that is safe to send to
// an operator: services, operations and modules are redacted; other values
// carry nothing sensitive and are returned as they are.
func (s *State) Redact(v any) any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch x := v.(type) {
	case *plan.Service:
		if x == nil {
			return x
		}
		return s.redactServiceLocked(x)
	case *plan.Op:
		if x == nil {
			return x
		}
		return s.redactOpLocked(x, false)
	case *plan.Module:
		return redactModule(x)
	case []*plan.Module:
		out := make([]*plan.Module, len(x))
		for i, m := range x {
			out[i] = redactModule(m)
		}
		return out
	}
	return v
}

// sensitiveInputsLocked names the operator inputs of svc that its template
// declares sensitive, and those its current plan marks sensitive.
func (s *State) sensitiveInputsLocked(svc *plan.Service) map[string]bool {
	out := map[string]bool{}
	if m := s.data.Modules[svc.Module+"@"+svc.Version]; m != nil {
		if t := m.Templates[svc.Template]; t != nil {
			for _, in := range t.Inputs {
				if in.Sensitive {
					out[in.Name] = true
				}
			}
		}
	}
	if svc.Plan != nil {
		for _, v := range svc.Plan.Inputs {
			if v.Sensitive {
				out[v.Name] = true
			}
		}
	}
	return out
}

// redactInputs copies operator inputs with the sensitive ones replaced.
func redactInputs(in map[string]string, sensitive map[string]bool) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		if sensitive[k] && v != "" {
			v = redactedText
		}
		out[k] = v
	}
	return out
}

// redactServiceLocked copies a service with its sensitive inputs and plan
// values replaced.
func (s *State) redactServiceLocked(svc *plan.Service) *plan.Service {
	cp := *svc
	cp.Inputs = redactInputs(svc.Inputs, s.sensitiveInputsLocked(svc))
	cp.Lock = maps.Clone(svc.Lock)
	cp.Removed = slices.Clone(svc.Removed)
	cp.Plan = plan.RedactPlan(svc.Plan)
	if r := svc.Rollout; r != nil {
		// The plans a rollout keeps (what waiting nodes keep, what a revert
		// deploys) hold values too; an answer names their generations only.
		rc := *r
		rc.From, rc.RevertTo = nil, nil
		rc.HealthyAt = maps.Clone(r.HealthyAt)
		rc.Order, rc.Failed, rc.Unchanged = slices.Clone(r.Order), slices.Clone(r.Failed), slices.Clone(r.Unchanged)
		cp.Rollout = &rc
	}
	return &cp
}

// redactStep copies a step with its sensitive attributes replaced.
func redactStep(st *plan.Step) *plan.Step {
	b, _ := json.Marshal(st)
	var cp plan.Step
	_ = json.Unmarshal(b, &cp)
	for _, name := range cp.Sensitive {
		if _, ok := cp.Attributes[name]; ok {
			cp.Attributes[name] = json.RawMessage(plan.Redacted)
		}
	}
	return &cp
}

// redactSlice copies a node's slice for a reader other than that node.
func redactSlice(sl *plan.Slice) *plan.Slice {
	cp := &plan.Slice{Node: sl.Node, Index: sl.Index, Steps: make([]*plan.Step, len(sl.Steps))}
	for i, st := range sl.Steps {
		cp.Steps[i] = redactStep(st)
	}
	return cp
}

// redactOps copies a node's operations for a reader other than that node.
func redactOps(ops []*plan.Op) []*plan.Op {
	out := make([]*plan.Op, len(ops))
	for i, op := range ops {
		cp := *op
		cp.Steps = map[string][]*plan.Step{}
		for node, steps := range op.Steps {
			rs := make([]*plan.Step, len(steps))
			for j, st := range steps {
				rs[j] = redactStep(st)
			}
			cp.Steps[node] = rs
		}
		cp.Results = nil
		out[i] = &cp
	}
	return out
}

// redactOpLocked copies an operation with its steps' sensitive attributes
// replaced, and its results' outputs and texts cleaned of the secrets the
// steps carry. Brief leaves the steps out (each agent's name stays, with
// no steps): what following an operation needs, without copying every
// step of every agent for each answer.
func (s *State) redactOpLocked(op *plan.Op, brief bool) *plan.Op {
	cp := *op
	cp.Done = slices.Clone(op.Done)
	cp.Skipped = slices.Clone(op.Skipped)
	cp.Steps = make(map[string][]*plan.Step, len(op.Steps))
	var secrets []string
	steps := map[string]*plan.Step{}
	for node, list := range op.Steps {
		var rs []*plan.Step
		if !brief {
			rs = make([]*plan.Step, len(list))
		}
		for i, st := range list {
			if !brief {
				rs[i] = redactStep(st)
			}
			secrets = append(secrets, stepSecrets(st)...)
			steps[st.ID] = st
		}
		cp.Steps[node] = rs
	}
	if svc := s.data.Services[op.Service]; svc != nil {
		secrets = append(secrets, s.serviceSecretsLocked(svc)...)
	}
	secrets = sortSecrets(secrets)
	cp.Results = make([]plan.Report, len(op.Results))
	for i, r := range op.Results {
		r.Output = scrub(r.Output, secrets)
		r.Error = scrub(r.Error, secrets)
		r.Outputs = s.redactOutputsLocked(steps[r.StepID], r.Outputs)
		cp.Results[i] = r
	}
	if op.Results == nil {
		cp.Results = nil
	}
	return &cp
}

// redactOutputsLocked copies a report's outputs with those the step's
// component declares sensitive replaced; when the component is not known,
// every output is.
func (s *State) redactOutputsLocked(st *plan.Step, outs map[string]json.RawMessage) map[string]json.RawMessage {
	if outs == nil {
		return nil
	}
	var comp *plan.Component
	if st != nil {
		comp = s.componentOf(st)
	}
	out := make(map[string]json.RawMessage, len(outs))
	for k, v := range outs {
		sensitive := comp == nil
		if comp != nil {
			for _, o := range comp.Outputs {
				if o.Name == k && o.Sensitive {
					sensitive = true
				}
			}
		}
		if sensitive {
			v = json.RawMessage(plan.Redacted)
		}
		out[k] = v
	}
	return out
}

// redactModule returns a module whose sensitive defaults (of component
// attributes and template inputs) are replaced; a module without any is
// returned as it is (modules never change once recorded).
func redactModule(m *plan.Module) *plan.Module {
	if m == nil || !hasSensitiveDefault(m) {
		return m
	}
	b, _ := json.Marshal(m)
	var cp plan.Module
	_ = json.Unmarshal(b, &cp)
	for _, c := range cp.Components {
		for _, a := range c.Attributes {
			if a.Sensitive && a.Default != nil {
				a.Default = json.RawMessage(plan.Redacted)
			}
		}
	}
	for _, t := range cp.Templates {
		for _, a := range t.Inputs {
			if a.Sensitive && a.Default != nil {
				a.Default = json.RawMessage(plan.Redacted)
			}
		}
	}
	return &cp
}

func hasSensitiveDefault(m *plan.Module) bool {
	for _, c := range m.Components {
		for _, a := range c.Attributes {
			if a.Sensitive && a.Default != nil {
				return true
			}
		}
	}
	for _, t := range m.Templates {
		for _, a := range t.Inputs {
			if a.Sensitive && a.Default != nil {
				return true
			}
		}
	}
	return false
}

// redactStatus replaces, in a status built for svc (which shares nothing
// the caller keeps), the sensitive inputs and every secret of the service
// in the steps' output and errors.
func (s *State) redactStatusLocked(svc *plan.Service, st *api.ServiceStatus) {
	st.Inputs = redactInputs(svc.Inputs, s.sensitiveInputsLocked(svc))
	secrets := sortSecrets(s.serviceSecretsLocked(svc))
	if len(secrets) == 0 {
		return
	}
	for i := range st.Nodes {
		for j := range st.Nodes[i].Steps {
			ss := &st.Nodes[i].Steps[j]
			ss.Output = scrub(ss.Output, secrets)
			ss.Error = scrub(ss.Error, secrets)
		}
	}
}

// serviceSecretsLocked lists the texts of svc's sensitive values: its
// sensitive operator inputs and the sensitive values of its plan.
func (s *State) serviceSecretsLocked(svc *plan.Service) []string {
	var out []string
	for k := range s.sensitiveInputsLocked(svc) {
		if v := svc.Inputs[k]; v != "" {
			out = append(out, v)
		}
	}
	if svc.Plan != nil {
		for _, vs := range [][]*plan.Value{svc.Plan.Inputs, svc.Plan.Exports} {
			for _, v := range vs {
				if v.Sensitive {
					out = append(out, valueTexts(v.Value)...)
				}
			}
		}
		for _, np := range svc.Plan.Nodes {
			for _, st := range np.Steps {
				out = append(out, stepSecrets(st)...)
			}
		}
	}
	return out
}

// stepSecrets lists the texts of a step's sensitive attributes.
func stepSecrets(st *plan.Step) []string {
	var out []string
	for _, name := range st.Sensitive {
		out = append(out, valueTexts(st.Attributes[name])...)
	}
	return out
}

// valueTexts lists how a JSON value may show in output: a string's text
// (and its JSON-escaped form), a number's text; for a list or map its
// JSON text and the texts of what it holds. Null and booleans show
// nothing secret.
func valueTexts(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return []string{string(raw)}
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
			if b, err := json.Marshal(v); err == nil {
				out = append(out, strings.Trim(string(b), `"`))
			}
		case json.Number:
			out = append(out, v.String())
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	switch v.(type) {
	case []any, map[string]any:
		out = append(out, string(raw))
	}
	walk(v)
	return out
}

// sortSecrets drops empty and repeated texts, and the redaction marker
// itself, and sorts the rest longest first (so that a secret holding
// another is replaced whole).
func sortSecrets(in []string) []string {
	seen := map[string]bool{"": true, redactedText: true}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] < out[j]
	})
	return out
}

// scrub replaces every secret in text.
func scrub(text string, secrets []string) string {
	for _, sec := range secrets {
		if strings.Contains(text, sec) {
			text = strings.ReplaceAll(text, sec, redactedText)
		}
	}
	return text
}

// DeployAnswer is a deploy's (or revert's) answer: v, a service, redacted,
// with its plan's steps counted instead of listed.
func (s *State) DeployAnswer(v any) any {
	svc, ok := v.(*plan.Service)
	if !ok || svc == nil {
		return v
	}
	s.mu.RLock()
	red := s.redactServiceLocked(svc)
	s.mu.RUnlock()
	out := &api.DeployAnswer{}
	if p := svc.Plan; p != nil {
		out.PlanNodes = len(p.Nodes)
		for _, np := range p.Nodes {
			out.PlanSteps += len(np.Steps)
		}
		red.Plan = &plan.Plan{Service: p.Service, Generation: p.Generation, Nodes: []*plan.NodePlan{}, Inputs: red.Plan.Inputs, Exports: red.Plan.Exports}
	}
	out.Service = *red
	return out
}
