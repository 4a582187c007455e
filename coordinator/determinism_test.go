package coordinator

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// logEntry is one command of a scripted Raft log.
type logEntry struct {
	typ MessageType
	cmd any
}

// scriptedLog is a log that touches every part of the state: nodes, labels,
// modules, services (deploy, reports with outputs, partial delete, delete),
// ops, join tokens, enrollment, ACLs, audit and the coordinator directory.
func scriptedLog() []logEntry {
	m := testModule()
	m2 := testModule()
	m2.Version, m2.Digest = "1.1.0", "sha256:"+string(bytes.Repeat([]byte("b"), 64))
	log := []logEntry{
		{RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n1", Labels: map[string]string{"role": "a"}, Facts: plan.Facts{Address: "127.0.0.2"}}, Time: 1}},
		{RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n2", Labels: map[string]string{"role": "b"}, Facts: plan.Facts{Address: "127.0.0.3"}}, Time: 1}},
		{RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n3", Labels: map[string]string{"role": "b"}, Facts: plan.Facts{Address: "127.0.0.4"}}, Time: 2}},
		{NodeLabelsType, NodeLabelsCmd{Name: "n3", Labels: map[string]string{"rack": "r1"}}},
		{PutModuleType, PutModuleCmd{Module: m}},
		{PutModuleType, PutModuleCmd{Module: m2}},
		{StageServiceType, StageServiceCmd{Name: "s", Module: "m", Version: "1.0.0", Template: "t", Time: 3}},
		{StageServiceType, StageServiceCmd{Name: "child", Module: "m", Version: "1.1.0", Template: "t", Parent: "s", Time: 3}},
		{SetInputsType, SetInputsCmd{Name: "s", Inputs: map[string]string{"greeting": "hello"}}},
		{DeployServiceType, DeployServiceCmd{Name: "s", Time: 4, Caller: Caller{By: "client/ops"}}},
		{DeployServiceType, DeployServiceCmd{Name: "child"}},
		// A recursive deploy (cascade.go), finished by the reports below.
		{DeployServiceType, DeployServiceCmd{Name: "s", Time: 4, Recursive: true}},
		{LeaderType | IgnoreUnknownFlag, LeaderCmd{Name: "c1", Time: 4}},
		{CreateOpType, CreateOpCmd{Op: plan.Op{ID: "op1", Kind: "exec", Service: "s", Created: 4, Steps: map[string][]*plan.Step{"n1": {}, "n2": {}}}}},
		{OpResultsType, OpResultsCmd{ID: "op1", Node: "n1", Reports: []plan.Report{{ID: "r1", Output: "ok"}}, Final: true}},
		{NodeStatusType, NodeStatusCmd{Time: 5, Updates: []NodeStatusUpdate{{Name: "n2", Status: "down"}}}},
		{CoordinatorsType, CoordinatorsCmd{Coordinators: []CoordinatorInfo{{Name: "c1", HTTPAddr: "127.0.0.1:4646", RaftAddr: "127.0.0.1:4647"}}}},
		{CreateTokenType, CreateTokenCmd{Token: api.JoinToken{ID: "tok1", SecretHash: "h", MaxUses: 2, Labels: map[string]string{"env": "t"}}, Time: 6}},
		{PendingType, PendingCmd{Request: api.PendingNode{Name: "n9", PublicKey: "pk", Time: 6}}},
		{RejectType, RejectCmd{Name: "n9", Time: 7}},
		{ACLBootstrapType, ACLBootstrapCmd{Token: api.ACLToken{AccessorID: "0123456789abcdef", SecretHash: "0123456789abcdefff", CreatedMS: 7}}},
		{ACLPolicyType, ACLPolicyCmd{Policy: api.ACLPolicy{Name: "ops", Rules: `service "*" { policy = "write" }`}}},
		{AuditType, AuditCmd{Entries: []api.AuditEntry{{TimeMS: 8, Method: "POST", Path: "/v1/services/s/deploy", Service: "s", Code: 200}}}},
	}
	// Reports for every step of s's first plan are added by the test, as
	// they depend on compiled step IDs and digests.
	return log
}

// applyScript applies the scripted log and then reports every step of the
// services ok (with an output), deletes part of s and ends with ops and an
// audit entry; it returns the FSM.
func applyScript(t *testing.T) *FSM {
	t.Helper()
	return applyScriptWith(t, nil)
}

// applyScriptWith is applyScript with each entry of the scripted log first
// rewritten (against the state so far) by rewrite, when given.
func applyScriptWith(t *testing.T, rewrite func(*State, logEntry) logEntry) *FSM {
	t.Helper()
	h := newHarness(t)
	for _, e := range scriptedLog() {
		if rewrite != nil {
			e = rewrite(h.fsm.State(), e)
		}
		h.mustApply(e.typ, e.cmd)
	}
	seq := 0
	for _, name := range []string{"s", "child"} {
		svc := h.fsm.State().Service(name)
		for _, np := range svc.Plan.Nodes {
			for _, st := range np.Steps {
				seq++
				h.mustApply(ReportsType, ReportsCmd{Time: int64(10 + seq), Reports: []plan.Report{{
					ID: np.Agent + ":" + strconv.Itoa(seq), Node: np.Agent, Service: name, StepID: st.ID, Action: st.Action,
					Generation: st.Generation, Digest: st.Digest, State: plan.StepOK, Output: "done " + st.ID,
					Outputs: map[string]json.RawMessage{"v": json.RawMessage(strconv.Quote(st.ID))},
				}}})
			}
		}
	}
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "s", Node: "b"})
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "child"})
	return h.fsm
}

func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

// TestFSM_Determinism_SameLogSameSnapshot: every replica applies the same
// log; any dependence on map order, the clock or randomness in Apply shows
// as two different snapshots.
func TestFSM_Determinism_SameLogSameSnapshot(t *testing.T) {
	a := snapshotBytes(t, applyScript(t))
	for i := range 5 {
		if b := snapshotBytes(t, applyScript(t)); !bytes.Equal(a, b) {
			t.Fatalf("run %d: the same log gave another snapshot:\n%s\n%s", i, a, b)
		}
	}
	// And a restored snapshot snapshots to the same bytes.
	f := NewFSM(slog.New(slog.DiscardHandler))
	if err := f.Restore(io.NopCloser(bytes.NewReader(a))); err != nil {
		t.Fatal(err)
	}
	if b := snapshotBytes(t, f); !bytes.Equal(a, b) {
		t.Fatalf("restore then snapshot changed the state:\n%s\n%s", a, b)
	}
}

// The snapshot fixture is the state format of 2026-11-27 (before copy on
// write, incarnations and garbage collection). Regenerate only on purpose:
// DTK_UPDATE_FIXTURES=1 go test ./coordinator -run Fixture. A new format
// gets a new fixture; old ones stay, as Nomad keeps its old state fixtures.
const snapshotFixture = "testdata/snapshot-2026-11-27.json"

// TestFSM_Upgrade_RestoresEveryOldSnapshotFixture restores snapshots taken
// by earlier releases and checks the state works in this code: status,
// slices, ops, tokens, ACLs, and a new deploy on top.
func TestFSM_Upgrade_RestoresEveryOldSnapshotFixture(t *testing.T) {
	if os.Getenv("DTK_UPDATE_FIXTURES") == "1" {
		if err := os.WriteFile(snapshotFixture, snapshotBytes(t, applyScript(t)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fixtures, _ := filepath.Glob("testdata/snapshot-*.json")
	if len(fixtures) == 0 {
		t.Fatal("no snapshot fixtures in testdata")
	}
	for _, fx := range fixtures {
		t.Run(filepath.Base(fx), func(t *testing.T) {
			raw, err := os.ReadFile(fx)
			if err != nil {
				t.Fatal(err)
			}
			f := NewFSM(slog.New(slog.DiscardHandler))
			if err := f.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
				t.Fatalf("restore %s: %v", fx, err)
			}
			st := f.State()
			status := st.Status("s")
			if status == nil || status.Generation == 0 || len(status.Nodes) == 0 {
				t.Fatalf("service s lost: %+v", status)
			}
			if st.Service("child") != nil && st.Service("child").State != plan.StateDeleting {
				t.Fatalf("child: %+v", st.Service("child"))
			}
			if n := st.Node("n3"); n == nil || n.Labels["rack"] != "r1" {
				t.Fatalf("node n3 or its operator label lost: %+v", n)
			}
			if op := st.Op("op1"); op == nil || len(op.Results) != 1 {
				t.Fatalf("op lost: %+v", op)
			}
			if len(st.ACLPolicies()) != 1 || len(st.ACLTokens()) != 1 {
				t.Fatal("ACLs lost")
			}
			if sl := st.Slice("n1"); len(sl.Steps) == 0 {
				t.Fatal("n1's slice is empty")
			}
			// The restored state takes new entries.
			for i, e := range []logEntry{
				{StageServiceType, StageServiceCmd{Name: "s2", Module: "m", Version: "1.1.0", Template: "t", Time: 50}},
				{DeployServiceType, DeployServiceCmd{Name: "s2"}},
			} {
				b, err := Encode(e.typ, e.cmd)
				if err != nil {
					t.Fatal(err)
				}
				if err, ok := f.Apply(&raft.Log{Index: st.Index() + 1, Type: raft.LogCommand, Data: b}).(error); ok {
					t.Fatalf("entry %d after restore: %v", i, err)
				}
			}
			if s2 := st.Service("s2"); s2 == nil || s2.Plan == nil {
				t.Fatalf("s2 not deployed after restore: %+v", s2)
			}
			// History and events start with the new entries.
			if recs, _ := st.History("s2"); len(recs) != 1 || recs[0].Kind != api.HistoryDeploy {
				t.Fatalf("s2's history after restore: %+v", recs)
			}
			if evs := allEvents(st); len(evs) == 0 || evs[len(evs)-1].Type != api.EventDeployStarted || evs[len(evs)-1].Service != "s2" {
				t.Fatalf("events after restore: %+v", evs)
			}
		})
	}
}

// TestState_ShallowCopy_CopiesEveryMap guards the snapshot copy: a map
// added to the state and not to shallowCopy would be encoded while the FSM
// writes to it.
func TestState_ShallowCopy_CopiesEveryMap(t *testing.T) {
	d := newStateData()
	d.Trust.fill()
	d.ACL.fill()
	c := d.shallowCopy()
	var walk func(path string, a, b reflect.Value)
	walk = func(path string, a, b reflect.Value) {
		switch a.Kind() {
		case reflect.Map:
			if a.Pointer() == b.Pointer() {
				t.Errorf("%s is shared between the state and its snapshot copy: add it to shallowCopy", path)
			}
		case reflect.Struct:
			for i := range a.NumField() {
				walk(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))
			}
		}
	}
	walk("stateData", reflect.ValueOf(d), reflect.ValueOf(c))
}
