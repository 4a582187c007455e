package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Violation is one reason a service cannot be deployed as staged.
type Violation struct {
	Message string `json:"message"`
	// Pos is where in the module the problem is, when it is in the module.
	Pos *Pos `json:"pos,omitempty"`
}

func (v Violation) String() string {
	if v.Pos != nil && v.Pos.File != "" {
		return v.Pos.String() + ": " + v.Message
	}
	return v.Message
}

// Violations is a list of violations usable as an error.
type Violations []Violation

func (vs Violations) Error() string {
	msgs := make([]string, len(vs))
	for i, v := range vs {
		msgs[i] = v.String()
	}
	return strings.Join(msgs, "\n")
}

// CompileInput is everything the compiler reads. It must come from one
// consistent view of the state: the compiler is called inside the FSM.
type CompileInput struct {
	Service    *Service
	Module     *Module
	Nodes      []*Node // registered nodes, any order
	Generation uint64
}

// Compile resolves a service's template against its inputs and the
// registered nodes and returns the plan of the given generation, or every
// violation found. It is deterministic: the same input gives the same plan.
func Compile(in CompileInput) (*Plan, Violations) {
	c := &compiler{in: in}
	return c.compile()
}

type compiler struct {
	in   CompileInput
	errs Violations
}

func (c *compiler) violate(pos *Pos, format string, args ...any) {
	c.errs = append(c.errs, Violation{Message: fmt.Sprintf(format, args...), Pos: pos})
}

func (c *compiler) compile() (*Plan, Violations) {
	svc, mod := c.in.Service, c.in.Module
	if mod == nil {
		c.violate(nil, "module %s@%s is not pushed", svc.Module, svc.Version)
		return nil, c.errs
	}
	tmpl := mod.Templates[svc.Template]
	if tmpl == nil {
		c.violate(nil, "module %s has no template %q", mod.Ref(), svc.Template)
		return nil, c.errs
	}
	inputs := c.inputs(tmpl)
	chosen := c.placeNodes(tmpl)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	nodeVals := map[string]cty.Value{}
	for _, tn := range tmpl.Nodes {
		nodeVals[tn.Name] = FactsValue(chosen[tn.Name])
	}
	p := &Plan{Service: svc.Name, Generation: c.in.Generation}
	for _, tn := range tmpl.Nodes {
		agent := chosen[tn.Name]
		ctx := &hcl.EvalContext{
			Variables: map[string]cty.Value{
				"input": cty.ObjectVal(inputs),
				"node":  cty.ObjectVal(nodeVals),
				"self":  nodeVals[tn.Name],
			},
			Functions: Functions(),
		}
		np := &NodePlan{Name: tn.Name, Agent: agent.Name}
		for _, inst := range tn.Components {
			if st := c.step(tn, inst, ctx); st != nil {
				np.Steps = append(np.Steps, st)
			}
		}
		p.Nodes = append(p.Nodes, np)
	}
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return p, nil
}

// inputs resolves every template input: the operator's value, else the
// default, else a violation.
func (c *compiler) inputs(tmpl *Template) map[string]cty.Value {
	out := map[string]cty.Value{}
	for name := range c.in.Service.Inputs {
		if tmpl.Input(name) == nil {
			c.violate(nil, "template %s has no input %q", tmpl.Name, name)
		}
	}
	for _, in := range tmpl.Inputs {
		pos := in.Pos
		ty, err := ParseType(in.Type)
		if err != nil {
			c.violate(&pos, "input %s: %v", in.Name, err)
			continue
		}
		if raw, ok := c.in.Service.Inputs[in.Name]; ok {
			v, err := ParseOperatorValue(raw, ty)
			if err != nil {
				c.violate(nil, "input %s: %v", in.Name, err)
				continue
			}
			out[in.Name] = v
			continue
		}
		if in.Default != nil {
			v, err := ctyjson.Unmarshal(in.Default, ty)
			if err != nil {
				c.violate(&pos, "input %s: bad default: %v", in.Name, err)
				continue
			}
			out[in.Name] = v
			continue
		}
		c.violate(&pos, "input %q is required: set it with --set %s=VALUE", in.Name, in.Name)
	}
	return out
}

// placeNodes chooses one registered agent for every template node: the
// first, by name, that carries all the node's labels and is not claimed by
// another node of the same template.
func (c *compiler) placeNodes(tmpl *Template) map[string]*Node {
	nodes := append([]*Node(nil), c.in.Nodes...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	claimed := map[string]string{}
	chosen := map[string]*Node{}
	for _, tn := range tmpl.Nodes {
		var pick *Node
		for _, n := range nodes {
			if _, taken := claimed[n.Name]; taken || !MatchLabels(n.Labels, tn.Labels) {
				continue
			}
			pick = n
			break
		}
		if pick == nil {
			pos := tn.Pos
			c.violate(&pos, "node %q: no free agent matches labels %s", tn.Name, FormatLabels(tn.Labels))
			continue
		}
		claimed[pick.Name] = tn.Name
		chosen[tn.Name] = pick
	}
	return chosen
}

func (c *compiler) step(tn *TemplateNode, inst *Instance, ctx *hcl.EvalContext) *Step {
	comp := c.in.Module.Components[inst.Component]
	ipos := inst.Pos
	if comp == nil {
		c.violate(&ipos, "unknown component %q", inst.Component)
		return nil
	}
	attrs := map[string]json.RawMessage{}
	for _, a := range comp.Attributes {
		ty, err := ParseType(a.Type)
		if err != nil {
			pos := a.Pos
			c.violate(&pos, "attribute %s: %v", a.Name, err)
			continue
		}
		var v cty.Value
		if e, ok := inst.Attributes[a.Name]; ok {
			epos := e.Pos
			v, err = evalExpr(e, ctx)
			if err != nil {
				c.violate(&epos, "%s.%s: %v", inst.Name, a.Name, err)
				continue
			}
			if v, err = convert.Convert(v, ty); err != nil {
				c.violate(&epos, "%s.%s: want %s: %v", inst.Name, a.Name, a.Type, err)
				continue
			}
		} else if a.Default != nil {
			if v, err = ctyjson.Unmarshal(a.Default, ty); err != nil {
				pos := a.Pos
				c.violate(&pos, "attribute %s: bad default: %v", a.Name, err)
				continue
			}
		} else if a.Required {
			c.violate(&ipos, "%s: attribute %q is required", inst.Name, a.Name)
			continue
		} else {
			v = cty.NullVal(ty)
		}
		raw, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			c.violate(&ipos, "%s.%s: %v", inst.Name, a.Name, err)
			continue
		}
		attrs[a.Name] = raw
	}
	create := comp.Actions["create"]
	if create == nil {
		pos := comp.Pos
		c.violate(&pos, "component %s has no create action", comp.Name)
		return nil
	}
	st := &Step{
		ID:           StepID(c.in.Service.Name, tn.Name, inst.Name, "create"),
		Service:      c.in.Service.Name,
		Node:         tn.Name,
		Instance:     inst.Name,
		Component:    comp.Name,
		Action:       "create",
		Generation:   c.in.Generation,
		Module:       c.in.Module.Ref(),
		ModuleDigest: c.in.Module.Digest,
		Run:          *create,
		Undo:         comp.Actions["delete"],
		Attributes:   attrs,
	}
	st.Digest = StepDigest(st, c.in.Module.Files)
	return st
}

func evalExpr(e Expr, ctx *hcl.EvalContext) (cty.Value, error) {
	start := hcl.Pos{Line: e.Pos.Line, Column: e.Pos.Column, Byte: 0}
	x, diags := hclsyntax.ParseExpression([]byte(e.Source), e.Pos.File, start)
	if diags.HasErrors() {
		return cty.NilVal, diagError(diags)
	}
	v, diags := x.Value(ctx)
	if diags.HasErrors() {
		return cty.NilVal, diagError(diags)
	}
	return v, nil
}

func diagError(diags hcl.Diagnostics) error {
	var msgs []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		m := d.Summary
		if d.Detail != "" {
			m += ": " + d.Detail
		}
		msgs = append(msgs, m)
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// ParseType parses a canonical HCL type expression ("list(string)").
func ParseType(s string) (cty.Type, error) {
	if s == "" {
		return cty.DynamicPseudoType, nil
	}
	x, diags := hclsyntax.ParseExpression([]byte(s), "type", hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilType, diagError(diags)
	}
	ty, diags := typeexpr.TypeConstraint(x)
	if diags.HasErrors() {
		return cty.NilType, diagError(diags)
	}
	return ty, nil
}

// ParseOperatorValue converts a value typed on the command line to ty: taken
// literally for strings, parsed as an HCL expression ("3", "true",
// `["a","b"]`) for everything else.
func ParseOperatorValue(raw string, ty cty.Type) (cty.Value, error) {
	if ty == cty.String {
		return cty.StringVal(raw), nil
	}
	x, diags := hclsyntax.ParseExpression([]byte(raw), "value", hcl.InitialPos)
	if diags.HasErrors() {
		if ty == cty.DynamicPseudoType {
			return cty.StringVal(raw), nil
		}
		return cty.NilVal, fmt.Errorf("%q is not a valid %s", raw, typeexpr.TypeString(ty))
	}
	v, diags := x.Value(nil)
	if diags.HasErrors() {
		if ty == cty.DynamicPseudoType {
			return cty.StringVal(raw), nil
		}
		return cty.NilVal, fmt.Errorf("%q is not a valid %s", raw, typeexpr.TypeString(ty))
	}
	out, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NilVal, fmt.Errorf("%q is not a valid %s", raw, typeexpr.TypeString(ty))
	}
	return out, nil
}

// FactsValue is a node's facts as the DSL sees them (self.address,
// node.db.hostname, ...).
func FactsValue(n *Node) cty.Value {
	labels := map[string]cty.Value{}
	for k, v := range n.Labels {
		labels[k] = cty.StringVal(v)
	}
	lv := cty.MapValEmpty(cty.String)
	if len(labels) > 0 {
		lv = cty.MapVal(labels)
	}
	return cty.ObjectVal(map[string]cty.Value{
		"name":         cty.StringVal(n.Name),
		"address":      cty.StringVal(n.Facts.Address),
		"hostname":     cty.StringVal(n.Facts.Hostname),
		"os":           cty.StringVal(n.Facts.OS),
		"arch":         cty.StringVal(n.Facts.Arch),
		"cpus":         cty.NumberIntVal(int64(n.Facts.CPUs)),
		"memory_bytes": cty.NumberUIntVal(n.Facts.MemoryBytes),
		"labels":       lv,
	})
}

// MatchLabels reports whether have carries every label in want.
func MatchLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// FormatLabels prints labels as {k=v, ...} in key order.
func FormatLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// StepID names a step stably across generations.
func StepID(service, node, instance, action string) string {
	return service + "/" + node + "/" + instance + "/" + action
}

// StepDigest covers what decides whether a step must run again: its action,
// the digest of the asset the action runs (not of the whole module, so that
// editing one script re-runs only the steps that use it) and its resolved
// attributes.
func StepDigest(st *Step, files map[string]string) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode(struct {
		Action string
		Run    Action
		Asset  string
		Attrs  map[string]json.RawMessage
	}{st.Action, Action{Kind: st.Run.Kind, Script: st.Run.Script, Inline: st.Run.Inline, TimeoutSeconds: st.Run.TimeoutSeconds}, files[st.Run.Script], st.Attributes})
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// DeletePlan turns a deployed plan into the steps that undo it: every
// instance's delete action, in reverse order on each node. Instances whose
// component has no delete action are left out.
func DeletePlan(p *Plan, generation uint64) *Plan {
	out := &Plan{Service: p.Service, Generation: generation}
	for _, np := range p.Nodes {
		dn := &NodePlan{Name: np.Name, Agent: np.Agent}
		for i := len(np.Steps) - 1; i >= 0; i-- {
			st := np.Steps[i]
			if st.Undo == nil {
				continue
			}
			d := *st
			d.ID = StepID(st.Service, st.Node, st.Instance, "delete")
			d.Action = "delete"
			d.Generation = generation
			d.Run = *st.Undo
			d.Undo = nil
			d.Digest = StepDigest(&d, nil) + "/" + fmt.Sprint(generation)
			dn.Steps = append(dn.Steps, &d)
		}
		out.Nodes = append(out.Nodes, dn)
	}
	return out
}
