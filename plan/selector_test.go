package plan_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// selectorNodes are two environments' agents: a web and two workers each.
func selectorNodes() []*plan.Node {
	var nodes []*plan.Node
	for _, env := range []string{"dev", "prod"} {
		nodes = append(nodes, &plan.Node{Name: env + "-web", Labels: map[string]string{"env": env, "role": "web"}})
		for _, w := range []string{"-w1", "-w2"} {
			nodes = append(nodes, &plan.Node{Name: env + w, Labels: map[string]string{"env": env, "role": "worker"}})
		}
	}
	return nodes
}

func compileApp(t *testing.T, inputs map[string]string, anc []plan.Ancestor, prev *plan.Plan) (*plan.Plan, plan.Violations) {
	t.Helper()
	mod := loadModule(t, "testdata/selectors")
	svc := &plan.Service{Name: "app", Module: mod.Name, Version: mod.Version, Template: "app", Inputs: inputs}
	if len(anc) > 0 {
		svc.Parent = anc[0].Service.Name
	}
	return plan.Compile(plan.CompileInput{Service: svc, Module: mod, Modules: map[string]*plan.Module{mod.Ref(): mod},
		Nodes: selectorNodes(), Generation: 2, Ancestors: anc, Previous: prev})
}

// placed is "node→agent" for each node plan, in plan order.
func placed(p *plan.Plan) []string {
	var out []string
	for _, np := range p.Nodes {
		out = append(out, np.Name+"→"+np.Agent)
	}
	return out
}

// An input chooses the labels (and the count) a node selects by: the same
// template takes the prod agents or the dev ones, and the node plan says
// which input the selector came from.
func TestCompile_SelectorFromInput_ChoosesAgents(t *testing.T) {
	p, viol := compileApp(t, map[string]string{"env": "prod", "workers": "2"}, nil, nil)
	if viol != nil {
		t.Fatal(viol)
	}
	if got, want := placed(p), []string{"web→prod-web", "workers[prod-w1]→prod-w1", "workers[prod-w2]→prod-w2"}; !slices.Equal(got, want) {
		t.Errorf("placed %v, want %v", got, want)
	}
	sel, _ := json.Marshal(p.Nodes[1].Selector)
	want := `[{"name":"labels","value":{"env":"prod","role":"worker"},"source":"input env (operator)"},{"name":"count","value":2,"source":"input workers (operator)"}]`
	if string(sel) != want {
		t.Errorf("selector %s\nwant %s", sel, want)
	}
	// Compiled again with the same inputs (and one fewer worker wanted),
	// the nodes keep their agents.
	again, viol := compileApp(t, map[string]string{"env": "prod"}, nil, p)
	if viol != nil {
		t.Fatal(viol)
	}
	if got, want := placed(again), []string{"web→prod-web", "workers[prod-w1]→prod-w1"}; !slices.Equal(got, want) {
		t.Errorf("recompiled: placed %v, want %v", got, want)
	}
	// A count of 0 leaves the group without members.
	none, viol := compileApp(t, map[string]string{"env": "dev", "workers": "0"}, nil, nil)
	if viol != nil {
		t.Fatal(viol)
	}
	if got, want := placed(none), []string{"web→dev-web"}; !slices.Equal(got, want) {
		t.Errorf("count 0: placed %v, want %v", got, want)
	}
}

// A service staged under an environment takes the input its selector
// reads from the environment's export.
func TestCompile_SelectorFromInheritedInput(t *testing.T) {
	mod := loadModule(t, "testdata/selectors")
	env := &plan.Service{Name: "dev", Module: mod.Name, Version: mod.Version, Template: "env", Inputs: map[string]string{"env": "dev"}}
	p, viol := plan.Compile(plan.CompileInput{Service: env, Module: mod, Modules: map[string]*plan.Module{mod.Ref(): mod}, Nodes: selectorNodes(), Generation: 1})
	if viol != nil {
		t.Fatal(viol)
	}
	env.Plan = p
	app, viol := compileApp(t, nil, []plan.Ancestor{{Service: env, Module: mod}}, nil)
	if viol != nil {
		t.Fatal(viol)
	}
	if got, want := placed(app), []string{"web→dev-web", "workers[dev-w1]→dev-w1"}; !slices.Equal(got, want) {
		t.Errorf("placed %v, want %v", got, want)
	}
	if s := app.Nodes[0].Selector; len(s) != 1 || s[0].Source != "input env (export of dev), input extra (default)" {
		t.Errorf("selector %+v", s[0])
	}
}

// A selector whose value has the wrong type is a violation at the
// expression, saying what was wanted.
func TestCompile_SelectorWrongType_Violation(t *testing.T) {
	for _, c := range []struct {
		inputs map[string]string
		want   string
	}{
		{map[string]string{"env": "dev", "workers": "1.5"}, `main.hcl:33:14: node_group "workers": count is 1.5: want a whole number of agents from 0 to 2147483647`},
		{map[string]string{"env": "dev", "workers": "-1"}, `main.hcl:33:14: node_group "workers": count is -1: want a whole number`},
		{map[string]string{"env": "dev", "extra": `{ tier = ["a"] }`}, `main.hcl:28:14: node "web": labels must be a map of strings`},
		{map[string]string{"env": "dev", "extra": `"x"`}, `main.hcl:28:14: node "web": labels:`},
	} {
		_, viol := compileApp(t, c.inputs, nil, nil)
		if !strings.Contains(viol.Error(), c.want) {
			t.Errorf("%v: violations:\n%v\nwant %q", c.inputs, viol, c.want)
		}
	}
}
