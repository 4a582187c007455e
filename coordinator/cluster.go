package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/gossip"
	"github.com/dtkhq/dtk/plan"
)

// catchUpSlack is how far (in log entries) behind the leader a new
// coordinator may be when it is promoted from non-voter to voter.
const catchUpSlack = 64

// Notify wakes the maintenance loop (after a gossip event).
func (s *Server) Notify() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// coordinators lists the alive coordinators in the pool.
func (s *Server) coordinators() []gossip.Peer {
	p := s.getPeers()
	if p == nil {
		return nil
	}
	var out []gossip.Peer
	for _, m := range p.Peers() {
		if m.Role == gossip.RoleCoordinator && m.Status == "alive" && m.RaftAddr != "" {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// maintain runs until shutdown: it bootstraps the cluster once enough
// coordinators are seen and, on the leader, reconciles the Raft
// configuration and node health with the gossip pool.
func (s *Server) maintain() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-t.C:
		}
		if s.getPeers() == nil {
			continue
		}
		if !s.bootstrapd {
			s.tryBootstrap()
		}
		if s.raft.State() == raft.Leader {
			s.reconcileCoordinators()
			s.recordCoordinators()
			s.reconcileNodes()
			s.collectNodes()
			s.tickRollouts()
		}
		s.storeCA()
		s.rejoinCoordinators()
		if time.Since(s.lastBlobGC) >= blobGCEvery {
			s.lastBlobGC = time.Now()
			s.collectBlobs(blobGrace)
		}
	}
}

// tryBootstrap forms the cluster when BootstrapExpect coordinators (this one
// included) are alive and none of them is already part of a cluster, in
// which case the leader adds this one instead.
func (s *Server) tryBootstrap() {
	if s.cfg.ReadReplica {
		// A read replica never forms a cluster: the leader adds it.
		s.bootstrapd = true
		return
	}
	var peers []gossip.Peer
	for _, p := range s.coordinators() {
		if !p.Replica {
			peers = append(peers, p)
		}
	}
	if len(peers) < s.cfg.BootstrapExpect {
		return
	}
	for _, p := range peers {
		if p.Name == s.cfg.Name {
			continue
		}
		st, err := s.peerStatus(p.HTTPAddr)
		if err != nil {
			s.log.Debug("bootstrap: peer not ready", "peer", p.Name, "err", err)
			return
		}
		if st.RaftConfigured {
			s.log.Info("cluster already formed; waiting for the leader to add this coordinator", "peer", p.Name)
			s.bootstrapd = true
			return
		}
	}
	servers := make([]raft.Server, 0, len(peers))
	for _, p := range peers {
		servers = append(servers, raft.Server{ID: raft.ServerID(p.Name), Address: raft.ServerAddress(p.RaftAddr)})
	}
	if err := s.bootstrap(servers); err != nil {
		s.log.Error("bootstrap", "err", err)
	}
}

// reconcileCoordinators adds new coordinators as non-voters, promotes them
// to voters once they have caught up, and removes those that left the pool
// gracefully. Failed ones stay: they are expected back, or removed by an
// operator (remove-peer).
func (s *Server) reconcileCoordinators() {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	inConfig := map[raft.ServerID]raft.Server{}
	for _, srv := range f.Configuration().Servers {
		inConfig[srv.ID] = srv
	}
	all := s.getPeers().Peers()
	for _, p := range all {
		if p.Role != gossip.RoleCoordinator || p.RaftAddr == "" {
			continue
		}
		id := raft.ServerID(p.Name)
		srv, member := inConfig[id]
		switch p.Status {
		case "alive":
			if !member {
				s.log.Info("adding coordinator as non-voter", "name", p.Name, "raft", p.RaftAddr)
				if err := s.raft.AddNonvoter(id, raft.ServerAddress(p.RaftAddr), 0, 5*time.Second).Error(); err != nil {
					s.log.Warn("add non-voter", "name", p.Name, "err", err)
				}
				continue
			}
			if p.Replica {
				if srv.Suffrage == raft.Voter { // configured as a replica after it voted
					s.log.Info("demoting read replica to non-voter", "name", p.Name)
					if err := s.raft.DemoteVoter(id, 0, 5*time.Second).Error(); err != nil {
						s.log.Warn("demote", "name", p.Name, "err", err)
					}
				}
				continue
			}
			if srv.Suffrage == raft.Nonvoter && s.caughtUp(p) {
				s.log.Info("promoting coordinator to voter", "name", p.Name)
				if err := s.raft.AddVoter(id, srv.Address, 0, 5*time.Second).Error(); err != nil {
					s.log.Warn("promote", "name", p.Name, "err", err)
				}
			}
		case "left":
			if member && id != raft.ServerID(s.cfg.Name) {
				s.log.Info("removing coordinator that left", "name", p.Name)
				if err := s.raft.RemoveServer(id, 0, 5*time.Second).Error(); err != nil {
					s.log.Warn("remove server", "name", p.Name, "err", err)
				}
			}
		}
	}
}

func (s *Server) caughtUp(p gossip.Peer) bool {
	st, err := s.peerStatus(p.HTTPAddr)
	if err != nil {
		return false
	}
	return st.Index+catchUpSlack >= s.State().Index()
}

// reconcileNodes marks registered nodes up or down from their gossip
// status, so that a dead node shows within seconds, and a returning one
// comes back up. A node the pool does not list at all (its join has not
// reached this coordinator yet, or it talks to the API without gossip) is
// not marked down while it was seen (registered or reported) within
// nodeGossipGrace: down nodes get no new placements, and an agent that
// just registered is not down.
func (s *Server) reconcileNodes() {
	status := map[string]string{}
	for _, p := range s.getPeers().Peers() {
		status[p.Name] = p.Status
	}
	recent := time.Now().Add(-nodeGossipGrace).UnixMilli()
	var updates []NodeStatusUpdate
	for _, n := range s.State().Nodes() {
		st, listed := status[n.Name]
		want := plan.NodeDown
		switch {
		case st == "alive":
			want = plan.NodeUp
		case !listed && n.LastSeen >= recent:
			continue
		}
		if n.Status != want {
			updates = append(updates, NodeStatusUpdate{Name: n.Name, Status: want})
		}
	}
	if len(updates) == 0 {
		return
	}
	if _, err := s.apply(NodeStatusType, NodeStatusCmd{Updates: updates, Time: time.Now().UnixMilli()}); err != nil {
		s.log.Warn("node status", "err", err)
		return
	}
	for _, u := range updates {
		s.log.Info("node "+u.Status, "node", u.Name)
	}
}

// nodeGossipGrace is how long a node the gossip pool does not list keeps
// its status after it was last seen.
const nodeGossipGrace = 2 * time.Minute

// DefaultNodeGCAfter is how long a node is down before it is forgotten.
const DefaultNodeGCAfter = 24 * time.Hour

// collectNodes forgets nodes down for longer than NodeGCAfter: their
// records and indexes go, and plans stop waiting for them (gc.go). A node
// that comes back registers again.
func (s *Server) collectNodes() {
	after := s.cfg.NodeGCAfter
	if after <= 0 {
		after = DefaultNodeGCAfter
	}
	before := time.Now().Add(-after).UnixMilli()
	for _, n := range s.State().Nodes() {
		if n.Status != plan.NodeDown || n.LastSeen >= before {
			continue
		}
		if _, err := s.apply(RemoveNodeType, RemoveNodeCmd{Name: n.Name, Time: nowMS(), Collect: true, DownBefore: before}); err != nil {
			s.log.Warn("collect node", "node", n.Name, "err", err)
			continue
		}
		s.log.Info("node collected: down for longer than node_gc_after", "node", n.Name, "last_seen", time.UnixMilli(n.LastSeen).UTC().Format(time.RFC3339), "node_gc_after", after)
	}
}

func (s *Server) peerStatus(httpAddr string) (*statusView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.peerURL(httpAddr, "/v1/status"), nil)
	resp, err := s.pnet.status.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var st statusView
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// statusView is the part of a peer's /v1/status the cluster logic reads.
type statusView struct {
	Index          uint64 `json:"index"`
	RaftConfigured bool   `json:"raft_configured"`
}

// recordCoordinators keeps the replicated coordinator directory up to date
// with what gossip says about each live coordinator.
func (s *Server) recordCoordinators() {
	known := map[string]CoordinatorInfo{}
	for _, ci := range s.State().CoordinatorDirectory() {
		known[ci.Name] = *ci
	}
	var changed []CoordinatorInfo
	for _, p := range s.coordinators() {
		ci := CoordinatorInfo{Name: p.Name, HTTPAddr: p.HTTPAddr, RaftAddr: p.RaftAddr, SerfAddr: p.Addr}
		if known[p.Name] != ci {
			changed = append(changed, ci)
		}
	}
	if len(changed) == 0 {
		return
	}
	if _, err := s.apply(CoordinatorsType, CoordinatorsCmd{Coordinators: changed}); err != nil {
		s.log.Warn("record coordinators", "err", err)
	}
}

// rejoinCoordinators contacts, through gossip, every coordinator of the
// directory that gossip does not show alive: after every coordinator
// restarted, one whose known peers were only agents finds the others again.
func (s *Server) rejoinCoordinators() {
	if time.Since(s.lastRejoin) < 5*time.Second {
		return
	}
	alive := map[string]bool{}
	for _, p := range s.coordinators() {
		alive[p.Name] = true
	}
	var addrs []string
	for _, ci := range s.State().CoordinatorDirectory() {
		if ci.Name != s.cfg.Name && !alive[ci.Name] && ci.SerfAddr != "" {
			addrs = append(addrs, ci.SerfAddr)
		}
	}
	if len(addrs) == 0 {
		return
	}
	s.lastRejoin = time.Now()
	if n, err := s.getPeers().Join(addrs); n > 0 {
		s.log.Info("rejoined coordinators missing from gossip", "contacted", n)
	} else if err != nil {
		s.log.Debug("rejoin coordinators", "err", err)
	}
}
