package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dtkhq/dtk/coordinator"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/tlsutil"
	"github.com/dtkhq/dtk/plan"
)

// TestProfileWritePath runs figure 6's load against one in-process
// coordinator (in-memory Raft store, mutual TLS as shipped: a server
// certificate for it, an operator certificate for the set-up, a node
// certificate per reporting client) so that its CPU profile can be taken:
//
//	DTK_PROFILE=1 go test -run ProfileWritePath -cpuprofile cpu.out ./bench/
//
// Skipped unless DTK_PROFILE is set; make bench measures the real thing.
func TestProfileWritePath(t *testing.T) {
	if testing.Short() || !profiling() {
		t.Skip("set DTK_PROFILE=1 to run")
	}
	const n = 1000
	pki, err := NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pki.Store(tlsutil.RoleServer, "c1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := coordinator.New(coordinator.Config{Name: "c1", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", RaftInMemory: true, TLS: srv})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	ctx := context.Background()
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	cl := pki.Operator(s.HTTPAddr())
	dir := t.TempDir()
	if err := FleetModule(dir, []int{n}); err != nil {
		t.Fatal(err)
	}
	if _, err := PushModule(cl, dir); err != nil {
		t.Fatal(err)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = SimName(i + 1)
	}
	stores, err := pki.NodeStores(names)
	if err != nil {
		t.Fatal(err)
	}
	// A node registers itself: only its own certificate may.
	for i := 1; i <= n; i++ {
		nc := pki.Client(stores[i-1], s.HTTPAddr())
		if err := nc.RegisterNode(ctx, &plan.Node{Name: SimName(i), Labels: map[string]string{"bench_id": fmt.Sprintf("%05d", i)}}); err != nil {
			t.Fatal(err)
		}
		nc.HTTP.CloseIdleConnections()
	}
	svc := "fleet-1000"
	if _, err := cl.Stage(ctx, api.StageRequest{Name: svc, Template: "benchfleet/fleet1000"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Deploy(ctx, svc); err != nil {
		t.Fatal(err)
	}
	reports := make([]plan.Report, n)
	for i := 1; i <= n; i++ {
		sl := s.State().Slice(SimName(i))
		st := sl.Steps[0]
		reports[i-1] = plan.Report{Node: SimName(i), Service: svc, StepID: st.ID, Action: st.Action, Generation: st.Generation, Digest: st.Digest, State: plan.StepOK}
	}
	var count atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(5 * time.Second)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := pki.Client(stores[i], s.HTTPAddr())
			r := reports[i]
			for seq := 1; time.Now().Before(end); seq++ {
				r.ID = fmt.Sprintf("%s:%d", r.Node, seq)
				if _, err := c.Reports(ctx, r.Node, []plan.Report{r}); err == nil {
					count.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d reports in 5 s: %.0f/s", count.Load(), float64(count.Load())/5)
}
