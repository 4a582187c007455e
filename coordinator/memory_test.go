package coordinator

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/tlsutil"
	"github.com/dtkhq/dtk/plan"
)

// Each connected agent holds two long-polls (plan and ops); what each one
// keeps while it waits is paid once per agent (docs/performance.md,
// "Memory per connected agent").

func TestWaitDone_StartsNoGoroutine(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := httptest.NewRequest("GET", "/v1/nodes/n/plan?index=1&wait=5m", nil).WithContext(ctx)
	const n = 200
	before := runtime.NumGoroutine()
	var stops []func()
	for range n {
		_, stop := waitDone(r, 5*time.Minute)
		stops = append(stops, stop)
	}
	grew := runtime.NumGoroutine() - before
	for _, stop := range stops {
		stop()
	}
	if grew > n/10 {
		t.Fatalf("%d waits started %d goroutines; want none (a goroutine per long-poll)", n, grew)
	}
}

func TestWaitDone_ClosesOnTimeoutAndOnClientGone(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	done, stop := waitDone(r, 10*time.Millisecond)
	defer stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not closed after the wait")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done, stop = waitDone(r.WithContext(ctx), time.Hour)
	defer stop()
	select {
	case <-done:
		t.Fatal("closed before the wait or the client's going")
	default:
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not closed when the client went away")
	}
}

// The server's HPACK table for a connection's request headers is as large
// as the SETTINGS_HEADER_TABLE_SIZE it announces.
func TestServer_HTTP2Settings_SmallHeaderTable(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServer(t, p)
	cfg := p.store(tlsutil.RoleNode, "n1").ClientConfig()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", s.HTTPAddr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The client preface and an empty SETTINGS frame.
	if _, err := conn.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)); err != nil {
		t.Fatal(err)
	}
	for {
		var hdr [9]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			t.Fatal(err)
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		body := make([]byte, n)
		if _, err := io.ReadFull(conn, body); err != nil {
			t.Fatal(err)
		}
		if hdr[3] != 4 || hdr[4]&1 != 0 { // not SETTINGS, or an ACK
			continue
		}
		for i := 0; i+6 <= len(body); i += 6 {
			id := binary.BigEndian.Uint16(body[i:])
			v := binary.BigEndian.Uint32(body[i+2:])
			if id == 1 { // SETTINGS_HEADER_TABLE_SIZE
				if v > 512 {
					t.Fatalf("header table size %d; want at most 512 (4 KiB per connected agent by default)", v)
				}
				return
			}
		}
		t.Fatal("the server's SETTINGS do not bound the header table (the default is 4 KiB)")
	}
}

// A service deployed many times keeps one plan, not one per kept
// generation: with one node per agent, ten plans were most of what the
// fleet's state cost per agent. Reverting, by hand or automatically, still
// works from what is kept.
func TestRollout_KeptGenerations_HoldOnlyTheirConfigurationPastTheNewestConverged(t *testing.T) {
	h := rolloutHarness(t, 3, nil)
	for g := 2; g <= 12; g++ {
		h.redeploy(fmt.Sprintf("g%d", g), nil, int64(10*g))
		for _, a := range []string{"w1", "w2", "w3"} {
			h.reportSlice(a, plan.StepOK, int64(10*g+1))
		}
	}
	st := h.fsm.State()
	recs := st.data.Generations["s"]
	if len(recs) != maxGenerations {
		t.Fatalf("%d records kept", len(recs))
	}
	svc := st.Service("s")
	for i, g := range recs {
		switch {
		case i == len(recs)-1:
			if g.Plan != svc.Plan {
				t.Fatalf("the current generation's record does not share the service's plan")
			}
		case g.Plan != nil:
			t.Fatalf("generation %d (converged %v) keeps its whole plan", g.Generation, g.Converged)
		}
	}
	// A deploy that does not converge: the newest converged keeps its
	// plan, for a rollout's automatic revert.
	h.redeploy("g13", &plan.RolloutOverride{AllAtOnce: true}, 200)
	recs = h.fsm.State().data.Generations["s"]
	if p := recs[len(recs)-2]; !p.Converged || p.Plan == nil {
		t.Fatalf("the newest converged generation (%d) lost its plan", p.Generation)
	}
	for _, g := range recs[:len(recs)-2] {
		if g.Plan != nil {
			t.Fatalf("generation %d keeps its whole plan", g.Generation)
		}
	}
	// A revert to an older generation compiles its configuration.
	h.mustApply(RevertServiceType, RevertServiceCmd{Name: "s", To: 5, Time: 210})
	if m := h.sliceMsg("w1"); m != "g5" {
		t.Fatalf("after reverting to generation 5 the slice says %q", m)
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkState_MemoryPerNode measures what the state keeps per node
// (docs/performance.md, "Memory per connected agent"): a registered node,
// then a fleet service with a step on every node, deployed and converged
// 10 times (the generations the state keeps). Not a timing: run with
// -benchtime=1x.
func BenchmarkState_MemoryPerNode(b *testing.B) {
	const n = 1000
	for range b.N {
		h := newHarness(b)
		base := liveHeap()
		for i := 1; i <= n; i++ {
			name := fmt.Sprintf("sim-%05d", i)
			h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: name, Status: plan.NodeUp,
				Incarnation: fmt.Sprintf("%016x", i), Labels: map[string]string{"role": "web", "bench_id": fmt.Sprintf("%05d", i)},
				Facts: plan.Facts{Hostname: name, OS: "linux", Arch: "amd64", Address: "127.0.0.1", CPUs: 2, MemoryBytes: 1 << 30, AgentVersion: "bench"}}, Time: 1})
		}
		nodes := liveHeap()
		h.mustApply(PutModuleType, PutModuleCmd{Module: rolloutModule(nil)})
		h.mustApply(StageServiceType, StageServiceCmd{Name: "s", Module: "g", Version: "1.0.0", Template: "t", Time: 2})
		for g := 1; g <= maxGenerations; g++ {
			h.redeploy(fmt.Sprintf("generation %d", g), &plan.RolloutOverride{AllAtOnce: true}, int64(10*g))
			var reps []plan.Report
			for i := 1; i <= n; i++ {
				agent := fmt.Sprintf("sim-%05d", i)
				for _, st := range h.fsm.State().Slice(agent).Steps {
					h.seq++
					reps = append(reps, plan.Report{ID: fmt.Sprintf("%s:%d", agent, h.seq), Node: agent, Service: "s", StepID: st.ID,
						Action: st.Action, Generation: st.Generation, Digest: st.Digest, State: plan.StepOK})
				}
			}
			h.mustApply(ReportsType, ReportsCmd{Reports: reps, Time: int64(10*g + 1)})
		}
		if st := h.fsm.State().Service("s"); st.State != plan.StateConverged || st.Generation != maxGenerations {
			b.Fatalf("service %s at generation %d", st.State, st.Generation)
		}
		svc := liveHeap()
		b.ReportMetric(float64(nodes-base)/n, "B/node")
		b.ReportMetric(float64(svc-nodes)/n, "B/service-node")
		runtime.KeepAlive(h)
	}
}

// A deploy's history record stays within its bound however many nodes the
// plan has: the nodes that do not fit are counted, those with changes kept
// first.
func TestFSM_History_LargeFleetDiffBounded(t *testing.T) {
	const n = 400
	h := rolloutHarness(t, n, nil)
	h.redeploy("two", &plan.RolloutOverride{AllAtOnce: true}, 10)
	hist, _ := h.fsm.State().History("s")
	r := hist[0]
	if r.Generation != 2 {
		t.Fatalf("newest record is generation %d", r.Generation)
	}
	b, _ := json.Marshal(r.Diff)
	if len(b) > maxHistoryDiffBytes || !r.DiffTruncated {
		t.Fatalf("diff of %d nodes: %d bytes encoded (bound %d), truncated %v", n, len(b), maxHistoryDiffBytes, r.DiffTruncated)
	}
	if len(r.Diff)+r.DiffNodesOmitted != n || r.DiffNodesOmitted == 0 {
		t.Fatalf("%d nodes listed and %d omitted, of %d", len(r.Diff), r.DiffNodesOmitted, n)
	}
	for _, nd := range r.Diff {
		if len(nd.Steps) == 0 || nd.Steps[0].Change != plan.ChangeChange {
			t.Fatalf("node %s listed without its change: %+v", nd.Name, nd.Steps)
		}
	}
}

func TestHistoryDiff_BoundNodes_ChangedFirstInOrder(t *testing.T) {
	var d []plan.NodeDiff
	for i := range 2000 {
		c := plan.ChangeUnchanged
		if i%2 == 1 {
			c = plan.ChangeChange
		}
		d = append(d, plan.NodeDiff{Name: fmt.Sprintf("n%04d", i), Agent: fmt.Sprintf("a%04d", i),
			Steps: []plan.StepDiff{{ID: "s.x.create", Instance: "x", Change: c}}})
	}
	out, omitted := boundNodes(d)
	if len(out)+omitted != len(d) || omitted == 0 {
		t.Fatalf("%d kept, %d omitted", len(out), omitted)
	}
	for i, nd := range out {
		if nd.Steps[0].Change != plan.ChangeChange {
			t.Fatalf("an unchanged node (%s) kept while changed ones were left out", nd.Name)
		}
		if i > 0 && out[i-1].Name >= nd.Name {
			t.Fatalf("order lost: %s after %s", nd.Name, out[i-1].Name)
		}
	}
	small := d[:10]
	if out, omitted := boundNodes(small); len(out) != 10 || omitted != 0 {
		t.Fatalf("a small diff was cut: %d kept, %d omitted", len(out), omitted)
	}
}
