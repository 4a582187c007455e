package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/dsl"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// recursiveModule: net exports cidr, dns and its router's output, and
// injects a resolver configured from dns; app consumes cidr in one
// component and not in the other, and exports an endpoint built from it;
// web consumes app's endpoint; db consumes nothing (but gets the resolver);
// gwuser consumes net's router output through the gw export.
const recursiveModule = `
module {
  name    = "rec"
  version = "1.0.0"
}

component "c" {
  attribute "msg" {
    type     = string
    required = true
  }
  output "v" {}
  create {
    inline = "true"
  }
  delete {
    inline = "true"
  }
}

template "net" {
  input "cidr" {
    type    = string
    default = "10.0.0.0/8"
  }
  input "dns" {
    type    = string
    default = "1.1.1.1"
  }
  node "gw" {
    labels = { role = "a" }
    component "c" "router" { msg = input.cidr }
  }
  export "cidr" {
    value = input.cidr
  }
  export "dns" {
    value = input.dns
  }
  export "gw" {
    value = node.gw.output.router.v
  }
  inject "c" "resolver" {
    msg = export.dns
  }
}

template "app" {
  input "cidr" {
    type = string
  }
  node "app" {
    labels = { role = "a" }
    component "c" "uses" { msg = "route ${input.cidr}" }
    component "c" "fixed" { msg = "fixed" }
  }
  export "endpoint" {
    value = "app in ${input.cidr}"
  }
}

template "web" {
  input "endpoint" {
    type = string
  }
  node "web" {
    labels = { role = "a" }
    component "c" "page" { msg = input.endpoint }
  }
}

template "db" {
  node "db" {
    labels = { role = "a" }
    component "c" "store" { msg = "db" }
  }
}

template "gwuser" {
  input "gw" {
    type = string
  }
  node "u" {
    labels = { role = "a" }
    component "c" "client" { msg = input.gw }
  }
}
`

// recursiveHarness registers one node, pushes the module and stages net,
// app (under net), web (under app) and db (under net).
func recursiveHarness(t *testing.T) *fsmHarness {
	t.Helper()
	h := newHarness(t)
	for _, e := range recursiveEntries(t) {
		h.mustApply(e.typ, e.cmd)
	}
	return h
}

// recursiveEntries register n1, push recursiveModule and stage net, app,
// web and db.
func recursiveEntries(t *testing.T) []logEntry {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(recursiveModule), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := dsl.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Digest = "sha256:" + strings.Repeat("c", 64)
	entries := []logEntry{
		{RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n1", Labels: map[string]string{"role": "a"}}, Time: 1}},
		{PutModuleType, PutModuleCmd{Module: *m}},
	}
	for _, s := range []struct{ name, tmpl, parent string }{{"net", "net", ""}, {"app", "app", "net"}, {"web", "web", "app"}, {"db", "db", "net"}} {
		entries = append(entries, logEntry{StageServiceType, StageServiceCmd{Name: s.name, Module: "rec", Version: "1.0.0", Template: s.tmpl, Parent: s.parent, Time: 2}})
	}
	return entries
}

// reportSvc reports every step of a service's current plan in one batch:
// ok, except the steps whose instance is in fail.
func (h *fsmHarness) reportSvc(svc string, outputs map[string]json.RawMessage, fail ...string) {
	h.t.Helper()
	h.mustApply(ReportsType, svcReports(h.fsm.State(), svc, &h.seq, outputs, fail...))
}

// svcReports is a batch that reports every step of svc's current plan: ok,
// except the steps whose instance is in fail. seq numbers the reports.
func svcReports(st *State, svc string, seq *int, outputs map[string]json.RawMessage, fail ...string) ReportsCmd {
	var rs []plan.Report
	for _, np := range st.Service(svc).Plan.Nodes {
		for _, step := range np.Steps {
			*seq++
			r := plan.Report{ID: np.Agent + ":" + strconv.Itoa(*seq), Node: np.Agent, Service: svc, StepID: step.ID, Action: step.Action,
				Generation: step.Generation, Digest: step.Digest, State: plan.StepOK, Outputs: outputs}
			if slices.Contains(fail, step.Instance) {
				r.State, r.ExitCode = plan.StepFailed, 1
			}
			rs = append(rs, r)
		}
	}
	return ReportsCmd{Time: 100 + int64(*seq), Reports: rs}
}

// deployAll deploys net, app, web and db and reports them converged.
func (h *fsmHarness) deployAll() {
	h.t.Helper()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "net", Time: 3})
	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-1"`)})
	for _, name := range []string{"app", "web", "db"} {
		h.mustApply(DeployServiceType, DeployServiceCmd{Name: name, Time: 3})
		h.reportSvc(name, nil)
	}
	for _, name := range []string{"net", "app", "web", "db"} {
		if svc := h.fsm.State().Service(name); svc.State != plan.StateConverged || len(svc.Stale) > 0 {
			h.t.Fatalf("%s after the first deploys: %s, stale %v", name, svc.State, svc.Stale)
		}
	}
}

func staleOf(h *fsmHarness, name string) string {
	return strings.Join(h.fsm.State().Service(name).Stale, "; ")
}

// An export change marks the services that consume it, by what their plans
// say they read (an input, an injected component's attribute), and no
// others; a deploy clears the mark and passes the change one level down.
func TestFSM_Stale_ExportChangeMarksConsumersOnly(t *testing.T) {
	h := recursiveHarness(t)
	h.deployAll()

	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"cidr": "10.1.0.0/16"}})
	if got := staleOf(h, "app"); got != "" {
		t.Fatalf("app stale before net's change is deployed: %q", got)
	}
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "net", Time: 10})
	if got := staleOf(h, "app"); got != "export cidr of net" {
		t.Fatalf("app stale = %q, want export cidr of net", got)
	}
	for _, name := range []string{"web", "db"} {
		if got := staleOf(h, name); got != "" {
			t.Fatalf("%s stale = %q: it does not read net's cidr", name, got)
		}
	}
	st := h.fsm.State().Status("app")
	if len(st.Stale) != 1 || st.Stale[0] != "export cidr of net" {
		t.Fatalf("status of app: stale %v", st.Stale)
	}
	evs := allEvents(h.fsm.State())
	if e := evs[len(evs)-1]; e.Type != api.EventServiceStale || e.Service != "app" || !strings.Contains(e.Message, "export cidr of net") {
		t.Fatalf("last event = %+v", e)
	}

	// dns reaches app and db through the injected resolver.
	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-1"`)})
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"dns": "9.9.9.9"}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "net", Time: 11})
	if got := staleOf(h, "app"); got != "export cidr of net; export dns of net" {
		t.Fatalf("app stale = %q", got)
	}
	// The resolver is injected at every depth: web reads dns too.
	for _, name := range []string{"db", "web"} {
		if got := staleOf(h, name); got != "export dns of net" {
			t.Fatalf("%s stale = %q", name, got)
		}
	}

	// Deploying app clears it; app's own export changes, so web is next.
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "app", Time: 12})
	if got := staleOf(h, "app"); got != "" {
		t.Fatalf("app still stale after its deploy: %q", got)
	}
	if got := staleOf(h, "web"); got != "export dns of net; export endpoint of app" {
		t.Fatalf("web stale = %q", got)
	}
	// Back to the first value: app was deployed with the second.
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"cidr": "10.0.0.0/8"}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "net", Time: 13})
	if got := staleOf(h, "app"); got != "export cidr of net" {
		t.Fatalf("app stale = %q", got)
	}
}

// When an output changes an export, the FSM recompiles the services below
// at once, parents first (gwuser sorts before net): they get the new value
// and are not stale.
func TestFSM_Stale_OutputChangeRecompilesChildrenNotStale(t *testing.T) {
	h := recursiveHarness(t)
	h.deployAll()
	h.mustApply(StageServiceType, StageServiceCmd{Name: "a-gw", Module: "rec", Version: "1.0.0", Template: "gwuser", Parent: "net", Time: 4})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "a-gw", Time: 4})
	h.reportSvc("a-gw", nil)

	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-2"`)})
	gw := h.fsm.State().Service("a-gw")
	if got := string(gw.Plan.Inputs[0].Value); got != `"gw-2"` {
		t.Fatalf("a-gw's input gw = %s, want the new output", got)
	}
	if len(gw.Stale) > 0 {
		t.Fatalf("a-gw stale after its recompile: %v", gw.Stale)
	}
}

// A recursive deploy deploys the root, then the services below in order
// (parents first, by name among siblings), each once the one before has
// converged; one whose plan would not change is passed over. History and
// events tell the story.
func TestFSM_Recursive_DeploysInOrderSkipsUnchanged(t *testing.T) {
	h := recursiveHarness(t)
	h.deployAll()
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"cidr": "10.1.0.0/16"}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "net", Time: 20, Recursive: true, Caller: Caller{By: "client/ops"}})
	st := h.fsm.State()
	rd := st.Status("net").Recursive
	if rd == nil || rd.Status != api.RecursiveRunning || recursiveOrder(rd) != "net app web db" || rd.Current != 0 {
		t.Fatalf("recursive deploy = %+v", rd)
	}
	appGen := st.Service("app").Generation

	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-1"`)})
	if got := st.Service("app").Generation; got != appGen+1 {
		t.Fatalf("app generation %d after net converged, want %d", got, appGen+1)
	}
	if got := staleOf(h, "app"); got != "" {
		t.Fatalf("app stale after its deploy: %q", got)
	}
	if got := staleOf(h, "web"); got != "export endpoint of app" {
		t.Fatalf("web stale = %q", got)
	}
	recs := history(t, st, "app")
	if recs[0].Kind != api.HistoryDeploy || recs[0].By != "client/ops" || !strings.Contains(recs[0].Message, "recursive deploy from net") {
		t.Fatalf("app's deploy record: %+v", recs[0])
	}
	// app's diff: uses changes, fixed does not.
	for _, nd := range recs[0].Diff {
		for _, sd := range nd.Steps {
			if want := map[string]string{"uses": plan.ChangeChange, "fixed": plan.ChangeUnchanged}[sd.Instance]; want != "" && sd.Change != want {
				t.Fatalf("app's %s: %s, want %s", sd.Instance, sd.Change, want)
			}
		}
	}
	webGen := st.Service("web").Generation
	h.reportSvc("app", nil)
	if got := st.Service("web").Generation; got != webGen+1 {
		t.Fatalf("web not deployed after app converged (generation %d)", got)
	}
	dbGen := st.Service("db").Generation
	h.reportSvc("web", nil)
	rd = st.Status("net").Recursive
	if rd.Status != api.RecursiveConverged || results(rd) != "converged converged converged unchanged" {
		t.Fatalf("recursive deploy = %+v", rd)
	}
	if st.Service("db").Generation != dbGen {
		t.Fatal("db was deployed although its plan does not change")
	}
	recs = history(t, st, "net")
	i := slices.IndexFunc(recs, func(r api.HistoryRecord) bool { return r.Kind == api.HistoryDeployRecursive })
	if i < 0 || recs[i].Result != api.ResultConverged || !strings.Contains(recs[i].Message, "unchanged: db") || recs[i].EndedMS == 0 {
		t.Fatalf("net's recursive record: %+v", recs)
	}
	evs := eventTypes(allEvents(st))
	if !strings.Contains(evs, api.EventRecursiveStarted) || !strings.HasSuffix(evs, api.EventRecursiveFinished) {
		t.Fatalf("events: %s", evs)
	}
}

func recursiveOrder(rd *api.RecursiveDeploy) string {
	var out []string
	for _, r := range rd.Services {
		out = append(out, r.Name)
	}
	return strings.Join(out, " ")
}

func results(rd *api.RecursiveDeploy) string {
	var out []string
	for _, r := range rd.Services {
		out = append(out, r.Result)
	}
	return strings.Join(out, " ")
}

// The first failure stops a recursive deploy: the services after it are
// left as they were, and the record says why.
func TestFSM_Recursive_StopsAtFirstFailure(t *testing.T) {
	h := recursiveHarness(t)
	h.deployAll()
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"cidr": "10.1.0.0/16", "dns": "9.9.9.9"}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "net", Time: 20, Recursive: true})
	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-1"`)})
	st := h.fsm.State()
	webGen, dbGen := st.Service("web").Generation, st.Service("db").Generation
	h.reportSvc("app", nil, "uses")
	rd := st.Status("net").Recursive
	if rd.Status != api.RecursiveFailed || results(rd) != "converged failed not reached not reached" || !strings.HasPrefix(rd.Reason, "app: deploy failed") {
		t.Fatalf("recursive deploy = %+v", rd)
	}
	if st.Service("web").Generation != webGen || st.Service("db").Generation != dbGen {
		t.Fatal("services after the failure were deployed")
	}
	// db stays stale (it was not reached); a later report of app does not
	// restart anything.
	if got := staleOf(h, "db"); got != "export dns of net" {
		t.Fatalf("db stale = %q", got)
	}
	h.reportSvc("app", nil)
	if st.Service("web").Generation != webGen {
		t.Fatal("a stopped recursive deploy went on")
	}
	recs := history(t, st, "net")
	i := slices.IndexFunc(recs, func(r api.HistoryRecord) bool { return r.Kind == api.HistoryDeployRecursive })
	if recs[i].Result != api.ResultFailed || !strings.Contains(recs[i].Message, "not reached: web, db") {
		t.Fatalf("net's recursive record: %+v", recs[i])
	}
}

// A recursive deploy that cannot deploy a service (its plan has a
// violation) stops there too.
func TestFSM_Recursive_ViolationStops(t *testing.T) {
	h := recursiveHarness(t)
	h.deployAll()
	h.mustApply(SetInputsType, SetInputsCmd{Name: "web", Inputs: map[string]string{"nope": "x"}})
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"cidr": "10.1.0.0/16"}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "net", Time: 20, Recursive: true})
	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-1"`)})
	h.reportSvc("app", nil)
	rd := h.fsm.State().Status("net").Recursive
	if rd.Status != api.RecursiveFailed || results(rd) != "converged converged failed not reached" || !strings.Contains(rd.Reason, "cannot deploy") {
		t.Fatalf("recursive deploy = %+v", rd)
	}
}

// A recursive deploy is replicated state: a snapshot taken while it runs
// restores into a fresh FSM that carries it on, as a new leader would.
func TestFSM_Recursive_SurvivesSnapshotRestore(t *testing.T) {
	h := recursiveHarness(t)
	h.deployAll()
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"cidr": "10.1.0.0/16"}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "net", Time: 20, Recursive: true})
	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-1"`)})

	raw := snapshotBytes(t, h.fsm)
	f := NewFSM(slog.New(slog.DiscardHandler))
	if err := f.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	h.fsm = f
	if rd := f.State().Status("net").Recursive; rd == nil || rd.Current != 1 || rd.Status != api.RecursiveRunning {
		t.Fatalf("restored recursive deploy = %+v", rd)
	}
	h.reportSvc("app", nil)
	h.reportSvc("web", nil)
	if rd := f.State().Status("net").Recursive; rd.Status != api.RecursiveConverged {
		t.Fatalf("after restore: %+v", rd)
	}
}

// A preview of a child compiles its parent with the parent's staged change
// first: it shows what that change will do to the child, and says where
// each value comes from. Without pending, it is what deploying the child
// alone would do.
func TestState_Preview_ShowsParentsPendingChange(t *testing.T) {
	h := recursiveHarness(t)
	h.deployAll()
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"cidr": "10.1.0.0/16"}})
	st := h.fsm.State()

	pv := st.Preview("app")
	if len(pv.Violations) > 0 || strings.Join(pv.Pending, ",") != "export cidr of net" {
		t.Fatalf("preview of app: pending %v, violations %v", pv.Pending, pv.Violations)
	}
	if in := pv.Inputs[0]; in.Name != "cidr" || string(in.Value) != `"10.1.0.0/16"` || in.Source != "export of net (pending change)" {
		t.Fatalf("input = %+v", in)
	}
	changes := map[string]plan.StepDiff{}
	for _, nd := range pv.Nodes {
		for _, sd := range nd.Steps {
			changes[sd.Instance] = sd
		}
	}
	if changes["uses"].Change != plan.ChangeChange || changes["fixed"].Change != plan.ChangeUnchanged || changes["net.resolver"].Change != plan.ChangeUnchanged {
		t.Fatalf("changes: %+v", changes)
	}
	if src := changes["uses"].Attributes[0].Source; src != "input cidr (export of net, pending change)" {
		t.Fatalf("source of uses.msg = %q", src)
	}
	// web is two levels down: app's export would change with it, and
	// deploying net recursively is what does it.
	if pv := st.Preview("web"); strings.Join(pv.Pending, ",") != "export endpoint of app" ||
		len(pv.Notes) != 1 || !strings.Contains(pv.Notes[0], `"dtkctl service deploy net --recursive"`) {
		t.Fatalf("preview of web: pending %v, notes %q", pv.Pending, pv.Notes)
	}
	// db reads nothing that changes.
	if pv := st.Preview("db"); len(pv.Pending) > 0 || len(pv.Notes) > 0 {
		t.Fatalf("preview of db: pending %v, notes %q", pv.Pending, pv.Notes)
	}
	if pv := st.PreviewPending("app", false); len(pv.Pending) > 0 || pv.Nodes[0].Steps[0].Change != plan.ChangeUnchanged {
		t.Fatalf("preview of app as deployed: %+v", pv)
	}
	// A staged change that does not compile is left out, and said so.
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"nope": "x"}})
	if pv := st.Preview("app"); len(pv.Pending) > 0 || len(pv.Notes) != 1 || !strings.HasPrefix(pv.Notes[0], "net has staged changes that do not compile") {
		t.Fatalf("preview of app under a broken net: pending %v, notes %q", pv.Pending, pv.Notes)
	}
	// The preview wrote nothing.
	if st.Service("net").Plan.Exports[0].Value == nil || string(st.Service("net").Plan.Exports[0].Value) != `"10.0.0.0/8"` {
		t.Fatal("the preview changed net's plan")
	}
}

// The dashboard shows a stale service on the fleet page and says what
// changed on its page, with the preview's note on pending changes.
func TestUI_Stale_OverviewAndServicePage(t *testing.T) {
	h := recursiveHarness(t)
	h.deployAll()
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"dns": "9.9.9.9"}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "net", Time: 10})
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"cidr": "10.1.0.0/16"}})
	s := &Server{cfg: Config{Name: "c1", UI: true}, fsm: h.fsm, log: slog.New(slog.DiscardHandler)}
	page := func(handler func(http.ResponseWriter, *http.Request) error, path, name string) string {
		t.Helper()
		req := httptest.NewRequest("GET", path, nil)
		req.SetPathValue("name", name)
		req = req.WithContext(withCaller(req.Context(), caller{}))
		rec := httptest.NewRecorder()
		if err := handler(rec, req); err != nil || rec.Code != 200 {
			t.Fatalf("%s: %v %d", path, err, rec.Code)
		}
		return rec.Body.String()
	}
	if body := page(s.uiOverview, "/ui/", ""); !strings.Contains(body, `title="changed since it was deployed: export dns of net">stale</span>`) {
		t.Fatalf("overview lacks the stale label:\n%s", body)
	}
	body := page(s.uiService, "/ui/services/app", "app")
	for _, want := range []string{"Stale: export dns of net changed since it was deployed", "the plan assumes the undeployed changes above app", "export of net (pending change)"} {
		if !strings.Contains(body, want) {
			t.Fatalf("app's page lacks %q:\n%s", want, body)
		}
	}
}

// A service with nothing below is a recursive deploy of one; its record
// goes with the service.
func TestFSM_Recursive_LeafAloneAndForgottenWithItsService(t *testing.T) {
	h := recursiveHarness(t)
	h.deployAll()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "db", Time: 20, Recursive: true})
	st := h.fsm.State()
	if rd := st.Status("db").Recursive; rd == nil || recursiveOrder(rd) != "db" || rd.Status != api.RecursiveRunning {
		t.Fatalf("recursive deploy of db = %+v", rd)
	}
	h.reportSvc("db", nil)
	if rd := st.Status("db").Recursive; rd.Status != api.RecursiveConverged {
		t.Fatalf("recursive deploy of db = %+v", rd)
	}
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "db"})
	h.reportSvc("db", nil)
	if st.Service("db") != nil || st.data.Recursive["db"] != nil {
		t.Fatalf("db or its recursive deploy still there: %+v", st.data.Recursive["db"])
	}
}

// clusterReport commits ok reports for every step of a service's current
// plan through the leader (as the agents' batches are), trying again
// through an election.
func clusterReport(t *testing.T, c *testCluster, svc string, seq *int, except ...*Server) {
	t.Helper()
	waitCond(t, "reports of "+svc+" committed", func() bool {
		s := c.leader(except...)
		var rs []plan.Report
		for _, np := range s.State().Service(svc).Plan.Nodes {
			for _, st := range np.Steps {
				*seq++
				rs = append(rs, plan.Report{ID: np.Agent + ":" + strconv.Itoa(*seq), Node: np.Agent, Service: svc, StepID: st.ID, Action: st.Action,
					Generation: st.Generation, Digest: st.Digest, State: plan.StepOK, Outputs: map[string]json.RawMessage{"v": json.RawMessage(`"x"`)}})
			}
		}
		// The leader's clock: a report's time is when its node was last seen.
		_, err := s.apply(ReportsType, ReportsCmd{Reports: rs, Time: time.Now().UnixMilli()})
		return err == nil
	})
}

// retry calls f until it succeeds (an election may refuse a write).
func retry(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	waitCond(t, what, func() bool { err = f(); return err == nil })
}

// A recursive deploy started on one leader carries on under the next: it
// is replicated state, moved on by the reports whoever is leader commits.
func TestCluster_Recursive_CarriesOnAcrossLeaderChange(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(recursiveModule), 0o644); err != nil {
		t.Fatal(err)
	}
	push(t, c.leader(), dir)
	cl := api.NewClient(c.servers[0].HTTPAddr(), c.servers[1].HTTPAddr(), c.servers[2].HTTPAddr())
	retry(t, "node registered", func() error { return cl.RegisterNode(ctx, nodeWith("n1", "a")) })
	seq := 0
	for _, s := range []struct{ name, tmpl, parent string }{{"net", "rec/net", ""}, {"app", "rec/app", "net"}, {"web", "rec/web", "app"}} {
		retry(t, "stage "+s.name, func() error {
			_, err := cl.Stage(ctx, api.StageRequest{Name: s.name, Template: s.tmpl, Parent: s.parent})
			return err
		})
		retry(t, "deploy "+s.name, func() error { _, err := cl.Deploy(ctx, s.name); return err })
		clusterReport(t, c, s.name, &seq)
	}
	retry(t, "set net's cidr", func() error {
		_, err := cl.SetInputs(ctx, "net", map[string]string{"cidr": "10.1.0.0/16"})
		return err
	})
	retry(t, "deploy net --recursive", func() error { _, err := cl.DeployRecursive(ctx, "net", api.DeployRequest{}); return err })
	clusterReport(t, c, "net", &seq) // net converges: app is deployed

	l := c.leader()
	c.partition(l)
	nl := c.leader(l)
	waitCond(t, "app deployed, on the new leader", func() bool {
		rd := nl.State().Status("net").Recursive
		return rd != nil && rd.Current == 1 && rd.Services[1].Result == api.RecursiveDeploying
	})
	clusterReport(t, c, "app", &seq, l)
	clusterReport(t, c, "web", &seq, l)
	c.heal(l)
	c.converge(c.servers...)
	for _, s := range c.servers {
		rd := s.State().Status("net").Recursive
		if rd == nil || rd.Status != api.RecursiveConverged || results(rd) != "converged converged converged" {
			t.Fatalf("%s: recursive deploy = %+v", s.cfg.Name, rd)
		}
	}
}

// Each deploy of a recursive deploy has its rollout, and the rollout
// decides: one awaiting promotion holds the recursive deploy (although
// the service's steps are all ok), an aborted one stops it.
func TestFSM_Recursive_WaitsForRolloutAndStopsWhenAborted(t *testing.T) {
	h := recursiveHarness(t)
	h.deployAll()
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"cidr": "10.1.0.0/16"}})
	yes := true
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "net", Time: 20, Recursive: true,
		Rollout: &plan.RolloutOverride{Canary: "1", ManualPromote: &yes}})
	st := h.fsm.State()
	appGen := st.Service("app").Generation
	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-1"`)})
	if r := st.Service("net").Rollout; r == nil || r.Status != plan.RolloutPromote {
		t.Fatalf("net's rollout: %+v", r)
	}
	if st.Service("app").Generation != appGen || st.Status("net").Recursive.Current != 0 {
		t.Fatal("the recursive deploy went on while net's rollout awaits promotion")
	}
	h.mustApply(RolloutType, RolloutCmd{Name: "net", Action: RolloutAbort, Time: 21})
	rd := st.Status("net").Recursive
	if rd.Status != api.RecursiveFailed || results(rd) != "failed not reached not reached not reached" || !strings.Contains(rd.Reason, "net: rollout aborted") {
		t.Fatalf("recursive deploy = %+v", rd)
	}
}

// An auto-reverted rollout is a failure, although the revert (a later
// generation) converges.
func TestFSM_Recursive_AutoRevertedRolloutStops(t *testing.T) {
	h := recursiveHarness(t)
	h.deployAll()
	h.mustApply(SetInputsType, SetInputsCmd{Name: "net", Inputs: map[string]string{"cidr": "10.1.0.0/16"}})
	yes := true
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "net", Time: 20, Recursive: true,
		Rollout: &plan.RolloutOverride{MaxParallel: "1", AutoRevert: &yes}})
	st := h.fsm.State()
	gen := st.Service("net").Generation
	h.reportSvc("net", nil, "router")
	if st.Service("net").Generation != gen+1 {
		t.Fatalf("net not reverted: generation %d, rollout %+v", st.Service("net").Generation, st.Service("net").Rollout)
	}
	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-1"`)}) // the revert converges
	rd := st.Status("net").Recursive
	if rd.Status != api.RecursiveFailed || !strings.Contains(rd.Reason, "rollout reverted") || st.Service("app").Generation != 1 {
		t.Fatalf("recursive deploy = %+v (app at generation %d)", rd, st.Service("app").Generation)
	}
}
