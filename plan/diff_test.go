package plan_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// rerunPlans compiles the outputs_waiting module's web template twice with
// pg's address reported: the plan deployed (pg at an older asset digest)
// and the next one, in which only pg changes.
func rerunPlans(t *testing.T) (old, next *plan.Plan) {
	t.Helper()
	mod := loadModule(t, "testdata/compile/outputs_waiting/module")
	nodes := []*plan.Node{
		{Name: "n1", Labels: map[string]string{"role": "db"}},
		{Name: "n2", Labels: map[string]string{"role": "web"}},
	}
	in := plan.CompileInput{
		Service: &plan.Service{Name: "shop", Module: mod.Name, Version: mod.Version, Template: "web"},
		Module:  mod, Modules: map[string]*plan.Module{mod.Ref(): mod}, Nodes: nodes, Generation: 1,
		Outputs: map[string]map[string]json.RawMessage{"shop/db/pg/create": {"address": json.RawMessage(`"n1:5432"`)}},
		Done:    map[string]string{},
	}
	// Twice, so that worker no longer waits for schema to converge.
	for range 2 {
		var viol plan.Violations
		if old, viol = plan.Compile(in); viol != nil {
			t.Fatal(viol)
		}
		for _, np := range old.Nodes {
			for _, st := range np.Steps {
				in.Done[st.ID] = st.Digest
			}
		}
	}
	in.Generation, in.Previous = 2, old
	var viol plan.Violations
	if next, viol = plan.Compile(in); viol != nil {
		t.Fatal(viol)
	}
	for _, np := range old.Nodes {
		for _, st := range np.Steps {
			if st.Instance == "pg" {
				st.Digest = "sha256:older-postgres-asset"
			}
		}
	}
	return old, next
}

// A step whose plan does not change but that reads an output of a step
// the deploy runs is shown as one that runs, saying which output; a step
// that only depends on it (depends_on, no output read) stays unchanged.
func TestDiff_ReaderOfChangingOutput_WillRun(t *testing.T) {
	old, next := rerunPlans(t)
	got := map[string]string{}
	for _, nd := range plan.Diff(old, next) {
		for _, d := range nd.Steps {
			got[d.Instance] = d.Change + " " + d.Reason
		}
	}
	want := map[string]string{
		"pg":     "change ",
		"schema": "run reads output pg of node db, which runs in this deploy",
		"app":    "run reads output pg of node db, which runs in this deploy",
		"worker": "unchanged ",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
}

// In a dry run, the agents predict a reader of pg's output as unchanged
// (it is, as the plan stands); it runs all the same once pg reports, which
// may change its output when pg's agent cannot predict. A reader of a
// step predicted to change nothing does not run.
func TestClusters_ReaderOfUnpredictableOutput_MayRun(t *testing.T) {
	old, next := rerunPlans(t)
	preds := func(pg string) map[string]map[string]string {
		return map[string]map[string]string{
			"n1": {"shop/db/pg/create": pg, "shop/db/schema/create": plan.PredictUnchangedPlan},
			"n2": {"shop/web/app/create": plan.PredictUnchangedPlan, "shop/web/worker/create": plan.PredictUnchangedPlan},
		}
	}
	runs := plan.PredictedReruns(old, next, preds(plan.PredictCannot))
	if w := "reads output pg of node db, which may run in this deploy"; runs["shop/web/app/create"] != w || runs["shop/db/schema/create"] != w || len(runs) != 2 {
		t.Errorf("reruns %v", runs)
	}
	var lines []string
	for _, c := range plan.Clusters(old, next, preds(plan.PredictCannot)) {
		lines = append(lines, c.Summary...)
	}
	want := "web/app: unchanged in the plan, but may run: reads output pg of node db, which may run in this deploy"
	if !slices.Contains(lines, want) {
		t.Errorf("summaries:\n%s\nwant %q", strings.Join(lines, "\n"), want)
	}
	if runs := plan.PredictedReruns(old, next, preds(plan.PredictNoChange)); len(runs) != 0 {
		t.Errorf("pg predicted no change, yet reruns %v", runs)
	}
}

// A diff lists the nodes by name, each node's steps in plan order, and
// gives a changed attribute's old value (a sensitive one redacted).
func TestDiff_SortedNodesAndOldValues(t *testing.T) {
	step := func(node, inst, attr string, sensitive bool) *plan.Step {
		st := &plan.Step{ID: "s/" + node + "/" + inst + "/create", Service: "s", Node: node, Instance: inst, Action: "create",
			Attributes: map[string]json.RawMessage{"v": json.RawMessage(attr)}, Digest: attr}
		if sensitive {
			st.Sensitive = []string{"v"}
		}
		return st
	}
	old := &plan.Plan{Nodes: []*plan.NodePlan{
		{Name: "web", Agent: "a2", Steps: []*plan.Step{step("web", "b", `"1"`, false), step("web", "a", `"x"`, true)}},
		{Name: "db", Agent: "a1", Steps: []*plan.Step{step("db", "pg", `"1"`, false)}},
	}}
	next := &plan.Plan{Nodes: []*plan.NodePlan{
		{Name: "web", Agent: "a2", Steps: []*plan.Step{step("web", "b", `"2"`, false), step("web", "a", `"y"`, true)}},
		{Name: "db", Agent: "a1", Steps: []*plan.Step{step("db", "pg", `"1"`, false)}},
	}}
	var got []string
	for _, nd := range plan.Diff(old, next) {
		for _, d := range nd.Steps {
			s := nd.Name + "/" + d.Instance + " " + d.Change
			for _, a := range d.Attributes {
				s += " " + string(a.Old) + "→" + string(a.Value)
			}
			got = append(got, s)
		}
	}
	want := []string{`db/pg unchanged →"1"`, `web/b change "1"→"2"`, `web/a change "(sensitive)"→"(sensitive)"`}
	if !slices.Equal(got, want) {
		t.Errorf("diff %q\nwant %q", got, want)
	}
}

// A subscriber whose plan does not change runs its refresh when what it
// subscribes to runs and reports a change: the plan says it may run, and
// why, so that it predicts every step the deploy can run.
func TestDiff_SubscriberOfChangingStep_MayRun(t *testing.T) {
	old, next := rerunPlans(t)
	for _, np := range next.Nodes {
		for _, st := range np.Steps {
			if st.Instance == "worker" {
				if len(st.DependsOn) == 0 {
					t.Fatal("worker depends on nothing")
				}
				st.Subscribe, st.RefreshAction = st.DependsOn, "reload"
			}
		}
	}
	for _, nd := range plan.Diff(old, next) {
		for _, d := range nd.Steps {
			if d.Instance == "worker" && (d.Change != plan.ChangeRun || !strings.Contains(d.Reason, "subscribes to ") ||
				!strings.HasSuffix(d.Reason, " in this deploy: refreshes (reload) if it reports a change")) {
				t.Errorf("worker: %s %q", d.Change, d.Reason)
			}
		}
	}
}
