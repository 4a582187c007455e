package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/gossip"
)

// testCluster is an in-process cluster of coordinators on Raft's in-memory
// transport with short timers; HTTP is real (loopback, kernel-chosen ports)
// so that forwarding is exercised as in production.
type testCluster struct {
	t       testing.TB
	servers []*Server
	trans   []*raft.InmemTransport
	peers   *fakePeers
}

// fakePeers stands in for the gossip pool.
type fakePeers struct {
	mu    sync.Mutex
	peers []gossip.Peer
}

func (f *fakePeers) Peers() []gossip.Peer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]gossip.Peer(nil), f.peers...)
}

func (f *fakePeers) Join(addrs []string) (int, error) { return 0, nil }

func (f *fakePeers) setStatus(name, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.peers {
		if f.peers[i].Name == name {
			f.peers[i].Status = status
		}
	}
}

func newTestCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, nil)
}

// newTestClusterWith is newTestCluster with each server's configuration
// changed by tweak before it starts.
func newTestClusterWith(t testing.TB, n int, tweak func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, peers: &fakePeers{}}
	for i := 0; i < n; i++ {
		_, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("c%d", i)))
		c.trans = append(c.trans, tr)
	}
	for i, a := range c.trans {
		for j, b := range c.trans {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	var cfg raft.Configuration
	for i := 0; i < n; i++ {
		sc := Config{
			Name: fmt.Sprintf("c%d", i), DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0",
			BootstrapExpect: n, Fast: true, RaftInMemory: true, RaftTransport: c.trans[i],
		}
		if tweak != nil {
			tweak(&sc)
		}
		s, err := New(sc)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(context.Background()) })
		c.servers = append(c.servers, s)
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(s.cfg.Name), Address: c.trans[i].LocalAddr()})
		c.peers.peers = append(c.peers.peers, gossip.Peer{
			Name: s.cfg.Name, Role: gossip.RoleCoordinator, Status: "alive",
			HTTPAddr: s.HTTPAddr(), RaftAddr: string(c.trans[i].LocalAddr()), Features: strings.Join(features, ","),
		})
	}
	for _, s := range c.servers {
		if err := s.bootstrap(cfg.Servers); err != nil {
			t.Fatal(err)
		}
		s.SetPeers(c.peers)
	}
	return c
}

// leader waits for a leader among the connected servers and returns it.
func (c *testCluster) leader(except ...*Server) *Server {
	c.t.Helper()
	var found *Server
	waitCond(c.t, "a leader", func() bool {
	next:
		for _, s := range c.servers {
			for _, e := range except {
				if s == e {
					continue next
				}
			}
			if s.raft.State() == raft.Leader {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// follower is a server other than l.
func (c *testCluster) follower(l *Server) *Server {
	for _, s := range c.servers {
		if s != l {
			return s
		}
	}
	c.t.Fatal("no follower")
	return nil
}

func (c *testCluster) index(s *Server) int {
	for i, x := range c.servers {
		if x == s {
			return i
		}
	}
	return -1
}

// partition cuts a server off from every other.
func (c *testCluster) partition(s *Server) {
	i := c.index(s)
	c.trans[i].DisconnectAll()
	for j, tr := range c.trans {
		if j != i {
			tr.Disconnect(c.trans[i].LocalAddr())
		}
	}
	c.peers.setStatus(s.cfg.Name, "failed")
}

// heal reconnects a partitioned server.
func (c *testCluster) heal(s *Server) {
	i := c.index(s)
	for j, tr := range c.trans {
		if j != i {
			tr.Connect(c.trans[i].LocalAddr(), c.trans[i])
			c.trans[i].Connect(tr.LocalAddr(), tr)
		}
	}
	c.peers.setStatus(s.cfg.Name, "alive")
}

func waitCond(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stateJSON(s *Server) string {
	s.fsm.state.mu.RLock()
	defer s.fsm.state.mu.RUnlock()
	d := s.fsm.state.data
	d.Index = 0 // servers apply the same entries; compare content
	b, _ := json.Marshal(d)
	return string(b)
}

// converge waits until every listed server holds the same state as the first.
func (c *testCluster) converge(servers ...*Server) {
	c.t.Helper()
	waitCond(c.t, "replicas to agree", func() bool {
		want := stateJSON(servers[0])
		for _, s := range servers[1:] {
			if stateJSON(s) != want {
				return false
			}
		}
		return true
	})
}

func TestCluster_LeaderElection_NewLeaderAfterPartition(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.leader()
	c.partition(old)
	nl := c.leader(old)
	if nl == old {
		t.Fatal("the partitioned server is still the only leader")
	}
	c.heal(old)
	waitCond(t, "old leader steps down", func() bool { return old.raft.State() != raft.Leader || nl.raft.State() != raft.Leader })
}

func TestCluster_Forwarding_WritesThroughFollowers(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	ctx := context.Background()
	for _, s := range c.servers {
		if s == l {
			continue
		}
		cl := api.NewClient(s.HTTPAddr())
		if err := cl.RegisterNode(ctx, nodeWith("via-"+s.cfg.Name, "web")); err != nil {
			t.Fatalf("write through follower %s: %v", s.cfg.Name, err)
		}
		// A write answered 2xx is committed: the leader has it at once.
		if l.State().Node("via-"+s.cfg.Name) == nil {
			t.Fatalf("write through %s acknowledged but not on the leader", s.cfg.Name)
		}
	}
	c.converge(c.servers...)
}

func TestCluster_Forwarding_WaitsOutAnElection(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.leader()
	var follower *Server
	for _, s := range c.servers {
		if s != old {
			follower = s
			break
		}
	}
	c.partition(old)
	// Sent right away, while the survivors have no leader yet: the follower
	// holds the request until one is elected instead of failing it.
	err := api.NewClient(follower.HTTPAddr()).RegisterNode(context.Background(), nodeWith("during-election", "web"))
	if err != nil {
		t.Fatalf("write during election: %v", err)
	}
	nl := c.leader(old)
	if nl.State().Node("during-election") == nil {
		t.Fatal("acknowledged write missing on the new leader")
	}
}

func TestCluster_FSM_SameStateAcrossLeaderChange(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx := context.Background()
	l := c.leader()
	push(t, l, "../examples/hello")
	cl := api.NewClient(l.HTTPAddr())
	for _, n := range []struct{ name, role string }{{"w", "web"}, {"d", "db"}} {
		if err := cl.RegisterNode(ctx, nodeWith(n.name, n.role)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.Stage(ctx, api.StageRequest{Name: "demo", Template: "hello/site"}); err != nil {
		t.Fatal(err)
	}
	c.partition(l)
	nl := c.leader(l)
	ncl := api.NewClient(nl.HTTPAddr())
	if _, err := ncl.Deploy(ctx, "demo"); err != nil {
		t.Fatalf("deploy on the new leader: %v", err)
	}
	c.heal(l)
	c.converge(c.servers...)
	for _, s := range c.servers {
		if st := s.State().Status("demo"); st == nil || st.Generation != 1 {
			t.Fatalf("%s: demo = %+v", s.cfg.Name, st)
		}
	}
}

func TestCluster_SnapshotSaveRestore_IntoFreshCluster(t *testing.T) {
	ctx := context.Background()
	src := newTestCluster(t, 3)
	l := src.leader()
	push(t, l, "../examples/hello")
	cl := api.NewClient(l.HTTPAddr())
	cl.RegisterNode(ctx, nodeWith("w", "web"))
	cl.RegisterNode(ctx, nodeWith("d", "db"))
	cl.Stage(ctx, api.StageRequest{Name: "demo", Template: "hello/site"})
	if _, err := cl.Deploy(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	// Save through a follower: it is answered by the leader.
	follower := src.follower(l)
	var snap bytes.Buffer
	if _, err := api.NewClient(follower.HTTPAddr()).SnapshotSave(ctx, &snap); err != nil {
		t.Fatal(err)
	}

	dst := newTestCluster(t, 3)
	dl := dst.leader()
	if _, err := api.NewClient(dl.HTTPAddr()).SnapshotRestore(ctx, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	dst.converge(dst.servers...)
	for _, s := range dst.servers {
		st := s.State().Status("demo")
		if st == nil || st.Generation != 1 || len(s.State().Nodes()) != 2 {
			t.Fatalf("%s after restore: %+v", s.cfg.Name, st)
		}
		m := s.State().Module("hello", "1.0.0")
		waitCond(t, "blob on "+s.cfg.Name, func() bool { return s.blobs.Has(m.Digest) })
	}
	// Agents must pull again: slice indexes moved past the restore.
	if sl := dl.State().Slice("w"); sl.Index <= snapshotIndex(t, snap.Bytes()) {
		t.Fatalf("slice index %d not moved past the snapshot's", sl.Index)
	}

	// A truncated snapshot is refused and changes nothing.
	before := stateJSON(dl)
	_, err := api.NewClient(dl.HTTPAddr()).SnapshotRestore(ctx, bytes.NewReader(snap.Bytes()[:snap.Len()/2]))
	if ae, ok := err.(*api.APIError); !ok || ae.Code != http.StatusBadRequest {
		t.Fatalf("truncated snapshot: %v", err)
	}
	if stateJSON(dl) != before {
		t.Fatal("a refused restore changed the state")
	}
}

func TestCluster_Reconcile_NewCoordinatorJoinsAsVoterAndLeftOneIsRemoved(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	// A fourth coordinator appears in the pool.
	_, tr := raft.NewInmemTransport("c3")
	for _, o := range c.trans {
		o.Connect(tr.LocalAddr(), tr)
		tr.Connect(o.LocalAddr(), o)
	}
	s, err := New(Config{Name: "c3", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", BootstrapExpect: 3, Fast: true, RaftInMemory: true, RaftTransport: tr})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	c.peers.mu.Lock()
	c.peers.peers = append(c.peers.peers, gossip.Peer{Name: "c3", Role: gossip.RoleCoordinator, Status: "alive", HTTPAddr: s.HTTPAddr(), RaftAddr: "c3"})
	c.peers.mu.Unlock()
	s.SetPeers(c.peers)
	l.Notify()
	waitCond(t, "c3 becomes a voter", func() bool { return suffrage(l, "c3") == raft.Voter })

	// It leaves gracefully: the leader removes it.
	c.peers.setStatus("c3", "left")
	l.Notify()
	waitCond(t, "c3 removed", func() bool { return suffrage(l, "c3") == -1 })
}

func suffrage(s *Server, id string) raft.ServerSuffrage {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return -1
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == id {
			return srv.Suffrage
		}
	}
	return -1
}

func push(t *testing.T, s *Server, dir string) {
	t.Helper()
	tgz, err := archive.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.NewClient(s.HTTPAddr()).PushModule(context.Background(), tgz, ""); err != nil {
		t.Fatal(err)
	}
}

func snapshotIndex(t *testing.T, b []byte) uint64 {
	t.Helper()
	m, err := decodeSnapshotMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return m.Index
}
