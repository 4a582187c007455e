package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtkhq/dtk/actions"
	"github.com/dtkhq/dtk/agent"
	"github.com/dtkhq/dtk/internal/api"
)

// SimAgent is one simulated agent: a real agent.Agent (pull loop, local
// state, converger, durable report queue) in this process, with its own
// data dir and HTTP transport, whose runner does nothing (or runs bash
// for real when the fleet says so).
type SimAgent struct {
	Index int
	Name  string
	Agent *agent.Agent
	http  *http.Client

	// recv is when a plan answer past the fleet's threshold was read and
	// decoded (Unix ns); ran is when the first step of the wanted
	// generation started; lastPlan is the last plan answer of any index.
	recv, ran, lastPlan atomic.Int64
}

// SimFleet holds simulated agents and the hooks that time them.
type SimFleet struct {
	Dir    string
	Addrs  []string
	Labels func(i int) map[string]string
	// PKI gives each agent a node certificate for its own name and an
	// https client; nil: plain HTTP.
	PKI *PKI
	// Issuing is the time spent issuing the agents' certificates.
	Issuing time.Duration

	mu     sync.Mutex
	agents []*SimAgent
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	logf   *os.File

	threshold atomic.Uint64
	wantGen   atomic.Pointer[string]
	nrecv     atomic.Int64
	nran      atomic.Int64
	// RealBash makes steps run the real bash runner instead of nothing.
	RealBash atomic.Bool
	// Runs counts runner calls.
	Runs atomic.Int64
}

// NewSimFleet prepares a fleet whose agents reach addrs (each agent starts
// at a different coordinator, round-robin) and keep state under dir; with
// pki, each over mutual TLS with a node certificate of its own.
func NewSimFleet(dir string, addrs []string, pki *PKI, labels func(i int) map[string]string) (*SimFleet, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f := &SimFleet{Dir: dir, Addrs: addrs, Labels: labels, PKI: pki}
	lf, err := os.Create(filepath.Join(dir, "agents.log"))
	if err != nil {
		return nil, err
	}
	f.logf = lf
	f.log = slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.threshold.Store(math.MaxUint64)
	return f, nil
}

// SimName is the name of simulated agent i (1-based).
func SimName(i int) string { return fmt.Sprintf("sim-%05d", i) }

// Len is the number of agents started.
func (f *SimFleet) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.agents)
}

// Agents returns the agents started so far.
func (f *SimFleet) Agents() []*SimAgent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*SimAgent(nil), f.agents...)
}

// Grow starts agents until there are n, and waits until every one has
// registered and received its first plan answer. The new agents'
// certificates are issued first, all at once (not part of the wait).
func (f *SimFleet) Grow(n int, timeout time.Duration) error {
	f.mu.Lock()
	start := len(f.agents) + 1
	f.mu.Unlock()
	var names []string
	for i := start; i <= n; i++ {
		names = append(names, SimName(i))
	}
	t := time.Now()
	stores, err := f.PKI.NodeStores(names)
	if err != nil {
		return fmt.Errorf("node certificates: %w", err)
	}
	f.Issuing += time.Since(t)
	for i := start; i <= n; i++ {
		sa := &SimAgent{Index: i, Name: SimName(i)}
		// Round-robin over the coordinators: agent i starts at i mod n.
		addrs := make([]string, len(f.Addrs))
		for j := range f.Addrs {
			addrs[j] = f.Addrs[(i+j)%len(f.Addrs)]
		}
		base := f.PKI.HTTP(stores[i-start]).Transport
		sa.http = &http.Client{Transport: &hookRT{base: base, f: f, a: sa}}
		cl := &api.Client{Addrs: func() []string { return addrs }, HTTP: sa.http, Secure: f.PKI.Secure()}
		a, err := agent.New(agent.Config{
			Name: sa.Name, DataDir: filepath.Join(f.Dir, sa.Name), Labels: f.Labels(i),
			Address: "127.0.0.1", Version: "bench", Client: cl, Logger: f.log,
			Runner: func(string) (actions.Runner, error) { return simRunner{f}, nil },
		})
		if err != nil {
			return err
		}
		sa.Agent = a
		f.mu.Lock()
		f.agents = append(f.agents, sa)
		f.mu.Unlock()
		a.Start(f.ctx)
		if i%100 == 0 {
			// Let registrations drain a little: 5,000 agents starting in
			// the same millisecond is a thundering herd no real fleet has.
			time.Sleep(20 * time.Millisecond)
		}
	}
	return waitUntil(timeout, 50*time.Millisecond, fmt.Sprintf("%d simulated agents registered and polling", n), func() bool {
		for _, a := range f.Agents() {
			if a.lastPlan.Load() == 0 {
				return false
			}
		}
		return true
	})
}

// Arm starts a measurement: from now on the first plan answer with an
// index above threshold is recorded per agent, and the first step run
// whose "gen" attribute is gen.
func (f *SimFleet) Arm(threshold uint64, gen string) {
	f.threshold.Store(math.MaxUint64)
	f.wantGen.Store(&gen)
	for _, a := range f.Agents() {
		a.recv.Store(0)
		a.ran.Store(0)
	}
	f.nrecv.Store(0)
	f.nran.Store(0)
	f.threshold.Store(threshold)
}

// Counts says how many agents have received the slice and started its
// step since Arm.
func (f *SimFleet) Counts() (recv, ran int64) { return f.nrecv.Load(), f.nran.Load() }

// Times returns, for the first n agents, when each received the armed
// slice and when it started its step (zero when not yet).
func (f *SimFleet) Times(n int) (recv, ran []time.Time) {
	for _, a := range f.Agents()[:n] {
		recv = append(recv, unixNano(a.recv.Load()))
		ran = append(ran, unixNano(a.ran.Load()))
	}
	return recv, ran
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Stop stops every agent and closes its connections.
func (f *SimFleet) Stop() {
	f.cancel()
	var wg sync.WaitGroup
	for _, a := range f.Agents() {
		wg.Add(1)
		go func() { defer wg.Done(); a.Agent.Shutdown(); a.http.CloseIdleConnections() }()
	}
	wg.Wait()
	f.logf.Close()
}

func (f *SimFleet) agent(name string) *SimAgent {
	i, err := strconv.Atoi(strings.TrimPrefix(name, "sim-"))
	if err != nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < 1 || i > len(f.agents) {
		return nil
	}
	return f.agents[i-1]
}

// hookRT times plan answers: when the agent has read and decoded one (the
// api client closes the body after decoding), it holds the slice.
type hookRT struct {
	base http.RoundTripper
	f    *SimFleet
	a    *SimAgent
}

func (h *hookRT) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK || !strings.HasSuffix(req.URL.Path, "/plan") {
		return resp, err
	}
	idx, _ := strconv.ParseUint(resp.Header.Get(api.IndexHeader), 10, 64)
	resp.Body = &hookBody{ReadCloser: resp.Body, done: func() {
		now := time.Now().UnixNano()
		h.a.lastPlan.Store(now)
		if idx > h.f.threshold.Load() && h.a.recv.CompareAndSwap(0, now) {
			h.f.nrecv.Add(1)
		}
	}}
	return resp, nil
}

// CloseIdleConnections closes the base transport's idle connections.
func (h *hookRT) CloseIdleConnections() {
	if c, ok := h.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type hookBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *hookBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// simRunner records when an agent starts the step of the armed generation
// and then does nothing (a step that succeeds at once), or runs bash.
type simRunner struct{ f *SimFleet }

func (r simRunner) Kind() string { return "sim" }

func (r simRunner) Run(ctx context.Context, req actions.Request) actions.Result {
	r.f.Runs.Add(1)
	if a := r.f.agent(req.Node); a != nil {
		var gen string
		json.Unmarshal(req.Attributes["gen"], &gen)
		if want := r.f.wantGen.Load(); want != nil && gen == *want && a.ran.CompareAndSwap(0, time.Now().UnixNano()) {
			r.f.nran.Add(1)
		}
	}
	if r.f.RealBash.Load() {
		kind := req.Action.Kind
		if kind == "" {
			kind = "bash"
		}
		real, err := actions.Lookup(kind)
		if err != nil {
			return actions.Result{State: actions.Failed, ExitCode: -1, Err: err}
		}
		return real.Run(ctx, req)
	}
	return actions.Result{State: actions.Changed}
}
