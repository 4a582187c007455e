package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// Every command that prints something takes --json; only these print
// what JSON cannot carry.
var noJSON = map[string]string{
	"completion": "prints a shell script",
}

func TestEveryCommandTakesJSON(t *testing.T) {
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("dtkctl"), kong.Vars{"version": "dev", "addr": "", "default_addr": "", "ca_file": "", "client_cert": "", "client_key": ""})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range parser.Model.Leaves(true) {
		path := strings.TrimPrefix(n.FullPath(), "dtkctl ")
		if _, ok := noJSON[strings.Fields(path)[0]]; ok {
			continue
		}
		has := false
		for _, f := range n.Flags {
			has = has || f.Name == "json"
		}
		if !has {
			t.Errorf("dtkctl %s has no --json", path)
		}
	}
}

// opFake answers one operation of kind: its start, then its state with
// the given results, all done.
func opFake(t *testing.T, kind string, results []plan.Report) *fakeCoord {
	f := newFake(t)
	steps := map[string][]*plan.Step{}
	var done []string
	for _, r := range results {
		steps[r.Node] = append(steps[r.Node], &plan.Step{ID: r.StepID})
		done = append(done, r.Node)
	}
	f.handle("POST /v1/services/{name}/"+kind, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, plan.Op{ID: "op1", Kind: kind, Service: "web", Steps: steps, Index: 1})
	})
	f.handle("GET /v1/ops/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, plan.Op{ID: "op1", Kind: kind, Service: "web", Steps: steps, Results: results, Done: done, Index: 2})
	})
	if kind == plan.OpDryRun {
		f.handle("GET /v1/ops/{id}/clusters", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, api.DryRunClusters{Op: "op1", Service: "web", Index: 2, Clusters: []plan.Cluster{}})
		})
	}
	return f
}

func TestServiceLogs_JSON(t *testing.T) {
	f := opFake(t, plan.OpLogs, []plan.Report{
		{Node: "agent-1", StepID: "web/site/index/create", Action: "create", State: "ok", DurationMs: 12, Output: "line 1\nline 2\n"},
		{Node: "agent-2", StepID: "web/db/db/create", Action: "create", State: "failed", ExitCode: 3, Error: "exit status 3", Output: "boom\n"},
	})
	r := runCLI(t, f.addr(), "service", "logs", "web", "--json")
	r.check(t, exitOK)
	var logs []logEntry
	if err := json.Unmarshal([]byte(r.stdout), &logs); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if len(logs) != 2 || logs[0].Output != "line 1\nline 2\n" || logs[0].Step != "site/index" || logs[0].Source != "agent" ||
		logs[1].State != "failed" || logs[1].ExitCode != 3 || logs[1].Error != "exit status 3" {
		t.Errorf("logs %+v", logs)
	}

	// --tail: the reported tails, from the status.
	f = newFake(t)
	st := testStatus(3, "converged", step("index", "ok", 0, 9, 3))
	st.Nodes[0].Steps[0].Output = "hello\n"
	f.handle("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, st) })
	r = runCLI(t, f.addr(), "service", "logs", "web", "--tail", "--json")
	r.check(t, exitOK)
	logs = nil
	if err := json.Unmarshal([]byte(r.stdout), &logs); err != nil || len(logs) != 1 || logs[0].Source != "tail" || logs[0].Output != "hello\n" {
		t.Errorf("%v %+v:\n%s", err, logs, r.stdout)
	}
}

func TestServiceDeployDryRun_JSON(t *testing.T) {
	f := opFake(t, plan.OpDryRun, []plan.Report{
		{Node: "agent-1", StepID: "web/site/index/create", Action: "create", Prediction: plan.PredictChange},
		{Node: "agent-1", StepID: "web/site/db/create", Action: "create", Prediction: plan.PredictNoChange},
	})
	r := runCLI(t, f.addr(), "service", "deploy", "web", "--dry-run", "--json")
	r.check(t, exitOK)
	var res dryRunResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if res.Service != "web" || len(res.Results) != 2 || res.Counts[plan.PredictChange] != 1 || res.Counts[plan.PredictNoChange] != 1 {
		t.Errorf("%+v", res)
	}
}

// deploy --wait --json prints the final status only (no progress lines)
// and keeps the exit codes.
func TestServiceDeployWait_JSON(t *testing.T) {
	f := deployFake(t, []*api.ServiceStatus{
		testStatus(3, "deploying", step("index", "running", 0, 0, 3)),
		testStatus(3, "failed", step("index", "failed", 1, 12, 3)),
	})
	r := runCLI(t, f.addr(), "service", "deploy", "web", "--wait", "--json")
	r.check(t, exitFailed)
	var st api.ServiceStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.State != "failed" || st.Generation != 3 {
		t.Errorf("%v %+v:\n%s", err, st, r.stdout)
	}
}

func TestModulePush_JSON(t *testing.T) {
	f := newFake(t)
	f.handle("POST /v1/modules", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, plan.Module{Name: "hello", Version: "1.0.0", Digest: "sha256:abc"})
	})
	r := runCLI(t, f.addr(), "module", "push", "../../examples/hello", "--json")
	r.check(t, exitOK)
	var m plan.Module
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m.Ref() != "hello@1.0.0" {
		t.Errorf("%v %+v:\n%s", err, m, r.stdout)
	}
}
