package coordinator

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/tlsutil"
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
