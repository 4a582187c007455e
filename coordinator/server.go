package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"golang.org/x/sync/singleflight"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/gossip"
	"github.com/dtkhq/dtk/internal/limits"
	"github.com/dtkhq/dtk/internal/logging"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

// Config configures a coordinator.
type Config struct {
	// Name is this coordinator's node name and Raft server ID.
	Name    string
	DataDir string
	// HTTPAddr and RaftAddr are host:port to listen on; port 0 picks one.
	HTTPAddr string
	RaftAddr string
	// BootstrapExpect is the number of coordinators that form the cluster;
	// with 1 the coordinator bootstraps itself.
	BootstrapExpect int
	// ReadReplica: join Raft as a non-voter that is never promoted; it
	// serves plan long-polls, blobs and reads from its own state and
	// forwards writes, so that a site grows past what its voters serve.
	ReadReplica bool
	Version     string
	Logger      *slog.Logger
	// Fast shortens Raft timers (tests and dev clusters). Shipped defaults
	// are the Raft library's (heartbeat and election about 1 s).
	Fast bool
	// RaftTransport and RaftInMemory replace the TCP transport and the
	// bolt stores: the in-process test harness uses them.
	RaftTransport raft.Transport
	RaftInMemory  bool
	// TLS is this coordinator's certificate material: with it the HTTP
	// API, forwarding, blob replication and Raft all run over mutual TLS.
	// Nil is the explicit insecure mode (dtk-agent run --insecure).
	TLS *tlsutil.Store
	// KEK is the key-encryption key (keyring_file) that seals the
	// cluster's own secrets (the CA key) in the replicated state.
	KEK []byte
	// CAKeyPEM is the cluster CA's key (tls.ca_key_file); the leader
	// stores it, sealed with KEK, so that any coordinator can sign the
	// certificates of enrolling agents.
	CAKeyPEM []byte
	// NodeCertTTL is the lifetime of node certificates enrollment issues
	// (default DefaultNodeCertTTL).
	NodeCertTTL time.Duration
	// ACLEnabled makes every operator request carry an ACL token with the
	// rights it needs (acl { enabled = true }).
	ACLEnabled bool
	// UI serves the read-only web dashboard at /ui/ (ui.go).
	UI bool
	// NodeGCAfter is how long a node must be down before the leader
	// forgets it (default DefaultNodeGCAfter).
	NodeGCAfter time.Duration
	// Limits bound what one request may carry (the limits block); the
	// zero value is limits.Default().
	Limits limits.Limits
	// HTTPTimeouts bound the API server's waits for its clients (zero
	// fields: DefaultHTTPTimeouts).
	HTTPTimeouts HTTPTimeouts
	// ModuleTrust is what pushed and imported modules' signatures are
	// checked against (the modules block; signature.go); nil checks none.
	// SetModuleTrust replaces it while the coordinator runs.
	ModuleTrust *ModuleTrust
}

// Peers is how a coordinator sees the other coordinators: the gossip pool
// in production, a fixed list in the in-process harness.
type Peers interface {
	// Peers lists every member of the pool: coordinators and agents.
	Peers() []gossip.Peer
	// Join contacts members at these gossip addresses.
	Join(addrs []string) (int, error)
}

// Server is one coordinator: Raft, the FSM, the blob store and the HTTP API.
type Server struct {
	cfg Config
	// features are the capabilities it advertises (planner.go); a test
	// changes them to play an older version.
	features atomic.Pointer[[]string]
	log      *slog.Logger
	fsm      *FSM
	blobs    *BlobStore

	raft      *raft.Raft
	transport raft.Transport
	closers   []func() error
	raftAddr  string
	batcher   *reportBatcher
	forwarder *reportForwarder
	opBatcher *opResultsBatcher
	// lastBlobGC is when maintain last collected blobs (gc.go).
	lastBlobGC time.Time

	httpLn  net.Listener
	httpSrv *http.Server
	pnet    *peerNet

	verified verifyCache
	ca       caCache
	routes   []routeInfo
	policies policyCache
	auditQ   chan api.AuditEntry
	// dataKeyMu makes the leader create the data key once.
	dataKeyMu sync.Mutex
	// caStored: the CA key this coordinator was given is in the state
	// (or was found not to belong there); storeCA stops trying.
	caStored atomic.Bool

	mu         sync.Mutex
	leaveFunc  func()
	peers      Peers
	bootstrapd bool
	stop       chan struct{}
	wg         sync.WaitGroup

	shutdownOnce sync.Once
	kick         chan struct{}
	lastRejoin   time.Time // maintain goroutine only

	// blobFetch makes concurrent fetches of one blob from peers one.
	blobFetch singleflight.Group

	// planPolls counts plan long-polls being served (GET /v1/status
	// shows it; make bench watches agents move after a failover).
	planPolls atomic.Int64
	// metrics are served at GET /v1/metrics (metrics.go).
	metrics *coordMetrics
	// trust is Config.ModuleTrust, replaced on reload (signature.go).
	trust atomic.Pointer[ModuleTrust]
}

// ErrNotLeader is returned for a write on a coordinator that cannot reach
// a leader.
var ErrNotLeader = errors.New("no cluster leader")

// New creates a coordinator; nothing listens until Start.
func New(cfg Config) (*Server, error) {
	if cfg.Name == "" {
		return nil, errors.New("coordinator: name is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("coordinator: data dir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BootstrapExpect == 0 {
		cfg.BootstrapExpect = 1
	}
	if cfg.Limits == (limits.Limits{}) {
		cfg.Limits = limits.Default()
	}
	cfg.HTTPTimeouts = cfg.HTTPTimeouts.withDefaults()
	if len(cfg.CAKeyPEM) > 0 && len(cfg.KEK) == 0 {
		return nil, errors.New("coordinator: the CA key (tls.ca_key_file) is kept in the replicated state sealed with a key-encryption key: set keyring_file too")
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger.With("component", "coordinator"), stop: make(chan struct{}), kick: make(chan struct{}, 1),
		pnet: newPeerNet(cfg.TLS), auditQ: make(chan api.AuditEntry, 4096),
	}
	s.metrics = newCoordMetrics(s)
	s.trust.Store(cfg.ModuleTrust)
	s.features.Store(&features)
	return s, nil
}

// Start opens the stores, starts Raft (bootstrapping a new single-server
// cluster when BootstrapExpect is 1) and starts serving HTTP.
func (s *Server) Start() error {
	if err := os.MkdirAll(filepath.Join(s.cfg.DataDir, "raft"), 0o700); err != nil {
		return fmt.Errorf("coordinator data dir: %w", err)
	}
	blobs, err := NewBlobStore(filepath.Join(s.cfg.DataDir, "blobs"))
	if err != nil {
		return err
	}
	s.blobs = blobs
	s.fsm = NewFSM(s.cfg.Logger)
	s.fsm.SetKEK(s.cfg.KEK)
	if err := s.startRaft(); err != nil {
		return err
	}
	s.batcher = newReportBatcher(s)
	s.forwarder = newReportForwarder(s)
	s.opBatcher = newOpResultsBatcher(s)
	for _, loop := range []func(){
		func() { s.batcher.run(s.stop) }, func() { s.forwarder.run(s.stop) }, func() { s.opBatcher.run(s.stop) },
		s.blobSyncLoop, s.maintain, s.auditLoop, s.leaderLoop, s.recompileLoop,
	} {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); loop() }()
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		s.shutdownRaft()
		return fmt.Errorf("listen http on %s: %w", s.cfg.HTTPAddr, err)
	}
	s.httpLn = ln
	// Headers up to 2 MiB reach the handlers, so that an absurd token gets
	// the same JSON 401 as any other bad one rather than the server's bare
	// 431.
	// The timeouts are per request (per stream with HTTP/2); the requests
	// that take long by design extend theirs (extendDeadlines).
	t := s.cfg.HTTPTimeouts
	// hpackTableSize bounds each connection's HPACK tables (4 KiB each
	// way by default), which every connected agent keeps for as long as
	// it stays connected. A long-poll's headers change with each request
	// (its ?index, the answer's index and date) and would fill them with
	// entries never used again.
	const hpackTableSize = 512
	s.httpSrv = &http.Server{
		Handler: s.Handler(), ErrorLog: httpErrorLog(s.log), MaxHeaderBytes: 2 << 20,
		ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle,
		// Clients that stop answering PINGs (frozen, cut off) are
		// dropped, also in the middle of a download without a deadline.
		HTTP2: &http.HTTP2Config{SendPingTimeout: serverPingInterval, PingTimeout: serverPingTimeout,
			MaxDecoderHeaderTableSize: hpackTableSize, MaxEncoderHeaderTableSize: hpackTableSize},
	}
	serveLn := ln
	if s.cfg.TLS != nil {
		serveLn = tls.NewListener(plainHTTPRefuser{ln, s.log}, s.cfg.TLS.ServerConfig())
	} else {
		s.log.Warn("INSECURE: the API is served over plain HTTP without authentication; anyone who reaches " + ln.Addr().String() + " can run code as root on every node")
	}
	go func() {
		if err := s.httpSrv.Serve(serveLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "err", err)
		}
	}()
	s.log.Info("coordinator started", "http", s.HTTPAddr(), "raft", s.raftAddr)
	return nil
}

func (s *Server) startRaft() error {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.Name)
	// Raft logs through the coordinator's slog handler (one format).
	rc.Logger = logging.HCLog(s.cfg.Logger, "raft")
	rc.SnapshotThreshold = 4096
	if s.cfg.Fast {
		rc.HeartbeatTimeout = 200 * time.Millisecond
		rc.ElectionTimeout = 200 * time.Millisecond
		rc.LeaderLeaseTimeout = 100 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
	}
	dir := filepath.Join(s.cfg.DataDir, "raft")
	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if s.cfg.RaftInMemory {
		mem := raft.NewInmemStore()
		logs, stable, snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
		if err != nil {
			return fmt.Errorf("open raft store: %w", err)
		}
		s.closers = append(s.closers, store.Close)
		fsnaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, rc.Logger)
		if err != nil {
			s.closeAll()
			return fmt.Errorf("open snapshot store: %w", err)
		}
		logs, stable, snaps = store, store, fsnaps
	}
	if len(s.cfg.KEK) == 0 {
		if err := refuseSealedLog(logs); err != nil {
			s.closeAll()
			return err
		}
	}
	trans := s.cfg.RaftTransport
	if trans == nil {
		addr, err := net.ResolveTCPAddr("tcp", s.cfg.RaftAddr)
		if err != nil {
			s.closeAll()
			return fmt.Errorf("raft address %q: %w", s.cfg.RaftAddr, err)
		}
		var advertise net.Addr = addr
		if addr.Port == 0 {
			advertise = nil // let the transport advertise the port it got
		}
		if s.cfg.TLS != nil {
			stream, err := tlsutil.NewStreamLayer(s.cfg.RaftAddr, advertise, s.cfg.TLS, s.log.With("component", "raft-tls"))
			if err != nil {
				s.closeAll()
				return fmt.Errorf("raft transport on %s: %w", s.cfg.RaftAddr, err)
			}
			nt := raft.NewNetworkTransportWithLogger(stream, 3, 10*time.Second, rc.Logger)
			s.closers = append(s.closers, nt.Close)
			trans = nt
		} else {
			tcp, err := raft.NewTCPTransportWithLogger(s.cfg.RaftAddr, advertise, 3, 10*time.Second, rc.Logger)
			if err != nil {
				s.closeAll()
				return fmt.Errorf("raft transport on %s: %w", s.cfg.RaftAddr, err)
			}
			s.closers = append(s.closers, tcp.Close)
			trans = tcp
		}
	}
	s.raftAddr = string(trans.LocalAddr())
	r, err := raft.NewRaft(rc, s.fsm, logs, stable, snaps, trans)
	if err != nil {
		s.closeAll()
		return fmt.Errorf("start raft: %w", err)
	}
	s.raft, s.transport = r, trans
	has, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("raft state: %w", err)
	}
	if has {
		s.bootstrapd = true
	} else if s.cfg.BootstrapExpect == 1 {
		if err := s.bootstrap([]raft.Server{{ID: rc.LocalID, Address: trans.LocalAddr()}}); err != nil {
			return err
		}
	}
	return nil
}

// bootstrap forms a new cluster with the given voters. Every coordinator
// that sees the same set bootstraps the same configuration, which Raft
// accepts: there is no double bootstrap.
func (s *Server) bootstrap(servers []raft.Server) error {
	f := s.raft.BootstrapCluster(raft.Configuration{Servers: servers})
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	s.bootstrapd = true
	s.log.Info("bootstrapped raft cluster", "voters", len(servers))
	return nil
}

func (s *Server) closeAll() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// SetPeers attaches the view of the other coordinators (the gossip pool)
// and starts the cluster maintenance loop: bootstrap once BootstrapExpect
// coordinators are seen, and on the leader, adding new coordinators and
// marking nodes up or down.
func (s *Server) SetPeers(p Peers) {
	s.mu.Lock()
	s.peers = p
	s.mu.Unlock()
	s.Notify()
}

func (s *Server) getPeers() Peers {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peers
}

// Tags are the serf tags this coordinator advertises.
func (s *Server) Tags() map[string]string {
	tags := map[string]string{
		gossip.TagRole: gossip.RoleCoordinator, gossip.TagHTTP: s.HTTPAddr(),
		gossip.TagRaft: s.raftAddr, gossip.TagVersion: s.cfg.Version,
		gossip.TagFeatures: strings.Join(*s.features.Load(), ","),
	}
	if s.cfg.ReadReplica {
		tags[gossip.TagReplica] = "1"
	}
	return tags
}

// HTTPAddr is the address the API listens on.
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return s.cfg.HTTPAddr
	}
	return s.httpLn.Addr().String()
}

// State is the coordinator's local view of the replicated state.
func (s *Server) State() *State { return s.fsm.State() }

// Raft exposes the Raft instance (tests, operator endpoints).
func (s *Server) Raft() *raft.Raft { return s.raft }

// WaitLeader blocks until this cluster has a leader or ctx ends.
func (s *Server) WaitLeader(ctx context.Context) error {
	for {
		if addr, _ := s.raft.LeaderWithID(); addr != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no raft leader: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// apply commits a command and returns the FSM's response. Raft failures
// (no leader, timeout) come back as errors wrapping ErrNotLeader or the Raft
// error; a command the FSM refused comes back as its error.
func (s *Server) apply(t MessageType, cmd any) (any, error) {
	if t != DataKeyType {
		s.ensureDataKey() // before the first entry that may hold a secret
	}
	b, err := Encode(t, cmd)
	if err != nil {
		return nil, err
	}
	if b, err = s.sealEntry(t, b); err != nil {
		return nil, err
	}
	start := time.Now()
	f := s.raft.Apply(b, 10*time.Second)
	err = f.Error()
	s.observeApply(start)
	if err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return nil, fmt.Errorf("raft apply: %w", err)
	}
	if err, ok := f.Response().(error); ok {
		return nil, err
	}
	return f.Response(), nil
}

// Shutdown stops serving and stops Raft. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutdownOnce.Do(func() {
		// HTTP first, so that no request applies to a stopping Raft.
		if s.httpSrv != nil {
			if e := s.httpSrv.Shutdown(ctx); e != nil {
				s.httpSrv.Close()
			}
		}
		close(s.stop)
		s.wg.Wait()
		err = s.shutdownRaft()
	})
	return err
}

func (s *Server) shutdownRaft() error {
	if s.raft == nil {
		return nil
	}
	err := s.raft.Shutdown().Error()
	s.closeAll()
	return err
}

const raftLeader = raft.Leader

// SetLeaveFunc sets what a graceful leave request (POST /v1/agent/leave)
// calls: the daemon hands over leadership, leaves the pool and stops.
func (s *Server) SetLeaveFunc(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaveFunc = f
}

// TransferLeadership hands leadership to another voter if this coordinator
// leads, and waits until it no longer does.
func (s *Server) TransferLeadership() {
	if s.raft.State() != raft.Leader {
		return
	}
	if err := s.raft.LeadershipTransfer().Error(); err != nil {
		s.log.Warn("leadership transfer", "err", err)
	}
}
