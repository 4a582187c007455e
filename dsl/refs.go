package dsl

import (
	"fmt"
	"path"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/dtkhq/dtk/plan"
)

// scope says what an expression may refer to where it is written.
type scope struct {
	// where names the place in messages: "an attribute value".
	where string
	// roots are the variables allowed here.
	roots []string
	tmpl  *tmplInfo
	// node is the node of the instance whose attribute this is: self,
	// component and output refer to it.
	node *nodeInfo
	// self is that instance, which may not refer to itself.
	self *instInfo
}

// rootUsage shows how each variable is used, for messages.
var rootUsage = map[string]string{
	"input":     "input.NAME",
	"self":      "self.FACT",
	"node":      "node.NODE.FACT",
	"component": "component.INSTANCE.ATTRIBUTE",
	"output":    "output.INSTANCE.OUTPUT",
	"export":    "export.NAME",
	"value":     "value",
}

// functionNames are the functions expressions may call.
var functionNames = keys(plan.FunctionsFor(nil))

// checkExpr checks what an expression refers to (variables, functions,
// template files) without evaluating it.
func (l *loader) checkExpr(expr hcl.Expression, sc *scope) {
	for _, tr := range expr.Variables() {
		rng := startRange(tr.SourceRange())
		root := tr.RootName()
		if !contains(sc.roots, root) {
			usages := make([]string, len(sc.roots))
			for i, r := range sc.roots {
				if usages[i] = rootUsage[r]; usages[i] == "" {
					usages[i] = r // an attribute's name (params)
				}
			}
			list := "no variables"
			if len(usages) > 0 {
				list = usages[0]
			}
			if n := len(usages); n > 1 {
				list = strings.Join(usages[:n-1], ", ") + " and " + usages[n-1]
			}
			detail := fmt.Sprintf("%s may refer to %s", sc.where, list)
			if h := hint(root, sc.roots, "", ""); strings.HasPrefix(h, "did you mean") {
				detail = h + " " + detail
			}
			l.errorf(rng, fmt.Sprintf("unknown variable %q", root), "%s", detail)
			continue
		}
		switch root {
		case "input":
			name, ok := stepName(tr, 1)
			if !ok || sc.tmpl.t.Input(name) != nil {
				continue
			}
			t := sc.tmpl.t
			names := make([]string, len(t.Inputs))
			for i, in := range t.Inputs {
				names[i] = in.Name
			}
			l.errorf(rng, fmt.Sprintf("unknown input %q", name), "%s", hint(name, names,
				fmt.Sprintf("template %q declares no inputs", t.Name),
				fmt.Sprintf("template %q declares inputs %%s", t.Name)))
		case "self":
			l.checkFact(tr, 1, rng)
		case "node":
			l.checkNodeRef(tr, rng, sc)
		case "component", "output":
			l.checkInstanceRef(tr, 1, rng, sc.node, root, sc)
		case "export":
			name, ok := stepName(tr, 1)
			if !ok || sc.tmpl.exports[name] != nil {
				continue
			}
			l.errorf(rng, fmt.Sprintf("unknown export %q", name), "%s", hint(name, keys(sc.tmpl.exports),
				fmt.Sprintf("template %q declares no exports", sc.tmpl.t.Name),
				fmt.Sprintf("template %q exports %%s", sc.tmpl.t.Name)))
		}
	}
	sx, ok := expr.(hclsyntax.Expression)
	if !ok {
		return
	}
	hclsyntax.VisitAll(sx, func(n hclsyntax.Node) hcl.Diagnostics {
		switch x := n.(type) {
		case *hclsyntax.FunctionCallExpr:
			l.checkCall(x, sc)
		case *hclsyntax.SplatExpr:
			l.checkGroupSplat(x, sc)
		}
		return nil
	})
}

// checkNodeRef checks node.NODE.FACT, node.NODE.component.INST.ATTR,
// node.NODE.output.INST.NAME, and node.GROUP (a list of members' facts).
func (l *loader) checkNodeRef(tr hcl.Traversal, rng hcl.Range, sc *scope) {
	name, ok := stepName(tr, 1)
	if !ok {
		return
	}
	ni := sc.tmpl.nodes[name]
	if ni == nil {
		l.errorf(rng, fmt.Sprintf("unknown node %q", name), "%s", hint(name, keys(sc.tmpl.nodes), "",
			fmt.Sprintf("template %q declares nodes %%s", sc.tmpl.t.Name)))
		return
	}
	if ni.tn.Group {
		if len(tr) == 2 {
			return
		}
		if ix, ok := tr[2].(hcl.TraverseIndex); ok && ix.Key.Type() == cty.Number {
			l.checkFact(tr, 3, rng)
			return
		}
		if _, ok := tr[2].(hcl.TraverseSplat); ok {
			l.checkFact(tr, 3, rng)
			return
		}
		step, _ := stepName(tr, 2)
		if step == "component" || step == "output" {
			l.errorf(rng, fmt.Sprintf("node_group %q is a list of nodes", name),
				"the components of a node_group cannot be referred to from outside it; "+
					"to run after them, write depends_on = [\"%s/INSTANCE\"]", name)
			return
		}
		l.errorf(rng, fmt.Sprintf("node_group %q is a list of nodes", name),
			"write node.%s[*].%s for every member's %s, node.%s[0].%s for one, or length(node.%s) for how many",
			name, step, step, name, step, name)
		return
	}
	if step, ok := stepName(tr, 2); ok && (step == "component" || step == "output") {
		l.checkInstanceRef(tr, 3, rng, ni, step, sc)
		return
	}
	l.checkFact(tr, 2, rng)
}

// checkInstanceRef checks that step i of tr names an instance of node ni,
// and step i+1 one of its attributes (kind "component") or outputs (kind
// "output").
func (l *loader) checkInstanceRef(tr hcl.Traversal, i int, rng hcl.Range, ni *nodeInfo, kind string, sc *scope) {
	name, ok := stepName(tr, i)
	if !ok {
		l.errorf(rng, fmt.Sprintf("%s must name an instance", kind),
			"write %s.INSTANCE.%s with the instance's name written out",
			strings.Join(traversalPrefix(tr, i), "."), map[string]string{"component": "ATTRIBUTE", "output": "OUTPUT"}[kind])
		return
	}
	ii := ni.insts[name]
	if ii == nil {
		l.errorf(rng, fmt.Sprintf("unknown component instance %q on node %q", name, ni.tn.Name), "%s",
			hint(name, ni.names, fmt.Sprintf("node %q has no component instances", ni.tn.Name),
				fmt.Sprintf("node %q has instances %%s", ni.tn.Name)))
		return
	}
	if ii == sc.self {
		l.errorf(rng, fmt.Sprintf("%s refers to itself", name),
			"an instance cannot read its own attributes or outputs; use the value itself")
		return
	}
	field, ok := stepName(tr, i+1)
	if !ok || ii.comp == nil {
		return
	}
	c := ii.comp
	switch kind {
	case "component":
		if c.Attribute(field) != nil {
			return
		}
		names := make([]string, len(c.Attributes))
		for i, a := range c.Attributes {
			names[i] = a.Name
		}
		l.errorf(rng, fmt.Sprintf("unknown attribute %q of %s", field, name), "%s", hint(field, names,
			fmt.Sprintf("component %q has no attributes", c.Name),
			fmt.Sprintf("component %q has attributes %%s", c.Name)))
	case "output":
		var names []string
		for _, o := range c.Outputs {
			if o.Name == field {
				return
			}
			names = append(names, o.Name)
		}
		l.errorf(rng, fmt.Sprintf("unknown output %q of %s", field, name), "%s", hint(field, names,
			fmt.Sprintf("component %q declares no outputs", c.Name),
			fmt.Sprintf("component %q declares outputs %%s", c.Name)))
	}
}

// traversalPrefix is the names of the first n steps of tr.
func traversalPrefix(tr hcl.Traversal, n int) []string {
	out := []string{tr.RootName()}
	for i := 1; i < n && i < len(tr); i++ {
		s, _ := stepName(tr, i)
		out = append(out, s)
	}
	return out
}

// checkGroupSplat checks the fact named after a splat over a node group:
// node.GROUP[*].FACT.
func (l *loader) checkGroupSplat(x *hclsyntax.SplatExpr, sc *scope) {
	src, ok := x.Source.(*hclsyntax.ScopeTraversalExpr)
	if !ok || sc.tmpl == nil || len(src.Traversal) != 2 || src.Traversal.RootName() != "node" || !contains(sc.roots, "node") {
		return
	}
	name, _ := stepName(src.Traversal, 1)
	if ni := sc.tmpl.nodes[name]; ni == nil || !ni.tn.Group {
		return
	}
	each, ok := x.Each.(*hclsyntax.RelativeTraversalExpr)
	if !ok || len(each.Traversal) == 0 {
		return
	}
	if _, ok := each.Source.(*hclsyntax.AnonSymbolExpr); !ok {
		return
	}
	// Check the fact as if written node.GROUP[0].FACT.
	tr := append(hcl.Traversal{hcl.TraverseRoot{Name: "node"}, hcl.TraverseAttr{Name: name}, hcl.TraverseIndex{Key: cty.Zero}}, each.Traversal...)
	l.checkFact(tr, 3, startRange(each.Traversal.SourceRange()))
}

// checkCall checks that a function exists; templatefile's literal path
// must name a file under templates/.
func (l *loader) checkCall(x *hclsyntax.FunctionCallExpr, sc *scope) {
	rng := startRange(x.NameRange)
	if !contains(functionNames, x.Name) {
		l.errorf(rng, fmt.Sprintf("unknown function %q", x.Name), "%s",
			hint(x.Name, functionNames, "", "the functions are %s"))
		return
	}
	if x.Name != "templatefile" {
		return
	}
	if sc.tmpl == nil { // validations and params: evaluated without the module's files
		l.errorf(rng, "templatefile is not available here", "%s cannot render template files", sc.where)
		return
	}
	if len(x.Args) != 2 || x.ExpandFinal {
		l.errorf(rng, "templatefile takes two arguments",
			`templatefile(PATH, VARIABLES): a file under templates/ and an object of variables, e.g. templatefile("templates/app.conf", { port = 80 })`)
		return
	}
	pv, diags := x.Args[0].Value(nil)
	if diags.HasErrors() || !pv.IsWhollyKnown() || pv.IsNull() || pv.Type() != cty.String {
		return // computed: the compiler checks it
	}
	p := path.Clean(pv.AsString())
	prng := startRange(x.Args[0].Range())
	text, ok := l.texts[p]
	if !ok {
		if !strings.HasPrefix(p, plan.TemplatesDir+"/") {
			l.errorf(prng, fmt.Sprintf("template file %q is not under templates/", pv.AsString()),
				`templatefile renders files of the module's templates/ folder, e.g. "templates/app.conf"`)
			return
		}
		l.errorf(prng, fmt.Sprintf("template file %q not found", pv.AsString()), "%s",
			hint(p, keys(l.texts), "the module has no files under templates/", "files under templates/: %s"))
		return
	}
	tmpl, ok := l.parseTemplate(p, text)
	if !ok {
		return
	}
	obj, ok := x.Args[1].(*hclsyntax.ObjectConsExpr)
	if !ok {
		return // computed: the compiler checks it
	}
	set := map[string]bool{}
	for _, item := range obj.Items {
		k, diags := item.KeyExpr.Value(nil)
		if diags.HasErrors() || !k.IsKnown() || k.IsNull() || k.Type() != cty.String {
			return
		}
		set[k.AsString()] = true
	}
	reported := map[string]bool{}
	for _, tr := range tmpl.Variables() {
		name := tr.RootName()
		if set[name] || reported[name] {
			continue
		}
		reported[name] = true
		at := tr.SourceRange().Start
		l.errorf(startRange(x.Args[1].Range()), fmt.Sprintf("template %s uses variable %q, which is not set", p, name),
			"%s:%d:%d refers to %s; add %s = ... to the variables", p, at.Line, at.Column, name, name)
	}
}

// parseTemplate parses a template file once, reporting its syntax errors
// and unknown functions at their place in it.
func (l *loader) parseTemplate(p, text string) (hclsyntax.Expression, bool) {
	if t, ok := l.templates[p]; ok {
		return t, t != nil
	}
	l.srcs[p] = []byte(text)
	if diags := l.lim.Guard.Template([]byte(text), p, hcl.InitialPos); diags.HasErrors() {
		l.add(diags)
		l.templates[p] = nil
		return nil, false
	}
	tmpl, diags := hclsyntax.ParseTemplate([]byte(text), p, hcl.InitialPos)
	l.add(diags)
	if diags.HasErrors() {
		l.templates[p] = nil
		return nil, false
	}
	hclsyntax.VisitAll(tmpl, func(n hclsyntax.Node) hcl.Diagnostics {
		x, ok := n.(*hclsyntax.FunctionCallExpr)
		switch {
		case !ok:
		case x.Name == "templatefile":
			l.errorf(startRange(x.NameRange), "templatefile cannot be called from a template",
				"render the other file with its own templatefile call and pass the result as a variable")
		case !contains(functionNames, x.Name):
			l.errorf(startRange(x.NameRange), fmt.Sprintf("unknown function %q", x.Name), "%s",
				hint(x.Name, keys(plan.Functions()), "", "templates may call %s"))
		}
		return nil
	})
	l.templates[p] = tmpl
	return tmpl, true
}
