package coordinator

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
)

// hangingAddr is an address whose kernel accepts connections that nothing
// ever answers, as a SIGSTOPped coordinator's.
func hangingAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// A push needs a quorum of coordinators holding the blob, not every one
// gossip calls alive: with one follower hanging it is acknowledged at once,
// and the follower that was not asked fetches the blob in the background.
func TestReplicate_PushWithHungFollower_QuorumSuffices(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	hung := c.follower(l)
	// Gossip still calls it alive, but its HTTP address answers nothing.
	c.peers.mu.Lock()
	for i := range c.peers.peers {
		if c.peers.peers[i].Name == hung.cfg.Name {
			c.peers.peers[i].HTTPAddr = hangingAddr(t)
		}
	}
	c.peers.mu.Unlock()

	tgz, err := archive.Pack("../examples/hello")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := api.NewClient(l.HTTPAddr()).PushModule(context.Background(), tgz, "")
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("push with one follower hung: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("push still waiting 3 s after it started, with a quorum healthy")
	}
	t.Logf("push took %s", time.Since(start))
	digest := archive.Digest(tgz)
	// The hung follower was never reached over HTTP; it fetches the
	// blob itself once the module record reaches it.
	waitCond(t, "the unreached follower holding the blob", func() bool { return hung.blobs.Has(digest) })
}

// A coordinator that died a moment ago (gossip still calls it alive) does
// not fail a push either.
func TestReplicate_PushWithDeadFollower_QuorumSuffices(t *testing.T) {
	c := newTestCluster(t, 3)
	l := c.leader()
	for _, s := range c.servers {
		if s != l {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	tgz, err := archive.Pack("../examples/hello")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.NewClient(l.HTTPAddr()).PushModule(context.Background(), tgz, ""); err != nil {
		t.Fatalf("push with one follower dead but alive in gossip: %v", err)
	}
}
