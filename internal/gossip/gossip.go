// Package gossip is dtk's membership layer: one serf pool shared by
// coordinators and agents. Members advertise what they are in tags; Parse
// reads them back.
package gossip

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/dtkhq/dtk/internal/logging"
)

// Tag names.
const (
	TagRole    = "role"
	TagHTTP    = "http"
	TagRaft    = "raft"
	TagVersion = "version"
	// TagReplica is "1" on a read-replica coordinator.
	TagReplica = "replica"
	TagDC      = "dc"
	// TagFeatures lists a coordinator's capabilities, comma-separated
	// (the log entry types it knows beyond its version's baseline).
	TagFeatures = "features"
)

// Roles.
const (
	RoleAgent       = "agent"
	RoleCoordinator = "coordinator"
)

// Config configures a pool member.
type Config struct {
	Name string
	// BindAddr is host:port for gossip (TCP and UDP).
	BindAddr string
	Tags     map[string]string
	// SnapshotPath lets a restarted member rejoin the peers it knew.
	SnapshotPath string
	// PeersFile keeps the addresses of known members, written on every
	// membership change (serf's snapshot buffers its writes and can lose
	// recent joins on a crash); with no Join given, a restarted member
	// joins them.
	PeersFile string
	// Join lists addresses to join; tried in the background until one
	// answers or the context ends.
	Join   []string
	Logger *slog.Logger
	// Fast shortens failure detection for tests and dev clusters.
	Fast bool

	// EncryptKey is the base64 gossip key (--encrypt, encrypt = "...").
	// With a key, gossip is encrypted and authenticated: a process
	// without it can neither join nor read the traffic. A keyring saved
	// at KeyringPath wins over it entirely (it may have been rotated
	// since); a warning says so when EncryptKey is not in it.
	EncryptKey string
	// KeyringPath is where this member's keyring is saved (mode 0600)
	// whenever it changes, so that a restart keeps a rotated key.
	KeyringPath string
	// KEK, when set, seals the saved keyring (internal/secret); without
	// it the file is plain JSON.
	KEK []byte
}

// Member is this process's membership in the pool.
type Member struct {
	serf   *serf.Serf
	events chan serf.Event
	log    *slog.Logger

	peersFile string

	// Encryption; keyring is nil when gossip is in clear.
	keyring     *memberlist.Keyring
	keyringPath string
	kek         []byte
	keyMu       sync.Mutex
	savedKeys   *keyringFile // last saved, guarded by keyMu
	keysDone    chan struct{}

	mu       sync.Mutex
	handlers []func(serf.Event)
	cancel   context.CancelFunc
	done     chan struct{}
}

// Peer is a parsed pool member.
type Peer struct {
	Name     string
	Role     string
	HTTPAddr string
	RaftAddr string
	Version  string
	DC       string
	// Replica: a read-replica coordinator (a Raft non-voter serving agents).
	Replica bool
	// Features is the TagFeatures list, comma-separated.
	Features string
	Status   string // alive, leaving, left, failed
	Addr     string // gossip address
}

// Parse reads a serf member's tags.
func Parse(m serf.Member) Peer {
	return Peer{
		Name: m.Name, Role: m.Tags[TagRole], HTTPAddr: m.Tags[TagHTTP], RaftAddr: m.Tags[TagRaft],
		Version: m.Tags[TagVersion], DC: m.Tags[TagDC], Status: m.Status.String(), Replica: m.Tags[TagReplica] == "1",
		Features: m.Tags[TagFeatures],
		Addr:     net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))),
	}
}

// Start creates the serf member and begins joining cfg.Join in the
// background.
func Start(ctx context.Context, cfg Config) (*Member, error) {
	host, portStr, err := net.SplitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", cfg.BindAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: bad port", cfg.BindAddr)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sc := serf.DefaultConfig()
	sc.NodeName = cfg.Name
	sc.Tags = cfg.Tags
	sc.MemberlistConfig = memberlistConfig(cfg.Fast)
	sc.MemberlistConfig.BindAddr = host
	sc.MemberlistConfig.BindPort = port
	sc.MemberlistConfig.AdvertiseAddr = host
	sc.MemberlistConfig.AdvertisePort = port
	sc.MemberlistConfig.LogOutput = nil
	// serf and memberlist log through the member's slog handler (one
	// format; their info lines at debug).
	sc.MemberlistConfig.Logger = log.New(&cryptLog{log: cfg.Logger, next: logging.StdLogger(cfg.Logger).Writer()}, "", 0)
	sc.LogOutput = nil
	sc.Logger = logging.StdLogger(cfg.Logger)
	sc.SnapshotPath = cfg.SnapshotPath
	sc.RejoinAfterLeave = true
	if cfg.Fast {
		sc.ReapInterval = time.Second
		sc.ReconnectInterval = time.Second
		sc.TombstoneTimeout = time.Minute
	}
	keyring, err := setupKeyring(cfg, cfg.Logger)
	if err != nil {
		return nil, err
	}
	sc.MemberlistConfig.Keyring = keyring
	events := make(chan serf.Event, 256)
	sc.EventCh = events
	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.BindAddr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	m := &Member{serf: s, events: events, log: cfg.Logger, cancel: cancel, done: make(chan struct{})}
	m.peersFile = cfg.PeersFile
	m.keyring, m.keyringPath, m.kek = keyring, cfg.KeyringPath, cfg.KEK
	if keyring != nil && cfg.KeyringPath != "" {
		if err := m.saveKeyring(); err != nil {
			cancel()
			s.Shutdown()
			return nil, err
		}
		m.keysDone = make(chan struct{})
		go m.watchKeyring(ctx.Done())
	}
	go m.loop(ctx)
	join := cfg.Join
	if len(join) == 0 {
		join = loadPeers(cfg.PeersFile, cfg.BindAddr)
	}
	if len(join) > 0 {
		go m.retryJoin(ctx, join)
	}
	return m, nil
}

// OnEvent registers a handler called for every membership event.
func (m *Member) OnEvent(h func(serf.Event)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handlers = append(m.handlers, h)
}

func (m *Member) loop(ctx context.Context) {
	defer close(m.done)
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-m.events:
			if _, ok := e.(serf.MemberEvent); ok {
				m.savePeers()
			}
			m.mu.Lock()
			hs := append([]func(serf.Event){}, m.handlers...)
			m.mu.Unlock()
			for _, h := range hs {
				h(e)
			}
		}
	}
}

// retryJoin joins addrs, retrying with jittered backoff until one answers.
func (m *Member) retryJoin(ctx context.Context, addrs []string) {
	wait := 200 * time.Millisecond
	for {
		n, err := m.serf.Join(addrs, true)
		if n > 0 {
			m.log.Info("joined gossip pool", "via", addrs, "contacted", n)
			return
		}
		if ctx.Err() != nil {
			return
		}
		m.log.Warn("join failed, retrying", "addrs", addrs, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait + rand.N(wait/2)):
		}
		wait = min(wait*2, 10*time.Second)
	}
}

// Join joins addrs once.
func (m *Member) Join(addrs []string) (int, error) { return m.serf.Join(addrs, true) }

// Peers returns every known member.
func (m *Member) Peers() []Peer {
	var out []Peer
	for _, mem := range m.serf.Members() {
		out = append(out, Parse(mem))
	}
	return out
}

// Coordinators returns the alive coordinators.
func (m *Member) Coordinators() []Peer {
	var out []Peer
	for _, mem := range m.serf.Members() {
		p := Parse(mem)
		if p.Role == RoleCoordinator && mem.Status == serf.StatusAlive && p.HTTPAddr != "" {
			out = append(out, p)
		}
	}
	return out
}

// Serf exposes the underlying serf instance.
func (m *Member) Serf() *serf.Serf { return m.serf }

// Leave leaves the pool gracefully, so that others see "left", not "failed".
func (m *Member) Leave() error { return m.serf.Leave() }

// Shutdown stops the member. It is safe to call more than once.
func (m *Member) Shutdown() error {
	m.cancel()
	err := m.serf.Shutdown()
	<-m.done
	if m.keysDone != nil {
		<-m.keysDone
		if serr := m.saveKeyring(); serr != nil {
			m.log.Warn("save gossip keyring", "err", serr)
		}
	}
	return err
}

// savePeers writes the gossip addresses of alive members, atomically.
func (m *Member) savePeers() {
	if m.peersFile == "" {
		return
	}
	var addrs []string
	for _, p := range m.Peers() {
		if p.Status == "alive" && p.Name != m.serf.LocalMember().Name {
			addrs = append(addrs, p.Addr)
		}
	}
	if len(addrs) == 0 {
		return // keep the last known peers rather than forget them
	}
	sort.Strings(addrs)
	b, _ := json.Marshal(addrs)
	tmp := m.peersFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		m.log.Warn("save known peers", "err", err)
		return
	}
	if err := os.Rename(tmp, m.peersFile); err != nil {
		m.log.Warn("save known peers", "err", err)
	}
}

// loadPeers reads the known peers file, leaving out this member's own
// address.
func loadPeers(path, self string) []string {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var addrs []string
	if json.Unmarshal(b, &addrs) != nil {
		return nil
	}
	out := addrs[:0]
	for _, a := range addrs {
		if a != self {
			out = append(out, a)
		}
	}
	return out
}

// HasKnownPeers reports whether a peers file lists anyone to rejoin.
func HasKnownPeers(path string) bool { return len(loadPeers(path, "")) > 0 }
