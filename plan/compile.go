package plan

import (
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
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

// Ancestor is one service above the compiled one (its environment, the
// environment's environment, ...), with its module.
type Ancestor struct {
	Service *Service
	Module  *Module
}

// CompileInput is everything the compiler reads. It must come from one
// consistent view of the state: the compiler runs inside the FSM.
type CompileInput struct {
	Service *Service
	Module  *Module
	// Modules holds every pushed module by "name@version"; required
	// modules are found here through the service's lock.
	Modules map[string]*Module
	// Ancestors, nearest first.
	Ancestors []Ancestor
	// Nodes are the registered nodes, any order.
	Nodes      []*Node
	Generation uint64
	// Previous is the current plan: agents keep their template nodes
	// while they still qualify, so a redeploy does not move work around.
	Previous *Plan
	// Outputs holds the outputs reported per create step ID, and Done the
	// digest each create step last converged at.
	Outputs map[string]map[string]json.RawMessage
	Done    map[string]string
}

// Compile resolves a service's template against its inputs, its ancestors
// and the registered nodes, and returns the plan of the given generation or
// every violation found. It is deterministic and does no I/O.
func Compile(in CompileInput) (*Plan, Violations) {
	c := &compiler{in: in}
	return c.compile()
}

type compiler struct {
	in        CompileInput
	prevSteps map[string]*Step // the previous plan's steps by ID (previousForce)
	errs      Violations
	inputs    map[string]cty.Value
	inputSrc  map[string]string
	facts     map[string]cty.Value // by agent name
	placed    []*placement
	byName    map[string][]*placement // template node name → placements
	tmpl      *Template
	parentSvc string
	// onceMember memoizes onceOn by "GROUP/INST".
	onceMember map[string]*placement
	// funcs caches the function table per module (FunctionsFor builds
	// about 60 functions; building it for every item cost a fifth of a
	// compile).
	funcs map[*Module]map[string]function.Function
	// parsed caches parsed expressions: a node group's members share
	// their instances' expressions, each read three times (refs, value,
	// source). ASTs are not changed by evaluation.
	parsed map[Expr]parsedExpr
	// selectors are the selector expressions' values by template node
	// name (NodePlan.Selector).
	selectors map[string][]*Value
}

type parsedExpr struct {
	x     hclsyntax.Expression
	diags hcl.Diagnostics
}

// functionsFor is FunctionsFor(m), built once per compile. The table is
// only read by evaluation.
func (c *compiler) functionsFor(m *Module) map[string]function.Function {
	if fs, ok := c.funcs[m]; ok {
		return fs
	}
	if c.funcs == nil {
		c.funcs = map[*Module]map[string]function.Function{}
	}
	fs := FunctionsFor(m)
	c.funcs[m] = fs
	return fs
}

// parse parses e once per compile.
func (c *compiler) parse(e Expr) (hclsyntax.Expression, hcl.Diagnostics) {
	if c == nil {
		return hclsyntax.ParseExpression([]byte(e.Source), e.Pos.File, hcl.Pos{Line: e.Pos.Line, Column: e.Pos.Column})
	}
	if p, ok := c.parsed[e]; ok {
		return p.x, p.diags
	}
	x, diags := hclsyntax.ParseExpression([]byte(e.Source), e.Pos.File, hcl.Pos{Line: e.Pos.Line, Column: e.Pos.Column})
	if c.parsed == nil {
		c.parsed = map[Expr]parsedExpr{}
	}
	c.parsed[e] = parsedExpr{x, diags}
	return x, diags
}

// placement is one agent chosen for a template node.
type placement struct {
	tnode *TemplateNode
	agent *Node
	key   string // "web", or "web[agent-3]" for a node_group member
	items []*item
	// borrowed are the group's once instances another member runs, by
	// name: this member's references and depends_on resolve to them.
	borrowed map[string]*item
}

// item is one component instance to compile on one placement.
type item struct {
	p      *placement
	inst   *Instance
	comp   *Component
	mod    *Module
	name   string    // instance name in step IDs (injected: "ENV.INST")
	inject *Ancestor // set for injected instances
	deps   []*item
	// explicit marks deps named in depends_on: a step waits for those to
	// converge; a dep only referenced for an output is waited on only
	// while the output is unknown.
	explicit map[*item]bool
	step     *Step
	attrs    cty.Value // resolved attribute object
	outs     cty.Value // outputs object (unknown where not reported)
}

func (c *compiler) violate(pos *Pos, format string, args ...any) {
	c.errs = append(c.errs, Violation{Message: fmt.Sprintf(format, args...), Pos: pos})
}

func posPtr(p Pos) *Pos { return &p }

func (c *compiler) compile() (*Plan, Violations) {
	svc, mod := c.in.Service, c.in.Module
	if mod == nil {
		c.violate(nil, "module %s@%s is not pushed", svc.Module, svc.Version)
		return nil, c.errs
	}
	c.tmpl = mod.Templates[svc.Template]
	if c.tmpl == nil {
		c.violate(nil, "module %s has no template %q", mod.Ref(), svc.Template)
		return nil, c.errs
	}
	c.facts = map[string]cty.Value{}
	for _, n := range c.in.Nodes {
		c.facts[n.Name] = FactsValue(n)
	}
	// An input in violation reads as unknown, so that the rest of the
	// service is still checked (every violation at once) without
	// violations that follow from it; a node that cannot be placed stops
	// here, as whatever refers to it would be in violation too.
	c.resolveInputs()
	before := len(c.errs)
	c.place()
	if len(c.errs) > before {
		return nil, c.errs
	}
	c.collectItems()
	order := c.order()
	if order == nil && len(c.errs) > before {
		return nil, c.errs // a cycle
	}
	for _, it := range order {
		c.evaluate(it)
	}
	p := &Plan{Service: svc.Name, Generation: c.in.Generation}
	for _, pl := range c.placed {
		np := &NodePlan{Name: pl.key, Agent: pl.agent.Name, Steps: []*Step{}, Selector: c.selectors[pl.tnode.Name]}
		for _, it := range order {
			if it.p == pl && it.step != nil {
				np.Steps = append(np.Steps, it.step)
			}
		}
		p.Nodes = append(p.Nodes, np)
	}
	for _, in := range c.tmpl.Inputs {
		if v, ok := c.inputs[in.Name]; ok {
			p.Inputs = append(p.Inputs, &Value{Name: in.Name, Value: ctyJSON(v), Source: c.inputSrc[in.Name], Sensitive: in.Sensitive || v.ContainsMarked()})
		}
	}
	p.Exports = c.exports()
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return p, nil
}

// resolveInputs gives every template input a value: the operator's, else
// the nearest ancestor's export of that name, else the default.
func (c *compiler) resolveInputs() {
	c.inputs, c.inputSrc = map[string]cty.Value{}, map[string]string{}
	names := make([]string, 0, len(c.in.Service.Inputs))
	for name := range c.in.Service.Inputs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if c.tmpl.Input(name) == nil {
			known := make([]string, len(c.tmpl.Inputs))
			for i, in := range c.tmpl.Inputs {
				known[i] = in.Name
			}
			c.violate(nil, "template %s has no input %q%s", c.tmpl.Name, name, didYouMean(name, known))
		}
	}
	for _, in := range c.tmpl.Inputs {
		c.inputs[in.Name] = cty.DynamicVal // until resolved
		ty, err := ParseType(in.Type)
		if err != nil {
			c.violate(posPtr(in.Pos), "input %s: %v", in.Name, err)
			continue
		}
		var v cty.Value
		switch raw, ok := c.in.Service.Inputs[in.Name]; {
		case ok:
			if v, err = ParseOperatorValue(raw, ty); err != nil {
				if in.Sensitive { // the message quotes the value
					err = fmt.Errorf("the value is not a valid %s", in.Type)
				}
				c.violate(nil, "input %s: %v", in.Name, err)
				continue
			}
			c.inputSrc[in.Name] = "operator"
		default:
			if ev, from, found := c.ancestorExport(in.Name); found {
				if ev == nil {
					c.violate(posPtr(in.Pos), "input %q: the export of %s is not known yet (it waits for an output)", in.Name, from)
					continue
				}
				if v, err = convert.Convert(*ev, ty); err != nil {
					c.violate(posPtr(in.Pos), "input %q: the export of %s is %s, want %s", in.Name, from, typeexpr.TypeString(ev.Type()), in.Type)
					continue
				}
				c.inputSrc[in.Name] = "export of " + from
			} else if in.Default != nil {
				if v, err = ctyjson.Unmarshal(in.Default, ty); err != nil {
					c.violate(posPtr(in.Pos), "input %s: bad default: %v", in.Name, err)
					continue
				}
				c.inputSrc[in.Name] = "default"
			} else {
				c.violate(posPtr(in.Pos), "input %q is required: set it with --set %s=VALUE, or stage the service under an environment that exports it", in.Name, in.Name)
				continue
			}
		}
		if in.Sensitive {
			v = v.Mark(sensitiveMark)
		}
		if c.validate(in, v, in.Name) {
			c.inputs[in.Name] = v
		}
	}
}

// ancestorExport finds the nearest ancestor's export of a name. A found
// export whose value is not known yet comes back as nil.
func (c *compiler) ancestorExport(name string) (*cty.Value, string, bool) {
	for _, a := range c.in.Ancestors {
		if a.Service.Plan == nil {
			continue
		}
		for _, e := range a.Service.Plan.Exports {
			if e.Name != name {
				continue
			}
			if e.Value == nil {
				return nil, a.Service.Name, true
			}
			v, err := jsonToCty(e.Value)
			if err != nil {
				return nil, a.Service.Name, true
			}
			if e.Sensitive {
				v = v.Mark(sensitiveMark)
			}
			return &v, a.Service.Name, true
		}
	}
	return nil, "", false
}

// validate checks a value against an attribute's validation conditions.
func (c *compiler) validate(a *Attribute, v cty.Value, what string) bool {
	ok := true
	for _, val := range a.Validations {
		ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"value": v}, Functions: Functions()}
		res, err := c.evalExpr(val.Condition, ctx)
		if err != nil {
			c.violate(posPtr(val.Condition.Pos), "%s: validation: %v", what, err)
			ok = false
			continue
		}
		res, _ = res.UnmarkDeep()
		if !res.IsWhollyKnown() {
			continue
		}
		if res.IsNull() || res.Type() != cty.Bool {
			c.violate(posPtr(val.Condition.Pos), "%s: validation condition must be true or false", what)
			ok = false
			continue
		}
		if res.False() {
			c.violate(posPtr(val.Pos), "%s: %s", what, val.ErrorMessage)
			ok = false
		}
	}
	return ok
}

// pool is the agents the service may use: its parent's agents, or every
// registered node for a root service.
func (c *compiler) pool() []*Node {
	nodes := append([]*Node(nil), c.in.Nodes...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	if c.in.Service.Parent == "" {
		return nodes
	}
	if len(c.in.Ancestors) == 0 || c.in.Ancestors[0].Service.Plan == nil {
		c.violate(nil, "parent service %q is not deployed: deploy it first", c.in.Service.Parent)
		return nil
	}
	c.parentSvc = c.in.Ancestors[0].Service.Name
	inParent := map[string]bool{}
	for _, np := range c.in.Ancestors[0].Service.Plan.Nodes {
		inParent[np.Agent] = true
	}
	var out []*Node
	for _, n := range nodes {
		if inParent[n.Name] {
			out = append(out, n)
		}
	}
	return out
}

func (c *compiler) removed(key string) bool {
	for _, r := range c.in.Service.Removed {
		if r == key {
			return true
		}
	}
	return false
}

// place chooses agents: node blocks first (each exactly one agent, kept
// from the previous plan while it still qualifies, else the first free
// match by name), then node groups (Count agents, or all that match).
func (c *compiler) place() {
	pool := c.pool()
	claimed := map[string]string{}
	heldBy := map[string]string{} // agent → template node in the previous plan
	if c.in.Previous != nil {
		for _, np := range c.in.Previous.Nodes {
			base := np.Name
			if i := strings.IndexByte(base, '['); i >= 0 {
				base = base[:i]
			}
			heldBy[np.Agent] = base
		}
	}
	// The pool indexed by "key=value" (in pool order): N node blocks
	// selecting by a label cost O(N) instead of O(N²) (about 5 s per
	// deploy at 5,000 agents).
	byLabel := map[string][]*Node{}
	for _, n := range pool {
		for k, v := range n.Labels {
			byLabel[k+"="+v] = append(byLabel[k+"="+v], n)
		}
	}
	matches := func(tn *TemplateNode) []*Node {
		cands := pool
		for k, v := range tn.Labels {
			if l := byLabel[k+"="+v]; v != "" && len(l) < len(cands) {
				cands = l
			}
		}
		var out []*Node
		for _, n := range cands {
			// A down agent keeps what it holds (a reboot does not move a
			// database) but gets nothing new; a group member an operator
			// deleted (delete --node AGENT) is left out of its group.
			if n.Status == NodeDown && heldBy[n.Name] != tn.Name {
				continue
			}
			if tn.Group && c.removed(tn.Name+"["+n.Name+"]") {
				continue
			}
			if MatchLabels(n.Labels, tn.Labels) && matchFacts(n, tn.Facts) {
				out = append(out, n)
			}
		}
		return out
	}
	// An agent that held this template node before comes first; one that
	// held another template node comes last, so that a new node does not
	// take the agent of a node further down the template.
	preferred := func(tn *TemplateNode, cands []*Node) []*Node {
		rank := func(n *Node) int {
			switch heldBy[n.Name] {
			case tn.Name:
				return 0
			case "":
				return 1
			}
			return 2
		}
		sorted := append([]*Node(nil), cands...)
		sort.SliceStable(sorted, func(i, j int) bool { return rank(sorted[i]) < rank(sorted[j]) })
		return sorted
	}
	c.byName = map[string][]*placement{}
	c.selectors = map[string][]*Value{}
	add := func(tn *TemplateNode, n *Node, key string) {
		claimed[n.Name] = tn.Name
		pl := &placement{tnode: tn, agent: n, key: key}
		c.placed = append(c.placed, pl)
		c.byName[tn.Name] = append(c.byName[tn.Name], pl)
	}
	where := ""
	if c.in.Service.Parent != "" {
		where = fmt.Sprintf(" among the nodes of %s", c.in.Service.Parent)
	}
	for _, group := range []bool{false, true} {
		for _, tn := range c.tmpl.Nodes {
			if tn.Group != group || c.removed(tn.Name) {
				continue
			}
			// sel is tn with its selector expressions evaluated.
			sel, srcs := c.selectorOf(tn)
			if sel == nil || sel.Count == noMembers {
				continue
			}
			c.selectors[tn.Name] = srcs
			cands := preferred(tn, matches(sel))
			var free []*Node
			var takenBy []string
			for _, n := range cands {
				if owner, taken := claimed[n.Name]; taken {
					takenBy = append(takenBy, fmt.Sprintf("%s by node %s", n.Name, owner))
				} else {
					free = append(free, n)
				}
			}
			what := selector(sel)
			switch {
			case len(cands) == 0:
				c.violate(posPtr(tn.Pos), "%s %q: no agent matches %s%s", nodeKind(tn), tn.Name, what, where)
			case !tn.Group && len(free) == 0:
				c.violate(posPtr(tn.Pos), "node %q: every agent matching %s is claimed by another node (%s)", tn.Name, what, strings.Join(takenBy, ", "))
			case !tn.Group:
				add(tn, free[0], tn.Name)
			case sel.Count > 0 && len(free) < sel.Count:
				c.violate(posPtr(tn.Pos), "node_group %q: wants %d agents matching %s, %d are free%s", tn.Name, sel.Count, what, len(free), where)
			default:
				n := len(free)
				if sel.Count > 0 {
					n = sel.Count
				}
				if n == 0 {
					c.violate(posPtr(tn.Pos), "node_group %q: every agent matching %s is claimed by another node (%s)", tn.Name, what, strings.Join(takenBy, ", "))
				}
				members := free[:n]
				sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
				for _, m := range members {
					add(tn, m, tn.Name+"["+m.Name+"]")
				}
			}
		}
	}
}

func selector(tn *TemplateNode) string {
	s := "labels " + FormatLabels(tn.Labels)
	if len(tn.Facts) > 0 {
		s += " and facts " + FormatLabels(tn.Facts)
	}
	return s
}

func matchFacts(n *Node, want map[string]string) bool {
	if len(want) == 0 {
		return true
	}
	f := FactsValue(n)
	for k, v := range want {
		if !f.Type().HasAttribute(k) {
			return false
		}
		got := f.GetAttr(k)
		if got.Type() == cty.Number {
			got, _ = convert.Convert(got, cty.String)
		}
		if got.Type() != cty.String || got.AsString() != v {
			return false
		}
	}
	return true
}

// collectItems lists what each placement runs: components injected by
// ancestors (farthest ancestor first), then its own.
func (c *compiler) collectItems() {
	for _, pl := range c.placed {
		for i := len(c.in.Ancestors) - 1; i >= 0; i-- {
			a := c.in.Ancestors[i]
			if a.Module == nil {
				continue
			}
			at := a.Module.Templates[a.Service.Template]
			if at == nil {
				continue
			}
			for _, inst := range at.Injects {
				anc := a
				comp, mod := c.component(a.Module, a.Service, inst)
				if comp == nil {
					continue
				}
				pl.items = append(pl.items, &item{p: pl, inst: inst, comp: comp, mod: mod, name: a.Service.Name + "." + inst.Name, inject: &anc})
			}
		}
		for _, inst := range pl.tnode.Components {
			if c.removed(pl.tnode.Name+"/"+inst.Name) || c.removed(pl.key+"/"+inst.Name) {
				continue
			}
			if inst.Once && pl.tnode.Group && c.onceOn(pl.tnode, inst) != pl {
				continue
			}
			comp, mod := c.component(c.in.Module, c.in.Service, inst)
			if comp == nil {
				continue
			}
			pl.items = append(pl.items, &item{p: pl, inst: inst, comp: comp, mod: mod, name: inst.Name})
		}
	}
	// The other members of a group borrow its once instances.
	for _, pl := range c.placed {
		for _, inst := range pl.tnode.Components {
			if !inst.Once || !pl.tnode.Group || c.removed(pl.tnode.Name+"/"+inst.Name) {
				continue
			}
			on := c.onceOn(pl.tnode, inst)
			if on == nil || on == pl {
				continue
			}
			for _, it := range on.items {
				if it.inject == nil && it.inst == inst {
					if pl.borrowed == nil {
						pl.borrowed = map[string]*item{}
					}
					pl.borrowed[inst.Name] = it
				}
			}
		}
	}
}

// onceOn is the member of node group tn that runs its once instance inst:
// the one that ran it in the previous plan while it is still a member, so
// that a new agent does not move a migration, else the first member (by
// agent name). Members whose copy an operator deleted are left out; nil
// when that leaves none.
func (c *compiler) onceOn(tn *TemplateNode, inst *Instance) *placement {
	key := tn.Name + "/" + inst.Name
	if pl, ok := c.onceMember[key]; ok {
		return pl
	}
	var cands []*placement
	for _, pl := range c.byName[tn.Name] {
		if !c.removed(pl.key + "/" + inst.Name) {
			cands = append(cands, pl)
		}
	}
	var on *placement
	if len(cands) > 0 {
		on = cands[0]
	}
	if prev := c.in.Previous; prev != nil && on != nil {
	search:
		for _, np := range prev.Nodes {
			if !strings.HasPrefix(np.Name, tn.Name+"[") {
				continue
			}
			for _, st := range np.Steps {
				if st.Once && st.Action == "create" && st.Instance == inst.Name {
					for _, pl := range cands {
						if pl.key == np.Name {
							on = pl
							break search
						}
					}
				}
			}
		}
	}
	if c.onceMember == nil {
		c.onceMember = map[string]*placement{}
	}
	c.onceMember[key] = on
	return on
}

// component finds an instance's component in its module or in a required
// module pinned by the service's lock.
func (c *compiler) component(mod *Module, svc *Service, inst *Instance) (*Component, *Module) {
	if inst.Module != "" && inst.Module != mod.Name {
		version := svc.Lock[inst.Module]
		req := c.in.Modules[inst.Module+"@"+version]
		if version == "" || req == nil {
			c.violate(posPtr(inst.Pos), "%s: module %q is not resolved: push a version that matches the module's requires block and stage the service again", inst.Name, inst.Module)
			return nil, nil
		}
		mod = req
	}
	comp := mod.Components[inst.Component]
	if comp == nil {
		c.violate(posPtr(inst.Pos), "%s: module %s has no component %q", inst.Name, mod.Ref(), inst.Component)
		return nil, nil
	}
	return comp, mod
}

// order links every item to what it depends on (explicit depends_on and
// references in its expressions) and returns all items in an order that
// respects those links; a cycle is a violation.
func (c *compiler) order() []*item {
	var all []*item
	for _, pl := range c.placed {
		all = append(all, pl.items...)
	}
	find := func(pl *placement, name string) *item {
		for _, it := range pl.items {
			if it.name == name {
				return it
			}
		}
		return pl.borrowed[name]
	}
	for _, it := range all {
		seen := map[*item]bool{}
		link := func(d *item) {
			if d != nil && d != it && !seen[d] {
				seen[d] = true
				it.deps = append(it.deps, d)
			}
		}
		linkNode := func(node, inst string, pos Pos) {
			targets := c.byName[node]
			if len(targets) == 0 {
				if !c.removed(node) {
					c.violate(posPtr(pos), "%s: unknown node %q", it.name, node)
				}
				return
			}
			for _, pl := range targets {
				d := find(pl, inst)
				if d == nil {
					if !c.removed(node + "/" + inst) {
						c.violate(posPtr(pos), "%s: node %s has no component %q", it.name, node, inst)
					}
					return
				}
				link(d)
			}
		}
		if it.inject == nil {
			for _, dep := range it.inst.DependsOn {
				before := len(it.deps)
				if node, inst, ok := strings.Cut(dep, "/"); ok {
					linkNode(node, inst, it.inst.Pos)
				} else if d := find(it.p, dep); d != nil {
					link(d)
				} else if !c.removed(it.p.tnode.Name + "/" + dep) {
					c.violate(posPtr(it.inst.Pos), "%s: depends_on names unknown component %q", it.name, dep)
				}
				for _, d := range it.deps[before:] {
					if it.explicit == nil {
						it.explicit = map[*item]bool{}
					}
					it.explicit[d] = true
				}
			}
			for _, name := range sortedKeys(it.inst.Attributes) {
				e := it.inst.Attributes[name]
				for _, ref := range c.refs(e) {
					switch {
					case ref.node == "":
						if d := find(it.p, ref.inst); d != nil {
							link(d)
						} else {
							c.violate(posPtr(e.Pos), "%s.%s: unknown component %q on this node", it.name, name, ref.inst)
						}
					default:
						linkNode(ref.node, ref.inst, e.Pos)
					}
				}
			}
			c.waitForOnce(it, link)
		} else {
			// An injected instance may depend on the other instances its
			// template injects, which sit on the same node.
			for _, dep := range it.inst.DependsOn {
				if d := find(it.p, it.inject.Service.Name+"."+dep); d != nil {
					link(d)
				} else {
					c.violate(posPtr(it.inst.Pos), "%s: depends_on names unknown injected component %q", it.name, dep)
				}
			}
		}
	}
	// Kahn's algorithm, stable in declaration order: each time, the first
	// ready item in declaration order, from a heap of ready positions
	// (O((V+E) log V); a rescan from the start after each item was O(V²)).
	pos := make(map[*item]int, len(all))
	indeg := make([]int, len(all))
	users := make([][]int, len(all))
	for i, it := range all {
		pos[it] = i
	}
	for i, it := range all {
		for _, d := range it.deps {
			indeg[i]++
			users[pos[d]] = append(users[pos[d]], i)
		}
	}
	ready := &intHeap{}
	for i := range all {
		if indeg[i] == 0 {
			heap.Push(ready, i)
		}
	}
	out := make([]*item, 0, len(all))
	done := make(map[*item]bool, len(all))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		done[all[i]] = true
		out = append(out, all[i])
		for _, u := range users[i] {
			if indeg[u]--; indeg[u] == 0 {
				heap.Push(ready, u)
			}
		}
	}
	if len(out) < len(all) {
		c.violate(nil, "dependency cycle: %s", cycle(all, done))
		return nil
	}
	return out
}

// intHeap is a min-heap of positions (container/heap).
type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// waitForOnce makes an instance of a node group member wait until the
// group's once instances that another member runs have converged there:
// the once instances written before it, and those it depends on or refers
// to.
func (c *compiler) waitForOnce(it *item, link func(*item)) {
	if len(it.p.borrowed) == 0 {
		return
	}
	for _, inst := range it.p.tnode.Components {
		if inst == it.inst {
			break
		}
		link(it.p.borrowed[inst.Name])
	}
	for _, d := range it.deps {
		if it.p.borrowed[d.name] == d {
			if it.explicit == nil {
				it.explicit = map[*item]bool{}
			}
			it.explicit[d] = true
		}
	}
}

// cycle describes one dependency cycle among the items not yet ordered.
func cycle(all []*item, done map[*item]bool) string {
	var start *item
	for _, it := range all {
		if !done[it] {
			start = it
			break
		}
	}
	path := []*item{start}
	at := map[*item]int{start: 0}
	cur := start
	for {
		var next *item
		for _, d := range cur.deps {
			if !done[d] {
				next = d
				break
			}
		}
		if next == nil {
			break
		}
		if i, ok := at[next]; ok {
			names := []string{}
			for _, it := range path[i:] {
				names = append(names, it.p.key+"/"+it.name)
			}
			return strings.Join(append(names, next.p.key+"/"+next.name), " → ")
		}
		at[next] = len(path)
		path = append(path, next)
		cur = next
	}
	return start.p.key + "/" + start.name
}

// ref is a reference from an expression to another component instance.
type ref struct{ node, inst string }

// refs lists the component instances an expression reads: component.X,
// output.X (same node), node.N.component.X, node.N.output.X.
func (c *compiler) refs(e Expr) []ref {
	x, diags := c.parse(e)
	if diags.HasErrors() {
		return nil
	}
	var out []ref
	for _, tr := range x.Variables() {
		parts := traversalNames(tr)
		switch {
		case len(parts) >= 2 && (parts[0] == "component" || parts[0] == "output"):
			out = append(out, ref{inst: parts[1]})
		case len(parts) >= 4 && parts[0] == "node" && (parts[2] == "component" || parts[2] == "output"):
			out = append(out, ref{node: parts[1], inst: parts[3]})
		}
	}
	return out
}

// readsNode says whether any of an instance's expressions reads `node`
// (or cannot be parsed: its diagnostics must come out as before).
func (c *compiler) readsNode(inst *Instance) bool {
	for _, e := range inst.Attributes {
		x, diags := c.parse(e)
		if diags.HasErrors() {
			return true
		}
		for _, tr := range x.Variables() {
			if tr.RootName() == "node" {
				return true
			}
		}
	}
	return false
}

func traversalNames(tr hcl.Traversal) []string {
	var out []string
	for _, step := range tr {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			out = append(out, s.Name)
		case hcl.TraverseAttr:
			out = append(out, s.Name)
		case hcl.TraverseIndex:
			if s.Key.Type() == cty.String {
				out = append(out, s.Key.AsString())
			} else {
				return out
			}
		default:
			return out
		}
	}
	return out
}

// nodeVar is the `node` variable: every node block's facts with its
// components' attributes and outputs; a node group is a list of its
// members' facts.
func (c *compiler) nodeVar() cty.Value {
	m := map[string]cty.Value{}
	for _, tn := range c.tmpl.Nodes {
		pls := c.byName[tn.Name]
		if len(pls) == 0 && (!tn.Group || c.removed(tn.Name)) {
			continue // a node_group whose count is 0 is an empty list
		}
		if tn.Group {
			members := make([]cty.Value, len(pls))
			for i, pl := range pls {
				members[i] = c.facts[pl.agent.Name]
			}
			m[tn.Name] = cty.TupleVal(members)
			continue
		}
		m[tn.Name] = c.placementVar(pls[0])
	}
	return cty.ObjectVal(m)
}

// placementVar is a node's facts plus `component` and `output` objects of
// the instances evaluated so far.
func (c *compiler) placementVar(pl *placement) cty.Value {
	attrs := c.facts[pl.agent.Name].AsValueMap()
	comps, outs := map[string]cty.Value{}, map[string]cty.Value{}
	for _, it := range pl.items {
		if it.attrs != cty.NilVal {
			comps[it.name] = it.attrs
			outs[it.name] = it.outs
		}
	}
	for name, it := range pl.borrowed {
		if it.attrs != cty.NilVal {
			comps[name] = it.attrs
			outs[name] = it.outs
		}
	}
	attrs["component"] = cty.ObjectVal(comps)
	attrs["output"] = cty.ObjectVal(outs)
	return cty.ObjectVal(attrs)
}

// evaluate resolves one item's attributes and builds its step.
func (c *compiler) evaluate(it *item) {
	svc := c.in.Service
	pl := it.p
	self := c.placementVar(pl)
	vars := map[string]cty.Value{"self": c.facts[pl.agent.Name]}
	// templatefile reads the files of the module the expression is
	// written in: the ancestor's for an injected instance, not the
	// (possibly required) module of the component.
	exprMod := c.in.Module
	if it.inject != nil {
		vars["export"] = exportsVar(it.inject.Service.Plan)
		exprMod = it.inject.Module
	} else {
		vars["input"] = cty.ObjectVal(c.inputs)
		if c.readsNode(it.inst) {
			// Built only when read: it holds every placement, so
			// building it for each instance made a template of N
			// node blocks cost O(N²) (12 s per deploy at 1,000).
			vars["node"] = c.nodeVar()
		}
		vars["component"] = self.GetAttr("component")
		vars["output"] = self.GetAttr("output")
	}
	ctx := &hcl.EvalContext{Variables: vars, Functions: c.functionsFor(exprMod)}
	attrs := map[string]json.RawMessage{}
	sources := map[string]string{}
	values := map[string]cty.Value{}
	var waiting, sensitive []string
	// The DSL checks attribute names against components of the same
	// module only; a required module's component is known here.
	for _, name := range sortedKeys(it.inst.Attributes) {
		if it.comp.Attribute(name) == nil {
			c.violate(posPtr(it.inst.Attributes[name].Pos), "%s: component %s of %s has no attribute %q", it.name, it.comp.Name, it.mod.Ref(), name)
		}
	}
	for _, a := range it.comp.Attributes {
		ty, err := ParseType(a.Type)
		if err != nil {
			c.violate(posPtr(a.Pos), "attribute %s: %v", a.Name, err)
			continue
		}
		if a.Sensitive {
			sensitive = append(sensitive, a.Name)
		}
		var v cty.Value
		if e, ok := it.inst.Attributes[a.Name]; ok {
			if v, err = c.evalExpr(e, ctx); err != nil {
				c.violate(posPtr(e.Pos), "%s.%s: %v", it.name, a.Name, err)
				continue
			}
			sources[a.Name] = c.source(e, it)
			// A value computed from a sensitive one is sensitive too.
			if !a.Sensitive && v.ContainsMarked() {
				sensitive = append(sensitive, a.Name)
			}
			if !v.IsWhollyKnown() {
				waiting = append(waiting, fmt.Sprintf("%s (%s)", a.Name, sources[a.Name]))
				_, marks := v.UnmarkDeep()
				values[a.Name] = cty.UnknownVal(ty).WithMarks(marks)
				continue
			}
			if v, err = convert.Convert(v, ty); err != nil {
				c.violate(posPtr(e.Pos), "%s.%s: want %s: %v", it.name, a.Name, a.Type, err)
				continue
			}
		} else if a.Default != nil {
			if v, err = ctyjson.Unmarshal(a.Default, ty); err != nil {
				c.violate(posPtr(a.Pos), "attribute %s: bad default: %v", a.Name, err)
				continue
			}
			sources[a.Name] = "default"
		} else if a.Required {
			c.violate(posPtr(it.inst.Pos), "%s: attribute %q is required", it.name, a.Name)
			continue
		} else {
			// Validations apply to values that are set.
			sources[a.Name] = "unset"
			values[a.Name] = cty.NullVal(ty)
			attrs[a.Name] = ctyJSON(cty.NullVal(ty))
			continue
		}
		if !c.validate(a, v, it.name+"."+a.Name) {
			continue
		}
		if a.Sensitive {
			v = v.Mark(sensitiveMark)
		}
		values[a.Name] = v
		attrs[a.Name] = ctyJSON(v)
	}
	it.attrs = cty.ObjectVal(values)
	create := it.comp.Actions["create"]
	if create == nil {
		c.violate(posPtr(it.comp.Pos), "component %s has no create action", it.comp.Name)
		return
	}
	st := &Step{
		ID:      StepID(svc.Name, pl.key, it.name, "create"),
		Service: svc.Name, Node: pl.key, Instance: it.name, Component: it.comp.Name, Action: "create",
		Generation: c.in.Generation, Module: it.mod.Ref(), ModuleDigest: it.mod.Digest,
		Run: *create, Undo: it.comp.Actions["delete"], Check: it.comp.Check,
		Attributes: attrs, Sources: sources, Sensitive: sensitive,
		Once: it.inject == nil && it.inst.Once && pl.tnode.Group,
	}
	for _, o := range it.comp.Outputs {
		st.Outputs = append(st.Outputs, o.Name)
	}
	outs := map[string]cty.Value{}
	reported := c.in.Outputs[st.ID]
	for _, o := range it.comp.Outputs {
		if raw, ok := reported[o.Name]; ok {
			if v, err := jsonToCty(raw); err == nil {
				if o.Sensitive {
					v = v.Mark(sensitiveMark)
				}
				outs[o.Name] = v
				continue
			}
		}
		outs[o.Name] = cty.DynamicVal
	}
	it.outs = cty.ObjectVal(outs)
	for _, d := range it.deps {
		if d.step == nil {
			continue
		}
		st.DependsOn = append(st.DependsOn, d.step.ID)
		if d.p != it.p && it.explicit[d] && c.in.Done[d.step.ID] != d.step.Digest {
			waiting = append(waiting, d.p.key+"/"+d.name+" to converge")
		}
	}
	st.Waiting = waiting
	if usesKind(it.comp, "puppet") {
		c.origins(st, it, exprMod)
	}
	if len(waiting) == 0 {
		c.checkParams(it.comp, st)
	}
	st.Digest = StepDigest(st, it.mod.Files)
	c.subscriptions(it, st)
	st.Force = c.previousForce(st.ID)
	it.step = st
}

// origins records where the instance and each attribute it sets are
// written (exprMod: the module the instance is written in).
func (c *compiler) origins(st *Step, it *item, exprMod *Module) {
	where := func(p Pos, attr string) string {
		s := fmt.Sprintf("%s/%s (component %q %q", exprMod.Name, p, it.inst.Component, it.inst.Name)
		if attr != "" {
			s += fmt.Sprintf(", attribute %q", attr)
		}
		return s + ")"
	}
	st.Origin = where(it.inst.Pos, "")
	for name, e := range it.inst.Attributes {
		if st.Origins == nil {
			st.Origins = map[string]string{}
		}
		st.Origins[name] = where(e.Pos, name)
	}
}

// usesKind says whether any action of comp is of the kind.
func usesKind(comp *Component, kind string) bool {
	if comp.Check != nil && comp.Check.Kind == kind {
		return true
	}
	for _, a := range comp.Actions {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

// checkParams refuses an instance whose actions' params (see
// ResolveParams) cannot be evaluated with its step's attributes, which the
// runner would fail on.
func (c *compiler) checkParams(comp *Component, st *Step) {
	for _, name := range sortedKeys(comp.Actions) {
		c.checkActionParams(comp.Actions[name], st)
	}
	c.checkActionParams(comp.Check, st)
}

func (c *compiler) checkActionParams(a *Action, st *Step) {
	_, err := ResolveParams(a, st.Attributes)
	var pe *ParamError
	if errors.As(err, &pe) {
		c.violate(posPtr(pe.Pos), "%s: params %s: %v", st.Instance, pe.Name, pe.Err)
	} else if err != nil {
		c.violate(posPtr(a.Pos), "%s: %v", st.Instance, err)
	}
}

// source names where an expression's value comes from.
func (c *compiler) source(e Expr, it *item) string {
	x, diags := c.parse(e)
	if diags.HasErrors() {
		return "template"
	}
	set := map[string]bool{}
	for _, tr := range x.Variables() {
		parts := traversalNames(tr)
		switch {
		case len(parts) >= 2 && parts[0] == "input":
			set["input "+parts[1]+" ("+c.inputSrc[parts[1]]+")"] = true
		case it == nil: // a node's selector: inputs only
		case len(parts) >= 2 && parts[0] == "export" && it.inject != nil:
			set["export "+parts[1]+" of "+it.inject.Service.Name] = true
		case len(parts) >= 1 && parts[0] == "self":
			set["fact of "+it.p.agent.Name] = true
		case len(parts) >= 2 && (parts[0] == "component" || parts[0] == "output"):
			key := it.p.key
			if d := it.p.borrowed[parts[1]]; d != nil {
				key = d.p.key
			}
			set[parts[0]+" of "+key+"/"+parts[1]] = true
		case len(parts) >= 4 && parts[0] == "node" && (parts[2] == "component" || parts[2] == "output"):
			set[parts[2]+" of "+parts[1]+"/"+parts[3]] = true
		case len(parts) >= 2 && parts[0] == "node":
			set["fact of node "+parts[1]] = true
		}
	}
	if len(set) == 0 {
		return "template"
	}
	return strings.Join(sortedKeys(set), ", ")
}

// exports evaluates the template's exports; one that needs an output not
// reported yet has no value.
func (c *compiler) exports() []*Value {
	if len(c.tmpl.Exports) == 0 {
		return nil
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"input": cty.ObjectVal(c.inputs), "node": c.nodeVar(),
	}, Functions: c.functionsFor(c.in.Module)}
	var out []*Value
	for _, e := range c.tmpl.Exports {
		v, err := c.evalExpr(e.Value, ctx)
		if err != nil {
			c.violate(posPtr(e.Value.Pos), "export %s: %v", e.Name, err)
			continue
		}
		ev := &Value{Name: e.Name, Source: "export", Sensitive: e.Sensitive || v.ContainsMarked()}
		if v.IsWhollyKnown() {
			ev.Value = ctyJSON(v)
		} else {
			ev.Source = "waiting for an output"
		}
		out = append(out, ev)
	}
	return out
}

// exportsVar is an ancestor's exports as the `export` variable.
func exportsVar(p *Plan) cty.Value {
	m := map[string]cty.Value{}
	if p != nil {
		for _, e := range p.Exports {
			if e.Value == nil {
				m[e.Name] = cty.DynamicVal
				continue
			}
			if v, err := jsonToCty(e.Value); err == nil {
				if e.Sensitive {
					v = v.Mark(sensitiveMark)
				}
				m[e.Name] = v
			}
		}
	}
	return cty.ObjectVal(m)
}

func (c *compiler) evalExpr(e Expr, ctx *hcl.EvalContext) (cty.Value, error) {
	x, diags := c.parse(e)
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

// sensitiveMark marks the values of sensitive inputs, attributes, outputs
// and exports, so that what is computed from them is known to be
// sensitive too.
type sensitiveMarkType struct{}

var sensitiveMark = sensitiveMarkType{}

// ctyJSON encodes a known value as plain JSON.
func ctyJSON(v cty.Value) json.RawMessage {
	v, _ = v.UnmarkDeep()
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// jsonToCty reads plain JSON into a value of the type JSON implies.
func jsonToCty(raw json.RawMessage) (cty.Value, error) {
	ty, err := ctyjson.ImpliedType(raw)
	if err != nil {
		return cty.NilVal, err
	}
	return ctyjson.Unmarshal(raw, ty)
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
	bad := fmt.Errorf("%q is not a valid %s", raw, typeexpr.TypeString(ty))
	x, diags := hclsyntax.ParseExpression([]byte(raw), "value", hcl.InitialPos)
	if diags.HasErrors() {
		if ty == cty.DynamicPseudoType {
			return cty.StringVal(raw), nil
		}
		return cty.NilVal, bad
	}
	v, diags := x.Value(nil)
	if diags.HasErrors() {
		if ty == cty.DynamicPseudoType {
			return cty.StringVal(raw), nil
		}
		return cty.NilVal, bad
	}
	out, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NilVal, bad
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
	keys := sortedKeys(l)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// didYouMean is ` (did you mean "X"?)` for the name of names closest to
// given, if one is close enough.
func didYouMean(given string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := levenshtein.Distance(given, n, nil); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// StepID names a step stably across generations.
func StepID(service, node, instance, action string) string {
	return service + "/" + node + "/" + instance + "/" + action
}

// StepDigest covers what decides whether a step must run again: its action
// (every setting), the digests of the module files the action reads (not
// of the whole module, so that editing one script re-runs only the steps
// that use it), its resolved attributes, and whether it still waits.
func StepDigest(st *Step, files map[string]string) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	// What a params mapping passes (nil without one; a compiled step's
	// params evaluate, see evaluate) is covered explicitly, beside the
	// expressions and attributes it is made of.
	params, _ := ResolveParams(&st.Run, st.Attributes)
	_ = enc.Encode(struct {
		Action  string
		Run     Action
		Assets  map[string]string
		Attrs   map[string]json.RawMessage
		Waiting []string
		Params  map[string]json.RawMessage `json:",omitempty"`
	}{st.Action, runIdentity(st.Run), assetDigests(st.Run, st.Attributes, files), st.Attributes, st.Waiting, params})
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// runIdentity is an action without its source positions, which move when
// unrelated lines of a file change.
func runIdentity(a Action) Action {
	a.Pos = Pos{}
	if a.Params != nil {
		ps := make(map[string]Expr, len(a.Params))
		for k, e := range a.Params {
			ps[k] = Expr{Source: e.Source}
		}
		a.Params = ps
	}
	return a
}

// assetDigests picks the digests of the module files an action reads: the
// files it names, and every file under the folders it names.
func assetDigests(a Action, attrs map[string]json.RawMessage, files map[string]string) map[string]string {
	out := attributeFiles(attrs, files)
	for _, p := range a.Assets() {
		p = strings.TrimPrefix(p, "./")
		if d, ok := files[p]; ok {
			out[p] = d
			continue
		}
		prefix := strings.TrimSuffix(p, "/") + "/"
		for f, d := range files {
			if strings.HasPrefix(f, prefix) {
				out[f] = d
			}
		}
	}
	return out
}

// DeletePlan turns a deployed plan into the steps that undo it: every
// instance's delete action, in reverse order on each node. Instances whose
// component has no delete action are left out. With keep set, only the
// steps for which keep returns false are undone.
func DeletePlan(p *Plan, generation uint64) *Plan {
	out := &Plan{Service: p.Service, Generation: generation}
	for _, np := range p.Nodes {
		dn := &NodePlan{Name: np.Name, Agent: np.Agent, Steps: []*Step{}}
		for i := len(np.Steps) - 1; i >= 0; i-- {
			if d := UndoStep(np.Steps[i], generation); d != nil {
				dn.Steps = append(dn.Steps, d)
			}
		}
		out.Nodes = append(out.Nodes, dn)
	}
	return out
}

// UndoStep is the delete step of a create step, or nil when its component
// has no delete action.
func UndoStep(st *Step, generation uint64) *Step {
	if st.Undo == nil {
		return nil
	}
	d := *st
	d.ID = StepID(st.Service, st.Node, st.Instance, "delete")
	d.Action = "delete"
	d.Generation = generation
	d.Run = *st.Undo
	d.Undo, d.Check, d.Waiting, d.DependsOn, d.Outputs = nil, nil, nil, nil, nil
	d.Digest = StepDigest(&d, nil) + "/" + fmt.Sprint(generation)
	return &d
}
