package coordinator

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// reportAt reports a step of service s at a time, with a result.
func (h *fsmHarness) reportAt(node, step string, state string, at int64, edit func(*plan.Report)) {
	h.t.Helper()
	var found *plan.Step
	for _, np := range h.fsm.State().Service("s").Plan.Nodes {
		for _, st := range np.Steps {
			if st.ID == step {
				found = st
			}
		}
	}
	if found == nil {
		h.t.Fatalf("no step %s in plan", step)
	}
	h.seq++
	r := plan.Report{ID: node + ":" + strconv.Itoa(h.seq), Node: node, Service: "s", StepID: step, Action: found.Action,
		Generation: found.Generation, Digest: found.Digest, State: state, StartedAt: at - 5, FinishedAt: at}
	if edit != nil {
		edit(&r)
	}
	h.mustApply(ReportsType, ReportsCmd{Time: at, Reports: []plan.Report{r}})
}

func history(t *testing.T, st *State, name string) []api.HistoryRecord {
	t.Helper()
	recs, ok := st.History(name)
	if !ok {
		t.Fatalf("no history of %s", name)
	}
	return recs
}

func allEvents(st *State) []api.Event {
	out, _ := st.Events(0, maxEvents, false, func(*api.Event) bool { return true })
	return out
}

func eventTypes(evs []api.Event) string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return strings.Join(out, " ")
}

func TestFSM_History_DeployConvergesWithCountsAndDiff(t *testing.T) {
	h := newHarness(t)
	h.setup()
	alice := Caller{By: "client/alice", Token: "deployers"}
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Time: 100, Caller: alice})
	recs := history(t, h.fsm.State(), "s")
	if len(recs) != 1 {
		t.Fatalf("records after deploy: %+v", recs)
	}
	r := recs[0]
	if r.Kind != api.HistoryDeploy || r.Generation != 1 || r.By != "client/alice" || r.Token != "deployers" ||
		r.StartedMS != 100 || r.EndedMS != 0 || r.Result != api.ResultRunning || r.ID == "" {
		t.Fatalf("running record: %+v", r)
	}
	adds := 0
	for _, nd := range r.Diff {
		for _, sd := range nd.Steps {
			if sd.Change != plan.ChangeAdd || len(sd.Attributes) == 0 {
				t.Fatalf("first deploy diff step: %+v", sd)
			}
			adds++
		}
	}
	if adds != 3 {
		t.Fatalf("diff has %d added steps, want 3: %+v", adds, r.Diff)
	}
	h.reportAt("n1", "s/a/one/create", plan.StepOK, 110, func(r *plan.Report) { r.Changed = true })
	h.reportAt("n1", "s/a/two/create", plan.StepOK, 120, nil)
	if r := history(t, h.fsm.State(), "s")[0]; r.Result != api.ResultRunning || r.Changed != 1 || r.Unchanged != 1 {
		t.Fatalf("half way: %+v", r)
	}
	h.reportAt("n2", "s/b/three/create", plan.StepSkipped, 130, nil)
	r = history(t, h.fsm.State(), "s")[0]
	if r.Result != api.ResultConverged || r.EndedMS != 130 || r.Changed != 1 || r.Unchanged != 1 || r.Skipped != 1 || r.Failed != 0 {
		t.Fatalf("converged record: %+v", r)
	}
	// A drift repair later does not change a finished record, and is an
	// event.
	h.reportAt("n1", "s/a/two/create", plan.StepOK, 140, func(r *plan.Report) { r.Changed, r.Drift = true, true })
	if r2 := history(t, h.fsm.State(), "s")[0]; r2.Changed != 1 || r2.Index != r.Index {
		t.Fatalf("a finished record changed: %+v", r2)
	}
	// A redeploy with one changed input: one "change" step listing only the
	// changed attribute; unchanged steps carry no attributes.
	h.mustApply(SetInputsType, SetInputsCmd{Name: "s", Inputs: map[string]string{"greeting": "hello"}, Time: 150, Caller: alice})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Time: 160, Caller: alice})
	recs = history(t, h.fsm.State(), "s")
	if len(recs) != 3 || recs[0].Kind != api.HistoryDeploy || recs[1].Kind != api.HistoryInputs || recs[1].Message != "set greeting" || recs[2].Generation != 1 {
		t.Fatalf("records, newest first: %+v", recs)
	}
	var changes []string
	for _, nd := range recs[0].Diff {
		for _, sd := range nd.Steps {
			switch sd.Change {
			case plan.ChangeChange:
				changes = append(changes, sd.ID)
				if len(sd.Attributes) != 1 || sd.Attributes[0].Name != "msg" || !strings.Contains(string(sd.Attributes[0].Value), "hello") {
					t.Errorf("changed step attributes: %+v", sd.Attributes)
				}
			case plan.ChangeUnchanged:
				if len(sd.Attributes) != 0 {
					t.Errorf("unchanged step keeps attributes: %+v", sd)
				}
			}
		}
	}
	if len(changes) != 1 || changes[0] != "s/a/one/create" {
		t.Fatalf("changed steps: %v", changes)
	}
	if got := eventTypes(allEvents(h.fsm.State())); got != "node-up node-up deploy-started deploy-finished drift-repaired deploy-started" {
		t.Fatalf("events: %s", got)
	}
	if e := allEvents(h.fsm.State())[3]; e.Service != "s" || e.Message != "converged" || e.TimeMS != 130 || e.Generation != 1 {
		t.Fatalf("deploy-finished event: %+v", e)
	}
}

func TestFSM_History_FailedStepAndSupersededDeploy(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Time: 100, Caller: Caller{By: "client/a"}})
	h.reportAt("n2", "s/b/three/create", plan.StepFailed, 110, func(r *plan.Report) {
		r.ExitCode, r.Error = 3, "exit status 3\nsecond line"
	})
	r := history(t, h.fsm.State(), "s")[0]
	if r.Result != api.ResultFailed || r.EndedMS != 110 || r.Failed != 1 {
		t.Fatalf("failed record: %+v", r)
	}
	evs := allEvents(h.fsm.State())
	var failed *api.Event
	for i := range evs {
		if evs[i].Type == api.EventStepFailed {
			failed = &evs[i]
		}
	}
	if failed == nil || failed.Service != "s" || failed.Node != "n2" || failed.Step != "s/b/three/create" ||
		failed.Generation != 1 || failed.Message != "exit status 3 …" || failed.TimeMS != 110 {
		t.Fatalf("step-failed event: %+v (all: %s)", failed, eventTypes(evs))
	}
	// The other node's steps still count on the failed record.
	h.reportAt("n1", "s/a/one/create", plan.StepOK, 120, nil)
	if r := history(t, h.fsm.State(), "s")[0]; r.Result != api.ResultFailed || r.Unchanged != 1 || r.Failed != 1 {
		t.Fatalf("failed record after more reports: %+v", r)
	}
	// A deploy while one is running ends the running one.
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Time: 200})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Time: 300})
	recs := history(t, h.fsm.State(), "s")
	if len(recs) != 3 || recs[0].Generation != 3 || recs[0].Result != api.ResultRunning ||
		recs[1].Result != api.ResultFailed || recs[1].EndedMS != 300 || !strings.Contains(recs[1].Message, "superseded") ||
		recs[2].Result != api.ResultFailed || strings.Contains(recs[2].Message, "superseded") {
		t.Fatalf("records: %+v", recs)
	}
}

func TestFSM_History_DeleteRecordKeptAfterRemovalThenPruned(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Time: 100})
	h.reportAt("n1", "s/a/one/create", plan.StepOK, 110, nil)
	h.reportAt("n1", "s/a/two/create", plan.StepOK, 110, nil)
	h.reportAt("n2", "s/b/three/create", plan.StepOK, 110, nil)
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "s", Time: 200, Caller: Caller{By: "client/bob"}})
	r := history(t, h.fsm.State(), "s")[0]
	if r.Kind != api.HistoryDelete || r.Generation != 2 || r.By != "client/bob" || r.Result != api.ResultRunning {
		t.Fatalf("delete record: %+v", r)
	}
	for _, nd := range r.Diff {
		for _, sd := range nd.Steps {
			if sd.Change != plan.ChangeRemove {
				t.Fatalf("delete diff step: %+v", sd)
			}
		}
	}
	h.reportAt("n1", "s/a/two/delete", plan.StepOK, 210, func(r *plan.Report) { r.Changed = true })
	h.reportAt("n1", "s/a/one/delete", plan.StepOK, 220, func(r *plan.Report) { r.Changed = true })
	h.reportAt("n2", "s/b/three/delete", plan.StepOK, 230, func(r *plan.Report) { r.Changed = true })
	if h.fsm.State().Service("s") != nil {
		t.Fatal("service not removed")
	}
	recs := history(t, h.fsm.State(), "s")
	if r := recs[0]; r.Result != api.ResultDeleted || r.EndedMS != 230 || r.Changed != 3 || len(recs) != 2 {
		t.Fatalf("records of the deleted service: %+v", recs)
	}
	if got := eventTypes(allEvents(h.fsm.State())); got != "node-up node-up deploy-started deploy-finished delete-started delete-finished" {
		t.Fatalf("events: %s", got)
	}
	// A day later, the next record anywhere lets the old history go.
	later := int64(230 + historyKeepDeleted.Milliseconds() + 1)
	h.mustApply(StageServiceType, StageServiceCmd{Name: "other", Module: "m", Version: "1.0.0", Template: "t", Time: later})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "other", Time: later})
	if _, ok := h.fsm.State().History("s"); ok {
		t.Fatal("a deleted service's history is kept for ever")
	}
	// A service only staged is removed at once: one finished record.
	h.mustApply(StageServiceType, StageServiceCmd{Name: "staged", Module: "m", Version: "1.0.0", Template: "t", Time: later})
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "staged", Time: later + 1})
	if recs := history(t, h.fsm.State(), "staged"); len(recs) != 1 || recs[0].Result != api.ResultDeleted || recs[0].EndedMS != later+1 {
		t.Fatalf("staged-only delete: %+v", recs)
	}
}

func TestFSM_History_BoundedPerServiceOldestDropped(t *testing.T) {
	h := newHarness(t)
	h.setup()
	for i := 1; i <= maxHistory+30; i++ {
		h.mustApply(SetInputsType, SetInputsCmd{Name: "s", Inputs: map[string]string{"greeting": "v" + strconv.Itoa(i)}, Time: int64(i)})
	}
	recs := history(t, h.fsm.State(), "s")
	if len(recs) != maxHistory || recs[0].StartedMS != maxHistory+30 || recs[len(recs)-1].StartedMS != 31 {
		t.Fatalf("%d records, newest %d, oldest %d", len(recs), recs[0].StartedMS, recs[len(recs)-1].StartedMS)
	}
}

func TestFSM_History_OpsRecordedUntilEveryAgentIsDone(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Time: 100})
	h.mustApply(CreateOpType, CreateOpCmd{Op: plan.Op{ID: "op1", Kind: plan.OpExec, Service: "s", Action: "rotate", Created: 200,
		Steps: map[string][]*plan.Step{"n1": {}, "n2": {}}}, Caller: Caller{By: "client/carol"}})
	h.mustApply(CreateOpType, CreateOpCmd{Op: plan.Op{ID: "logs1", Kind: plan.OpLogs, Service: "s", Created: 201,
		Steps: map[string][]*plan.Step{"n1": {}}}})
	r := history(t, h.fsm.State(), "s")[0]
	if r.ID != "op1" || r.Kind != api.HistoryExec || r.Action != "rotate" || r.By != "client/carol" || r.StartedMS != 200 || r.Result != api.ResultRunning {
		t.Fatalf("exec record (logs ops are not recorded): %+v", r)
	}
	h.mustApply(OpResultsType, OpResultsCmd{ID: "op1", Node: "n1", Final: true, Time: 210, Reports: []plan.Report{{State: plan.StepOK, Changed: true}}})
	if r := history(t, h.fsm.State(), "s")[0]; r.Result != api.ResultRunning || r.Changed != 1 {
		t.Fatalf("one agent done: %+v", r)
	}
	h.mustApply(OpResultsType, OpResultsCmd{ID: "op1", Node: "n2", Final: true, Time: 220, Reports: []plan.Report{{State: plan.StepFailed}}})
	if r := history(t, h.fsm.State(), "s")[0]; r.Result != api.ResultFailed || r.EndedMS != 220 || r.Failed != 1 || r.Changed != 1 {
		t.Fatalf("exec done: %+v", r)
	}
	if got := eventTypes(allEvents(h.fsm.State())); !strings.HasSuffix(got, "deploy-started exec-started") {
		t.Fatalf("events: %s", got)
	}
}

// A step's error is scrubbed of the service's secrets before it becomes an
// event, and the history's diff shows sensitive values redacted.
func TestFSM_Events_StepErrorScrubbedAndDiffRedacted(t *testing.T) {
	h := newHarness(t)
	m := testModule()
	m.Templates["t"].Inputs[0].Sensitive = true
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n1", Labels: map[string]string{"role": "a"}, Facts: plan.Facts{Address: "127.0.0.2"}}, Time: 1})
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n2", Labels: map[string]string{"role": "b"}, Facts: plan.Facts{Address: "127.0.0.3"}}, Time: 1})
	h.mustApply(PutModuleType, PutModuleCmd{Module: m})
	h.mustApply(StageServiceType, StageServiceCmd{Name: "s", Module: "m", Version: "1.0.0", Template: "t", Inputs: map[string]string{"greeting": "hunter2"}, Time: 2})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Time: 3})
	h.reportAt("n1", "s/a/one/create", plan.StepFailed, 4, func(r *plan.Report) { r.Error = "cannot log in with hunter2" })
	b, _ := json.Marshal(allEvents(h.fsm.State()))
	recs, _ := h.fsm.State().History("s")
	hb, _ := json.Marshal(recs)
	if strings.Contains(string(b), "hunter2") || !strings.Contains(string(b), "cannot log in with (sensitive)") {
		t.Fatalf("events: %s", b)
	}
	if strings.Contains(string(hb), "hunter2") || !strings.Contains(string(hb), redactedText) {
		t.Fatalf("history: %s", hb)
	}
}

func TestFSM_Events_RingBoundedNumberedAndSurvivesSnapshot(t *testing.T) {
	h := newHarness(t)
	h.setup() // two node-up events
	h.mustApply(LeaderType|IgnoreUnknownFlag, LeaderCmd{Name: "c1", Time: 5})
	for i := 1; i <= maxEvents+700; i++ {
		h.mustApply(NodeStatusType, NodeStatusCmd{Time: int64(10 + i), Updates: []NodeStatusUpdate{{Name: "n1", Status: map[bool]string{true: plan.NodeUp, false: plan.NodeDown}[i%2 == 0]}}})
	}
	total := uint64(maxEvents + 700 + 3)
	evs := allEvents(h.fsm.State())
	if len(evs) != maxEvents || evs[len(evs)-1].Index != total || evs[0].Index != total-maxEvents+1 {
		t.Fatalf("%d events, %d..%d, want %d ending at %d", len(evs), evs[0].Index, evs[len(evs)-1].Index, maxEvents, total)
	}
	for i, e := range evs {
		if i > 0 && e.Index != evs[i-1].Index+1 {
			t.Fatalf("event %d: index %d after %d", i, e.Index, evs[i-1].Index)
		}
		if e.Type != api.EventNodeUp && e.Type != api.EventNodeDown || e.Node != "n1" || e.TimeMS != int64(e.Index)+10-3 {
			t.Fatalf("event %+v", e)
		}
	}
	// One answer carries at most maxEventsAnswer, from the index asked.
	page, next := h.fsm.State().Events(total-1000, maxEventsAnswer, false, func(*api.Event) bool { return true })
	if len(page) != maxEventsAnswer || page[0].Index != total-999 || next != page[len(page)-1].Index {
		t.Fatalf("page of %d from %d, next %d", len(page), page[0].Index, next)
	}
	// The snapshot keeps the stream, and numbering goes on after a restore.
	f := NewFSM(slog.New(slog.DiscardHandler))
	if err := f.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, h.fsm)))); err != nil {
		t.Fatal(err)
	}
	h.fsm = f
	h.mustApply(LeaderType|IgnoreUnknownFlag, LeaderCmd{Name: "c2", Time: 99999})
	evs = allEvents(f.State())
	if e := evs[len(evs)-1]; e.Index != total+1 || e.Type != api.EventLeaderChanged || e.Coordinator != "c2" || len(evs) != maxEvents {
		t.Fatalf("after restore: %+v (%d events)", e, len(evs))
	}
}

// Status shows when each step's last run started, and ended once it has.
func TestState_Status_StepsShowStartedAndFinishedAt(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Time: 100})
	h.reportAt("n1", "s/a/one/create", plan.StepRunning, 110, func(r *plan.Report) { r.StartedAt, r.FinishedAt = 105, 0 })
	h.reportAt("n1", "s/a/two/create", plan.StepOK, 120, nil)
	b, _ := json.Marshal(h.fsm.State().Status("s"))
	var st api.ServiceStatus
	json.Unmarshal(b, &st)
	one, two := st.Nodes[0].Steps[0], st.Nodes[0].Steps[1]
	if one.State != plan.StepRunning || one.StartedAt != 105 || one.FinishedAt != 0 ||
		two.StartedAt != 115 || two.FinishedAt != 120 || !strings.Contains(string(b), `"started_at_ms":115,"finished_at_ms":120`) {
		t.Fatalf("steps: %+v / %+v\n%s", one, two, b)
	}
}
