package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dtkhq/dtk/internal/gossip"
	"github.com/dtkhq/dtk/plan"
)

// startRecompiles applies the entry that turns leader recompiles on, which
// is refused as stale and marks every service.
func (h *fsmHarness) startRecompiles() {
	h.t.Helper()
	if err, _ := h.apply(RecompileType, RecompileCmd{Time: 1}).(error); !errors.Is(err, errRecompileStarts) || !errors.Is(err, ErrStalePlan) {
		h.t.Fatalf("the first recompile entry: %v, want it to start leader recompiles", err)
	}
	if !h.fsm.State().data.LeaderRecompiles {
		h.t.Fatal("the first recompile entry did not start leader recompiles")
	}
}

// commitMarked plays the leader's loop once: every marked service planned
// on leader (with the compiler), in one entry applied to each harness in
// hs. It returns the entry.
func commitMarked(t *testing.T, leader *fsmHarness, hs ...*fsmHarness) RecompileCmd {
	t.Helper()
	c := planMarked(leader)
	if len(c.Done) > 0 {
		for _, h := range append([]*fsmHarness{leader}, hs...) {
			h.mustApply(RecompileType, c)
		}
	}
	return c
}

// planMarked is the entry the leader's loop commits for what is marked.
func planMarked(leader *fsmHarness) RecompileCmd {
	return leader.fsm.State().PlanRecompile(leader.fsm.State().marked())
}

func gwInput(h *fsmHarness) string {
	return string(h.fsm.State().Service("a-gw").Plan.Inputs[0].Value)
}

// recompileHarness: the recursive services deployed and converged, with
// a-gw reading net's router output (gw-1).
func recompileHarness(t *testing.T) *fsmHarness {
	h := recursiveHarness(t)
	h.deployAll()
	h.mustApply(StageServiceType, StageServiceCmd{Name: "a-gw", Module: "rec", Version: "1.0.0", Template: "gwuser", Parent: "net", Time: 4})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "a-gw", Time: 4})
	h.reportSvc("a-gw", nil)
	return h
}

// TestFSM_Recompile_ReportMarksLeaderPlansReplicaStores: once leader
// recompiles are on, a report that brings a new output no longer compiles
// anything in Apply: it marks the services that read it. The leader's
// recompile is then stored by a replica without the compiler, and both end
// with the plan the old in-Apply recompile gives, and the same snapshot.
func TestFSM_Recompile_ReportMarksLeaderPlansReplicaStores(t *testing.T) {
	leader, follower, old := recompileHarness(t), recompileHarness(t), recompileHarness(t)
	leader.startRecompiles()
	follower.startRecompiles()
	commitMarked(t, leader, follower) // what the first entry marked: nothing changes
	if a, b := snapshotBytes(t, leader.fsm), snapshotBytes(t, follower.fsm); !bytes.Equal(a, b) {
		t.Fatal("the replicas differ after turning leader recompiles on")
	}

	out := map[string]json.RawMessage{"v": json.RawMessage(`"gw-2"`)}
	old.reportSvc("net", out)
	if got := gwInput(old); got != `"gw-2"` {
		t.Fatalf("old: a-gw's input = %s: the in-Apply recompile did not run", got)
	}
	swapCompile(t, noCompile(t))
	leader.reportSvc("net", out)
	follower.reportSvc("net", out)
	for _, h := range []*fsmHarness{leader, follower} {
		if got := gwInput(h); got != `"gw-1"` {
			t.Fatalf("a-gw's input = %s right after the report: it recompiled in Apply", got)
		}
	}
	names := follower.fsm.State().marked()
	if len(names) == 0 || names[0] != "net" || !slices.Contains(names, "a-gw") {
		t.Fatalf("marked %v, want net first and a-gw", names)
	}
	// Every step of net has run, but its plan may still change: it is not
	// converged until the leader's recompile (deploy --wait waits for it).
	if st := follower.fsm.State().Service("net").State; st != plan.StateDeploying {
		t.Fatalf("net is %s while its recompile is pending, want deploying", st)
	}

	swapCompile(t, plan.Compile) // the leader compiles
	c := planMarked(leader)
	if len(c.Services) != 2 || c.Services[0].Name != "net" || c.Services[1].Name != "a-gw" {
		t.Fatalf("the leader's recompile: %+v, want net then a-gw", c.Services)
	}
	leader.mustApply(RecompileType, c)
	swapCompile(t, noCompile(t)) // the replica does not
	woken, cancel := follower.fsm.State().watch.wait(nodeKey("n1"))
	defer cancel()
	follower.mustApply(RecompileType, c)
	select {
	case <-woken:
	default:
		t.Fatal("the recompile did not wake n1's plan long-polls")
	}
	for _, h := range []*fsmHarness{leader, follower} {
		if got := gwInput(h); got != `"gw-2"` {
			t.Fatalf("a-gw's input = %s after the leader's recompile", got)
		}
		if !samePlan(h.fsm.State().Service("a-gw").Plan, old.fsm.State().Service("a-gw").Plan) {
			t.Fatal("the leader's recompile differs from the in-Apply one")
		}
		if len(h.fsm.State().Service("a-gw").Stale) > 0 {
			t.Fatalf("a-gw stale after its recompile: %v", h.fsm.State().Service("a-gw").Stale)
		}
	}
	if names := follower.fsm.State().marked(); len(names) != 0 {
		t.Fatalf("still marked after the recompiles: %v", names)
	}
	if st := follower.fsm.State().Service("net").State; st != plan.StateConverged {
		t.Fatalf("net is %s after its recompile, want converged", st)
	}
	if a, b := snapshotBytes(t, leader.fsm), snapshotBytes(t, follower.fsm); !bytes.Equal(a, b) {
		t.Fatalf("leader and replica differ:\n%s\n%s", a, b)
	}
}

// TestFSM_Recompile_StaleOnlyWhenTheShapeChanged: a recompile read before
// a report that changes an output or a converged digest is accepted (the
// report marked the service again, after the read, and the mark stays);
// one read before any other change the compiler reads (a node) is refused
// and changes nothing.
func TestFSM_Recompile_StaleOnlyWhenTheShapeChanged(t *testing.T) {
	h := recompileHarness(t)
	h.startRecompiles()
	commitMarked(t, h)
	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-2"`)})
	c := planMarked(h)
	if len(c.Services) != 2 {
		t.Fatalf("recompile after a new output: %+v", c.Services)
	}
	// A report lands between the read and the commit, with yet another
	// output: CompileIndex moves, ShapeIndex does not.
	before := h.fsm.State().compileIndex()
	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-3"`)})
	if h.fsm.State().compileIndex() == before {
		t.Fatal("a new output did not move CompileIndex")
	}
	h.mustApply(RecompileType, c)
	if got := gwInput(h); got != `"gw-2"` {
		t.Fatalf("a-gw's input = %s, want the read's gw-2", got)
	}
	if names := h.fsm.State().marked(); !slices.Contains(names, "a-gw") || !slices.Contains(names, "net") {
		t.Fatalf("unmarked though a later report marked them again: %v", names)
	}
	c = planMarked(h)
	if len(c.Services) != 2 || !bytes.Contains(mustJSON(t, c.Services[1].Plan), []byte("gw-3")) {
		t.Fatal("the next recompile does not carry the later output")
	}
	// A node registers between the read and the commit: stale.
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n9", Labels: map[string]string{"role": "z"}}, Time: 200})
	if err, _ := h.apply(RecompileType, c).(error); !errors.Is(err, ErrStalePlan) {
		t.Fatalf("a recompile read before a node registered: %v, want ErrStalePlan", err)
	}
	if got := gwInput(h); got != `"gw-2"` {
		t.Fatalf("a stale recompile changed the plan: %s", got)
	}
	// The fallback compiles in Apply and cannot be stale.
	st := h.fsm.State()
	h.mustApply(RecompileType, RecompileCmd{InApply: true, Done: []string{"net", "a-gw"}})
	if got := gwInput(h); got != `"gw-3"` {
		t.Fatalf("a-gw's input = %s after the in-Apply fallback", got)
	}
	if stale := st.Service("a-gw").Stale; len(stale) > 0 {
		t.Fatalf("a-gw stale after the fallback recompiled it with net: %v", stale)
	}
}

// TestFSM_Recompile_PlannedDeployLandsDuringReports: with leader recompiles
// on, a planned deploy read before a report batch (which moves CompileIndex
// only) is stored instead of being refused, and marks the service so that
// the report is compiled in.
func TestFSM_Recompile_PlannedDeployLandsDuringReports(t *testing.T) {
	h := recompileHarness(t)
	h.startPlanningFor("a-gw")
	h.startRecompiles()
	commitMarked(t, h)
	gen := h.fsm.State().Service("a-gw").Generation
	pc := h.fsm.State().PlanDeploy(DeployServiceCmd{Name: "a-gw", Time: 9})
	if pc.ShapeIndex == 0 || pc.Plan == nil {
		t.Fatalf("a planned deploy once leader recompiles are on: shape index %d, plan %v", pc.ShapeIndex, pc.Plan)
	}
	h.reportSvc("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-6"`)})
	if err, ok := h.apply(PlannedDeployType, pc).(error); ok {
		t.Fatalf("a planned deploy read before a report batch was refused: %v", err)
	}
	if got := h.fsm.State().Service("a-gw").Generation; got != gen+1 {
		t.Fatalf("generation %d after the deploy, want %d", got, gen+1)
	}
	if got := gwInput(h); got != `"gw-1"` {
		t.Fatalf("a-gw's input = %s: the deploy was read before gw-6", got)
	}
	if names := h.fsm.State().marked(); !slices.Contains(names, "a-gw") {
		t.Fatalf("the deploy that missed a report did not mark a-gw: %v", names)
	}
	commitMarked(t, h)
	if got := gwInput(h); got != `"gw-6"` {
		t.Fatalf("a-gw's input = %s, want the report's gw-6 after the recompile", got)
	}
	// Read before a node registered: stale, as before.
	pc = h.fsm.State().PlanDeploy(DeployServiceCmd{Name: "a-gw", Time: 10})
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n9", Labels: map[string]string{"role": "z"}}, Time: 200})
	if err, _ := h.apply(PlannedDeployType, pc).(error); !errors.Is(err, ErrStalePlan) {
		t.Fatalf("a planned deploy read before a node registered: %v, want ErrStalePlan", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCluster_Recompile_LeaderLoopOnlyOnceEveryCoordinatorHasIt: in a real
// Raft cluster whose coordinators do not all advertise planned-recompile, a
// report with a new output is compiled in on every replica, in Apply. Once
// they all do, the leader turns leader recompiles on by itself, and the
// next new output is compiled by the leader alone and committed to every
// replica.
func TestCluster_Recompile_LeaderLoopOnlyOnceEveryCoordinatorHasIt(t *testing.T) {
	saved := features
	features = []string{FeaturePlannedDeploy} // the previous version
	c := newTestCluster(t, 3)
	features = saved
	c.peers.mu.Lock() // n1 stays up
	c.peers.peers = append(c.peers.peers, gossip.Peer{Name: "n1", Role: gossip.RoleAgent, Status: "alive"})
	c.peers.mu.Unlock()
	l := c.leader()
	applyAll(t, l, recursiveEntries(t))
	applyAll(t, l, []logEntry{{StageServiceType, StageServiceCmd{Name: "a-gw", Module: "rec", Version: "1.0.0", Template: "gwuser", Parent: "net", Time: 4}}})
	seq := 0
	deployReport := func(name string, out map[string]json.RawMessage) {
		t.Helper()
		if _, err := l.applyDeploy(DeployServiceCmd{Name: name, Time: 3}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.apply(ReportsType, svcReports(l.State(), name, &seq, out)); err != nil {
			t.Fatal(err)
		}
	}
	deployReport("net", map[string]json.RawMessage{"v": json.RawMessage(`"gw-1"`)})
	deployReport("a-gw", nil)
	c.converge(c.servers...)
	var calls atomic.Int32
	swapCompile(t, func(in plan.CompileInput) (*plan.Plan, plan.Violations) {
		calls.Add(1)
		return plan.Compile(in)
	})
	newOutput := func(v string) {
		t.Helper()
		calls.Store(0)
		if _, err := l.apply(ReportsType, svcReports(l.State(), "net", &seq, map[string]json.RawMessage{"v": json.RawMessage(`"` + v + `"`)})); err != nil {
			t.Fatal(err)
		}
		for _, s := range c.servers {
			waitCond(t, s.cfg.Name+" to get a-gw's recompile", func() bool {
				s.State().mu.RLock()
				defer s.State().mu.RUnlock()
				svc := s.State().data.Services["a-gw"]
				return svc != nil && svc.Plan != nil && string(svc.Plan.Inputs[0].Value) == `"`+v+`"`
			})
		}
		c.converge(c.servers...)
	}
	newOutput("gw-2")
	if n := calls.Load(); n != 6 || l.State().leaderRecompiles() {
		t.Fatalf("with the previous version: %d compiles (want 6: net and a-gw on 3 replicas), leader recompiles on %v", n, l.State().leaderRecompiles())
	}

	for _, s := range c.servers {
		s.features.Store(&saved)
	}
	c.peers.mu.Lock()
	for i := range c.peers.peers {
		c.peers.peers[i].Features = strings.Join(features, ",")
	}
	c.peers.mu.Unlock()
	waitCond(t, "leader recompiles to start", func() bool {
		for _, s := range c.servers {
			if !s.State().leaderRecompiles() {
				return false
			}
		}
		return true
	})
	planned := l.metrics.recompiles.With("planned").Get()
	newOutput("gw-3")
	// The leader compiles net (whose gw export is the output) and a-gw,
	// and commits both in one entry.
	if n := calls.Load(); n != 2 {
		t.Fatalf("with leader recompiles: %d compiles, want 2 (net and a-gw, on the leader only)", n)
	}
	if got := l.metrics.recompiles.With("planned").Get(); got != planned+2 {
		t.Fatalf("dtk_recompile_entries_total{plan=planned} = %d, want %d", got, planned+2)
	}
}
