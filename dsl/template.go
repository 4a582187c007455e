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
	subs    *hcl.Attribute   // subscribe
	refresh *hcl.Attribute   // refresh
	attrsOK bool             // the body holds attributes only
}

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
	l.subscribeCycles(ti)
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
			if contains(plan.SelectableFacts, k) {
				continue
			}
			detail := hint(k, plan.SelectableFacts, "", "a node is selected by the facts %s")
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
		case "subscribe":
			ii.subs = a
			continue
		case "refresh":
			ii.refresh = a
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
	if ii.subs != nil {
		// A subscription implies a dependency: the instance runs after
		// those it subscribes to.
		ii.inst.Subscribe = l.subscribe(ii, ti)
		for _, s := range ii.inst.Subscribe {
			ii.inst.DependsOn = appendNew(ii.inst.DependsOn, s)
		}
	}
	if ii.refresh != nil {
		ii.inst.Refresh = l.refresh(ii)
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
	var out []string
	for _, r := range l.instanceList(ii, ti, ii.deps, "depends_on") {
		out = appendNew(out, r.String())
	}
	return out
}

// subscribe resolves an instance's subscribe, written as depends_on is, to
// instances on the same node, and checks its refresh action.
func (l *loader) subscribe(ii *instInfo, ti *tmplInfo) []string {
	var out []string
	for _, r := range l.instanceList(ii, ti, ii.subs, "subscribe") {
		switch {
		case r.node != "" && r.node != ii.node.tn.Name:
			l.errorf(r.rng, fmt.Sprintf("%s subscribes to %s on another node", ii.inst.Name, r),
				"subscribe names instances on the same node (component.NAME), whose changes the agent sees in the same converge; "+
					"to act on another node's change, use its output in an attribute: a changed output changes the digest, and the step runs again")
			continue
		case ii.node != nil && ii.node.insts[r.inst].inst.Once && !ii.inst.Once:
			l.errorf(r.rng, fmt.Sprintf("%s subscribes to %s, which runs once", ii.inst.Name, r.inst),
				"a once instance runs on one member of the group only; the others would never see it change")
			continue
		}
		out = appendNew(out, r.inst)
	}
	return out
}

// refresh checks an instance's refresh: the name of one of its
// component's actions other than delete, with a subscribe beside it.
func (l *loader) refresh(ii *instInfo) string {
	name, ok := l.stringValue(ii.refresh)
	if !ok {
		return ""
	}
	rng := startRange(ii.refresh.Expr.Range())
	switch {
	case ii.subs == nil:
		l.errorf(startRange(ii.refresh.NameRange), "refresh without subscribe",
			"refresh names the action a change of a subscribed instance runs: add subscribe = [component.NAME]")
		return ""
	case name == "delete" || name == "check":
		l.errorf(rng, fmt.Sprintf("refresh cannot run %q", name),
			"refresh names create or one of the component's custom actions (reload, restart, ...)")
		return ""
	case ii.comp != nil && ii.comp.Actions[name] == nil:
		var custom []string
		for _, a := range keys(ii.comp.Actions) {
			if a != "delete" {
				custom = append(custom, a)
			}
		}
		l.errorf(rng, fmt.Sprintf("unknown action %q", name), "%s",
			hint(name, custom, "", fmt.Sprintf("component %q has actions %%s", ii.comp.Name)))
		return ""
	}
	return name
}

// instRef is an entry of depends_on or subscribe: an instance of node (""
// for the same node) and where it is written.
type instRef struct {
	node, inst string
	rng        hcl.Range
}

func (r instRef) String() string {
	if r.node == "" {
		return r.inst
	}
	return r.node + "/" + r.inst
}

func appendNew(list []string, s string) []string {
	if contains(list, s) {
		return list
	}
	return append(list, s)
}

// instanceList reads a list of instances (depends_on, subscribe):
// component.NAME or "NAME" on the same node, node.NODE.component.NAME or
// "NODE/NAME" on another, "NAME" of another injected instance in an
// inject block; each one checked to exist and not to be ii.
func (l *loader) instanceList(ii *instInfo, ti *tmplInfo, attr *hcl.Attribute, what string) []instRef {
	usage := what + ` is a list of instances: component.NAME or "NAME" on the same node, node.NODE.component.NAME or "NODE/NAME" on another`
	injectUsage := what + ` of an inject block names other instances this template injects: ["NAME"]`
	exprs, diags := hcl.ExprList(attr.Expr)
	if diags.HasErrors() {
		l.errorf(startRange(attr.Expr.Range()), "invalid "+what, "%s", map[bool]string{true: injectUsage, false: usage}[ii.node == nil])
		return nil
	}
	var out []instRef
	for _, e := range exprs {
		rng := startRange(e.Range())
		var node, inst string
		if st, ok := e.(*hclsyntax.ScopeTraversalExpr); ok {
			if ii.node == nil {
				l.errorf(rng, "invalid "+what, "%s", injectUsage)
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
				l.errorf(rng, "invalid "+what, "%s", usage)
				continue
			}
		} else {
			v, diags := e.Value(nil)
			if diags.HasErrors() || v.Type() != cty.String || v.IsNull() {
				l.errorf(rng, "invalid "+what, "%s", map[bool]string{true: injectUsage, false: usage}[ii.node == nil])
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
				l.errorf(rng, fmt.Sprintf("invalid %s entry %q", what, s), "%s", map[bool]string{true: injectUsage, false: usage}[ii.node == nil])
				continue
			}
		}
		if l.checkDep(ii, ti, node, inst, rng, what) {
			out = append(out, instRef{node: node, inst: inst, rng: rng})
		}
	}
	return out
}

// checkDep checks that a depends_on (or subscribe: what) entry names an
// instance other than ii.
func (l *loader) checkDep(ii *instInfo, ti *tmplInfo, node, inst string, rng hcl.Range, what string) bool {
	self := func() bool {
		verb := map[bool]string{true: "depends on", false: "subscribes to"}[what == "depends_on"]
		l.errorf(rng, fmt.Sprintf("%s %s itself", ii.inst.Name, verb), "remove it from its %s", what)
		return false
	}
	if ii.node == nil {
		if ti.injects[inst] == nil {
			l.errorf(rng, fmt.Sprintf("unknown injected instance %q", inst), "%s",
				hint(inst, keys(ti.injects), "", fmt.Sprintf("template %q injects %%s", ti.t.Name)))
			return false
		}
		if inst == ii.inst.Name {
			return self()
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
		return self()
	}
	return true
}

// subscribeCycles reports a subscription that closes a cycle on its node,
// through other subscriptions and depends_on entries of the same node (the
// compiler finds the others, through references and across nodes).
func (l *loader) subscribeCycles(ti *tmplInfo) {
	for _, tn := range ti.t.Nodes {
		ni := ti.nodes[tn.Name]
		for _, name := range ni.names {
			ii := ni.insts[name]
			if len(ii.inst.Subscribe) == 0 {
				continue
			}
			if path := sameNodePath(ni, ii.inst.DependsOn, name, map[string]bool{}); path != nil {
				l.errorf(startRange(ii.subs.Expr.Range()), "subscription cycle",
					"%s → %s: an instance runs after those it subscribes to and depends on, so one of them must go",
					name, strings.Join(path, " → "))
			}
		}
	}
}

// sameNodePath is a path from one of deps to target through same-node
// dependencies, or nil.
func sameNodePath(ni *nodeInfo, deps []string, target string, seen map[string]bool) []string {
	for _, d := range deps {
		if strings.Contains(d, "/") || seen[d] || ni.insts[d] == nil {
			continue
		}
		if d == target {
			return []string{d}
		}
		seen[d] = true
		if p := sameNodePath(ni, ni.insts[d].inst.DependsOn, target, seen); p != nil {
			return append([]string{d}, p...)
		}
	}
	return nil
}
