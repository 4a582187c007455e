package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

func recursiveStatus(name, state string, gen uint64, rd *api.RecursiveDeploy, steps ...api.StepStatus) *api.ServiceStatus {
	st := &api.ServiceStatus{Name: name, State: state, Generation: gen, Module: "m", Version: "1.0.0", Template: name, Recursive: rd}
	for _, s := range steps {
		s.Action, s.Component, s.ID = "create", s.Instance+"-comp", name+"/"+s.Instance+"/"+s.Instance+"/create"
		st.Nodes = append(st.Nodes, api.NodeStatus{Name: "agent-1", TemplateNode: s.Instance, Status: "up", Steps: []api.StepStatus{s}})
	}
	return st
}

func recursiveState(status string, current int, svcs ...api.RecursiveService) *api.RecursiveDeploy {
	return &api.RecursiveDeploy{Service: "net", Status: status, Current: current, Services: svcs}
}

// deploy --recursive --wait follows the service being deployed with the
// usual progress and prints a line as each service finishes, until the
// coordinators say the recursive deploy is over.
func TestServiceDeploy_RecursiveWait_FollowsEachService(t *testing.T) {
	f := newFake(t)
	f.handle("POST /v1/services/{name}/deploy", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("recursive") != "true" || r.PathValue("name") != "net" {
			t.Errorf("deploy request %s", r.URL)
		}
		writeJSON(w, 200, plan.Service{Name: "net", State: "deploying", Generation: 5,
			Plan: &plan.Plan{Generation: 5, Nodes: []*plan.NodePlan{{Steps: []*plan.Step{{}}}}}})
	})
	running0 := recursiveState(api.RecursiveRunning, 0,
		api.RecursiveService{Name: "net", Result: api.RecursiveDeploying, Generation: 5},
		api.RecursiveService{Name: "app", Parent: "net", Result: api.RecursivePending},
		api.RecursiveService{Name: "db", Parent: "net", Result: api.RecursivePending})
	running1 := recursiveState(api.RecursiveRunning, 1,
		api.RecursiveService{Name: "net", Result: api.RecursiveDone, Generation: 5},
		api.RecursiveService{Name: "app", Parent: "net", Result: api.RecursiveDeploying, Generation: 3},
		api.RecursiveService{Name: "db", Parent: "net", Result: api.RecursivePending})
	done := recursiveState(api.RecursiveConverged, 3,
		api.RecursiveService{Name: "net", Result: api.RecursiveDone, Generation: 5},
		api.RecursiveService{Name: "app", Parent: "net", Result: api.RecursiveDone, Generation: 3},
		api.RecursiveService{Name: "db", Parent: "net", Result: api.RecursiveUnchanged, Generation: 2})
	net := statusSeq(t, []*api.ServiceStatus{
		recursiveStatus("net", "deploying", 5, running0, step("router", "running", 0, 0, 5)),
		recursiveStatus("net", "converged", 5, running1, step("router", "ok", 0, 7, 5)),
		recursiveStatus("net", "converged", 5, done, step("router", "ok", 0, 7, 5)),
	})
	app := statusSeq(t, []*api.ServiceStatus{
		recursiveStatus("app", "deploying", 3, nil, step("uses", "running", 0, 0, 3)),
		recursiveStatus("app", "converged", 3, nil, step("uses", "ok", 0, 9, 3)),
	})
	f.handle("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		map[string]http.HandlerFunc{"net": net, "app": app}[r.PathValue("name")](w, r)
	})
	r := runCLI(t, f.addr(), "service", "deploy", "net", "--recursive", "--wait")
	r.check(t, exitOK)
	want := `deploying net generation 5 (1 step on 1 node), then the services below it, one by one

net generation 5:
agent-1 router/router create: running
agent-1 router/router create: ok (7ms)
  net: converged at generation 5

app generation 3:
agent-1 uses/uses create: running
agent-1 uses/uses create: ok (9ms)
  app: converged at generation 3
  db: unchanged at generation 2
net and the services below it converged (2 converged, 1 unchanged)
`
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
}

// The first failure stops it: exit 1, with the reason.
func TestServiceDeploy_RecursiveWait_FailureExit1(t *testing.T) {
	f := newFake(t)
	f.handle("POST /v1/services/{name}/deploy", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, plan.Service{Name: "net", State: "deploying", Generation: 5})
	})
	failed := recursiveState(api.RecursiveFailed, 3,
		api.RecursiveService{Name: "net", Result: api.RecursiveDone, Generation: 5},
		api.RecursiveService{Name: "app", Parent: "net", Result: api.RecursiveFailedOne, Generation: 3, Message: "deploy failed at generation 3 (1 failed)"},
		api.RecursiveService{Name: "db", Parent: "net", Result: api.RecursiveNotReached})
	failed.Reason = "app: deploy failed at generation 3 (1 failed)"
	f.handle("GET /v1/services/{name}", statusSeq(t, []*api.ServiceStatus{
		recursiveStatus("net", "converged", 5, failed),
	}))
	r := runCLI(t, f.addr(), "service", "deploy", "net", "--recursive", "--wait")
	r.check(t, exitFailed)
	for _, want := range []string{"  app: failed at generation 3 (deploy failed at generation 3 (1 failed))\n", "  db: not reached\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.stderr != "error: recursive deploy from net stopped: app: deploy failed at generation 3 (1 failed)\n" {
		t.Errorf("stderr %q", r.stderr)
	}
}

// --dry-run --recursive shows the plan of the service and of each deployed
// service below it, in deploy order, with the notes on pending changes.
func TestServiceDeploy_RecursiveDryRun_PlansInOrder(t *testing.T) {
	f := newFake(t)
	f.handle("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []api.ServiceSummary{
			{Name: "web", Parent: "app", Generation: 1}, {Name: "net", Generation: 4}, {Name: "db", Parent: "net", Generation: 2},
			{Name: "app", Parent: "net", Generation: 2}, {Name: "new", Parent: "net"}, {Name: "other", Generation: 1},
		})
	})
	var asked []string
	f.handle("GET /v1/services/{name}/plan", func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.PathValue("name"))
		pv := api.PlanPreview{Service: r.PathValue("name"), Generation: 2, Nodes: []plan.NodeDiff{}}
		if r.PathValue("name") == "app" {
			pv.Pending = []string{"export cidr of net"}
			pv.Notes = []string{"the plan assumes the undeployed changes above app are deployed first"}
			pv.Inputs = []*plan.Value{{Name: "cidr", Value: []byte(`"10.1.0.0/16"`), Source: "export of net (pending change)"}}
		}
		writeJSON(w, 200, pv)
	})
	r := runCLI(t, f.addr(), "service", "deploy", "net", "--recursive", "--dry-run")
	r.check(t, exitOK)
	if got := strings.Join(asked, " "); got != "net app web db" {
		t.Errorf("plans asked: %s, want net app web db", got)
	}
	for _, want := range []string{
		"plan for app, generation 2:\n  note: the plan assumes the undeployed changes above app are deployed first\n",
		`cidr = "10.1.0.0/16"  ← export of net (pending change)`,
		"not deployed, left out: new\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

// service list shows what is stale, service status says what changed.
func TestServiceListAndStatus_Stale(t *testing.T) {
	f := newFake(t)
	f.handle("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []api.ServiceSummary{
			{Name: "net", State: "converged", Generation: 4, Module: "m", Version: "1", Template: "net"},
			{Name: "app", State: "converged", Generation: 2, Module: "m", Version: "1", Template: "app", Parent: "net", Stale: []string{"export cidr of net"}},
		})
	})
	f.handle("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		st := recursiveStatus("app", "converged", 2, nil)
		st.Parent, st.Stale = "net", []string{"export cidr of net", "export dns of net"}
		writeJSON(w, 200, st)
	})
	r := runCLI(t, f.addr(), "service", "list")
	r.check(t, exitOK)
	want := "NAME  STATE      GEN  TEMPLATE  PARENT  STALE\n" +
		"net   converged  4    m@1/net   -       -\n" +
		"app   converged  2    m@1/app   net     export cidr of net\n"
	if r.stdout != want {
		t.Errorf("service list:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = runCLI(t, f.addr(), "service", "status", "app")
	r.check(t, exitOK)
	if want := "stale:      export cidr of net, export dns of net changed since it was deployed (dtkctl service deploy app)\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("status lacks %q:\n%s", want, r.stdout)
	}
}
