package coordinator

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/api"
)

func (s *Server) operatorMembers(w http.ResponseWriter, r *http.Request) error {
	out := []api.Member{}
	if p := s.getPeers(); p != nil {
		for _, m := range p.Peers() {
			out = append(out, api.Member{
				Name: m.Name, Addr: m.Addr, Role: m.Role, Status: m.Status,
				HTTPAddr: m.HTTPAddr, RaftAddr: m.RaftAddr, Version: m.Version, DC: m.DC,
			})
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) operatorRaft(w http.ResponseWriter, r *http.Request) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	leaderAddr, leaderID := s.raft.LeaderWithID()
	out := api.RaftPeers{Leader: string(leaderID), LastIndex: s.raft.LastIndex(), AppliedIndex: s.raft.AppliedIndex(), Servers: []api.RaftServer{}}
	for _, srv := range f.Configuration().Servers {
		out.Servers = append(out.Servers, api.RaftServer{
			ID: string(srv.ID), Address: string(srv.Address),
			Voter: srv.Suffrage == raft.Voter, Leader: srv.Address == leaderAddr,
		})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) operatorRemovePeer(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	found := false
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == id || string(srv.Address) == id {
			found = true
			id = string(srv.ID)
		}
	}
	if !found {
		return fmt.Errorf("%w: raft peer %q (dtkctl operator raft peers lists them)", ErrNotFound, id)
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error(); err != nil {
		return fmt.Errorf("%w: remove %s: %v", ErrNotLeader, id, err)
	}
	return writeJSON(w, http.StatusOK, map[string]string{"removed": id})
}

// Snapshot archive layout: a tar.gz with
//
//	dtk-snapshot.json   metadata (format version, index, time)
//	state.json          the FSM state, as in Raft snapshots
//	blobs/sha256/<hex>  every module blob the state refers to
const snapshotFormat = 1

type snapshotMeta struct {
	Format  int       `json:"format"`
	Index   uint64    `json:"index"`
	Created time.Time `json:"created"`
	Blobs   []string  `json:"blobs"`
}

// operatorSnapshotSave streams a snapshot taken on the leader.
func (s *Server) operatorSnapshotSave(w http.ResponseWriter, r *http.Request) error {
	if s.raft.State() != raft.Leader {
		return s.proxyToLeader(w, r)
	}
	if err := s.raft.Barrier(10 * time.Second).Error(); err != nil {
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	s.fsm.state.mu.RLock()
	state, err := json.Marshal(s.fsm.state.data)
	sealedKey := s.fsm.state.data.DataKey
	index := s.fsm.state.data.Index
	var digests []string
	for _, m := range s.fsm.state.data.Modules {
		if m.Digest != "" {
			digests = append(digests, m.Digest)
		}
	}
	s.fsm.state.mu.RUnlock()
	if err == nil {
		state, err = s.fsm.encodeSnapshot(state, sealedKey)
	}
	if err != nil {
		return err
	}
	for _, d := range digests {
		if err := s.ensureBlob(r.Context(), d); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	meta, _ := json.MarshalIndent(snapshotMeta{Format: snapshotFormat, Index: index, Created: time.Now().UTC(), Blobs: digests}, "", "  ")
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=dtk-%d.snap", index))
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	put := func(name string, size int64, body io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := io.Copy(tw, body)
		return err
	}
	if err := put("dtk-snapshot.json", int64(len(meta)), bytes.NewReader(meta)); err != nil {
		return nil // the client went away; headers are sent
	}
	if err := put("state.json", int64(len(state)), bytes.NewReader(state)); err != nil {
		return nil
	}
	for _, d := range digests {
		f, err := s.blobs.Open(d)
		if err != nil {
			s.log.Error("snapshot blob", "digest", d, "err", err)
			return nil
		}
		fi, _ := f.Stat()
		err = put("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), fi.Size(), f)
		f.Close()
		if err != nil {
			return nil
		}
	}
	tw.Close()
	gz.Close()
	return nil
}

// operatorSnapshotRestore replaces the cluster's state with a snapshot's:
// blobs first (verified against their names), then the state through
// Raft, then every agent is told to pull again.
func (s *Server) operatorSnapshotRestore(w http.ResponseWriter, r *http.Request) error {
	gz, err := gzip.NewReader(http.MaxBytesReader(w, r.Body, maxSnapshotBody))
	if err != nil {
		return badRequest("not a dtk snapshot (not gzip): %v", err)
	}
	tr := tar.NewReader(gz)
	var meta *snapshotMeta
	var state []byte
	stored := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return badRequest("snapshot is truncated or corrupt: %v", err)
		}
		name := path.Clean(hdr.Name)
		switch {
		case name == "dtk-snapshot.json":
			meta = &snapshotMeta{}
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(meta); err != nil {
				return badRequest("snapshot metadata: %v", err)
			}
			if meta.Format != snapshotFormat {
				return badRequest("snapshot format %d is not supported (this coordinator reads format %d)", meta.Format, snapshotFormat)
			}
		case name == "state.json":
			if state, err = io.ReadAll(io.LimitReader(tr, 1<<30)); err != nil {
				return badRequest("snapshot is truncated: %v", err)
			}
		case strings.HasPrefix(name, "blobs/sha256/"):
			digest := "sha256:" + strings.TrimPrefix(name, "blobs/sha256/")
			if _, _, err := s.blobs.Put(tr, digest); err != nil {
				return badRequest("snapshot blob %s: %v", digest, err)
			}
			stored[digest] = true
		default:
			return badRequest("snapshot holds an unexpected entry %q", hdr.Name)
		}
	}
	if meta == nil || state == nil {
		return badRequest("not a dtk snapshot: dtk-snapshot.json or state.json is missing")
	}
	for _, d := range meta.Blobs {
		if !stored[d] && !s.blobs.Has(d) {
			return badRequest("snapshot is missing blob %s", d)
		}
	}
	var probe stateData
	open, err := s.fsm.decodeSnapshot(state)
	if err != nil {
		return badRequest("snapshot: %v", err)
	}
	if err := json.Unmarshal(open, &probe); err != nil {
		return badRequest("snapshot state is corrupt: %v", err)
	}
	err = s.raft.Restore(&raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: meta.Index, Size: int64(len(state))}, bytes.NewReader(state), time.Minute)
	if err != nil {
		return fmt.Errorf("%w: restore: %v", ErrNotLeader, err)
	}
	if _, err := s.apply(ResliceType, ResliceCmd{}); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"restored_index": meta.Index, "index": s.State().Index(), "blobs": len(meta.Blobs)})
}

// proxyToLeader sends a request (any method) to the leader.
func (s *Server) proxyToLeader(w http.ResponseWriter, r *http.Request) error {
	leader := s.leaderHTTP()
	if leader == "" {
		return fmt.Errorf("%w: no leader known", ErrNotLeader)
	}
	s.proxy(leader).ServeHTTP(w, r)
	return nil
}

// agentLeave makes this coordinator leave the cluster gracefully. It is
// answered by the coordinator it is sent to, never forwarded.
func (s *Server) agentLeave(w http.ResponseWriter, r *http.Request) error {
	s.mu.Lock()
	f := s.leaveFunc
	s.mu.Unlock()
	if f == nil {
		return &api.APIError{Code: http.StatusConflict, Message: "this coordinator cannot leave (not started by dtk-agent)"}
	}
	go f()
	return writeJSON(w, http.StatusOK, map[string]string{"leaving": s.cfg.Name})
}

// decodeSnapshotMeta reads a snapshot archive's metadata entry.
func decodeSnapshotMeta(r io.Reader) (snapshotMeta, error) {
	var m snapshotMeta
	gz, err := gzip.NewReader(r)
	if err != nil {
		return m, err
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return m, fmt.Errorf("snapshot metadata: %w", err)
		}
		if hdr.Name == "dtk-snapshot.json" {
			return m, json.NewDecoder(tr).Decode(&m)
		}
	}
}
