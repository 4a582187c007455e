package coordinator

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/gossip"
	"github.com/dtkhq/dtk/plan"
)

// groupModule has a node block "db" and a node group "workers".
func groupModule() plan.Module {
	m := testModule()
	m.Name = "g"
	m.Templates = map[string]*plan.Template{
		"t": {Name: "t", Nodes: []*plan.TemplateNode{
			{Name: "db", Labels: map[string]string{"role": "db"}, Components: []*plan.Instance{
				{Name: "pg", Component: "c", Attributes: map[string]plan.Expr{"msg": {Source: `"db"`}}},
			}},
			{Name: "workers", Group: true, Labels: map[string]string{"role": "w"}, Components: []*plan.Instance{
				{Name: "app", Component: "c", Attributes: map[string]plan.Expr{"msg": {Source: `self.name`}}},
			}},
		}},
	}
	return m
}

// groupHarness registers db1, db2 (role db) and w1..w3 (role w), pushes
// groupModule and stages service "g".
func groupHarness(t *testing.T) *fsmHarness {
	h := newHarness(t)
	for _, n := range []struct{ name, role string }{{"db1", "db"}, {"db2", "db"}, {"w1", "w"}, {"w2", "w"}, {"w3", "w"}} {
		h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: n.name, Labels: map[string]string{"role": n.role}}, Time: 1})
	}
	h.mustApply(PutModuleType, PutModuleCmd{Module: groupModule()})
	h.mustApply(StageServiceType, StageServiceCmd{Name: "g", Module: "g", Version: "1.0.0", Template: "t", Time: 2})
	return h
}

// agentsOf lists the agents of a service's plan with the step IDs each has.
func agentsOf(h *fsmHarness, svc string) map[string][]string {
	out := map[string][]string{}
	for _, np := range h.fsm.State().Service(svc).Plan.Nodes {
		out[np.Agent] = stepIDs(np.Steps)
	}
	return out
}

// reportAll reports every step of the service's current plan ok, from the
// agents named (all when none is).
func (h *fsmHarness) reportAll(svc string, agents ...string) {
	h.t.Helper()
	for _, np := range h.fsm.State().Service(svc).Plan.Nodes {
		if len(agents) > 0 && !slices.Contains(agents, np.Agent) {
			continue
		}
		for _, st := range np.Steps {
			h.seq++
			h.mustApply(ReportsType, ReportsCmd{Time: 100, Reports: []plan.Report{{
				ID: np.Agent + ":" + strconv.Itoa(h.seq), Node: np.Agent, Service: svc, StepID: st.ID, Action: st.Action,
				Generation: st.Generation, Digest: st.Digest, State: plan.StepOK,
			}}})
		}
	}
}

// Deleting one member of a node group (by its agent) undoes that member
// only; the other members keep their steps, in this and later deploys.
func TestFSM_DeletePart_OneGroupMemberLeavesTheOthers(t *testing.T) {
	h := groupHarness(t)
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	h.reportAll("g")
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "g", Node: "w2"})
	got := agentsOf(h, "g")
	if ids := got["w2"]; len(ids) != 1 || ids[0] != "g/workers[w2]/app/delete" {
		t.Fatalf("w2 after delete --node w2: %v", ids)
	}
	for _, w := range []string{"w1", "w3"} {
		if ids := got[w]; len(ids) != 1 || ids[0] != "g/workers["+w+"]/app/create" {
			t.Fatalf("%s after delete --node w2: %v (the survivors must stay)", w, ids)
		}
	}
	h.reportAll("g", "w2")
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	got = agentsOf(h, "g")
	if _, ok := got["w2"]; ok {
		t.Fatalf("a later deploy put w2 back: %v", got)
	}
	for _, w := range []string{"w1", "w3"} {
		if ids := got[w]; len(ids) != 1 || ids[0] != "g/workers["+w+"]/app/create" {
			t.Fatalf("a later deploy undid member %s: %v", w, got)
		}
	}
	// The whole group by its template name still goes as a whole.
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "g", Node: "workers"})
	for _, w := range []string{"w1", "w3"} {
		if ids := agentsOf(h, "g")[w]; len(ids) != 1 || ids[0] != "g/workers["+w+"]/app/delete" {
			t.Fatalf("%s after delete --node workers: %v", w, ids)
		}
	}
}

// A down agent gets no new placement; one that already holds a template
// node keeps it. A down group member is reported, not waited for.
func TestFSM_Placement_DownNodesGetNothingNew(t *testing.T) {
	h := groupHarness(t)
	h.mustApply(NodeStatusType, NodeStatusCmd{Time: 3, Updates: []NodeStatusUpdate{{Name: "db1", Status: plan.NodeDown}, {Name: "w3", Status: plan.NodeDown}}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	got := agentsOf(h, "g")
	if _, ok := got["db1"]; ok {
		t.Fatalf("the db node went to down db1: %v", got)
	}
	if _, ok := got["w3"]; ok {
		t.Fatalf("the group took down w3: %v", got)
	}
	if _, ok := got["db2"]; !ok {
		t.Fatalf("db2 should hold db: %v", got)
	}
	// Held placements stay when their agent goes down, and the service
	// converges without the down member.
	h.mustApply(NodeStatusType, NodeStatusCmd{Time: 4, Updates: []NodeStatusUpdate{{Name: "w3", Status: plan.NodeUp}}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	if _, ok := agentsOf(h, "g")["w3"]; !ok {
		t.Fatal("w3, up again, should join the group on the next deploy")
	}
	h.mustApply(NodeStatusType, NodeStatusCmd{Time: 5, Updates: []NodeStatusUpdate{{Name: "w3", Status: plan.NodeDown}}})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	if _, ok := agentsOf(h, "g")["w3"]; !ok {
		t.Fatal("w3 held its member and went down: it should keep it")
	}
	h.reportAll("g", "db2", "w1", "w2")
	st := h.fsm.State().Status("g")
	if st.State != plan.StateConverged {
		t.Fatalf("state with a down group member and everything else ok = %s, want converged", st.State)
	}
	for _, n := range st.Nodes {
		if n.Name == "w3" && (n.Status != plan.NodeDown || n.Steps[0].State != plan.StepPending) {
			t.Fatalf("the down member should show down and pending: %+v", n)
		}
	}
}

// Removing a node takes it out of every plan: a group shrinks, a node block
// moves to another agent, a delete stops waiting for it; what was kept for
// it goes.
func TestFSM_RemoveNode_PlansStopWaitingAndStateIsCollected(t *testing.T) {
	h := groupHarness(t)
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	h.reportAll("g", "db1", "w1", "w2")
	if st := h.fsm.State().Service("g").State; st != plan.StateDeploying {
		t.Fatalf("state = %s", st)
	}
	// w3 is gone for good: removed, the service converges without it.
	h.mustApply(RemoveNodeType, RemoveNodeCmd{Name: "w3", Time: 10})
	if _, ok := agentsOf(h, "g")["w3"]; ok {
		t.Fatal("w3 still in the plan after node remove")
	}
	if st := h.fsm.State().Service("g").State; st != plan.StateConverged {
		t.Fatalf("state after removing the missing member = %s, want converged", st)
	}
	// The db node's agent is collected: db moves to db2.
	h.mustApply(NodeStatusType, NodeStatusCmd{Time: 11, Updates: []NodeStatusUpdate{{Name: "db1", Status: plan.NodeDown}}})
	if err, _ := h.apply(RemoveNodeType, RemoveNodeCmd{Name: "db1", Time: 12, Collect: true, DownBefore: 1}).(error); err == nil {
		t.Fatal("collected a node seen after DownBefore")
	}
	h.mustApply(RemoveNodeType, RemoveNodeCmd{Name: "db1", Time: 12, Collect: true, DownBefore: 1000})
	st := h.fsm.State()
	if st.Node("db1") != nil {
		t.Fatal("db1 not collected")
	}
	got := agentsOf(h, "g")
	if _, ok := got["db2"]; !ok {
		t.Fatalf("db should move to db2: %v", got)
	}
	st.mu.RLock()
	_, seq := st.data.NodeSeq["db1"]
	_, si := st.data.SliceIndex["db1"]
	_, oi := st.data.OpsIndex["db1"]
	st.mu.RUnlock()
	if seq || si || oi {
		t.Fatalf("db1's indexes kept: seq %v slice %v ops %v", seq, si, oi)
	}
	// A collected node is not revoked: it may register again.
	if st.data.Trust.Removed["db1"] != 0 {
		t.Fatal("collecting a node must not revoke it")
	}
	// A delete no longer waits for a removed agent.
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "g"})
	h.reportAll("g", "db2", "w1")
	if h.fsm.State().Service("g") == nil {
		t.Fatal("deleted")
	}
	h.mustApply(RemoveNodeType, RemoveNodeCmd{Name: "w2", Time: 13})
	if svc := h.fsm.State().Service("g"); svc != nil {
		t.Fatalf("the delete still waits for removed w2: %+v", agentsOf(h, "g"))
	}
}

// The leader forgets nodes down for longer than NodeGCAfter.
func TestCluster_NodeGC_CollectsLongDownNodes(t *testing.T) {
	c := newTestClusterWith(t, 1, func(cfg *Config) { cfg.NodeGCAfter = time.Millisecond })
	srv := c.leader()
	c.peers.mu.Lock()
	c.peers.peers = append(c.peers.peers, gossip.Peer{Name: "here", Role: gossip.RoleAgent, Status: "alive"})
	c.peers.mu.Unlock()
	// Seen long ago and not in the gossip pool: down, then collected. (A
	// node not in the pool that was seen within nodeGossipGrace keeps
	// its status.)
	if _, err := srv.apply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "gone"}, Time: nowMS() - 2*nodeGossipGrace.Milliseconds()}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.apply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "here"}, Time: nowMS() - 1000}); err != nil {
		t.Fatal(err)
	}
	waitCond(t, "the down node collected", func() bool { return srv.State().Node("gone") == nil })
	if srv.State().Node("here") == nil {
		t.Fatal("an up node was collected")
	}
	b, _ := json.Marshal(srv.State().Nodes())
	t.Logf("nodes: %s", b)
}

// A module version goes only when no service uses it.
func TestFSM_DeleteModule_RefusedWhileUsed(t *testing.T) {
	h := newHarness(t)
	h.setup() // s stages m@1.0.0
	m2 := testModule()
	m2.Version, m2.Digest = "2.0.0", "sha256:"+strings.Repeat("c", 64)
	h.mustApply(PutModuleType, PutModuleCmd{Module: m2})
	if err, _ := h.apply(DeleteModuleType, DeleteModuleCmd{Name: "m", Version: "1.0.0"}).(error); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "service(s) s") {
		t.Fatalf("deleting a module a service uses: %v", err)
	}
	// Pinned by a lock.
	h.mustApply(StageServiceType, StageServiceCmd{Name: "pin", Module: "m", Version: "1.0.0", Template: "t", Lock: map[string]string{"m": "2.0.0"}, Time: 3})
	if err, _ := h.apply(DeleteModuleType, DeleteModuleCmd{Name: "m", Version: "2.0.0"}).(error); !errors.Is(err, ErrConflict) {
		t.Fatalf("deleting a module a lock pins: %v", err)
	}
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "pin"})
	h.mustApply(DeleteModuleType, DeleteModuleCmd{Name: "m", Version: "2.0.0"})
	if h.fsm.State().Module("m", "2.0.0") != nil {
		t.Fatal("module still there")
	}
	// Deployed, then being deleted: its steps still need the archive.
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s"})
	h.mustApply(DeleteServiceType, DeleteServiceCmd{Name: "s"})
	if err, _ := h.apply(DeleteModuleType, DeleteModuleCmd{Name: "m", Version: "1.0.0"}).(error); !errors.Is(err, ErrConflict) {
		t.Fatalf("deleting the module of a delete in progress: %v", err)
	}
	if err, _ := h.apply(DeleteModuleType, DeleteModuleCmd{Name: "m", Version: "9.9.9"}).(error); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting an unknown version: %v", err)
	}
}

// Blobs no module references go once they are older than the grace time;
// referenced and young ones stay.
func TestServer_CollectBlobs_KeepsReferencedAndYoung(t *testing.T) {
	c := newTestCluster(t, 1)
	srv := c.leader()
	put := func(content string) string {
		d, _, err := srv.blobs.Put(strings.NewReader(content), "")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	used, orphan, young := put("used"), put("orphan"), put("young")
	m := testModule()
	m.Digest = used
	if _, err := srv.apply(PutModuleType, PutModuleCmd{Module: m}); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour)
	for _, d := range []string{used, orphan} {
		p, _ := srv.blobs.path(d)
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	stale := filepath.Join(srv.blobs.dir, "upload-123")
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(stale, past, past)
	if n := srv.collectBlobs(time.Hour); n != 2 {
		t.Fatalf("collected %d, want 2 (the orphan and the stale upload)", n)
	}
	if !srv.blobs.Has(used) || !srv.blobs.Has(young) || srv.blobs.Has(orphan) {
		t.Fatalf("used %v young %v orphan %v", srv.blobs.Has(used), srv.blobs.Has(young), srv.blobs.Has(orphan))
	}
	// Once its module version is deleted, the archive goes too.
	if _, err := srv.apply(DeleteModuleType, DeleteModuleCmd{Name: m.Name, Version: m.Version}); err != nil {
		t.Fatal(err)
	}
	if n := srv.collectBlobs(time.Hour); n != 1 || srv.blobs.Has(used) {
		t.Fatalf("after module delete: collected %d, still has it: %v", n, srv.blobs.Has(used))
	}
}

// Logs operations hold whole step logs: only the newest few are kept, and
// none older than maxLogAge.
func TestFSM_LogsOps_BoundedInNumberAndAge(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.mustApply(CreateOpType, CreateOpCmd{Op: plan.Op{ID: "exec1", Kind: plan.OpExec, Service: "s", Created: 1}})
	for i := range 25 {
		h.mustApply(CreateOpType, CreateOpCmd{Op: plan.Op{ID: "logs" + strconv.Itoa(i), Kind: plan.OpLogs, Service: "s", Created: int64(1000 + i)}})
	}
	count := func() (logs int) {
		st := h.fsm.State()
		st.mu.RLock()
		defer st.mu.RUnlock()
		for _, o := range st.data.Ops {
			if o.Kind == plan.OpLogs {
				logs++
			}
		}
		return logs
	}
	if n := count(); n != maxLogOps+1 {
		t.Fatalf("%d logs ops kept, want %d", n, maxLogOps+1)
	}
	if h.fsm.State().Op("logs24") == nil || h.fsm.State().Op("logs0") != nil {
		t.Fatal("the newest should stay and the oldest go")
	}
	// Much later, the old ones have expired.
	h.mustApply(CreateOpType, CreateOpCmd{Op: plan.Op{ID: "late", Kind: plan.OpLogs, Service: "s", Created: 1000 + maxLogAge.Milliseconds() + 100}})
	if n := count(); n != 1 {
		t.Fatalf("%d logs ops after they expired, want 1", n)
	}
	if h.fsm.State().Op("exec1") == nil {
		t.Fatal("an exec op went with the logs")
	}
}

// A node the gossip pool does not list yet (it registered over the API a
// moment ago) is not marked down; one the pool reports failed is.
func TestCluster_NodeStatus_UnlistedRecentNodeStaysUp(t *testing.T) {
	c := newTestCluster(t, 1)
	srv := c.leader()
	c.peers.mu.Lock()
	c.peers.peers = append(c.peers.peers, gossip.Peer{Name: "dead", Role: gossip.RoleAgent, Status: "failed"})
	c.peers.mu.Unlock()
	for _, name := range []string{"fresh", "dead"} {
		if _, err := srv.apply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: name}, Time: nowMS()}); err != nil {
			t.Fatal(err)
		}
	}
	waitCond(t, "the failed node marked down", func() bool { return srv.State().Node("dead").Status == plan.NodeDown })
	// The leader has reconciled since: the fresh one is still up.
	srv.reconcileNodes()
	if st := srv.State().Node("fresh").Status; st != plan.NodeUp {
		t.Fatalf("a node registered a moment ago and not yet in the pool is %s", st)
	}
}

// Once leader recompiles are on, collecting a node compiles nothing in
// Apply: the node's part goes at once and the service is marked; the
// leader's recompile moves the db block to db2.
func TestFSM_RemoveNode_LeaderPlacesTheBlocksAgain(t *testing.T) {
	h := groupHarness(t)
	h.startRecompiles()
	commitMarked(t, h)
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	h.reportAll("g", "db1", "w1", "w2")
	h.mustApply(NodeStatusType, NodeStatusCmd{Time: 11, Updates: []NodeStatusUpdate{{Name: "db1", Status: plan.NodeDown}}})
	swapCompile(t, noCompile(t))
	h.mustApply(RemoveNodeType, RemoveNodeCmd{Name: "db1", Time: 12, Collect: true, DownBefore: 1000})
	got := agentsOf(h, "g")
	if _, ok := got["db1"]; ok {
		t.Fatalf("db1 still in the plan once collected: %v", got)
	}
	if _, ok := got["db2"]; ok {
		t.Fatalf("db placed again in Apply: %v", got)
	}
	if names := h.fsm.State().marked(); !slices.Contains(names, "g") {
		t.Fatalf("g not marked for the leader: %v", names)
	}
	swapCompile(t, plan.Compile)
	commitMarked(t, h)
	if _, ok := agentsOf(h, "g")["db2"]; !ok {
		t.Fatalf("db should move to db2 with the leader's recompile: %v", agentsOf(h, "g"))
	}
}
