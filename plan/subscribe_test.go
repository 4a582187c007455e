package plan_test

import (
	"slices"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

func subscribeCompile(t *testing.T, prev *plan.Plan) *plan.Plan {
	t.Helper()
	mod := loadModule(t, "../dsl/testdata/good/subscribe")
	svc := &plan.Service{Name: "web", Module: mod.Name, Version: mod.Version, Template: "t"}
	p, viol := plan.Compile(plan.CompileInput{
		Service: svc, Module: mod, Modules: map[string]*plan.Module{mod.Ref(): mod},
		Nodes: []*plan.Node{{Name: "n1"}}, Generation: 1, Previous: prev, Done: map[string]string{},
	})
	if viol != nil {
		t.Fatalf("violations:\n%v", viol)
	}
	return p
}

// A subscriber comes after what it subscribes to, names their create
// steps, and carries its refresh action; the subscription and the refresh
// action are not in the digest.
func TestCompileSubscribe(t *testing.T) {
	p := subscribeCompile(t, nil)
	var order []string
	steps := map[string]*plan.Step{}
	for _, st := range p.Nodes[0].Steps {
		order = append(order, st.Instance)
		steps[st.Instance] = st
	}
	if want := []string{"config", "site", "nginx", "app"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	ng := steps["nginx"]
	if want := []string{"web/a/config/create", "web/a/site/create"}; !slices.Equal(ng.Subscribe, want) {
		t.Errorf("nginx subscribes to %v, want %v", ng.Subscribe, want)
	}
	if ng.RefreshAction != "reload" || ng.RefreshRun == nil || ng.RefreshRun.Inline != "true" {
		t.Errorf("nginx refresh %q %+v", ng.RefreshAction, ng.RefreshRun)
	}
	if app := steps["app"]; !slices.Equal(app.Subscribe, []string{"web/a/config/create"}) || app.RefreshRun != nil {
		t.Errorf("app subscribes to %v, refresh %+v", app.Subscribe, app.RefreshRun)
	}
	plain := *ng
	plain.Subscribe, plain.RefreshAction, plain.RefreshRun = nil, "", nil
	mod := loadModule(t, "../dsl/testdata/good/subscribe")
	if got := plan.StepDigest(&plain, mod.Files); got != ng.Digest {
		t.Errorf("the subscription changes the digest: %s, want %s", ng.Digest, got)
	}
}

// A force request stays with its step through recompiles, and is not in
// the digest.
func TestCompileKeepsForce(t *testing.T) {
	prev := subscribeCompile(t, nil)
	prev.Nodes[0].Steps[1].Force = 42
	p := subscribeCompile(t, prev)
	for i, st := range p.Nodes[0].Steps {
		want := uint64(0)
		if i == 1 {
			want = 42
		}
		if st.Force != want || st.Digest != prev.Nodes[0].Steps[i].Digest {
			t.Errorf("%s: force %d digest %s, want %d and %s", st.ID, st.Force, st.Digest, want, prev.Nodes[0].Steps[i].Digest)
		}
	}
}

// An injected instance subscribes to another one its template injects.
func TestCompileSubscribe_Injected(t *testing.T) {
	mod := loadModule(t, "../dsl/testdata/good/subscribe")
	parent := &plan.Service{Name: "env", Module: mod.Name, Version: mod.Version, Template: "t", Plan: subscribeCompile(t, nil)}
	child := &plan.Service{Name: "app", Module: mod.Name, Version: mod.Version, Template: "t", Parent: "env"}
	p, viol := plan.Compile(plan.CompileInput{
		Service: child, Module: mod, Modules: map[string]*plan.Module{mod.Ref(): mod},
		Nodes: []*plan.Node{{Name: "n1"}}, Generation: 1, Done: map[string]string{},
		Ancestors: []plan.Ancestor{{Service: parent, Module: mod}},
	})
	if viol != nil {
		t.Fatalf("violations:\n%v", viol)
	}
	for _, st := range p.Nodes[0].Steps {
		if st.Instance == "env.agent" {
			if !slices.Equal(st.Subscribe, []string{"app/a/env.agent_conf/create"}) || st.RefreshAction != "reload" {
				t.Errorf("env.agent subscribes to %v, refresh %q", st.Subscribe, st.RefreshAction)
			}
			return
		}
	}
	t.Fatalf("no injected agent step in %+v", p.Nodes[0].Steps)
}
