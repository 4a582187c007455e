package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtkhq/dtk/actions"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// Config configures an agent.
type Config struct {
	Name    string
	DataDir string
	Labels  map[string]string
	// Address is the agent's advertised address (templates see it as
	// node.X.address).
	Address string
	Version string
	// Client reaches the coordinators.
	Client *api.Client
	Logger *slog.Logger
	// PollWait is how long one plan long-poll may wait (jitter is added).
	PollWait time.Duration
	// ReconcileInterval is how often the cached slice is converged again
	// (retrying failed steps) when no new plan arrives.
	ReconcileInterval time.Duration
	// DefaultTimeout bounds an action that sets no timeout.
	DefaultTimeout time.Duration
	// StepUser and StepGroup are the account steps run as when their
	// action names none (step_user, step_group); empty: the agent's own.
	StepUser, StepGroup string
	// Runner finds the runner for an action kind; nil means
	// actions.Lookup. Benchmarks set it to run the real agent with a
	// no-op runner.
	Runner func(kind string) (actions.Runner, error)
	// OutboxBytes bounds the reports kept while no coordinator accepts
	// them; the oldest are dropped beyond it (logged). Zero
	// means DefaultOutboxBytes.
	OutboxBytes int64
	// LeftoverGrace is how long a step process group a previous agent
	// left running has between SIGTERM and SIGKILL; zero means 10 s.
	LeftoverGrace time.Duration
	// Metrics receives converge, step and poll measurements; nil: metrics
	// off (metrics.go).
	Metrics *Metrics
	// DropPages drops this process's mappings of its own binary's
	// read-only pages once the agent has been quiet for DropPagesAfter
	// (zero: DefaultDropPagesAfter), so that its RSS holds only what the
	// idle agent uses (pagedrop.go). Linux only.
	DropPages      bool
	DropPagesAfter time.Duration
}

// Agent pulls its node's plan slice and converges it.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	client    *api.Client
	statePath string

	mu    sync.Mutex // guards state
	state *localState
	// store holds the incarnation, the report outbox and the process
	// groups of running steps (store.go, procs.go).
	store         *store
	closeOnce     sync.Once
	leftoverGrace time.Duration
	// cleared is closed once the process groups a previous agent left
	// running are stopped: nothing runs before.
	cleared chan struct{}

	flush      chan struct{}
	reregister chan struct{}
	cancel     context.CancelFunc

	reconcileInterval atomic.Int64

	// convergeMu makes converges (and one-off operations) run one at a
	// time on this node.
	convergeMu sync.Mutex
	running    running
	// ops are the one-off operations taken up (ops.go).
	ops seenOps
	// skipped holds the "skipped" reports of the converge pass under
	// way; they are queued together, with one state save (guarded by
	// convergeMu).
	skipped []plan.Report
	// subscribers maps a step ID of the slice being converged to the
	// steps that subscribe to it (subscribe.go; guarded by convergeMu).
	subscribers map[string][]string

	pollMu     sync.Mutex
	pollCancel context.CancelFunc
	pollAddr   string
	wg         sync.WaitGroup

	// converged is signalled after every converge (tests).
	convergedMu sync.Mutex
	converges   uint64

	// pages drops the binary's resident pages when quiet (pagedrop.go).
	pages pageDropper
}

// New prepares an agent: it creates the data dir and loads local state but
// starts nothing.
func New(cfg Config) (*Agent, error) {
	if cfg.Name == "" {
		return nil, errors.New("agent: name is required")
	}
	if cfg.Client == nil {
		return nil, errors.New("agent: a coordinator client is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PollWait <= 0 {
		cfg.PollWait = 5 * time.Minute
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = 10 * time.Minute
	}
	// The data dir holds sensitive values (the state file, each step's
	// attributes): the agent's alone, also when an older agent left it
	// wider.
	for _, d := range []string{cfg.DataDir, filepath.Join(cfg.DataDir, "modules"), filepath.Join(cfg.DataDir, "steps")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("agent data dir: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("agent data dir: %w", err)
		}
	}
	a := &Agent{
		cfg: cfg, log: cfg.Logger.With("component", "agent", "node", cfg.Name),
		client: cfg.Client, statePath: filepath.Join(cfg.DataDir, "agent-state.json"),
		flush: make(chan struct{}, 1), reregister: make(chan struct{}, 1),
		leftoverGrace: cfg.LeftoverGrace, cleared: make(chan struct{}),
	}
	if a.leftoverGrace <= 0 {
		a.leftoverGrace = defaultLeftoverGrace
	}
	a.reconcileInterval.Store(int64(cfg.ReconcileInterval))
	a.pages.init(cfg)
	old, err := loadState(a.statePath)
	if err != nil {
		return nil, err
	}
	if a.store, err = openStore(cfg.DataDir, cfg.Name, cfg.OutboxBytes, a.log); err != nil {
		return nil, err
	}
	if err := a.loadRecords(old); err != nil {
		a.store.close()
		return nil, err
	}
	if cfg.Metrics != nil {
		cfg.Metrics.watch(a)
	}
	return a, nil
}

// loadRecords takes the step records from the database, after moving what
// an older agent kept in its state file (old) there: its queued reports
// and its records. The state file is then rewritten with the slice alone.
func (a *Agent) loadRecords(old *localState) error {
	if err := a.store.migrate(old); err != nil {
		return err
	}
	steps, failed, seq, err := a.store.records()
	if err != nil {
		return err
	}
	a.state = &localState{Slice: old.Slice, Steps: steps, Failed: failed, Seq: seq}
	if old.Queue != nil || len(old.Steps) > 0 || len(old.Failed) > 0 || old.Seq != 0 {
		return a.state.save(a.statePath)
	}
	return nil
}

// Incarnation is the random ID made when the agent's data dir was: a
// wiped data dir makes a new incarnation, whose reports the coordinators
// number apart from the old one's.
func (a *Agent) Incarnation() string { return a.store.incarnation }

// Start runs the pull loop and the report sender until Shutdown.
func (a *Agent) Start(ctx context.Context) {
	ctx, a.cancel = context.WithCancel(ctx)
	a.wg.Add(6)
	go func() {
		defer a.wg.Done()
		defer close(a.cleared)
		a.stopLeftovers(ctx)
	}()
	go func() {
		defer a.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.reregister:
				if err := a.register(ctx); err != nil {
					return
				}
			}
		}
	}()
	go func() { defer a.wg.Done(); a.pullLoop(ctx) }()
	go func() { defer a.wg.Done(); a.sendLoop(ctx) }()
	go func() { defer a.wg.Done(); a.opsLoop(ctx) }()
	go func() { defer a.wg.Done(); a.dropLoop(ctx) }()
}

// Shutdown stops the loops; a running step is cancelled (its process group
// killed) and reported as such on the next start. Safe to call twice.
func (a *Agent) Shutdown() {
	if a.cancel != nil {
		a.cancel()
	}
	// The loops use the store: it closes after they have stopped.
	a.wg.Wait()
	a.closeOnce.Do(func() {
		if err := a.store.close(); err != nil {
			a.log.Error("close the agent database", "err", err)
		}
	})
}

// waitCleared waits until the leftovers of a previous agent are stopped;
// false when ctx ends first.
func (a *Agent) waitCleared(ctx context.Context) bool {
	select {
	case <-a.cleared:
		return true
	case <-ctx.Done():
		return false
	}
}

// Converges counts completed converge passes.
func (a *Agent) Converges() uint64 {
	a.convergedMu.Lock()
	defer a.convergedMu.Unlock()
	return a.converges
}

func (a *Agent) node() *plan.Node {
	a.mu.Lock()
	labels := a.cfg.Labels
	a.mu.Unlock()
	return &plan.Node{Name: a.cfg.Name, Labels: labels, Facts: Facts(a.cfg.Address, a.cfg.Version), Incarnation: a.store.incarnation}
}

// SetLabels changes the node's labels at run time (a configuration
// reload) and registers the node again so that coordinators see them.
func (a *Agent) SetLabels(labels map[string]string) {
	a.mu.Lock()
	a.cfg.Labels = labels
	a.mu.Unlock()
	select {
	case a.reregister <- struct{}{}:
	default:
	}
}

// SetReconcileInterval changes how often the cached plan is converged
// again with drift checks; it applies from the next reconcile.
func (a *Agent) SetReconcileInterval(d time.Duration) {
	if d > 0 {
		a.reconcileInterval.Store(int64(d))
	}
}

// register announces the node until a coordinator accepts it.
func (a *Agent) register(ctx context.Context) error {
	b := newBackoff()
	for {
		err := a.client.RegisterNode(ctx, a.node())
		if err == nil {
			a.log.Info("registered")
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("register failed, retrying", "err", err)
		if !b.wait(ctx) {
			return ctx.Err()
		}
	}
}

func (a *Agent) pullLoop(ctx context.Context) {
	a.mu.Lock()
	cached := a.state.Slice
	a.mu.Unlock()
	// Work from the cached slice first: coordinators may be unreachable.
	var index uint64
	if cached != nil {
		a.converge(ctx, cached, false)
		index = cached.Index
	}
	if a.register(ctx) != nil {
		return
	}
	b := newBackoff()
	nextReconcile := a.nextReconcile()
	// reconcile converges the cached slice again and runs drift checks.
	reconcile := func() {
		a.mu.Lock()
		cached := a.state.Slice
		a.mu.Unlock()
		if cached != nil {
			a.converge(ctx, cached, true)
			a.pages.activity()
		}
		nextReconcile = a.nextReconcile()
	}
	for ctx.Err() == nil {
		if !time.Now().Before(nextReconcile) {
			reconcile()
		}
		wait := a.cfg.PollWait + rand.N(a.cfg.PollWait/16+1)
		if until := time.Until(nextReconcile); until < wait {
			wait = max(until, time.Millisecond)
		}
		pctx, addr := a.beginPoll(ctx)
		sl, err := a.client.NodePlan(pctx, a.cfg.Name, index, wait)
		abandoned := pctx.Err() != nil && ctx.Err() == nil
		a.endPoll()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if abandoned {
				// Its coordinator left the pool: go to another one now.
				a.log.Info("coordinator gone, moving on", "from", addr)
				a.client.Rotate()
				continue
			}
			var ae *api.APIError
			if errors.As(err, &ae) && ae.Code == http.StatusNotFound {
				// The coordinators lost us (a restore): register again.
				if a.register(ctx) != nil {
					return
				}
				continue
			}
			if errors.Is(err, api.ErrTimeout) {
				// A coordinator that hangs (frozen, cut off): the
				// client has moved on; poll the next one now.
				a.log.Warn("coordinator not answering, moving on", "from", addr, "err", err)
				continue
			}
			a.log.Warn("plan poll failed", "err", err)
			if !b.wait(ctx) {
				return
			}
			continue
		}
		b.reset()
		a.cfg.Metrics.polled()
		a.pages.activity()
		if sl.Index < index {
			// A coordinator that lags behind what this agent has seen
			// (a follower catching up): never go backwards.
			a.log.Debug("ignoring an older slice", "index", sl.Index, "have", index)
			a.client.Rotate()
			continue
		}
		if sl.Index != index {
			a.adopt(ctx, sl)
			a.pages.activity()
		}
		index = sl.Index
	}
}

// adopt saves a new slice, so that the agent keeps converging it while no
// coordinator answers, and converges it.
func (a *Agent) adopt(ctx context.Context, sl *plan.Slice) {
	a.mu.Lock()
	a.state.Slice = sl
	err := a.state.save(a.statePath)
	a.mu.Unlock()
	if err != nil {
		a.log.Error("save state", "err", err)
	}
	a.converge(ctx, sl, false)
}

// nextReconcile is when the cached slice is converged again with drift
// checks: the reconcile interval, jittered by ±10% so that a fleet does
// not check in lockstep.
func (a *Agent) nextReconcile() time.Time {
	iv := time.Duration(a.reconcileInterval.Load())
	return time.Now().Add(iv - iv/10 + rand.N(iv/5+1))
}

// beginPoll makes a context for one long-poll that CoordinatorsChanged can
// cancel when the coordinator it goes to leaves the pool.
func (a *Agent) beginPoll(ctx context.Context) (context.Context, string) {
	pctx, cancel := context.WithCancel(ctx)
	addr := a.client.Current()
	a.pollMu.Lock()
	a.pollCancel, a.pollAddr = cancel, addr
	a.pollMu.Unlock()
	return pctx, addr
}

func (a *Agent) endPoll() {
	a.pollMu.Lock()
	if a.pollCancel != nil {
		a.pollCancel()
	}
	a.pollCancel, a.pollAddr = nil, ""
	a.pollMu.Unlock()
}

// CoordinatorsChanged is called on gossip events: a long-poll to a
// coordinator that is no longer alive is abandoned at once instead of
// waiting for TCP to notice.
func (a *Agent) CoordinatorsChanged() {
	a.pollMu.Lock()
	defer a.pollMu.Unlock()
	if a.pollCancel == nil || a.pollAddr == "" {
		return
	}
	for _, addr := range a.client.Addrs() {
		if strings.TrimPrefix(strings.TrimPrefix(a.pollAddr, "https://"), "http://") == addr {
			return
		}
	}
	a.pollCancel()
}

// enqueue adds reports to the outbox and wakes the sender.
func (a *Agent) enqueue(reports ...plan.Report) {
	a.commit(reports, nil)
}

// commit writes reports and a change of the step records in one write
// (store.write: on disk together when it returns), and wakes the sender.
func (a *Agent) commit(reports []plan.Report, change *recordChange) {
	if err := a.store.write(reports, change); err != nil {
		a.log.Error("save reports and step records", "err", err)
	}
	a.wakeSender()
}

// checkpoint applies the journal to the database: at the end of a
// converge pass, so that the journal holds at most one pass.
func (a *Agent) checkpoint() {
	if err := a.store.checkpoint(); err != nil {
		a.log.Error("checkpoint the agent journal", "err", err)
	}
}

// enqueueRunning queues a "running" report (a step started, or its
// progress) in memory only: a crash may lose it, and the step's final
// report, which is durable, says everything it said.
func (a *Agent) enqueueRunning(r plan.Report) {
	a.store.appendVolatile(r)
	a.wakeSender()
}

func (a *Agent) wakeSender() {
	select {
	case a.flush <- struct{}{}:
	default:
	}
}

// backoff is a jittered exponential wait between retries.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{d: 100 * time.Millisecond} }

func (b *backoff) reset() { b.d = 100 * time.Millisecond }

func (b *backoff) wait(ctx context.Context) bool {
	d := b.d/2 + rand.N(b.d/2+1)
	b.d = min(b.d*2, 5*time.Second)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
