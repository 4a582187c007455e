// Package daemon wires one dtk-agent process: its gossip membership, an
// optional coordinator and the agent, started and stopped in the right
// order. cmd/dtk-agent only parses flags and calls it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/dtkhq/dtk/agent"
	"github.com/dtkhq/dtk/coordinator"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/gossip"
	"github.com/dtkhq/dtk/internal/limits"
)

// Default addresses and ports.
const (
	DefaultHTTPPort = 7070
	DefaultSerfPort = 7946
	DefaultRaftPort = 7947
)

// Config is everything `dtk-agent run` takes.
type Config struct {
	Name            string
	DataDir         string
	Coordinator     bool
	BootstrapExpect int
	// NoAgent runs a coordinator that does not also act as a node.
	NoAgent bool
	// ReadReplica runs the coordinator as a Raft non-voter that serves
	// agents (coordinator.Config.ReadReplica).
	ReadReplica bool
	Join        []string
	Labels      map[string]string
	HTTPAddr    string
	SerfAddr    string
	RaftAddr    string
	Version     string
	Logger      *slog.Logger
	// Fast shortens Raft and gossip timers (tests and dev clusters).
	Fast              bool
	PollWait          time.Duration
	ReconcileInterval time.Duration
	// StepUser and StepGroup: the account steps run as when their action
	// names none (empty: the agent's own).
	StepUser, StepGroup string

	// Security (docs/security.md).
	TLS           TLSFiles
	CAFingerprint string
	Encrypt       string
	KeyringFile   string
	JoinToken     string
	EnrollAddrs   []string
	Insecure      bool
	// NodeCertTTL is the lifetime of the node certificates this
	// coordinator issues by enrollment (0: a year).
	NodeCertTTL time.Duration
	// ACLEnabled turns on access control on this coordinator.
	ACLEnabled bool
	// UIEnabled serves the web dashboard at /ui/ on this coordinator.
	UIEnabled bool
	// NodeGCAfter is how long a node is down before it is forgotten.
	NodeGCAfter time.Duration
	// Limits bound what one request to this coordinator may carry (zero:
	// limits.Default()).
	Limits limits.Limits
	// HTTPTimeouts bound the coordinator API server's waits for its
	// clients (zero fields: coordinator.DefaultHTTPTimeouts).
	HTTPTimeouts coordinator.HTTPTimeouts
	// MetricsAddr is where the agent serves its Prometheus metrics
	// (empty: off, nothing built).
	MetricsAddr string
	// ModulesTrustedKeys are the public key files whose module and bundle
	// signatures this coordinator trusts; ModulesRequireSignature refuses
	// unsigned ones (modules.go).
	ModulesTrustedKeys      []string
	ModulesRequireSignature bool
	// KeepBinaryPages turns off the agent's dropping of its binary's
	// resident pages once idle (agent.Config.DropPages, on by default);
	// DropPagesAfter is the quiet time before a drop (zero: 30 s).
	KeepBinaryPages bool
	DropPagesAfter  time.Duration
}

// Daemon is a running dtk-agent process.
type Daemon struct {
	cfg    Config
	log    *slog.Logger
	gossip *gossip.Member
	coord  *coordinator.Server
	sec    *security

	mu    sync.Mutex
	agent *agent.Agent

	leaving  atomic.Bool
	done     chan struct{}
	doneOnce sync.Once
	// stopLoops ends the daemon's own background loops (trust refresh).
	stopLoops context.CancelFunc
	// metrics serves the agent's metrics (nil: metrics_addr not set).
	metrics *agent.MetricsServer
}

// Start starts the coordinator (if asked), the gossip member and the agent.
func Start(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		h, _ := os.Hostname()
		cfg.Name = h
	}
	if cfg.SerfAddr == "" {
		cfg.SerfAddr = fmt.Sprintf("127.0.0.1:%d", DefaultSerfPort)
	}
	host, _, err := net.SplitHostPort(cfg.SerfAddr)
	if err != nil {
		return nil, fmt.Errorf("--serf-addr %q: %w", cfg.SerfAddr, err)
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = net.JoinHostPort(host, fmt.Sprint(DefaultHTTPPort))
	}
	if cfg.RaftAddr == "" {
		cfg.RaftAddr = net.JoinHostPort(host, fmt.Sprint(DefaultRaftPort))
	}
	if !cfg.Coordinator && len(cfg.Join) == 0 && !gossip.HasKnownPeers(peersFile(cfg.DataDir)) {
		return nil, errors.New("an agent needs --join ADDR (the gossip address of any coordinator or agent) the first time it starts")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	tuneMemory(cfg)
	sec, err := setupSecurity(ctx, &cfg, cfg.Logger)
	if err != nil {
		return nil, err
	}
	keyringPath := filepath.Join(cfg.DataDir, "serf.keyring")
	if sec.store != nil && sec.gossipKey == "" && !exists(keyringPath) {
		if cfg.Coordinator {
			return nil, setupError("a secure cluster encrypts its gossip: set encrypt (--encrypt; dtk-agent keygen makes a key), the same on every coordinator")
		}
		k, err := fetchGossipKeys(ctx, &cfg, sec.store, cfg.Logger)
		if err != nil {
			return nil, err
		}
		sec.gossipKey = k
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), sec: sec}
	tags := map[string]string{gossip.TagRole: gossip.RoleAgent, gossip.TagVersion: cfg.Version}
	if cfg.Coordinator {
		trust, err := loadModuleTrust(cfg.ModulesTrustedKeys, cfg.ModulesRequireSignature)
		if err != nil {
			return nil, setupError("%v", err)
		}
		logModuleTrust(cfg.Logger, trust)
		c, err := coordinator.New(coordinator.Config{
			Name: cfg.Name, DataDir: filepath.Join(cfg.DataDir, "coordinator"), HTTPAddr: cfg.HTTPAddr,
			RaftAddr: cfg.RaftAddr, BootstrapExpect: cfg.BootstrapExpect, Version: cfg.Version, ReadReplica: cfg.ReadReplica,
			Logger: cfg.Logger, Fast: cfg.Fast, TLS: sec.store, KEK: sec.kek, CAKeyPEM: sec.caKey,
			NodeCertTTL: cfg.NodeCertTTL, ACLEnabled: cfg.ACLEnabled, UI: cfg.UIEnabled, NodeGCAfter: cfg.NodeGCAfter, Limits: cfg.Limits, HTTPTimeouts: cfg.HTTPTimeouts,
			ModuleTrust: trust,
		})
		if err != nil {
			return nil, err
		}
		if err := c.Start(); err != nil {
			return nil, err
		}
		d.coord = c
		tags = c.Tags()
	}
	g, err := gossip.Start(ctx, gossip.Config{
		Name: cfg.Name, BindAddr: cfg.SerfAddr, Tags: tags, Join: cfg.Join, Logger: cfg.Logger,
		SnapshotPath: filepath.Join(cfg.DataDir, "serf.snapshot"), PeersFile: peersFile(cfg.DataDir),
		Fast: cfg.Fast, EncryptKey: sec.gossipKey, KeyringPath: keyringPath, KEK: sec.kek,
	})
	if err != nil {
		d.Shutdown(ctx)
		return nil, err
	}
	d.gossip = g
	if d.coord != nil {
		d.coord.SetPeers(g)
		d.coord.SetLeaveFunc(d.leave)
	}
	g.OnEvent(func(serf.Event) {
		if d.coord != nil {
			d.coord.Notify()
		}
		if a := d.Agent(); a != nil {
			a.CoordinatorsChanged()
		}
	})
	if cfg.Coordinator && cfg.NoAgent {
		return d, nil
	}
	client := api.NewDynamicClient(d.coordinatorAddrs)
	if sec.store != nil {
		client.Secure = true
		client.HTTP = api.TLSHTTPClientFor(sec.store)
	}
	var am *agent.Metrics
	if cfg.MetricsAddr != "" {
		am = agent.NewMetrics()
	}
	a, err := agent.New(agent.Config{
		Name: cfg.Name, DataDir: filepath.Join(cfg.DataDir, "agent"), Labels: cfg.Labels,
		Address: host, Version: cfg.Version, Client: client, Logger: cfg.Logger,
		PollWait: cfg.PollWait, ReconcileInterval: cfg.ReconcileInterval,
		StepUser: cfg.StepUser, StepGroup: cfg.StepGroup, Metrics: am,
		DropPages: !cfg.KeepBinaryPages, DropPagesAfter: cfg.DropPagesAfter,
	})
	if err != nil {
		d.Shutdown(ctx)
		return nil, err
	}
	if am != nil {
		ms, err := agent.ServeMetrics(am, cfg.MetricsAddr, cfg.Logger.With("component", "metrics"))
		if err != nil {
			a.Shutdown()
			d.Shutdown(ctx)
			return nil, setupError("%v", err)
		}
		d.metrics = ms
	}
	d.mu.Lock()
	d.agent = a
	d.mu.Unlock()
	a.Start(ctx)
	if sec.enrolled {
		lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		d.stopLoops = cancel
		go d.trustLoop(lctx)
	}
	return d, nil
}

// Done is closed when the daemon asked to stop itself (a graceful leave).
func (d *Daemon) Done() <-chan struct{} { return d.done }

// leave is a coordinator's graceful exit: hand leadership over, leave the
// pool (the leader then removes this coordinator from the Raft
// configuration), and ask the process to stop.
func (d *Daemon) leave() {
	d.leaving.Store(true)
	if d.coord != nil {
		d.coord.TransferLeadership()
	}
	if err := d.gossip.Leave(); err != nil {
		d.log.Warn("leave gossip pool", "err", err)
	}
	d.doneOnce.Do(func() { close(d.done) })
}

func peersFile(dataDir string) string { return filepath.Join(dataDir, "known-peers.json") }

// coordinatorAddrs lists coordinator HTTP addresses from gossip, this
// process's own coordinator first.
func (d *Daemon) coordinatorAddrs() []string {
	var out []string
	if d.coord != nil {
		out = append(out, d.coord.HTTPAddr())
	}
	// Agents prefer read replicas when there are some: they are there to
	// take the agents' polls off the voters.
	var others, replicas []string
	for _, p := range d.gossip.Coordinators() {
		if d.coord == nil || p.HTTPAddr != d.coord.HTTPAddr() {
			others = append(others, p.HTTPAddr)
			if p.Replica {
				replicas = append(replicas, p.HTTPAddr)
			}
		}
	}
	if len(replicas) > 0 && d.coord == nil {
		others = replicas
	}
	sort.Strings(others)
	return append(out, others...)
}

// Coordinator is the process's coordinator, or nil.
func (d *Daemon) Coordinator() *coordinator.Server { return d.coord }

// Agent is the process's agent, or nil.
func (d *Daemon) Agent() *agent.Agent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.agent
}

// Gossip is the process's pool membership.
func (d *Daemon) Gossip() *gossip.Member { return d.gossip }

// Shutdown stops everything in reverse order of start: the agent first (its
// running step is cancelled), then the gossip membership, then the
// coordinator. A plain agent leaves the pool (peers see "left", not
// "failed"); a coordinator does not, because a stopped coordinator is
// expected back and must stay in the Raft configuration (stopping all
// coordinators and starting them again keeps the cluster). A coordinator
// leaves for good with `dtk-agent leave`.
func (d *Daemon) Shutdown(ctx context.Context) {
	if d.stopLoops != nil {
		d.stopLoops()
	}
	if a := d.Agent(); a != nil {
		a.Shutdown()
	}
	if d.metrics != nil {
		d.metrics.Close(ctx)
	}
	if d.gossip != nil {
		if d.coord == nil && !d.leaving.Load() {
			if err := d.gossip.Leave(); err != nil {
				d.log.Warn("leave gossip pool", "err", err)
			}
		}
		d.gossip.Shutdown()
	}
	if d.coord != nil {
		if err := d.coord.Shutdown(ctx); err != nil {
			d.log.Warn("coordinator shutdown", "err", err)
		}
	}
}
