package coordinator

import (
	"context"
	"crypto/tls"
	"encoding/binary"
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
