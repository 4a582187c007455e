package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/raft"
)

// ensureBlob makes sure a blob is stored here, fetching it from another
// coordinator (and verifying its digest) when it is not.
func (s *Server) ensureBlob(ctx context.Context, digest string) error {
	if s.blobs.Has(digest) {
		return nil
	}
	var errs []error
	for _, p := range s.coordinators() {
		if p.Name == s.cfg.Name {
			continue
		}
		err := s.fetchBlob(ctx, p.HTTPAddr, digest)
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

func (s *Server) fetchBlob(ctx context.Context, httpAddr, digest string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", s.peerURL(httpAddr, "/v1/blobs/"+url.PathEscape(digest)+"?local=1"), nil)
	if err != nil {
		return err
	}
	resp, err := s.pnet.blob.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	_, _, err = s.blobs.Put(resp.Body, digest)
	return err
}

// syncBlobs fetches every module blob this coordinator lacks (a follower
// that missed a push, or a new coordinator).
func (s *Server) syncBlobs() {
	for _, m := range s.State().Modules() {
		if m.Digest == "" || s.blobs.Has(m.Digest) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		if err := s.ensureBlob(ctx, m.Digest); err != nil {
			s.log.Warn("blob sync", "module", m.Ref(), "err", err)
		}
		cancel()
	}
}

// replicateBlob makes every live coordinator in the Raft configuration
// hold a blob before a deploy that needs it is published. A coordinator
// that is down catches up from its peers when it returns.
func (s *Server) replicateBlob(ctx context.Context, digest string) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	members := map[raft.ServerID]bool{}
	for _, srv := range f.Configuration().Servers {
		members[srv.ID] = true
	}
	for _, p := range s.coordinators() {
		if p.Name == s.cfg.Name || !members[raft.ServerID(p.Name)] {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, "GET", s.peerURL(p.HTTPAddr, "/v1/blobs/"+url.PathEscape(digest)+"?ensure=1"), nil)
		if err != nil {
			return err
		}
		resp, err := s.pnet.blob.Do(req)
		if err != nil {
			return fmt.Errorf("module blob not replicated to %s: %w", p.Name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("module blob not replicated to %s: status %d", p.Name, resp.StatusCode)
		}
	}
	return nil
}
