package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/gossip"
	"github.com/dtkhq/dtk/plan"
)

// reportRequests is how many requests s answered on an agents' report
// route, and on the route between coordinators, with 200.
func reportRequests(s *Server) (agents, batches uint64) {
	return s.metrics.requests.With("POST", "/v1/nodes/{name}/reports", "200").Get(),
		s.metrics.requests.With("POST", forwardedReportsPath, "200").Get()
}

// nodeSeq is the highest report sequence s has applied for node (reports
// with IDs "node:seq").
func nodeSeq(s *Server, node string) uint64 {
	st := s.State()
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.data.NodeSeq[seqKey(node, "")]
}

// postReportsConcurrently has n agents post one report each to s at once
// and fails the test unless every one is acknowledged.
func postReportsConcurrently(t *testing.T, s *Server, prefix string, n int) {
	t.Helper()
	cl := api.NewClient(s.HTTPAddr())
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := fmt.Sprintf("%s-%d", prefix, i)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := cl.Reports(ctx, node, []plan.Report{{ID: node + ":1", Node: node, Service: "none", StepID: "s", State: plan.StepOK}})
			if err == nil && (out.Applied != 1 || out.Index == 0) {
				err = fmt.Errorf("%s: answered %+v", node, out)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Reports posted to a follower reach the leader in batches, not one
// request per agent, and each is committed when it is acknowledged.
func TestCluster_Reports_FollowerBatchesToLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	f := c.follower(l)
	waitCond(t, "the follower to know the leader's features", f.leaderBatchesReports)
	const n = 40
	postReportsConcurrently(t, f, "via", n)
	// Acknowledged means committed: the leader has applied every one.
	for i := range n {
		node := fmt.Sprintf("via-%d", i)
		if seq := nodeSeq(l, node); seq != 1 {
			t.Fatalf("%s acknowledged but the leader's sequence for it is %d", node, seq)
		}
	}
	agents, batches := reportRequests(l)
	if agents != 0 {
		t.Errorf("the leader served %d agents' report requests itself; want 0 (the follower batches them)", agents)
	}
	if batches == 0 || batches > n {
		t.Errorf("the leader took %d batches for %d reports; want 1..%d", batches, n, n)
	}
	if fa, _ := reportRequests(f); fa != n {
		t.Errorf("the follower answered %d report requests; want %d", fa, n)
	}
}

// A leader that does not take batches (an older coordinator, during a
// rolling upgrade) gets each agent's request forwarded as before.
func TestCluster_Reports_OlderLeaderGetsEachRequest(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	c.peers.mu.Lock()
	for i := range c.peers.peers {
		if c.peers.peers[i].Name == l.cfg.Name {
			c.peers.peers[i].Features = FeaturePlannedDeploy
		}
	}
	c.peers.mu.Unlock()
	f := c.follower(l)
	if f.leaderBatchesReports() {
		t.Fatal("the follower believes the leader takes batches")
	}
	const n = 5
	postReportsConcurrently(t, f, "old", n)
	if agents, batches := reportRequests(l); agents != n || batches != 0 {
		t.Errorf("the leader served %d agents' requests and %d batches; want %d and 0", agents, batches, n)
	}
}

// Only coordinators may send a batch of reports: an agent would otherwise
// report for any node.
func TestCluster_Reports_BatchRouteIsForCoordinators(t *testing.T) {
	for _, rt := range startServer(t).routes {
		if rt.pattern == forwardedReportsRoute && rt.access != accessServer {
			t.Fatalf("%s needs access %d, want accessServer", rt.pattern, rt.access)
		}
	}
}

// A follower answers a batch with 503 (the sender tries the leader), and
// never forwards it on: the leader would take it from a coordinator that
// speaks for someone else.
func TestCluster_Reports_FollowerRefusesBatch(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	for _, s := range c.servers {
		if s == l {
			continue
		}
		code, out := doJSON(t, "POST", "http://"+s.HTTPAddr()+forwardedReportsPath, `{"reports":[{"id":"x:1","node":"x","service":"none","step_id":"s","state":"ok"}]}`)
		if code != 503 || !strings.Contains(fmt.Sprint(out["error"]), "leader") {
			t.Fatalf("%s answered a batch with %d %v; want 503", s.cfg.Name, code, out)
		}
	}
	if _, batches := reportRequests(l); batches != 0 {
		t.Fatalf("the leader took %d batches sent to followers", batches)
	}
}

// sentBatches records what a forwarder sent.
type sentBatches struct {
	mu      sync.Mutex
	batches [][]plan.Report
	err     error
}

func (s *sentBatches) send(_ context.Context, reports []plan.Report) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, reports)
	return uint64(len(s.batches)), s.err
}

func queued(n int, size int64) []*batchReq {
	out := make([]*batchReq, n)
	for i := range out {
		out[i] = &batchReq{reports: []plan.Report{{ID: fmt.Sprintf("n%d:1", i), Node: fmt.Sprintf("n%d", i)}}, size: size, done: make(chan batchResult, 1)}
	}
	return out
}

// A batch holds what arrived together, up to limits.report_body_bytes of
// requests; a request of unknown size goes alone; what is still queued at
// shutdown is refused (the agent sends it again).
func TestReportForwarder_BatchesBoundedBySize(t *testing.T) {
	sent := &sentBatches{}
	f := &reportForwarder{in: make(chan *batchReq, 64), send: sent.send, maxBytes: 1000, window: time.Hour}
	reqs := queued(21, 100)
	for _, r := range reqs {
		f.in <- r
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { f.run(stop); close(done) }()
	for _, r := range reqs[:20] {
		res := <-r.done
		if res.err != nil || res.applied != 1 || res.index == 0 {
			t.Fatalf("%s: %+v", r.reports[0].ID, res)
		}
	}
	close(stop)
	<-done
	if res := <-reqs[20].done; !errors.Is(res.err, ErrNotLeader) {
		t.Fatalf("request queued at shutdown: %+v, want ErrNotLeader", res)
	}
	if len(sent.batches) != 2 || len(sent.batches[0]) != 10 || len(sent.batches[1]) != 10 {
		t.Fatalf("sent %d batches (%v); want 2 of 10 reports", len(sent.batches), sent.batches)
	}

	// A request without a known size is a batch of its own.
	sent = &sentBatches{}
	f = &reportForwarder{in: make(chan *batchReq, 64), send: sent.send, maxBytes: 1000, window: time.Hour}
	go func() {
		_, _, err := f.submit(context.Background(), []plan.Report{{ID: "u:1", Node: "u"}}, -1)
		if err != nil {
			t.Error(err)
		}
	}()
	waitCond(t, "the request of unknown size queued", func() bool { return len(f.in) == 1 })
	reqs = queued(1, 100)
	f.in <- reqs[0]
	stop, done = make(chan struct{}), make(chan struct{})
	go func() { f.run(stop); close(done) }()
	waitCond(t, "the first batch sent", func() bool { sent.mu.Lock(); defer sent.mu.Unlock(); return len(sent.batches) == 1 })
	close(stop)
	<-done
	if len(sent.batches[0]) != 1 || sent.batches[0][0].ID != "u:1" {
		t.Fatalf("first batch %v; want the request of unknown size alone", sent.batches[0])
	}
}

// When the leader refuses a batch, every request in it gets the refusal.
func TestReportForwarder_FailureReachesEveryRequest(t *testing.T) {
	sent := &sentBatches{err: &api.APIError{Code: 400, Message: "no"}}
	f := &reportForwarder{in: make(chan *batchReq, 64), send: sent.send, maxBytes: 1000, window: time.Millisecond}
	reqs := queued(10, 100)
	for _, r := range reqs {
		f.in <- r
	}
	stop := make(chan struct{})
	defer close(stop)
	go f.run(stop)
	for _, r := range reqs {
		if res := <-r.done; res.err == nil || !strings.Contains(res.err.Error(), "no") {
			t.Fatalf("%s: %+v, want the leader's refusal", r.reports[0].ID, res)
		}
	}
}

// countingPeers counts how often the gossip pool is listed.
type countingPeers struct {
	pool Peers
	n    atomic.Int64
}

func (c *countingPeers) Peers() []gossip.Peer {
	c.n.Add(1)
	return c.pool.Peers()
}

func (c *countingPeers) Join(addrs []string) (int, error) { return c.pool.Join(addrs) }

// A follower does not list the gossip pool (every agent is a member) for
// each report it receives to find the leader and its features.
func TestCluster_Reports_FollowerListsPoolOncePerLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	f := c.follower(l)
	cp := &countingPeers{pool: c.peers}
	f.SetPeers(cp)
	waitCond(t, "the follower to know the leader's features", f.leaderBatchesReports)
	before := cp.n.Load()
	const n = 100
	postReportsConcurrently(t, f, "pool", n)
	// maintain lists the pool once a second on its own.
	if listed := cp.n.Load() - before; listed >= n/4 {
		t.Fatalf("the follower listed the gossip pool %d times for %d reports", listed, n)
	}
}
