package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dtkhq/dtk/internal/gossip"
	"github.com/dtkhq/dtk/plan"
)

// swapCompile replaces the compiler for the test.
func swapCompile(t *testing.T, fn func(plan.CompileInput) (*plan.Plan, plan.Violations)) {
	t.Helper()
	old := compileFn
	compileFn = fn
	t.Cleanup(func() { compileFn = old })
}

func noCompile(t *testing.T) func(plan.CompileInput) (*plan.Plan, plan.Violations) {
	return func(in plan.CompileInput) (*plan.Plan, plan.Violations) {
		t.Errorf("the compiler ran on a replica, for %s", in.Service.Name)
		return plan.Compile(in)
	}
}

// startPlanning applies the first planned entry, which only starts
// planning on the leader (CompileIndex) and is refused as stale.
func (h *fsmHarness) startPlanning() { h.t.Helper(); h.startPlanningFor("s") }

// startPlanningFor is startPlanning with a deploy of service name.
func (h *fsmHarness) startPlanningFor(name string) {
	h.t.Helper()
	if err, _ := h.apply(PlannedDeployType, h.fsm.State().PlanDeploy(DeployServiceCmd{Name: name})).(error); !errors.Is(err, ErrStalePlan) {
		h.t.Fatalf("the first planned entry: %v, want ErrStalePlan", err)
	}
	if !h.fsm.State().data.LeaderPlans {
		h.t.Fatal("the first planned entry did not start planning")
	}
}

// TestFSM_PlannedDeploy_AppliesWithoutTheCompilerAsTheOldEntryWould: a
// replica applies the leader's planned deploy without running the compiler,
// and ends with the state (plan, slices, history, generations, indexes)
// the old DeployServiceType entry gives, byte for byte.
func TestFSM_PlannedDeploy_AppliesWithoutTheCompilerAsTheOldEntryWould(t *testing.T) {
	leader, follower, old := newHarness(t), newHarness(t), newHarness(t)
	for _, h := range []*fsmHarness{leader, follower, old} {
		h.setup()
		h.startPlanning()
	}
	cmd := DeployServiceCmd{Name: "s", Time: 5, Caller: Caller{By: "client/ops"}}
	pc := leader.fsm.State().PlanDeploy(cmd)
	if pc.Plan == nil || pc.Generation != 1 || pc.CompileIndex == 0 {
		t.Fatalf("planned: gen %d at %d, plan %v", pc.Generation, pc.CompileIndex, pc.Plan)
	}
	old.mustApply(DeployServiceType, cmd)
	swapCompile(t, noCompile(t))
	resp := follower.mustApply(PlannedDeployType, pc)
	if svc, ok := resp.(*plan.Service); !ok || svc.Generation != 1 {
		t.Fatalf("planned deploy answered %#v", resp)
	}
	if got := follower.fsm.State().Service("s").Plan; !samePlan(got, pc.Plan) {
		t.Fatal("the stored plan is not the leader's")
	}
	for _, n := range []string{"n1", "n2"} {
		if a, b := follower.fsm.State().Slice(n), old.fsm.State().Slice(n); len(a.Steps) == 0 || a.Index != b.Index || len(a.Steps) != len(b.Steps) {
			t.Fatalf("%s slice: %d steps at %d, want %d at %d", n, len(a.Steps), a.Index, len(b.Steps), b.Index)
		}
	}
	if a, b := snapshotBytes(t, follower.fsm), snapshotBytes(t, old.fsm); !bytes.Equal(a, b) {
		t.Fatalf("planned and in-Apply deploys differ:\n%s\n%s", a, b)
	}
}

// TestFSM_PlannedDeploy_ReplicaRestoredFromAnOldSnapshotAgrees: a replica
// that restored a snapshot of an older version (no compile_index) takes the
// first planned entries as the others do: the first starts planning on
// both, and the next one applies on both, to the same state.
func TestFSM_PlannedDeploy_ReplicaRestoredFromAnOldSnapshotAgrees(t *testing.T) {
	a, b := newHarness(t), newHarness(t)
	a.setup()
	var d map[string]any
	if err := json.Unmarshal(snapshotBytes(t, a.fsm), &d); err != nil {
		t.Fatal(err)
	}
	delete(d, "compile_index")
	raw, _ := json.Marshal(d)
	if err := b.fsm.Restore(io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	b.index = a.index
	for range 2 {
		pc := a.fsm.State().PlanDeploy(DeployServiceCmd{Name: "s"})
		ra, rb := a.apply(PlannedDeployType, pc), b.apply(PlannedDeployType, pc)
		ea, _ := ra.(error)
		eb, _ := rb.(error)
		if errors.Is(ea, ErrStalePlan) != errors.Is(eb, ErrStalePlan) {
			t.Fatalf("the replicas disagree on a planned entry: %v / %v", ea, eb)
		}
	}
	if sa, sb := snapshotBytes(t, a.fsm), snapshotBytes(t, b.fsm); !bytes.Equal(sa, sb) || a.fsm.State().Service("s").Generation != 1 {
		t.Fatalf("replicas differ:\n%s\n%s", sa, sb)
	}
}

// TestFSM_PlannedDeploy_StaleAfterAConflictingWrite: a plan made before an
// entry that changes what the compiler reads (inputs, a node, a module) is
// refused and changes nothing; planned again it carries the write. An
// entry the compiler does not read (an audit record, a resent report) does
// not make it stale.
func TestFSM_PlannedDeploy_StaleAfterAConflictingWrite(t *testing.T) {
	m2 := testModule()
	m2.Version = "1.1.0"
	for _, tc := range []struct {
		name  string
		typ   MessageType
		cmd   any
		check func(*State) bool
	}{
		{"inputs", SetInputsType, SetInputsCmd{Name: "s", Inputs: map[string]string{"greeting": "yo"}}, func(s *State) bool {
			return string(s.Slice("n1").Steps[0].Attributes["msg"]) == `"yo 127.0.0.3"`
		}},
		{"node", RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "n2", Labels: map[string]string{"role": "b"}, Facts: plan.Facts{Address: "127.0.0.9"}}, Time: 3}, func(s *State) bool {
			return string(s.Slice("n1").Steps[0].Attributes["msg"]) == `"hi 127.0.0.9"`
		}},
		{"module", PutModuleType, PutModuleCmd{Module: m2}, nil},
		{"node down", NodeStatusType, NodeStatusCmd{Updates: []NodeStatusUpdate{{Name: "n2", Status: "down"}}, Time: 3}, func(s *State) bool {
			return s.Service("s").Generation == 0 // node b has no agent up now: violations
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.setup()
			h.startPlanning()
			pc := h.fsm.State().PlanDeploy(DeployServiceCmd{Name: "s"})
			h.mustApply(AuditType, AuditCmd{})
			h.mustApply(tc.typ, tc.cmd)
			err, _ := h.apply(PlannedDeployType, pc).(error)
			if !errors.Is(err, ErrStalePlan) {
				t.Fatalf("a plan older than the %s write: %v, want ErrStalePlan", tc.name, err)
			}
			if svc := h.fsm.State().Service("s"); svc.Generation != 0 || svc.Plan != nil {
				t.Fatalf("a stale plan changed the service: gen %d", svc.Generation)
			}
			if err, _ := h.apply(PlannedDeployType, h.fsm.State().PlanDeploy(DeployServiceCmd{Name: "s"})).(error); errors.Is(err, ErrStalePlan) {
				t.Fatalf("planned again: %v", err)
			}
			if tc.check != nil && !tc.check(h.fsm.State()) {
				t.Fatalf("the plan made again misses the %s write", tc.name)
			}
		})
	}
	// A second deploy planned before the first committed is stale too
	// (its generation and Previous are the first's).
	h := newHarness(t)
	h.setup()
	h.startPlanning()
	a := h.fsm.State().PlanDeploy(DeployServiceCmd{Name: "s"})
	b := h.fsm.State().PlanDeploy(DeployServiceCmd{Name: "s"})
	h.mustApply(PlannedDeployType, a)
	if err, _ := h.apply(PlannedDeployType, b).(error); !errors.Is(err, ErrStalePlan) {
		t.Fatalf("a second plan of generation 1: %v", err)
	}
	// A converged step whose report comes again changes nothing the
	// compiler reads.
	h.report("n2", h.fsm.State().Slice("n2").Steps[0].ID, 1, plan.StepOK)
	c := h.fsm.State().PlanDeploy(DeployServiceCmd{Name: "s"})
	h.report("n2", h.fsm.State().Slice("n2").Steps[0].ID, 2, plan.StepOK)
	h.mustApply(PlannedDeployType, c)
}

// TestFSM_PlannedDeploy_AnswersAsDeployService: a missing service, one
// being deleted, and violations answer as DeployServiceType does.
func TestFSM_PlannedDeploy_AnswersAsDeployService(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.startPlanning()
	if err, _ := h.apply(PlannedDeployType, h.fsm.State().PlanDeploy(DeployServiceCmd{Name: "nope"})).(error); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing service: %v", err)
	}
	h.mustApply(RemoveNodeType, RemoveNodeCmd{Name: "n2"})
	pc := h.fsm.State().PlanDeploy(DeployServiceCmd{Name: "s"})
	if len(pc.Violations) == 0 {
		t.Fatal("no violations planned without node b")
	}
	if _, ok := h.apply(PlannedDeployType, pc).(plan.Violations); !ok {
		t.Fatal("violations not answered")
	}
	if svc := h.fsm.State().Service("s"); svc.Generation != 0 {
		t.Fatal("violations deployed")
	}
}

// TestFSM_PlannedDeploy_ScriptedLogSameSnapshot: the scripted log with
// every deploy planned gives the snapshot the log of old entries gives
// (recursive deploys and their cascade included).
func TestFSM_PlannedDeploy_ScriptedLogSameSnapshot(t *testing.T) {
	// Both runs start with planning started (as by a first planned
	// entry, here without taking an index).
	planned := 0
	b := snapshotBytes(t, applyScriptWith(t, func(s *State, e logEntry) logEntry {
		s.data.LeaderPlans = true
		if e.typ != DeployServiceType {
			return e
		}
		planned++
		return logEntry{PlannedDeployType, s.PlanDeploy(e.cmd.(DeployServiceCmd))}
	}))
	if planned == 0 {
		t.Fatal("the script has no deploy")
	}
	a := snapshotBytes(t, applyScriptWith(t, func(s *State, e logEntry) logEntry {
		s.data.LeaderPlans = true
		return e
	}))
	if !bytes.Equal(a, b) {
		t.Fatalf("planned deploys changed the state:\n%s\n%s", a, b)
	}
}

// TestCluster_PlannedDeploy_LeaderCompilesRetriesAStalePlan: on a real
// Raft cluster the leader compiles (the replicas do not); a write that
// lands while it compiles makes its first plan stale, and the retry's plan
// carries the write, on every replica.
func TestCluster_PlannedDeploy_LeaderCompilesRetriesAStalePlan(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	applyAll(t, l, setupEntries())
	startPlanning(t, l)
	c.converge(c.servers...)
	var calls atomic.Int32
	swapCompile(t, func(in plan.CompileInput) (*plan.Plan, plan.Violations) {
		if calls.Add(1) == 1 { // an operator sets an input meanwhile
			if _, err := l.apply(SetInputsType, SetInputsCmd{Name: "s", Inputs: map[string]string{"greeting": "yo"}}); err != nil {
				t.Error(err)
			}
		}
		return plan.Compile(in)
	})
	if _, err := l.applyDeploy(DeployServiceCmd{Name: "s"}); err != nil {
		t.Fatal(err)
	}
	c.converge(c.servers...)
	if n := calls.Load(); n != 2 {
		t.Fatalf("the compiler ran %d times, want 2 (a stale plan and its retry, on the leader only)", n)
	}
	for _, s := range c.servers {
		if got := string(s.State().Slice("n1").Steps[0].Attributes["msg"]); got != `"yo 127.0.0.3"` {
			t.Fatalf("%s: msg = %s: the retry lost the input set meanwhile", s.cfg.Name, got)
		}
	}
}

// TestCluster_PlannedDeploy_OnlyOnceEveryCoordinatorHasTheFeature: while
// one coordinator does not advertise planned-deploy (an older version, or
// one the pool does not list), the leader commits DeployServiceType, which
// every replica compiles; once all do, the leader alone compiles.
func TestCluster_PlannedDeploy_OnlyOnceEveryCoordinatorHasTheFeature(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	applyAll(t, l, setupEntries())
	if !l.clusterHas(FeaturePlannedDeploy) {
		t.Fatal("every coordinator advertises planned-deploy, and clusterHas says no")
	}
	startPlanning(t, l)
	other := c.follower(l).cfg.Name
	setFeatures := func(f string) {
		c.peers.mu.Lock()
		defer c.peers.mu.Unlock()
		for i := range c.peers.peers {
			if c.peers.peers[i].Name == other {
				c.peers.peers[i].Features = f
			}
		}
	}
	var calls atomic.Int32
	swapCompile(t, func(in plan.CompileInput) (*plan.Plan, plan.Violations) {
		calls.Add(1)
		return plan.Compile(in)
	})
	deploy := func(gen uint64) {
		t.Helper()
		calls.Store(0)
		if _, err := l.applyDeploy(DeployServiceCmd{Name: "s"}); err != nil {
			t.Fatal(err)
		}
		c.converge(c.servers...)
		for _, s := range c.servers {
			if g := s.State().Service("s").Generation; g != gen {
				t.Fatalf("%s: generation %d, want %d", s.cfg.Name, g, gen)
			}
		}
	}
	entries := func(kind string) uint64 { return l.metrics.deployPlans.With(kind).Get() }
	setFeatures("")
	deploy(1)
	if n := calls.Load(); n != 3 {
		t.Fatalf("with an old coordinator: %d compiles, want 3 (one per replica, in Apply)", n)
	}
	if entries("in_apply") != 1 {
		t.Fatalf("dtk_deploy_entries_total{plan=in_apply} = %d, want 1", entries("in_apply"))
	}
	setFeatures("other," + FeaturePlannedDeploy)
	planned := entries("planned")
	deploy(2)
	if n := calls.Load(); n != 1 {
		t.Fatalf("with every coordinator new: %d compiles, want 1 (the leader's plan)", n)
	}
	if entries("planned") != planned+1 || entries("in_apply") != 1 {
		t.Fatalf("entries: planned %d (was %d), in_apply %d", entries("planned"), planned, entries("in_apply"))
	}
	// A coordinator in the Raft configuration that gossip does not list
	// counts as old.
	c.peers.mu.Lock()
	c.peers.peers = slicesWithout(c.peers.peers, other)
	c.peers.mu.Unlock()
	if l.clusterHas(FeaturePlannedDeploy) {
		t.Fatal("a coordinator gossip does not list counted as new")
	}
	if !slices.Contains(strings.Split(l.Tags()[gossip.TagFeatures], ","), FeaturePlannedDeploy) {
		t.Fatalf("tags %v do not advertise %s", l.Tags(), FeaturePlannedDeploy)
	}
}

// startPlanning makes the leader l's first planned entry, which starts
// planning (a deploy of a missing service: planned again, not found).
func startPlanning(t testing.TB, l *Server) {
	t.Helper()
	if _, err := l.applyDeploy(DeployServiceCmd{Name: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deploy of a missing service: %v", err)
	}
	if !l.State().data.LeaderPlans {
		t.Fatal("planning did not start")
	}
}

// applyAll commits entries through the leader l.
func applyAll(t testing.TB, l *Server, entries []logEntry) {
	t.Helper()
	for _, e := range entries {
		if _, err := l.apply(e.typ, e.cmd); err != nil {
			t.Fatal(err)
		}
	}
}

func slicesWithout(ps []gossip.Peer, name string) []gossip.Peer {
	var out []gossip.Peer
	for _, p := range ps {
		if p.Name != name {
			out = append(out, p)
		}
	}
	return out
}
