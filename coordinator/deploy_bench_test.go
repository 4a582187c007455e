package coordinator

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/gossip"

	"github.com/dtkhq/dtk/plan"
)

// BenchmarkFSM_Deploy_1000Nodes times one deploy entry's Apply (compile,
// plan, history record) over a node group of 1,000 agents: every replica
// pays it.
func BenchmarkFSM_Deploy_1000Nodes(b *testing.B) { benchDeploy(b, 1000) }

// BenchmarkFSM_Deploy_5000Nodes is BenchmarkFSM_Deploy_1000Nodes over 5,000.
func BenchmarkFSM_Deploy_5000Nodes(b *testing.B) { benchDeploy(b, 5000) }

func benchDeploy(b *testing.B, n int) {
	h := groupHarnessOf(b, n)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	}
}

// groupHarnessOf is an FSM with groupEntries(n) applied.
func groupHarnessOf(b *testing.B, n int) *fsmHarness {
	h := newHarness(b)
	for _, e := range groupEntries(n) {
		h.mustApply(e.typ, e.cmd)
	}
	return h
}

// groupEntries register n workers (role w) and db1, push groupModule and
// stage service "g".
func groupEntries(n int) []logEntry {
	var log []logEntry
	for i := range n {
		log = append(log, logEntry{RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: fmt.Sprintf("w%04d", i), Labels: map[string]string{"role": "w"}}, Time: 1}})
	}
	return append(log,
		logEntry{RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "db1", Labels: map[string]string{"role": "db"}}, Time: 1}},
		logEntry{PutModuleType, PutModuleCmd{Module: groupModule()}},
		logEntry{StageServiceType, StageServiceCmd{Name: "g", Module: "g", Version: "1.0.0", Template: "t", Time: 2}})
}

// BenchmarkFSM_PlannedDeploy_Apply_1000Nodes times a replica's Apply of
// a planned deploy (decode and store, no compile) of 1,000 agents; the
// leader's plan and its encoding are not timed. entry-bytes is the size
// of the log entry.
func BenchmarkFSM_PlannedDeploy_Apply_1000Nodes(b *testing.B) { benchPlannedApply(b, 1000) }

// BenchmarkFSM_PlannedDeploy_Apply_5000Nodes: the same over 5,000.
func BenchmarkFSM_PlannedDeploy_Apply_5000Nodes(b *testing.B) { benchPlannedApply(b, 5000) }

func benchPlannedApply(b *testing.B, n int) {
	h := groupHarnessOf(b, n)
	h.startPlanning()
	size := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		data, err := Encode(PlannedDeployType, h.fsm.State().PlanDeploy(DeployServiceCmd{Name: "g"}))
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
		h.index++
		l := &raft.Log{Index: h.index, Type: raft.LogCommand, Data: data}
		b.StartTimer()
		if err, ok := h.fsm.Apply(l).(error); ok {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size), "entry-bytes")
}

// BenchmarkState_PlanDeploy_1000Nodes times the leader's plan of a deploy
// of 1,000 agents: the read of the state, the compile and the entry's
// encoding.
func BenchmarkState_PlanDeploy_1000Nodes(b *testing.B) { benchPlan(b, 1000) }

// BenchmarkState_PlanDeploy_5000Nodes: the same over 5,000.
func BenchmarkState_PlanDeploy_5000Nodes(b *testing.B) { benchPlan(b, 5000) }

func benchPlan(b *testing.B, n int) {
	h := groupHarnessOf(b, n)
	h.startPlanning() // before it, PlanDeploy compiles nothing
	b.ResetTimer()
	for b.Loop() {
		pc := h.fsm.State().PlanDeploy(DeployServiceCmd{Name: "g"})
		if pc.Plan == nil {
			b.Fatal("no plan")
		}
		if _, err := Encode(PlannedDeployType, pc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCluster_Deploy_*: the deploy call (Server.applyDeploy) on the
// leader of a 3-coordinator cluster (real Raft, in-memory transport), with
// the deploy planned on the leader or, as a cluster with an older
// coordinator does, compiled in every replica's Apply.
func BenchmarkCluster_Deploy_1000Nodes_Planned(b *testing.B) { benchClusterDeploy(b, 1000, true) }
func BenchmarkCluster_Deploy_1000Nodes_InApply(b *testing.B) { benchClusterDeploy(b, 1000, false) }
func BenchmarkCluster_Deploy_5000Nodes_Planned(b *testing.B) { benchClusterDeploy(b, 5000, true) }
func BenchmarkCluster_Deploy_5000Nodes_InApply(b *testing.B) { benchClusterDeploy(b, 5000, false) }

func benchClusterDeploy(b *testing.B, n int, planned bool) {
	c := newTestCluster(b, 3)
	l := c.leader()
	c.peers.mu.Lock()
	for i := range c.peers.peers {
		if !planned {
			c.peers.peers[i].Features = ""
		}
	}
	for _, e := range groupEntries(n) { // the agents are alive in gossip
		if r, ok := e.cmd.(RegisterNodeCmd); ok {
			c.peers.peers = append(c.peers.peers, gossip.Peer{Name: r.Node.Name, Role: gossip.RoleAgent, Status: "alive"})
		}
	}
	c.peers.mu.Unlock()
	applyAll(b, l, groupEntries(n))
	if planned {
		startPlanning(b, l)
	}
	c.converge(c.servers...)
	b.ResetTimer()
	for b.Loop() {
		_, err := l.applyDeploy(DeployServiceCmd{Name: "g"})
		if errors.Is(err, ErrNotLeader) { // the shared machine stalls a heartbeat
			l = c.leader()
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.converge(c.servers...)
}
