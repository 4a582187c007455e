package coordinator

import (
	"encoding/json"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// TestState_ReadersNeverSeeAWriteInPlace encodes what readers get (after the
// lock is released, as the HTTP handlers do) while the FSM keeps applying
// entries that change the same objects. Under -race (make test runs this
// package with it) any write in place to a value a reader holds is reported;
// without the race detector a concurrent map write during json.Marshal can
// still crash the process.
func TestState_ReadersNeverSeeAWriteInPlace(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	op := h.mustApply(CreateOpType, CreateOpCmd{Op: plan.Op{ID: "op1", Kind: "exec", Service: "s",
		Steps: map[string][]*plan.Step{"n1": {}, "n2": {}}}}).(*plan.Op)
	st := h.fsm.State()
	step := st.Service("s").Plan.Nodes[0].Steps[0]

	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				// What every kind of read hands out, encoded outside the lock.
				for _, v := range []any{st.Service("s"), st.Services(), st.Node("n1"), st.Nodes(),
					st.Op(op.ID), st.Status("s"), st.Slice("n1"), historyOf(st, "s"), allEvents(st)} {
					if _, err := json.Marshal(v); err != nil {
						t.Error(err)
						return
					}
				}
				reads.Add(1)
			}
		}()
	}
	for i := 1; i <= 300 || reads.Load() < 20; i++ {
		if i > 100000 {
			break
		}
		v := strconv.Itoa(i)
		h.mustApply(SetInputsType, SetInputsCmd{Name: "s", Inputs: map[string]string{"greeting": "hi" + v}})
		h.mustApply(ReportsType, ReportsCmd{Time: int64(i), Reports: []plan.Report{{
			ID: "n1:" + v, Node: "n1", Service: "s", StepID: step.ID, Action: step.Action,
			Generation: step.Generation, Digest: step.Digest, State: plan.StepRunning,
		}}})
		h.mustApply(OpResultsType, OpResultsCmd{ID: op.ID, Node: "n1", Reports: []plan.Report{{ID: "r" + v, Output: v}}})
		h.mustApply(NodeStatusType, NodeStatusCmd{Time: int64(i), Updates: []NodeStatusUpdate{{Name: "n1", Status: map[bool]string{true: "up", false: "down"}[i%2 == 0]}}})
		h.mustApply(NodeLabelsType, NodeLabelsCmd{Name: "n1", Labels: map[string]string{"k": v}})
	}
	stop.Store(true)
	wg.Wait()

	// A value read before a write keeps what it had.
	before := st.Service("s")
	was, _ := json.Marshal(before)
	h.mustApply(SetInputsType, SetInputsCmd{Name: "s", Inputs: map[string]string{"greeting": "changed"}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	if now, _ := json.Marshal(before); string(now) != string(was) {
		t.Fatalf("a service read earlier changed under its reader:\n%s\n%s", was, now)
	}
	if st.Service("s").Inputs["greeting"] != "changed" {
		t.Fatal("the write is not visible to new reads")
	}
}

// TestState_Watches_LeaveNothingBehind: a blocking query on a name that
// never changes, or that ends on its deadline, leaves no watch entry (the
// map grew by one per random name before).
func TestState_Watches_LeaveNothingBehind(t *testing.T) {
	h := newHarness(t)
	h.setup()
	st := h.fsm.State()
	for i := range 100 {
		st.WaitService(make(chan struct{}), "no-such-service-"+strconv.Itoa(i), 1)
	}
	done := make(chan struct{})
	close(done)
	st.WaitService(done, "s", st.Service("s").ModifyIndex)
	st.WaitSlice(done, "n1", st.Index()+10)
	st.WaitOp(done, "none", 1)
	st.NodeOps(done, "n1", st.Index()+10)
	if n := st.watch.size(); n != 0 {
		t.Fatalf("%d watch entries left behind", n)
	}
	// A waiter still wakes on a change.
	woke := make(chan struct{})
	go func() {
		st.WaitService(make(chan struct{}), "s", st.Service("s").ModifyIndex)
		close(woke)
	}()
	for st.watch.size() == 0 {
		runtime.Gosched()
	}
	h.mustApply(SetInputsType, SetInputsCmd{Name: "s", Inputs: map[string]string{"greeting": "x"}})
	<-woke
}

func historyOf(st *State, name string) []api.HistoryRecord {
	recs, _ := st.History(name)
	return recs
}
