package tlsutil

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newLayer(t *testing.T, s *Store) (*StreamLayer, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	l, err := NewStreamLayer("127.0.0.1:0", nil, s, slog.New(slog.NewTextHandler(buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, buf
}

// accept1 accepts one connection on l and reads n bytes from it.
func accept1(l *StreamLayer, n int) <-chan result {
	ch := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, n)
		_, err = io.ReadFull(c, b)
		if err == nil {
			_, err = c.Write(b)
		}
		ch <- result{b, err}
	}()
	return ch
}

type result struct {
	b   []byte
	err error
}

func TestStreamLayer_ServersTalk(t *testing.T) {
	ca := newCA(t, CAOptions{})
	a, _ := newLayer(t, storeFor(t, ca, RoleServer, "c1"))
	b, _ := newLayer(t, storeFor(t, ca, RoleServer, "c2"))

	got := accept1(b, 5)
	c, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, 5)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, back); err != nil || string(back) != "hello" {
		t.Errorf("echo %q, %v", back, err)
	}
	if r := <-got; r.err != nil || string(r.b) != "hello" {
		t.Errorf("server got %q, %v", r.b, r.err)
	}
}

func TestStreamLayer_RefusesNodeCertificate(t *testing.T) {
	ca := newCA(t, CAOptions{})
	srv, srvLog := newLayer(t, storeFor(t, ca, RoleServer, "c1"))
	node, _ := newLayer(t, storeFor(t, ca, RoleNode, "web-1"))

	// A node dialling a coordinator is refused by the coordinator.
	got := accept1(srv, 5)
	c, err := node.Dial(raft.ServerAddress(srv.Addr().String()), 5*time.Second)
	if err == nil {
		// TLS 1.3: the refusal arrives at the first read.
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("hello"))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Fatal("the node's connection was accepted")
	}
	r := <-got
	wantIs(t, r.err, ErrWrongRole)
	if l := srvLog.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "raft connection refused") || !strings.Contains(l, "node/web-1") || !strings.Contains(l, "remote=127.0.0.1:") {
		t.Errorf("log lacks the refusal:\n%s", l)
	}

	// A coordinator dialling a node refuses the node's certificate.
	got = accept1(node, 1)
	_, err = srv.Dial(raft.ServerAddress(node.Addr().String()), 5*time.Second)
	wantIs(t, err, ErrWrongUsage)
	<-got
}

func TestStreamLayer_SlowHandshakeDoesNotBlockAccept(t *testing.T) {
	ca := newCA(t, CAOptions{})
	a, _ := newLayer(t, storeFor(t, ca, RoleServer, "c1"))
	b, _ := newLayer(t, storeFor(t, ca, RoleServer, "c2"))

	// A TCP connection that never speaks TLS.
	idle, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	first, err := b.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	got := accept1(b, 2)
	c, err := a.Dial(raft.ServerAddress(b.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("ok"))
	if r := <-got; r.err != nil {
		t.Fatal(r.err)
	}
}

func TestStreamLayer_Addr(t *testing.T) {
	ca := newCA(t, CAOptions{})
	s := storeFor(t, ca, RoleServer, "c1")
	adv := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 8300}
	l, err := NewStreamLayer("127.0.0.1:0", adv, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Addr() != adv {
		t.Errorf("Addr %v, want the advertise address", l.Addr())
	}
	if _, err := NewStreamLayer("0.0.0.0:0", nil, s, nil); err == nil || !strings.Contains(err.Error(), "advertise") {
		t.Errorf("unspecified bind without advertise: %v", err)
	}
}

func TestStreamLayer_RaftTransport(t *testing.T) {
	ca := newCA(t, CAOptions{})
	a, _ := newLayer(t, storeFor(t, ca, RoleServer, "c1"))
	b, _ := newLayer(t, storeFor(t, ca, RoleServer, "c2"))
	ta := raft.NewNetworkTransport(a, 3, 5*time.Second, io.Discard)
	tb := raft.NewNetworkTransport(b, 3, 5*time.Second, io.Discard)
	defer ta.Close()
	defer tb.Close()
	go func() {
		for rpc := range tb.Consumer() {
			rpc.Respond(&raft.AppendEntriesResponse{Term: 7, Success: true}, nil)
		}
	}()
	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("c2", tb.LocalAddr(), &raft.AppendEntriesRequest{Term: 7}, &resp); err != nil {
		t.Fatal(err)
	}
	if !resp.Success || resp.Term != 7 {
		t.Errorf("response %+v", resp)
	}
}
