package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/plan"
)

// testModule is a module with one two-node template.
func testModule() plan.Module {
	return plan.Module{
		Name: "m", Version: "1.0.0", Digest: "sha256:" + string(bytes.Repeat([]byte("a"), 64)),
		Files: map[string]string{"run.sh": "sha256:1"},
		Components: map[string]*plan.Component{
			"c": {Name: "c",
				Attributes: []*plan.Attribute{{Name: "msg", Type: "string", Required: true}},
				Actions: map[string]*plan.Action{
					"create": {Kind: "bash", Script: "run.sh"},
					"delete": {Kind: "bash", Inline: "true"},
				}},
		},
		Templates: map[string]*plan.Template{
			"t": {Name: "t",
				Inputs: []*plan.Attribute{{Name: "greeting", Type: "string", Default: json.RawMessage(`"hi"`)}},
				Nodes: []*plan.TemplateNode{
					{Name: "a", Labels: map[string]string{"role": "a"}, Components: []*plan.Instance{
						{Name: "one", Component: "c", Attributes: map[string]plan.Expr{"msg": {Source: `"${input.greeting} ${node.b.address}"`}}},
						{Name: "two", Component: "c", Attributes: map[string]plan.Expr{"msg": {Source: `"fixed"`}}},
					}},
					{Name: "b", Labels: map[string]string{"role": "b"}, Components: []*plan.Instance{
						{Name: "three", Component: "c", Attributes: map[string]plan.Expr{"msg": {Source: `self.name`}}},
					}},
				}},
		},
	}
}

type fsmHarness struct {
	t     testing.TB
	fsm   *FSM
	index uint64
	seq   int // report sequence for reportAll
}

func newHarness(t testing.TB) *fsmHarness {
	return &fsmHarness{t: t, fsm: NewFSM(slog.New(slog.DiscardHandler))}
}

func (h *fsmHarness) apply(typ MessageType, cmd any) any {
	h.t.Helper()
	b, err := Encode(typ, cmd)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index++
	return h.fsm.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: b})
}

func (h *fsmHarness) mustApply(typ MessageType, cmd any) any {
	h.t.Helper()
	resp := h.apply(typ, cmd)
	if err, ok := resp.(error); ok {
		h.t.Fatalf("apply %d: %v", typ, err)
	}
	return resp
}

// setup registers two nodes, pushes the module and stages service s.
func (h *fsmHarness) setup() {
	for _, e := range setupEntries() {
		h.mustApply(e.typ, e.cmd)
	}
}

// setupEntries are setup's entries.
func setupEntries() []logEntry {
	return []logEntry{
		{RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n1", Labels: map[string]string{"role": "a"}, Facts: plan.Facts{Address: "127.0.0.2"}}, Time: 1}},
		{RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n2", Labels: map[string]string{"role": "b"}, Facts: plan.Facts{Address: "127.0.0.3"}}, Time: 1}},
		{PutModuleType, PutModuleCmd{Module: testModule()}},
		{StageServiceType, StageServiceCmd{Name: "s", Module: "m", Version: "1.0.0", Template: "t", Time: 2}},
	}
}

func (h *fsmHarness) report(node, step string, seq int, state string) {
	h.t.Helper()
	st := h.fsm.State()
	svc := st.Service("s")
	var found *plan.Step
	for _, np := range svc.Plan.Nodes {
		for _, s := range np.Steps {
			if s.ID == step {
				found = s
			}
		}
	}
	if found == nil {
		h.t.Fatalf("no step %s in plan", step)
	}
	h.mustApply(ReportsType, ReportsCmd{Reports: []plan.Report{{
		ID: node + ":" + strconv.Itoa(seq), Node: node, Service: "s", StepID: step, Action: found.Action,
		Generation: found.Generation, Digest: found.Digest, State: state,
	}}})
}

func TestFSM_RegisterNode_UpdatesAndKeepsCreateIndex(t *testing.T) {
	h := newHarness(t)
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n1"}, Time: 10})
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n1", Labels: map[string]string{"x": "y"}}, Time: 20})
	n := h.fsm.State().Node("n1")
	if n.CreateIndex != 1 || n.ModifyIndex != 2 || n.Labels["x"] != "y" || n.RegisteredAt != 10 || n.LastSeen != 20 || n.Status != "up" {
		t.Fatalf("node = %+v", n)
	}
	if sl := h.fsm.State().Slice("n1"); sl.Index != 1 {
		t.Fatalf("a new node's slice index = %d, want 1 so its first poll returns", sl.Index)
	}
}

func TestFSM_PutModule_SameContentIdempotentOtherContentConflicts(t *testing.T) {
	h := newHarness(t)
	h.mustApply(PutModuleType, PutModuleCmd{Module: testModule()})
	h.mustApply(PutModuleType, PutModuleCmd{Module: testModule()})
	other := testModule()
	other.Digest = "sha256:" + string(bytes.Repeat([]byte("b"), 64))
	err, _ := h.apply(PutModuleType, PutModuleCmd{Module: other}).(error)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("pushing other content under the same version: got %v, want conflict", err)
	}
	if got := h.fsm.State().Module("m", "1.0.0").Digest; got != testModule().Digest {
		t.Fatalf("module digest changed to %s", got)
	}
}

func TestFSM_StageService_UnknownTemplateAndParent(t *testing.T) {
	h := newHarness(t)
	h.mustApply(PutModuleType, PutModuleCmd{Module: testModule()})
	err, _ := h.apply(StageServiceType, StageServiceCmd{Name: "s", Module: "m", Version: "1.0.0", Template: "nope"}).(error)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown template: %v", err)
	}
	err, _ = h.apply(StageServiceType, StageServiceCmd{Name: "s", Module: "m", Version: "1.0.0", Template: "t", Parent: "env"}).(error)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown parent: %v", err)
	}
	if h.fsm.State().Service("s") != nil {
		t.Fatal("a refused stage left a service behind")
	}
}

func TestFSM_Deploy_CompilesPlanAndPublishesSlices(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	svc := h.fsm.State().Service("s")
	if svc.Generation != 1 || svc.State != plan.StateDeploying {
		t.Fatalf("service = %s gen %d", svc.State, svc.Generation)
	}
	sl := h.fsm.State().Slice("n1")
	if len(sl.Steps) != 2 || sl.Index != h.index {
		t.Fatalf("n1 slice: %d steps at %d", len(sl.Steps), sl.Index)
	}
	if got := string(sl.Steps[0].Attributes["msg"]); got != `"hi 127.0.0.3"` {
		t.Fatalf("resolved msg = %s", got)
	}
	if got := string(h.fsm.State().Slice("n2").Steps[0].Attributes["msg"]); got != `"n2"` {
		t.Fatalf("self.name = %s", got)
	}
}

func TestFSM_Deploy_ViolationsChangeNothing(t *testing.T) {
	h := newHarness(t)
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n1", Labels: map[string]string{"role": "a"}}})
	h.mustApply(PutModuleType, PutModuleCmd{Module: testModule()})
	h.mustApply(StageServiceType, StageServiceCmd{Name: "s", Module: "m", Version: "1.0.0", Template: "t"})
	resp := h.apply(DeployServiceType, DeployServiceCmd{Name: "s"})
	var viol plan.Violations
	if err, ok := resp.(error); !ok || !errors.As(err, &viol) || len(viol) != 1 {
		t.Fatalf("deploy with no node for b: got %v", resp)
	}
	if svc := h.fsm.State().Service("s"); svc.Generation != 0 || svc.Plan != nil {
		t.Fatal("a refused deploy changed the service")
	}
}

func TestFSM_Reports_DeriveStateDedupeAndIgnoreStale(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	h.report("n1", "s/a/one/create", 1, plan.StepOK)
	h.report("n1", "s/a/two/create", 2, plan.StepOK)
	if st := h.fsm.State().Service("s").State; st != plan.StateDeploying {
		t.Fatalf("state with one node pending = %s", st)
	}
	h.report("n2", "s/b/three/create", 1, plan.StepFailed)
	if st := h.fsm.State().Service("s").State; st != plan.StateFailed {
		t.Fatalf("state with a failed step = %s", st)
	}
	// A resend of n2:1 (already applied) must not count again; n2:2 fixes it.
	if n := h.apply(ReportsType, ReportsCmd{Reports: []plan.Report{{ID: "n2:1", Node: "n2", Service: "s", StepID: "s/b/three/create", State: plan.StepOK}}}); n != 0 {
		t.Fatalf("resent report applied %v times", n)
	}
	h.report("n2", "s/b/three/create", 2, plan.StepOK)
	st := h.fsm.State().Status("s")
	if st.State != plan.StateConverged {
		t.Fatalf("state = %s, want converged", st.State)
	}
	// Redeploy: unchanged steps are pending until the agent confirms them.
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	if st := h.fsm.State().Status("s"); st.State != plan.StateDeploying || st.Nodes[0].Steps[0].State != plan.StepPending {
		t.Fatalf("after redeploy: %s / %s", st.State, st.Nodes[0].Steps[0].State)
	}
}

func TestFSM_Delete_PublishesReverseDeleteStepsThenRemoves(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "s"})
	svc := h.fsm.State().Service("s")
	if svc.State != plan.StateDeleting {
		t.Fatalf("state = %s", svc.State)
	}
	steps := h.fsm.State().Slice("n1").Steps
	if len(steps) != 2 || steps[0].ID != "s/a/two/delete" || steps[1].ID != "s/a/one/delete" {
		t.Fatalf("delete steps on n1 = %v", stepIDs(steps))
	}
	h.report("n1", "s/a/two/delete", 1, plan.StepOK)
	h.report("n1", "s/a/one/delete", 2, plan.StepOK)
	if h.fsm.State().Service("s") == nil {
		t.Fatal("removed before every node finished")
	}
	h.report("n2", "s/b/three/delete", 1, plan.StepOK)
	if h.fsm.State().Service("s") != nil {
		t.Fatal("service still there after all delete steps succeeded")
	}
	if n := len(h.fsm.State().Slice("n1").Steps); n != 0 {
		t.Fatalf("n1 still has %d steps", n)
	}
}

func TestFSM_Delete_StagedOnlyRemovesAtOnceAndParentGuard(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(StageServiceType, StageServiceCmd{Name: "child", Module: "m", Version: "1.0.0", Template: "t", Parent: "s"})
	if err, _ := h.apply(DeleteServiceType, DeleteServiceCmd{Name: "s"}).(error); !errors.Is(err, ErrConflict) {
		t.Fatalf("deleting a parent with children: %v", err)
	}
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "child"})
	if h.fsm.State().Service("child") != nil {
		t.Fatal("a never-deployed service should go at once")
	}
}

func TestFSM_SetInputs_SetsAndUnsets(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(SetInputsType, SetInputsCmd{Name: "s", Inputs: map[string]string{"greeting": "yo"}})
	if got := h.fsm.State().Service("s").Inputs["greeting"]; got != "yo" {
		t.Fatalf("greeting = %q", got)
	}
	h.mustApply(SetInputsType, SetInputsCmd{Name: "s", Inputs: map[string]string{"greeting": ""}})
	if _, ok := h.fsm.State().Service("s").Inputs["greeting"]; ok {
		t.Fatal("empty value should unset")
	}
	if err, _ := h.apply(SetInputsType, SetInputsCmd{Name: "zz"}).(error); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown service: %v", err)
	}
}

func TestFSM_Apply_UnknownCommand(t *testing.T) {
	h := newHarness(t)
	h.index++
	h.fsm.Apply(&raft.Log{Index: h.index, Type: raft.LogCommand, Data: []byte{byte(99 | IgnoreUnknownFlag), '{', '}'}})
	if h.fsm.State().Index() != h.index {
		t.Fatal("an ignorable unknown command should still advance the index")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("an unknown command without the ignore flag must panic (corrupt log)")
		}
	}()
	h.fsm.Apply(&raft.Log{Index: h.index + 1, Type: raft.LogCommand, Data: []byte{99, '{', '}'}})
}

func TestFSM_SnapshotRestore_RoundTrip(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	h.report("n1", "s/a/one/create", 1, plan.StepOK)
	snap, err := h.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	fresh := NewFSM(slog.New(slog.DiscardHandler))
	// A watcher of the fresh state must wake on restore.
	woke := make(chan struct{})
	go func() {
		fresh.State().WaitSlice(make(chan struct{}), "n1", 0)
		close(woke)
	}()
	if err := fresh.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	<-woke
	a, _ := json.Marshal(h.fsm.State().data)
	b, _ := json.Marshal(fresh.State().data)
	if !bytes.Equal(a, b) {
		t.Fatalf("restored state differs:\n%s\n%s", a, b)
	}
	if fresh.State().Status("s").Nodes[0].Steps[0].State != plan.StepOK {
		t.Fatal("restored reports lost")
	}
}

func stepIDs(steps []*plan.Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.ID)
	}
	return out
}

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

func TestFSM_Coordinators_DirectoryUpsertsAndSurvivesSnapshot(t *testing.T) {
	h := newHarness(t)
	h.mustApply(CoordinatorsType, CoordinatorsCmd{Coordinators: []CoordinatorInfo{
		{Name: "c1", HTTPAddr: "127.0.0.1:7070", RaftAddr: "127.0.0.1:7947", SerfAddr: "127.0.0.1:7946"},
		{Name: "c2", HTTPAddr: "127.0.0.2:7070", RaftAddr: "127.0.0.2:7947", SerfAddr: "127.0.0.2:7946"},
	}})
	h.mustApply(CoordinatorsType, CoordinatorsCmd{Coordinators: []CoordinatorInfo{{Name: "c2", HTTPAddr: "127.0.0.9:7070"}}})
	dir := h.fsm.State().CoordinatorDirectory()
	if len(dir) != 2 || dir[1].HTTPAddr != "127.0.0.9:7070" || dir[0].SerfAddr != "127.0.0.1:7946" {
		t.Fatalf("directory = %+v %+v", dir[0], dir[1])
	}
	snap, _ := h.fsm.Snapshot()
	sink := &memSink{}
	snap.Persist(sink)
	fresh := NewFSM(slog.New(slog.DiscardHandler))
	if err := fresh.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if len(fresh.State().CoordinatorDirectory()) != 2 {
		t.Fatal("directory lost in a snapshot")
	}
}

// An agent that lost its data dir comes back as a new incarnation and
// numbers its reports from 1 again: they are applied, and the record of
// the old incarnation's sequence is dropped when the new one registers.
func TestFSM_Reports_NewIncarnationStartsAtOne(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n2", Labels: map[string]string{"role": "b"}, Incarnation: "aaaa"}, Time: 3})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	step := h.fsm.State().Service("s").Plan.Nodes[1].Steps[0]
	rep := func(id, state string) any {
		return h.apply(ReportsType, ReportsCmd{Reports: []plan.Report{{ID: id, Node: "n2", Service: "s",
			StepID: step.ID, Action: step.Action, Generation: step.Generation, Digest: step.Digest, State: state}}})
	}
	if n := rep("n2:aaaa:7", plan.StepFailed); n != 1 {
		t.Fatalf("first report applied %v times", n)
	}
	if n := rep("n2:aaaa:7", plan.StepOK); n != 0 {
		t.Fatalf("resent report applied %v times", n)
	}
	// The disk is wiped: a new incarnation registers and starts at 1.
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n2", Labels: map[string]string{"role": "b"}, Incarnation: "bbbb"}, Time: 4})
	if n := rep("n2:bbbb:1", plan.StepOK); n != 1 {
		t.Fatalf("report 1 of a new incarnation applied %v times, want 1", n)
	}
	if got := stepState(h.fsm.State(), "s", step.ID); got != plan.StepOK {
		t.Fatalf("step state = %q, want ok", got)
	}
	if n := rep("n2:bbbb:1", plan.StepOK); n != 0 {
		t.Fatalf("resend within the new incarnation applied %v times", n)
	}
	// Bounded: the old incarnation's record went with it.
	h.fsm.State().mu.RLock()
	_, old := h.fsm.State().data.NodeSeq["n2:aaaa"]
	h.fsm.State().mu.RUnlock()
	if old {
		t.Fatal("the old incarnation's sequence is still kept")
	}
	// Made-up incarnations leave no record behind.
	for i := range 50 {
		rep("n2:x"+strconv.Itoa(i)+":1", plan.StepOK)
	}
	h.fsm.State().mu.RLock()
	kept := len(h.fsm.State().data.NodeSeq)
	h.fsm.State().mu.RUnlock()
	if kept > 2 {
		t.Fatalf("%d sequence records after reports under 50 unknown incarnations", kept)
	}
}

// Report IDs from agents older than incarnations ("node:seq") and new ones
// ("node:incarnation:seq") both parse.
func TestReportSeq_OldAndNewFormats(t *testing.T) {
	for _, c := range []struct {
		id, inc string
		seq     uint64
	}{{"n1:42", "", 42}, {"n1:3f2a:42", "3f2a", 42}, {"bad", "", 0}} {
		if inc, seq := reportSeq(c.id); inc != c.inc || seq != c.seq {
			t.Errorf("reportSeq(%q) = %q, %d; want %q, %d", c.id, inc, seq, c.inc, c.seq)
		}
	}
}

func stepState(st *State, service, id string) string {
	for _, n := range st.Status(service).Nodes {
		for _, s := range n.Steps {
			if s.ID == id {
				return s.State
			}
		}
	}
	return ""
}
