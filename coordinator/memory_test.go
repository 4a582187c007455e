package coordinator

import (
	"context"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"
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
