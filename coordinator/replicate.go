package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/gossip"
)

// Module blobs live outside the Raft log, in each coordinator's BlobStore.
// A push (or a deploy, or a bundle import) goes ahead once a quorum of the
// Raft voters holds the blob, this coordinator counted: the same majority
// that commits the module record, so an acknowledged push survives the loss
// of any minority of coordinators. The others are asked in parallel and not
// waited for; a coordinator that lacks a blob fetches it in the background
// (blobSyncLoop) or when an agent asks for it (GET /v1/blobs reads
// through). A coordinator that hangs, is cut off or died a moment ago
// (gossip still calls it alive) therefore delays nothing while a quorum
// answers: each call to a peer has a short deadline for its answer to start
// (peerAnswer) and for every pause in a transfer (peerIdle).

// minPeerRate is the slowest transfer between coordinators a replication
// waits for: a peer asked to hold a blob answers only once it has it all.
const minPeerRate = 4 << 20 // bytes per second

// ensureBlob makes sure a blob is stored here, fetching it from another
// coordinator (and verifying its digest) when it is not: from the one
// named prefer first (the coordinator that asks us to hold it), then the
// leader, then the others. Concurrent calls for one blob share one fetch,
// which goes on when the caller gives up (the next caller finds it done).
func (s *Server) ensureBlob(ctx context.Context, digest string, prefer ...string) error {
	if s.blobs.Has(digest) {
		return nil
	}
	ch := s.blobFetch.DoChan(digest, func() (any, error) {
		return nil, s.fetchFromPeers(digest, prefer...)
	})
	select {
	case <-ctx.Done():
		return fmt.Errorf("fetch blob %s: %w", digest, ctx.Err())
	case r := <-ch:
		return r.Err
	}
}

func (s *Server) fetchFromPeers(digest string, prefer ...string) error {
	if s.blobs.Has(digest) {
		return nil
	}
	var errs []error
	for _, p := range s.blobSources(prefer...) {
		err := s.fetchBlob(p.HTTPAddr, digest)
		if err == nil {
			s.log.Info("fetched blob from peer", "digest", digest, "peer", p.Name)
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: blob %s (no other coordinator to fetch it from)", ErrNotFound, digest)
	}
	return fmt.Errorf("%w: blob %s: %w", ErrNotFound, digest, errors.Join(errs...))
}

// blobSources lists the other live coordinators in the order a missing
// blob is looked for: the preferred ones, the leader, the rest.
func (s *Server) blobSources(prefer ...string) []gossip.Peer {
	leaderAddr, _ := s.raft.LeaderWithID()
	rank := func(p gossip.Peer) int {
		for _, n := range prefer {
			if p.Name == n {
				return 0
			}
		}
		if p.RaftAddr == string(leaderAddr) {
			return 1
		}
		return 2
	}
	var out []gossip.Peer
	for r := 0; r <= 2; r++ {
		for _, p := range s.coordinators() {
			if p.Name != s.cfg.Name && rank(p) == r {
				out = append(out, p)
			}
		}
	}
	return out
}

// fetchBlob copies a blob from the coordinator at httpAddr: its answer must
// start within peerAnswer and never pause longer than peerIdle.
func (s *Server) fetchBlob(httpAddr, digest string) error {
	ctx, wd := api.NewWatchdog(context.Background(), peerAnswer)
	defer wd.Stop()
	req, err := http.NewRequestWithContext(ctx, "GET", s.peerURL(httpAddr, "/v1/blobs/"+url.PathEscape(digest)+"?local=1"), nil)
	if err != nil {
		return err
	}
	resp, err := s.pnet.blob.Do(req)
	if err != nil {
		return peerErr(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	wd.Kick(peerIdle)
	if _, _, err = s.blobs.Put(wd.Reader(resp.Body, peerIdle), digest); err != nil {
		return peerErr(ctx, err)
	}
	return nil
}

// peerErr names a watchdog's timeout rather than a bare "context canceled".
func peerErr(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), api.ErrTimeout) {
		return fmt.Errorf("no answer in time: %w", api.ErrTimeout)
	}
	return err
}

// blobSyncLoop fetches, in the background, every module blob this
// coordinator lacks (a follower that was not among the quorum of a push, a
// coordinator that was down or new). It runs apart from maintain, so that a
// slow fetch never holds up the leader's housekeeping.
func (s *Server) blobSyncLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if s.getPeers() != nil {
			s.syncBlobs(context.Background())
		}
	}
}

// syncBlobs fetches every module blob this coordinator lacks. Shutdown
// does not wait for a fetch under way (it ends by its own deadlines).
func (s *Server) syncBlobs(ctx context.Context) {
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-stop.Done():
		}
	}()
	for _, m := range s.State().Modules() {
		if m.Digest == "" || s.blobs.Has(m.Digest) {
			continue
		}
		if stop.Err() != nil {
			return
		}
		if err := s.ensureBlob(stop, m.Digest); err != nil && stop.Err() == nil {
			s.log.Warn("blob sync", "module", m.Ref(), "err", err)
		}
	}
}

// replicateBlob returns once a quorum of the Raft voters (this coordinator
// counted) holds a blob, asking the other voters in parallel to fetch it
// from here. Voters slower than the quorum go on fetching after it returns.
func (s *Server) replicateBlob(ctx context.Context, digest string) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	var others []raft.Server
	voters, have := 0, 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage != raft.Voter {
			continue
		}
		voters++
		if srv.ID != raft.ServerID(s.cfg.Name) {
			others = append(others, srv)
		} else if s.ensureBlob(ctx, digest) == nil {
			have++
		}
	}
	need := voters/2 + 1
	if have >= need {
		return nil
	}
	size := s.blobs.Size(digest)
	addrs := s.peerHTTPAddrs()
	results := make(chan error, len(others))
	for _, srv := range others {
		name, addr := string(srv.ID), addrs[string(srv.ID)]
		go func() {
			if addr == "" {
				results <- fmt.Errorf("%s: HTTP address unknown", name)
				return
			}
			// Not the caller's context: a peer slower than the
			// quorum still gets the blob.
			pctx, cancel := context.WithTimeout(context.Background(), peerAnswer+time.Duration(size/minPeerRate)*time.Second)
			defer cancel()
			if err := s.askHold(pctx, addr, digest); err != nil {
				results <- fmt.Errorf("%s: %w", name, err)
				return
			}
			results <- nil
		}()
	}
	var errs []error
	for range others {
		select {
		case <-ctx.Done():
			return fmt.Errorf("replicate module blob: %w", ctx.Err())
		case err := <-results:
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if have++; have >= need {
				return nil
			}
		}
	}
	return fmt.Errorf("module blob held by %d of %d coordinators, %d needed: %w", have, voters, need, errors.Join(errs...))
}

// askHold asks the coordinator at httpAddr to hold a blob (fetching it from
// here first) and waits for its yes.
func (s *Server) askHold(ctx context.Context, httpAddr, digest string) error {
	q := url.Values{"ensure": {"1"}, "from": {s.cfg.Name}}
	req, err := http.NewRequestWithContext(ctx, "GET", s.peerURL(httpAddr, "/v1/blobs/"+url.PathEscape(digest)+"?"+q.Encode()), nil)
	if err != nil {
		return err
	}
	resp, err := s.pnet.blob.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no answer in time: %w", api.ErrTimeout)
		}
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// peerHTTPAddrs maps coordinator names to HTTP addresses: gossip's view,
// then the replicated directory for those gossip does not show.
func (s *Server) peerHTTPAddrs() map[string]string {
	out := map[string]string{}
	for _, ci := range s.State().CoordinatorDirectory() {
		out[ci.Name] = ci.HTTPAddr
	}
	for _, p := range s.coordinators() {
		out[p.Name] = p.HTTPAddr
	}
	return out
}
