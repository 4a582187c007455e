package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/dtkhq/dtk/internal/tlsutil"
)

// DevConfig configures a dev cluster: one coordinator and N agents in one
// process, all on loopback.
type DevConfig struct {
	Agents int
	// DataDir holds all state; empty means a new temporary folder that
	// Shutdown removes.
	DataDir  string
	HTTPAddr string
	Version  string
	Logger   *slog.Logger
	// Insecure runs the dev cluster without TLS (tests of the insecure
	// mode); the default is a secure cluster with its own CA.
	Insecure bool
}

// Dev is a running dev cluster.
type Dev struct {
	DataDir  string
	HTTPAddr string
	// Agents lists each agent's name, address and labels.
	Agents []DevAgent
	// PKI is the dev cluster's certificates and keys (nil when insecure);
	// EnvFile holds the shell exports that point dtkctl at it.
	PKI     *DevPKI
	EnvFile string
	daemons []*Daemon
	tempDir bool
}

// DevAgent describes one dev agent.
type DevAgent struct {
	Name    string
	Address string
	Labels  map[string]string
	DataDir string
}

// DevRoles are the labels dev agents carry, in turn: the example template
// binds its nodes to them.
var DevRoles = []string{"web", "db"}

// StartDev starts a coordinator on 127.0.0.1 and agents on 127.0.0.2,
// 127.0.0.3, ... (each its own loopback address, same gossip port).
func StartDev(ctx context.Context, cfg DevConfig) (*Dev, error) {
	if cfg.Agents < 0 || cfg.Agents > 200 {
		return nil, fmt.Errorf("--agents must be between 0 and 200, got %d", cfg.Agents)
	}
	dev := &Dev{DataDir: cfg.DataDir}
	if dev.DataDir == "" {
		d, err := os.MkdirTemp("", "dtk-dev-")
		if err != nil {
			return nil, err
		}
		dev.DataDir, dev.tempDir = d, true
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", DefaultHTTPPort)
	}
	serf := fmt.Sprintf("127.0.0.1:%d", DefaultSerfPort)
	ccfg := Config{
		Name: "coordinator-1", DataDir: filepath.Join(dev.DataDir, "coordinator-1"), Coordinator: true,
		BootstrapExpect: 1, NoAgent: true, HTTPAddr: cfg.HTTPAddr, SerfAddr: serf,
		RaftAddr: fmt.Sprintf("127.0.0.1:%d", DefaultRaftPort), Version: cfg.Version, Logger: cfg.Logger, Fast: true,
		Insecure: cfg.Insecure,
	}
	if !cfg.Insecure {
		pki, err := newDevPKI(dev.DataDir)
		if err != nil {
			dev.Shutdown(ctx)
			return nil, fmt.Errorf("dev certificates: %w", err)
		}
		dev.PKI = pki
		host, _, _ := net.SplitHostPort(cfg.HTTPAddr)
		if ccfg.TLS, err = pki.files(tlsutil.RoleServer, ccfg.Name, host); err != nil {
			dev.Shutdown(ctx)
			return nil, err
		}
		ccfg.TLS.CAKey, ccfg.KeyringFile, ccfg.Encrypt = pki.CAKey, pki.KeyringFile, pki.GossipKey
		ccfg.ACLEnabled = true
	}
	coord, err := Start(ctx, ccfg)
	if err != nil {
		dev.Shutdown(ctx)
		return nil, err
	}
	dev.daemons = append(dev.daemons, coord)
	dev.HTTPAddr = coord.Coordinator().HTTPAddr()
	if dev.PKI != nil {
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := dev.PKI.bootstrapACL(bctx, dev.HTTPAddr)
		cancel()
		if err != nil {
			dev.Shutdown(ctx)
			return nil, fmt.Errorf("bootstrap ACLs: %w", err)
		}
		if dev.EnvFile, err = dev.PKI.writeEnv(dev.DataDir, dev.HTTPAddr); err != nil {
			dev.Shutdown(ctx)
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := coord.Coordinator().WaitLeader(wctx); err != nil {
		dev.Shutdown(ctx)
		return nil, err
	}
	for i := 1; i <= cfg.Agents; i++ {
		a := DevAgent{
			Name:    fmt.Sprintf("agent-%d", i),
			Address: fmt.Sprintf("127.0.0.%d", i+1),
			Labels:  map[string]string{"role": DevRoles[(i-1)%len(DevRoles)], "env": "dev"},
		}
		a.DataDir = filepath.Join(dev.DataDir, a.Name)
		acfg := Config{
			Name: a.Name, DataDir: a.DataDir, Labels: a.Labels,
			SerfAddr: fmt.Sprintf("%s:%d", a.Address, DefaultSerfPort), Join: []string{serf},
			Version: cfg.Version, Logger: cfg.Logger, Fast: true, Insecure: cfg.Insecure,
		}
		if dev.PKI != nil {
			if acfg.TLS, err = dev.PKI.files(tlsutil.RoleNode, a.Name, a.Address); err != nil {
				dev.Shutdown(ctx)
				return nil, err
			}
			acfg.Encrypt = dev.PKI.GossipKey
		}
		d, err := Start(ctx, acfg)
		if err != nil {
			dev.Shutdown(ctx)
			return nil, fmt.Errorf("start %s: %w", a.Name, err)
		}
		dev.daemons = append(dev.daemons, d)
		dev.Agents = append(dev.Agents, a)
	}
	return dev, nil
}

// Shutdown stops agents, then the coordinator, and removes a temporary
// data dir.
func (d *Dev) Shutdown(ctx context.Context) {
	for i := len(d.daemons) - 1; i >= 0; i-- {
		d.daemons[i].Shutdown(ctx)
	}
	if d.tempDir {
		os.RemoveAll(d.DataDir)
	}
}
