package plan_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// onceCompile compiles the once_waiting module's shop template on web
// agents with the given names (and an lb agent), with what has converged
// (and its outputs) and the previous plan.
func onceCompile(t *testing.T, agents, removed []string, done map[string]string, outputs map[string]map[string]json.RawMessage, prev *plan.Plan) *plan.Plan {
	t.Helper()
	mod := loadModule(t, "testdata/compile/once_waiting/module")
	nodes := []*plan.Node{{Name: "lb", Labels: map[string]string{"role": "lb"}}}
	for _, a := range agents {
		nodes = append(nodes, &plan.Node{Name: a, Labels: map[string]string{"role": "web"}})
	}
	svc := &plan.Service{Name: "shop", Module: mod.Name, Version: mod.Version, Template: "shop", Removed: removed}
	p, viol := plan.Compile(plan.CompileInput{
		Service: svc, Module: mod, Modules: map[string]*plan.Module{mod.Ref(): mod}, Nodes: nodes,
		Generation: 1, Previous: prev, Done: done, Outputs: outputs,
	})
	if viol != nil {
		t.Fatalf("violations:\n%v", viol)
	}
	return p
}

// onceSteps maps each node plan to its steps' instances, "!" marking a
// waiting step and "*" a once step: "web[n1]" → ["nginx", "migrate*", "!app"].
func onceSteps(p *plan.Plan) map[string][]string {
	out := map[string][]string{}
	for _, np := range p.Nodes {
		out[np.Name] = []string{}
		for _, st := range np.Steps {
			s := st.Instance
			if len(st.Waiting) > 0 {
				s = "!" + s
			}
			if st.Once {
				s += "*"
			}
			out[np.Name] = append(out[np.Name], s)
		}
	}
	return out
}

func checkOnceSteps(t *testing.T, p *plan.Plan, want map[string][]string) {
	t.Helper()
	got := onceSteps(p)
	for node, w := range want {
		if !slices.Equal(got[node], w) {
			t.Errorf("%s: steps %v, want %v", node, got[node], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("nodes %v, want %v", got, want)
	}
}

// A once instance runs on the group's first member only; on the others,
// the instances written after it wait until it converged there, and an
// instance of another node that depends on it waits for that one step.
func TestCompile_Once_FirstMemberOnlyOthersWait(t *testing.T) {
	p := onceCompile(t, []string{"n2", "n3", "n1"}, nil, nil, nil, nil)
	checkOnceSteps(t, p, map[string][]string{
		"lb":      {"!proxy"},
		"web[n1]": {"nginx", "migrate*", "!app", "worker"}, // app waits for migrate's output
		"web[n2]": {"nginx", "!app", "!worker"},
		"web[n3]": {"nginx", "!app", "!worker"},
	})
	done := map[string]string{}
	for _, np := range p.Nodes {
		for _, st := range np.Steps {
			if st.Instance == "migrate" {
				done[st.ID] = st.Digest
			}
			if np.Name != "web[n1]" && st.Instance != "nginx" {
				if !slices.Contains(st.Waiting, "web[n1]/migrate to converge") || !slices.Equal(st.DependsOn, []string{"shop/web[n1]/migrate/create"}) {
					t.Errorf("%s: waiting %v, depends on %v", st.ID, st.Waiting, st.DependsOn)
				}
			}
		}
	}

	// Once it converged (with its output), nothing waits, and the other
	// members read the first member's output.
	outputs := map[string]map[string]json.RawMessage{"shop/web[n1]/migrate/create": {"version": json.RawMessage(`"3"`)}}
	p = onceCompile(t, []string{"n1", "n2", "n3"}, nil, done, outputs, nil)
	checkOnceSteps(t, p, map[string][]string{
		"lb":      {"proxy"},
		"web[n1]": {"nginx", "migrate*", "app", "worker"},
		"web[n2]": {"nginx", "app", "worker"},
		"web[n3]": {"nginx", "app", "worker"},
	})
	for _, np := range p.Nodes {
		for _, st := range np.Steps {
			if st.Instance == "app" && (string(st.Attributes["schema"]) != `"3"` || st.Sources["schema"] != "output of web[n1]/migrate") {
				t.Errorf("%s: schema %s from %s", st.ID, st.Attributes["schema"], st.Sources["schema"])
			}
		}
	}

	// Deterministic: the same input compiles to the same plan.
	a, _ := json.Marshal(onceCompile(t, []string{"n1", "n2", "n3"}, nil, nil, nil, nil))
	b, _ := json.Marshal(onceCompile(t, []string{"n3", "n1", "n2"}, nil, nil, nil, nil))
	if string(a) != string(b) {
		t.Error("the plan depends on the order of the nodes")
	}
}

// A once instance stays on the member that ran it while that agent is in
// the group: an agent that joins and sorts first does not move it; a
// group that had none yet takes the first member by name.
func TestCompile_Once_StaysWhereItRan(t *testing.T) {
	first := onceCompile(t, []string{"n1", "n2"}, nil, nil, nil, nil)
	p := onceCompile(t, []string{"n0", "n1", "n2"}, nil, nil, nil, first)
	checkOnceSteps(t, p, map[string][]string{
		"lb":      {"!proxy"},
		"web[n0]": {"nginx", "!app", "!worker"},
		"web[n1]": {"nginx", "migrate*", "!app", "worker"},
		"web[n2]": {"nginx", "!app", "!worker"},
	})
	fresh := onceCompile(t, []string{"n0", "n1", "n2"}, nil, nil, nil, nil)
	if got := onceSteps(fresh)["web[n0]"]; !slices.Contains(got, "migrate*") {
		t.Errorf("without a previous plan, web[n0] runs %v, want migrate", got)
	}
	// The member that ran it left the group: the first member takes it.
	p = onceCompile(t, []string{"n0", "n2"}, nil, nil, nil, first)
	if got := onceSteps(p)["web[n0]"]; !slices.Contains(got, "migrate*") {
		t.Errorf("after web[n1] left, web[n0] runs %v, want migrate", got)
	}
}

// An operator deleted the once instance on the member that runs it
// (delete --node n1 --component migrate): the next member runs it. Deleted
// for the whole group, no member runs it or waits for it.
func TestCompile_Once_Removed(t *testing.T) {
	p := onceCompile(t, []string{"n1", "n2", "n3"}, []string{"web[n1]/migrate"}, nil, nil, nil)
	checkOnceSteps(t, p, map[string][]string{
		"lb":      {"!proxy"},
		"web[n1]": {"nginx", "!app", "!worker"},
		"web[n2]": {"nginx", "migrate*", "!app", "worker"},
		"web[n3]": {"nginx", "!app", "!worker"},
	})
	// app refers to migrate's output, so it goes too.
	p = onceCompile(t, []string{"n1", "n2"}, []string{"web/app", "web/migrate"}, nil, nil, nil)
	checkOnceSteps(t, p, map[string][]string{
		"lb":      {"proxy"},
		"web[n1]": {"nginx", "worker"},
		"web[n2]": {"nginx", "worker"},
	})
}
