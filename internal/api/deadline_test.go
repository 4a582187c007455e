package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtkhq/dtk/plan"
)

// hungServer answers nothing until the test ends, as a frozen coordinator.
func hungServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

func okServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(IndexHeader, "7")
		switch {
		case strings.HasSuffix(r.URL.Path, "/plan"):
			io.WriteString(w, `{"node":"n1","index":7}`)
		default:
			io.WriteString(w, `{"name":"ok"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// within runs f and fails the test if it has not returned after limit.
func within(t *testing.T, limit time.Duration, f func()) time.Duration {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); f() }()
	select {
	case <-done:
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("call still blocked after %s", limit)
		return 0
	}
}

func TestClient_Do_HungCoordinatorTimesOutAndRotates(t *testing.T) {
	hung, ok := hungServer(t), okServer(t)
	addrs := []string{hung.URL, ok.URL}
	c := &Client{Addrs: func() []string { return addrs }, HTTP: DefaultHTTPClient(), Timeout: 300 * time.Millisecond}
	var err error
	took := within(t, 5*time.Second, func() { _, err = c.Status(context.Background()) })
	if !errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("status on a hung coordinator: err = %v, want ErrTimeout (and not DeadlineExceeded)", err)
	}
	if took > 2*time.Second {
		t.Fatalf("status took %s with a 300ms timeout", took)
	}
	// The next calls go to the coordinator that answers, also after a
	// rotation would bring the hung one back: it is avoided for a while.
	for i := range 3 {
		st, err := c.Status(context.Background())
		if err != nil || st.Name != "ok" {
			t.Fatalf("call %d after the timeout: %v %+v", i, err, st)
		}
		c.Rotate()
	}
}

func TestClient_Do_WriteTimeout(t *testing.T) {
	hung := hungServer(t)
	c := NewClient(hung.URL)
	c.WriteTimeout = 300 * time.Millisecond
	var err error
	within(t, 5*time.Second, func() { err = c.RegisterNode(context.Background(), &plan.Node{Name: "n1"}) })
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestClient_NodePlan_LongPollHasDeadline(t *testing.T) {
	hung, ok := hungServer(t), okServer(t)
	addrs := []string{hung.URL, ok.URL}
	c := &Client{Addrs: func() []string { return addrs }, HTTP: DefaultHTTPClient(), LongPollMargin: 300 * time.Millisecond}
	var err error
	took := within(t, 5*time.Second, func() { _, err = c.NodePlan(context.Background(), "n1", 3, 200*time.Millisecond) })
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("long-poll on a hung coordinator: err = %v, want ErrTimeout", err)
	}
	if took < 450*time.Millisecond {
		t.Fatalf("long-poll gave up after %s, before wait + margin", took)
	}
	sl, err := c.NodePlan(context.Background(), "n1", 3, 200*time.Millisecond)
	if err != nil || sl.Index != 7 {
		t.Fatalf("next long-poll: %v %+v", err, sl)
	}
}

// A caller's own cancellation is not a timeout and does not move the
// client.
func TestClient_Do_CallerCancelIsNotTimeout(t *testing.T) {
	hung, ok := hungServer(t), okServer(t)
	addrs := []string{hung.URL, ok.URL}
	c := &Client{Addrs: func() []string { return addrs }, HTTP: DefaultHTTPClient()}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Status(ctx)
	if errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	if cur := c.Current(); cur != hung.URL {
		t.Fatalf("client moved to %s after its caller gave up", cur)
	}
}

// freezer is a TCP proxy that can stop passing bytes, as a coordinator that
// is SIGSTOPped: connections stay open, the kernel acknowledges, nothing
// answers.
type freezer struct {
	ln     net.Listener
	mu     sync.Mutex
	frozen chan struct{} // closed while thawed
}

func newFreezer(t *testing.T, backend string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, frozen: make(chan struct{})}
	close(f.frozen)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); b.Close() })
			go f.pipe(c, b)
			go f.pipe(b, c)
		}
	}()
	return f
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.mu.Lock()
			gate := f.frozen
			f.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	f.frozen = make(chan struct{})
	f.mu.Unlock()
}

func (f *freezer) thaw() {
	f.mu.Lock()
	select {
	case <-f.frozen:
	default:
		close(f.frozen)
	}
	f.mu.Unlock()
}

// A coordinator that freezes in the middle of a long-poll (which may wait
// minutes) is noticed within PingInterval + PingTimeout: the TLS client
// speaks HTTP/2 and PINGs.
func TestClient_NodePlan_FrozenMidLongPoll(t *testing.T) {
	started := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-time.After(time.Minute):
		case <-r.Context().Done():
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	fr := newFreezer(t, srv.Listener.Addr().String())
	defer fr.thaw()
	tlsCfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsCfg.ServerName = "example.com"
	c := &Client{Addrs: func() []string { return []string{"https://" + fr.ln.Addr().String()} }, HTTP: TLSHTTPClient(tlsCfg)}
	errc := make(chan error, 1)
	go func() {
		_, err := c.NodePlan(context.Background(), "n1", 1, time.Minute)
		errc <- err
	}()
	select {
	case <-started:
	case err := <-errc:
		t.Fatalf("long-poll ended early: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("long-poll never reached the server")
	}
	fr.freeze()
	t0 := time.Now()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("long-poll on a frozen server succeeded")
		}
		if took := time.Since(t0); took > PingInterval+PingTimeout+time.Second {
			t.Fatalf("frozen server noticed after %s", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long-poll still blocked 15 s after the server froze")
	}
}

func TestClient_TLSTransportSpeaksHTTP2(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	resp, err := TLSHTTPClient(cfg).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "HTTP/2.0" {
		t.Fatalf("proto %q, want HTTP/2.0 (PINGs need it)", b)
	}
}

// An upload keeps its Content-Length (the coordinator sizes its read
// deadline by it) and is not cut off while it moves.
func TestClient_PushModule_KeepsContentLength(t *testing.T) {
	var got int64 = -2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.ContentLength
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"name":"m","version":"1.0.0"}`)
	}))
	defer srv.Close()
	c := NewClient(srv.URL)
	if _, err := c.PushModule(context.Background(), make([]byte, 12345), ""); err != nil {
		t.Fatal(err)
	}
	if got != 12345 {
		t.Fatalf("Content-Length %d, want 12345", got)
	}
}
