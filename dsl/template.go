package dsl

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/dtkhq/dtk/plan"
)

// tmplInfo is what the checks of one template's expressions need: every
// name the template declares, with the syntax of what refers to them.
type tmplInfo struct {
	t       *plan.Template
	nodes   map[string]*nodeInfo // node and node_group blocks
	exports map[string]*plan.Export
	injects map[string]*instInfo
	// pending are the checks run once every name is known.
	pending []func()
}

// nodeInfo is a node or node_group block.
type nodeInfo struct {
	tn    *plan.TemplateNode
	insts map[string]*instInfo
	names []string // instance names in source order
}

// instInfo is a component instance (on a node, or injected).
type instInfo struct {
	inst *plan.Instance
	// comp is the instance's component when it is one of this module's;
	// nil when it is unknown or comes from a required module.
	comp    *plan.Component
	node    *nodeInfo // nil for an injected instance
	block   *hcl.Block
	attrs   []*hcl.Attribute // attribute values in source order, not depends_on
	deps    *hcl.Attribute   // depends_on
	once    *hcl.Attribute   // once
	attrsOK bool             // the body holds attributes only
}

// selectableFacts are the facts a node or node_group may select by.
var selectableFacts = plan.SelectableFacts

func (l *loader) decodeTemplate(b *hcl.Block) *plan.Template {
	t := &plan.Template{Name: b.Labels[0], Nodes: []*plan.TemplateNode{}, Pos: blockPos(b)}
	ti := &tmplInfo{t: t, nodes: map[string]*nodeInfo{}, exports: map[string]*plan.Export{}, injects: map[string]*instInfo{}}
	content, diags := b.Body.Content(templateSchema)
	l.add(diags)
	if a := content.Attributes["description"]; a != nil {
		t.Description, _ = l.stringValue(a)
	}
	for _, ib := range content.Blocks {
		switch ib.Type {
		case "input":
			name := ib.Labels[0]
			if prev := t.Input(name); prev != nil {
				l.errorf(startRange(ib.DefRange), fmt.Sprintf("duplicate input %q", name),
					"first declared at %s", prev.Pos)
				continue
			}
			t.Inputs = append(t.Inputs, l.decodeAttribute(ib, "input", inputSchema))
		case "node", "node_group":
			name := ib.Labels[0]
			if prev, ok := ti.nodes[name]; ok {
				l.errorf(startRange(ib.DefRange), fmt.Sprintf("duplicate node %q", name),
					"first declared at %s; node and node_group blocks share one set of names", prev.tn.Pos)
				continue
			}
			ni := l.decodeNode(ib, ti)
			ti.nodes[name] = ni
			t.Nodes = append(t.Nodes, ni.tn)
		case "export":
			l.decodeExport(ib, ti)
		case "inject":
			l.decodeInject(ib, ti)
		case "rollout":
			if t.Rollout != nil {
				l.errorf(startRange(ib.DefRange), "duplicate rollout block",
					"first declared at %s; a template has one rollout block", t.Rollout.Pos)
				continue
			}
			t.Rollout = l.decodeRollout(ib)
		}
	}
	if len(t.Nodes) == 0 {
		l.errorf(startRange(b.DefRange), fmt.Sprintf("template %q has no node blocks", t.Name),
			"a template places components on at least one node: node \"NAME\" { ... } or node_group \"NAME\" { ... }")
	}
	// Expressions are checked once every node, instance and export is
	// known, so that they may refer to one declared further down.
	for _, check := range ti.pending {
		check()
	}
	return t
}

// decodeNode decodes a node block (one agent) or a node_group block (many).
func (l *loader) decodeNode(b *hcl.Block, ti *tmplInfo) *nodeInfo {
	group := b.Type == "node_group"
	tn := &plan.TemplateNode{Name: b.Labels[0], Group: group, Components: []*plan.Instance{}, Pos: blockPos(b)}
	ni := &nodeInfo{tn: tn, insts: map[string]*instInfo{}}
	l.checkName(b.LabelRanges[0], b.Type, tn.Name, nameRE)
	schema := nodeSchema
	if group {
		schema = nodeGroupSchema
	}
	content, diags := b.Body.Content(schema)
	l.add(diags)
	if a := content.Attributes["labels"]; a != nil {
		if v, ok := l.selectorValue(a, ti, &tn.LabelsExpr); ok {
			tn.Labels = l.stringMap(v, a, "labels", `{ role = "web" }`)
		}
	}
	if a := content.Attributes["facts"]; a != nil {
		if v, ok := l.selectorValue(a, ti, &tn.FactsExpr); ok {
			tn.Facts = l.stringMap(v, a, "facts", `{ os = "linux", arch = "amd64" }`)
		}
		for _, k := range append(keys(tn.Facts), constKeys(a.Expr)...) {
			if contains(selectableFacts, k) {
				continue
			}
			detail := hint(k, selectableFacts, "", "a node is selected by the facts %s")
			if k == "labels" {
				detail = "select by labels with labels = { ... }"
			}
			l.errorf(keyRange(a.Expr, k), fmt.Sprintf("unknown fact %q", k), "%s", detail)
			delete(tn.Facts, k)
		}
	}
	if a := content.Attributes["count"]; a != nil {
		if v, ok := l.selectorValue(a, ti, &tn.CountExpr); ok {
			tn.Count = l.count(v, a)
		}
	}
	for _, cb := range content.Blocks {
		ii := l.decodeInstance(cb)
		ii.node = ni
		if ii.once != nil {
			ii.inst.Once = l.once(ii.once, tn)
		}
		if prev, ok := ni.insts[ii.inst.Name]; ok {
			l.errorf(startRange(cb.DefRange), fmt.Sprintf("duplicate component instance %q", ii.inst.Name),
				"first declared at %s; instance names are unique within a node", prev.inst.Pos)
			continue
		}
		ni.insts[ii.inst.Name] = ii
		ni.names = append(ni.names, ii.inst.Name)
		tn.Components = append(tn.Components, ii.inst)
		ti.pending = append(ti.pending, func() {
			l.checkInstance(ii, ti, &scope{
				where: "an attribute value",
				roots: []string{"input", "self", "node", "component", "output"},
				tmpl:  ti, node: ni, self: ii,
			})
		})
	}
	return ni
}

// selectorValue reads a node's labels, facts or count: a constant value
// (ok), or an expression over the template's inputs that the compiler
// evaluates, kept in *expr. Placement is decided before anything runs, so
// the expression may not read outputs, components, other nodes or facts.
func (l *loader) selectorValue(a *hcl.Attribute, ti *tmplInfo, expr **plan.Expr) (cty.Value, bool) {
	if len(a.Expr.Variables()) > 0 {
		e := l.exprSource(a.Expr)
		*expr = &e
		ti.pending = append(ti.pending, func() {
			l.checkExpr(a.Expr, &scope{where: "agents are chosen before any step runs: a node's " + a.Name, roots: []string{"input"}, tmpl: ti})
		})
		return cty.NilVal, false
	}
	v, diags := a.Expr.Value(&hcl.EvalContext{Functions: plan.Functions()})
	l.add(diags)
	return v, !diags.HasErrors()
}

// constKeys are the keys of an expression's object constructor that are
// written as constants, when the expression is computed (a computed
// facts map is checked here for the keys it names).
func constKeys(expr hcl.Expression) []string {
	obj, ok := expr.(*hclsyntax.ObjectConsExpr)
	if !ok || len(expr.Variables()) == 0 {
		return nil
	}
	var out []string
	for _, item := range obj.Items {
		if k, diags := item.KeyExpr.Value(nil); !diags.HasErrors() && k.Type() == cty.String && k.IsKnown() && !k.IsNull() {
			out = append(out, k.AsString())
		}
	}
	return out
}

// count decodes a node_group's constant count: a positive whole number.
func (l *loader) count(v cty.Value, a *hcl.Attribute) int {
	n, err := plan.CountValue(v, 1)
	if err != nil {
		l.errorf(startRange(a.Expr.Range()), "invalid count",
			"count is a positive whole number of agents; leave it out to take every agent that matches")
	}
	return n
}

// stringMap decodes a constant map of strings (labels, facts).
func (l *loader) stringMap(v cty.Value, a *hcl.Attribute, what, example string) map[string]string {
	m, err := plan.StringMap(v)
	if err != nil {
		l.errorf(startRange(a.Expr.Range()), "invalid "+what,
			"%s must be a map of strings, e.g. %s: %s", what, example, err)
	}
	return m
}

// keyRange is where key is written in an object constructor, else where
// expr starts.
func keyRange(expr hcl.Expression, key string) hcl.Range {
	if obj, ok := expr.(*hclsyntax.ObjectConsExpr); ok {
		for _, item := range obj.Items {
			k, diags := item.KeyExpr.Value(nil)
			if !diags.HasErrors() && k.Type() == cty.String && k.IsKnown() && !k.IsNull() && k.AsString() == key {
				return startRange(item.KeyExpr.Range())
			}
		}
	}
	return startRange(expr.Range())
}

// decodeInstance decodes the header and attributes of a component or
// inject block; its expressions are checked later (checkInstance).
func (l *loader) decodeInstance(b *hcl.Block) *instInfo {
	typ, name := b.Labels[0], b.Labels[1]
	inst := &plan.Instance{Name: name, Component: typ, Pos: blockPos(b)}
	ii := &instInfo{inst: inst, block: b}
	l.checkName(b.LabelRanges[1], "instance", name, nameRE)
	if mod, comp, ok := strings.Cut(typ, "."); ok {
		inst.Component = comp
		switch {
		case mod == l.mod.Name:
			// This module's own component, qualified.
			ii.comp = l.localComponent(b, comp)
		case l.required(mod):
			inst.Module = mod
			if !nameRE.MatchString(comp) {
				l.errorf(startRange(b.LabelRanges[0]), fmt.Sprintf("invalid component name %q", comp),
					"a component type is NAME or MODULE.NAME, names being lowercase letters, digits, underscores and dashes")
			}
		default:
			var reqs []string
			for _, r := range l.mod.Requires {
				reqs = append(reqs, r.Name)
			}
			l.errorf(startRange(b.LabelRanges[0]), fmt.Sprintf("module %q is not required", mod),
				"%s", hint(mod, reqs,
					fmt.Sprintf("add requires %q { version = \"...\" } to the module block to use its components", mod),
					"the module requires %s"))
		}
	} else {
		ii.comp = l.localComponent(b, typ)
	}
	attrs, diags := b.Body.JustAttributes()
	l.add(diags)
	ii.attrsOK = !diags.HasErrors()
	for _, a := range sortedAttrs(attrs) {
		switch a.Name {
		case "depends_on":
			ii.deps = a
			continue
		case "once":
			ii.once = a
			continue
		}
		ii.attrs = append(ii.attrs, a)
		if inst.Attributes == nil {
			inst.Attributes = map[string]plan.Expr{}
		}
		inst.Attributes[a.Name] = l.exprSource(a.Expr)
	}
	return ii
}

// once decodes an instance's once: a literal true or false, on an instance
// of a node_group (a node block's instances run on one agent already).
func (l *loader) once(a *hcl.Attribute, tn *plan.TemplateNode) bool {
	v, diags := a.Expr.Value(nil)
	if len(a.Expr.Variables()) > 0 || diags.HasErrors() || v.Type() != cty.Bool || v.IsNull() {
		l.errorf(startRange(a.Expr.Range()), "invalid once",
			"once is written true or false: it is read when the module is pushed, before any service exists")
		return false
	}
	if !tn.Group {
		l.errorf(startRange(a.NameRange), "once is for instances of a node_group",
			"node %q is one agent, on which its instances run once already; remove once, or make %q a node_group", tn.Name, tn.Name)
		return false
	}
	return v.True()
}

// localComponent looks up a component of this module, reporting it at b
// when unknown.
func (l *loader) localComponent(b *hcl.Block, typ string) *plan.Component {
	c := l.components[typ]
	if c == nil {
		l.errorf(startRange(b.DefRange), fmt.Sprintf("unknown component %q", typ),
			"%s", hint(typ, keys(l.components), "the module declares no components", "declared components: %s"))
	}
	return c
}

// required reports whether the module requires module name.
func (l *loader) required(name string) bool {
	for _, r := range l.mod.Requires {
		if r.Name == name {
			return true
		}
	}
	return false
}

// checkInstance checks an instance's attribute names and values and
// resolves its depends_on.
func (l *loader) checkInstance(ii *instInfo, ti *tmplInfo, sc *scope) {
	c := ii.comp
	for _, a := range ii.attrs {
		if c != nil && c.Attribute(a.Name) == nil {
			names := make([]string, len(c.Attributes))
			for i, ca := range c.Attributes {
				names[i] = ca.Name
			}
			l.errorf(startRange(a.NameRange), fmt.Sprintf("unsupported attribute %q", a.Name),
				"%s", hint(a.Name, names,
					fmt.Sprintf("component %q has no attributes", c.Name),
					fmt.Sprintf("component %q has attributes %%s", c.Name)))
		}
		l.checkExpr(a.Expr, sc)
	}
	if c != nil && ii.attrsOK {
		for _, ca := range c.Attributes {
			if ca.Required && ii.inst.Attributes[ca.Name].Source == "" {
				l.errorf(startRange(ii.block.DefRange), fmt.Sprintf("missing required attribute %q", ca.Name),
					"component %q requires %q (declared at %s)", c.Name, ca.Name, ca.Pos)
			}
		}
	}
	if ii.deps != nil {
		ii.inst.DependsOn = l.dependsOn(ii, ti)
	}
}

// decodeExport decodes an export block.
func (l *loader) decodeExport(b *hcl.Block, ti *tmplInfo) {
	name := b.Labels[0]
	if prev, ok := ti.exports[name]; ok {
		l.errorf(startRange(b.DefRange), fmt.Sprintf("duplicate export %q", name),
			"first declared at %s", prev.Pos)
		return
	}
	l.checkName(b.LabelRanges[0], "export", name, attrNameRE)
	e := &plan.Export{Name: name, Pos: blockPos(b)}
	content, diags := b.Body.Content(exportSchema)
	l.add(diags)
	if a := content.Attributes["value"]; a != nil {
		e.Value = l.exprSource(a.Expr)
		ti.pending = append(ti.pending, func() {
			l.checkExpr(a.Expr, &scope{where: "an export value", roots: []string{"input", "node"}, tmpl: ti})
		})
	}
	if a := content.Attributes["description"]; a != nil {
		e.Description, _ = l.stringValue(a)
	}
	if a := content.Attributes["sensitive"]; a != nil {
		e.Sensitive, _ = l.boolValue(a)
	}
	ti.exports[name] = e
	ti.t.Exports = append(ti.t.Exports, e)
}

// decodeInject decodes an inject block: a component instance added to
// every node of the services staged with respect to this one.
func (l *loader) decodeInject(b *hcl.Block, ti *tmplInfo) {
	ii := l.decodeInstance(b)
	if ii.once != nil {
		l.errorf(startRange(ii.once.NameRange), "once is not allowed in an inject block",
			"an injected instance runs on every node of the services staged with respect to this template; once belongs on a component instance of a node_group")
	}
	if prev, ok := ti.injects[ii.inst.Name]; ok {
		l.errorf(startRange(b.DefRange), fmt.Sprintf("duplicate inject %q", ii.inst.Name),
			"first declared at %s", prev.inst.Pos)
		return
	}
	ti.injects[ii.inst.Name] = ii
	ti.t.Injects = append(ti.t.Injects, ii.inst)
	ti.pending = append(ti.pending, func() {
		l.checkInstance(ii, ti, &scope{
			where: "an injected component's attribute value",
			roots: []string{"export", "self"},
			tmpl:  ti, self: ii,
		})
	})
}

// dependsOn resolves an instance's depends_on to "INST" (same node) and
// "NODE/INST" strings; references (component.X, node.N.component.X) are
// accepted as well as strings. An injected instance may depend on other
// instances its template injects, named as strings.
func (l *loader) dependsOn(ii *instInfo, ti *tmplInfo) []string {
	const usage = `depends_on is a list of instances: component.NAME or "NAME" on the same node, node.NODE.component.NAME or "NODE/NAME" on another`
	const injectUsage = `depends_on of an inject block names other instances this template injects: ["NAME"]`
	exprs, diags := hcl.ExprList(ii.deps.Expr)
	if diags.HasErrors() {
		l.errorf(startRange(ii.deps.Expr.Range()), "invalid depends_on", "%s", map[bool]string{true: injectUsage, false: usage}[ii.node == nil])
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, e := range exprs {
		rng := startRange(e.Range())
		var node, inst string
		if st, ok := e.(*hclsyntax.ScopeTraversalExpr); ok {
			if ii.node == nil {
				l.errorf(rng, "invalid depends_on", "%s", injectUsage)
				continue
			}
			var names []string
			for i := range st.Traversal {
				n, ok := stepName(st.Traversal, i)
				if i == 0 {
					n, ok = st.Traversal.RootName(), true
				}
				if !ok {
					break
				}
				names = append(names, n)
			}
			switch {
			case len(names) == len(st.Traversal) && len(names) == 2 && names[0] == "component":
				inst = names[1]
			case len(names) == len(st.Traversal) && len(names) == 4 && names[0] == "node" && names[2] == "component":
				node, inst = names[1], names[3]
			default:
				l.errorf(rng, "invalid depends_on", "%s", usage)
				continue
			}
		} else {
			v, diags := e.Value(nil)
			if diags.HasErrors() || v.Type() != cty.String || v.IsNull() {
				l.errorf(rng, "invalid depends_on", "%s", map[bool]string{true: injectUsage, false: usage}[ii.node == nil])
				continue
			}
			s := v.AsString()
			parts := strings.Split(s, "/")
			switch {
			case len(parts) == 1:
				inst = s
			case len(parts) == 2 && ii.node != nil:
				node, inst = parts[0], parts[1]
			default:
				l.errorf(rng, fmt.Sprintf("invalid depends_on entry %q", s), "%s", map[bool]string{true: injectUsage, false: usage}[ii.node == nil])
				continue
			}
		}
		if !l.checkDep(ii, ti, node, inst, rng) {
			continue
		}
		s := inst
		if node != "" {
			s = node + "/" + inst
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// checkDep checks that a depends_on entry names an instance other than ii.
func (l *loader) checkDep(ii *instInfo, ti *tmplInfo, node, inst string, rng hcl.Range) bool {
	if ii.node == nil {
		if ti.injects[inst] == nil {
			l.errorf(rng, fmt.Sprintf("unknown injected instance %q", inst), "%s",
				hint(inst, keys(ti.injects), "", fmt.Sprintf("template %q injects %%s", ti.t.Name)))
			return false
		}
		if inst == ii.inst.Name {
			l.errorf(rng, fmt.Sprintf("%s depends on itself", ii.inst.Name), "remove it from its depends_on")
			return false
		}
		return true
	}
	ni := ii.node
	if node != "" {
		if ni = ti.nodes[node]; ni == nil {
			l.errorf(rng, fmt.Sprintf("unknown node %q", node), "%s",
				hint(node, keys(ti.nodes), "", fmt.Sprintf("template %q declares nodes %%s", ti.t.Name)))
			return false
		}
	}
	if ni.insts[inst] == nil {
		l.errorf(rng, fmt.Sprintf("unknown component instance %q on node %q", inst, ni.tn.Name), "%s",
			hint(inst, ni.names, fmt.Sprintf("node %q has no component instances", ni.tn.Name),
				fmt.Sprintf("node %q has instances %%s", ni.tn.Name)))
		return false
	}
	if ni.insts[inst] == ii {
		l.errorf(rng, fmt.Sprintf("%s depends on itself", ii.inst.Name), "remove it from its depends_on")
		return false
	}
	return true
}
