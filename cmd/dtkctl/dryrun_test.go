package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// dryRunFake answers a dry run of 45 nodes: 40 whose page changes, 4 whose
// server changes too, and one that did not answer.
func dryRunFake(t *testing.T) (*fakeCoord, []plan.Cluster) {
	f := newFake(t)
	page := `web/index: message "Hello from {node}" → "Hi from {node}" — would run (cannot predict)`
	names := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s-%02d", prefix, i))
		}
		return out
	}
	clusters := []plan.Cluster{
		{Key: "c1", Summary: []string{page}, Agents: names("web", 40), Predictions: map[string]string{"web/index/create": plan.PredictCannot}},
		{Key: "c2", Summary: []string{page, "web/site: port 8080 → 9090 — would run (cannot predict)"}, Agents: names("odd", 4)},
		{Key: plan.ClusterCannotPredict, Summary: []string{"cannot predict: 1 node did not answer"}, Agents: []string{"slow-1"}},
	}
	steps := map[string][]*plan.Step{}
	var results []plan.Report
	var done []string
	for _, c := range clusters {
		for _, a := range c.Agents {
			id := "site/web[" + a + "]/index/create"
			steps[a] = []*plan.Step{{ID: id}}
			if c.Key != plan.ClusterCannotPredict {
				results = append(results, plan.Report{Node: a, StepID: id, Action: "create", Prediction: plan.PredictCannot})
				done = append(done, a)
			}
		}
	}
	op := plan.Op{ID: "op1", Kind: plan.OpDryRun, Service: "site", Steps: steps, Index: 1}
	f.handle("POST /v1/services/{name}/dry-run", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.OpStatus{Op: op})
	})
	f.handle("GET /v1/ops/{id}", func(w http.ResponseWriter, r *http.Request) {
		o := op
		o.Results, o.Done, o.Index = results, done, 2
		if r.URL.Query().Get("index") == "2" {
			// slow-1 never answers: the follow waits until its deadline.
			<-r.Context().Done()
			return
		}
		writeJSON(w, 200, api.OpStatus{Op: o, Clusters: clusters, BaseGeneration: 3})
	})
	f.handle("GET /v1/ops/{id}/clusters", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("index") != "1" {
			t.Errorf("clusters read as of index %q, want 1 (the followed op's index 2, or later)", r.URL.Query().Get("index"))
		}
		writeJSON(w, 200, api.DryRunClusters{Op: "op1", Service: "site", Index: 2, Clusters: clusters, BaseGeneration: 3})
	})
	return f, clusters
}

// The groups come first, largest first, their nodes abbreviated; a group
// whose change is the largest one's and more says only what more; the
// nodes that did not answer in time are a group and the exit code says
// the wait timed out.
func TestServiceDeployDryRun_PrintsClusters(t *testing.T) {
	f, _ := dryRunFake(t)
	r := runCLI(t, f.addr(), "service", "deploy", "site", "--dry-run", "--timeout", "300ms")
	r.check(t, exitFailed)
	want := `dry run of site on 45 nodes (nothing changes)
40 nodes: web/index: message "Hello from {node}" → "Hi from {node}" — would run (cannot predict)
  on web-00, web-01, web-02, web-03, web-04 and 35 more
4 nodes: also web/site: port 8080 → 9090 — would run (cannot predict)
  on odd-00, odd-01, odd-02, odd-03
1 node: cannot predict: 1 node did not answer
  on slow-1

0 would change, 0 no change, 0 unchanged in the plan, 44 cannot predict
`
	if r.stdout != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "timed out waiting for dry-run; 44 of 45 nodes answered") {
		t.Fatalf("stderr: %s", r.stderr)
	}

	// --verbose: every node's prediction after the groups.
	r = runCLI(t, f.addr(), "service", "deploy", "site", "--dry-run", "--timeout", "300ms", "-v")
	i, j := strings.Index(r.stdout, "1 node: cannot predict"), strings.Index(r.stdout, "NODE    STEP")
	if i < 0 || j < i || !strings.Contains(r.stdout, "odd-03  web[odd-03]/index  create  cannot predict (would run)") {
		t.Fatalf("verbose stdout:\n%s", r.stdout)
	}
}

// --json gives the groups with every node's name.
func TestServiceDeployDryRun_JSONClusters(t *testing.T) {
	f, clusters := dryRunFake(t)
	r := runCLI(t, f.addr(), "service", "deploy", "site", "--dry-run", "--timeout", "300ms", "--json")
	r.check(t, exitFailed)
	var res dryRunResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if !reflect.DeepEqual(res.Clusters, clusters) || res.BaseGeneration != 3 || len(res.Results) != 44 || res.Counts[plan.PredictCannot] != 44 {
		t.Fatalf("%+v", res)
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 4120: "4,120", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// A dry run's rows come out by node name whatever order the answers came
// in, each node's steps in its order; a step the agent predicted unchanged
// that reads an output that changes shows and counts as one that runs.
func TestServiceDeployDryRun_SortedRowsAndReruns(t *testing.T) {
	f := newFake(t)
	why := "reads output pg of node db, which runs in this deploy"
	results := []plan.Report{
		{Node: "n2", StepID: "shop/web/app/create", Action: "create", Prediction: plan.PredictUnchangedPlan},
		{Node: "n1", StepID: "shop/db/pg/create", Action: "create", Prediction: plan.PredictChange},
		{Node: "n2", StepID: "shop/web/worker/create", Action: "create", Prediction: plan.PredictUnchangedPlan},
		{Node: "n1", StepID: "shop/db/schema/create", Action: "create", Prediction: plan.PredictUnchangedPlan},
	}
	op := plan.Op{ID: "op1", Kind: plan.OpDryRun, Service: "shop", Results: results, Done: []string{"n1", "n2"}, Index: 2,
		Steps: map[string][]*plan.Step{"n1": {{ID: "shop/db/pg/create"}}, "n2": {{ID: "shop/web/app/create"}}}}
	f.handle("POST /v1/services/{name}/dry-run", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.OpStatus{Op: op})
	})
	f.handle("GET /v1/ops/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.OpStatus{Op: op})
	})
	f.handle("GET /v1/ops/{id}/clusters", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.DryRunClusters{Op: "op1", Service: "shop", Index: 2, Runs: map[string]string{"shop/web/app/create": why, "shop/db/schema/create": why}})
	})
	r := runCLI(t, f.addr(), "service", "deploy", "shop", "--dry-run", "-v")
	r.check(t, 0)
	want := `NODE  STEP        ACTION  PREDICTION
n1    db/pg       create  would change
n1    db/schema   create  may run: ` + why + `
n2    web/app     create  may run: ` + why + `
n2    web/worker  create  unchanged (not run)

3 would change, 0 no change, 1 unchanged in the plan, 0 cannot predict
`
	if !strings.HasSuffix(r.stdout, want) {
		t.Fatalf("stdout:\n%s\nwant it to end with:\n%s", r.stdout, want)
	}
}
