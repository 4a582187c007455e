package plan_test

import (
	"encoding/json"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// fuzzModule is a fixed environment and application whose expressions the
// fuzzer supplies: value is the expression of instance attributes (one
// injected), and of an export; text is a template file.
func fuzzModule(value, text string) (env, app *plan.Module) {
	pos := func(line int) plan.Pos { return plan.Pos{File: "main.hcl", Line: line, Column: 1} }
	expr := func(src string) plan.Expr { return plan.Expr{Source: src, Pos: pos(1)} }
	comp := &plan.Component{
		Name: "c",
		Attributes: []*plan.Attribute{
			{Name: "v", Type: "any"},
			{Name: "s", Type: "string", Sensitive: true, Default: json.RawMessage(`"x"`)},
			{Name: "n", Type: "number", Validations: []*plan.Validation{{Condition: expr("value >= 0 || value < 0"), ErrorMessage: "bad", Pos: pos(2)}}},
			{Name: "l", Type: "list(string)"},
		},
		Outputs: []*plan.Output{{Name: "o"}, {Name: "secret", Sensitive: true}},
		Actions: map[string]*plan.Action{"create": {Kind: "bash", Inline: "true"}, "delete": {Kind: "bash", Inline: "true"}},
	}
	env = &plan.Module{
		Name: "env", Version: "1.0.0", Digest: "sha256:env",
		Components: map[string]*plan.Component{"c": comp},
		Texts:      map[string]string{"templates/t": text},
		Templates: map[string]*plan.Template{"env": {
			Name:   "env",
			Inputs: []*plan.Attribute{{Name: "in", Type: "any", Sensitive: true}},
			Nodes:  []*plan.TemplateNode{{Name: "all", Group: true}},
			Exports: []*plan.Export{
				{Name: "s", Value: expr("input.in")},
				{Name: "e", Value: expr("[input.in]"), Sensitive: true},
			},
			Injects: []*plan.Instance{{Name: "mon", Component: "c", Attributes: map[string]plan.Expr{
				"v": expr(value),
				"l": expr(`[templatefile("templates/t", { x = export.s, y = self })]`),
			}}},
		}},
	}
	app = &plan.Module{
		Name: "app", Version: "1.0.0", Digest: "sha256:app",
		Components: map[string]*plan.Component{"c": comp},
		Texts:      map[string]string{"templates/t": text},
		Templates: map[string]*plan.Template{"t": {
			Name: "t",
			Inputs: []*plan.Attribute{
				{Name: "s", Type: "string"}, {Name: "n", Type: "number"},
				{Name: "l", Type: "list(string)"}, {Name: "m", Type: "map(any)"},
				{Name: "e", Type: "any"},
			},
			Nodes: []*plan.TemplateNode{
				{Name: "a", Components: []*plan.Instance{
					{Name: "x", Component: "c", Attributes: map[string]plan.Expr{
						"v": expr(value), "n": expr("input.n"), "l": expr("input.l"),
						"s": expr(`templatefile("templates/t", { x = input.s, y = input.m })`),
					}},
				}},
				{Name: "g", Group: true, Components: []*plan.Instance{
					{Name: "y", Component: "c", DependsOn: []string{"a/x"}, Attributes: map[string]plan.Expr{
						"v": expr(value), "n": expr("length(node.g)"),
						"l": expr("[node.a.output.x.o, node.a.component.x.s]"),
					}},
				}},
			},
			Exports: []*plan.Export{{Name: "v", Value: expr(value)}},
		}},
	}
	return env, app
}

// FuzzCompile compiles a fixed service whose operator input values,
// expressions and template file come from the fuzzer: Compile must not
// panic, and returns a plan or violations.
func FuzzCompile(f *testing.F) {
	f.Add("hello", `"${input.s}-${self.name}"`, "${x} ${y}")
	f.Add("3", "input.n + length(node.g)", "%{ for k, v in y }${k}=${v}%{ endfor }")
	f.Add(`["a","b"]`, "[for s in input.l : upper(s)]", "${jsonencode(y)}")
	f.Add(`{a=1}`, "value > 0", "${x")
	f.Add("", "component.x.s", "")
	f.Add("1", `output.x.o`, "${y.name}")
	f.Add("true", `export.e`, "${can(x) ? x : y}")
	f.Add("x", `templatefile("templates/t", {x = 1, y = 2})`, "${x + y}")
	f.Fuzz(func(t *testing.T, input, value, text string) {
		env, app := fuzzModule(value, text)
		modules := map[string]*plan.Module{env.Ref(): env, app.Ref(): app}
		nodes := []*plan.Node{
			{Name: "n1", Labels: map[string]string{"k": "v"}, Facts: plan.Facts{Hostname: "h1", Address: "10.0.0.1", CPUs: 2}},
			{Name: "n2", Facts: plan.Facts{Hostname: "h2", Address: "10.0.0.2"}},
			{Name: "n3", Facts: plan.Facts{Hostname: "h3", Address: "10.0.0.3"}},
		}
		envSvc := &plan.Service{Name: "env", Module: "env", Version: "1.0.0", Template: "env", Inputs: map[string]string{"in": input}}
		p, _ := plan.Compile(plan.CompileInput{Service: envSvc, Module: env, Modules: modules, Nodes: nodes, Generation: 1})
		envSvc.Plan = p
		svc := &plan.Service{Name: "app", Module: "app", Version: "1.0.0", Template: "t", Parent: "env",
			Inputs: map[string]string{"s": input, "n": input, "l": input, "m": input}}
		in := plan.CompileInput{
			Service: svc, Module: app, Modules: modules, Nodes: nodes, Generation: 2,
			Ancestors: []plan.Ancestor{{Service: envSvc, Module: env}},
			Outputs: map[string]map[string]json.RawMessage{
				"app/a/x/create": {"o": json.RawMessage(`"out"`), "secret": json.RawMessage(`{"k": [1, 2]}`)},
			},
			Done: map[string]string{"app/a/x/create": "sha256:old"},
		}
		p, viol := plan.Compile(in)
		if (p == nil) == (viol == nil) {
			t.Fatalf("Compile returned plan %v and violations %v", p != nil, viol)
		}
		if p != nil {
			in.Previous = p
			plan.Diff(p, p)
			if _, viol := plan.Compile(in); viol != nil {
				t.Fatalf("recompiling with the plan as previous: %v", viol)
			}
		}
	})
}
