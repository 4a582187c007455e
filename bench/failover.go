package bench

import (
	"fmt"
	"log"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dtkhq/dtk/internal/api"
)

// FailoverMode is figure 5 for one way of losing the leader.
type FailoverMode struct {
	Mode string `json:"mode"`
	Runs int    `json:"runs"`
	// Write: from the signal to the first write accepted (2xx) by a
	// survivor (attempts start every 20 ms on each survivor).
	Write Summary `json:"write"`
	// Agents: from the signal to every agent long-polling a survivor (the
	// survivors' plan_polls add up to the number of agents).
	Agents Summary `json:"agents"`
	// OnLeader: per run, how many agents were polling the leader that
	// was lost (0 makes that run's agent time trivially ~0).
	OnLeader []int64  `json:"agents_on_leader"`
	Errors   []string `json:"errors,omitempty"`
}

// FailoverResult is figure 5.
type FailoverResult struct {
	Coordinators int            `json:"coordinators"`
	Agents       int            `json:"agents"`
	Modes        []FailoverMode `json:"modes"`
}

// FailoverConfig configures figure 5.
type FailoverConfig struct {
	Bin, Dir, Prefix string
	Agents           int
	KillRuns         int
	FreezeRuns       int
	// Insecure runs the cluster with --insecure (no TLS, no gossip
	// encryption).
	Insecure bool
	// NoACL runs a secure cluster without access control.
	NoACL bool
	Log   *log.Logger
}

// RunFailover starts three coordinators (shipped Raft timers) and a few
// agents as real processes, then repeatedly loses the leader: kill -9
// (the process dies; the kernel closes its sockets, so peers see resets at
// once) and freeze (SIGSTOP: the process stops answering but its sockets
// stay open, as when a machine hangs or its network goes; only timeouts
// and gossip notice). After each run the lost coordinator is killed if
// needed, restarted on its data dir, and the cluster settles.
func RunFailover(cfg FailoverConfig) (*FailoverResult, error) {
	c, err := StartClusterACL(cfg.Bin, cfg.Dir, cfg.Prefix, 3, cfg.Insecure, !cfg.Insecure && !cfg.NoACL)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	res := &FailoverResult{Coordinators: 3, Agents: cfg.Agents}
	for i := 1; i <= cfg.Agents; i++ {
		if _, err := c.AddAgent(fmt.Sprintf("fo-agent-%d", i), hostAddr(cfg.Prefix, 10+i), map[string]string{"bench_idle": fmt.Sprint(i)}); err != nil {
			return nil, err
		}
	}
	cl := c.Client()
	mod := filepath.Join(cfg.Dir, "benchidle")
	if err := IdleModule(mod, cfg.Agents); err != nil {
		return nil, err
	}
	if _, err := PushModule(cl, mod); err != nil {
		return nil, err
	}
	if err := waitUntil(60*time.Second, 100*time.Millisecond, "agents registered", func() bool {
		ctx, cancel := ctxT(5 * time.Second)
		defer cancel()
		n, err := cl.Nodes(ctx)
		return err == nil && len(n) >= cfg.Agents
	}); err != nil {
		return nil, err
	}
	if err := deployAndWait(cl, "idle", "benchidle/idle", 2*time.Minute); err != nil {
		return nil, err
	}
	ctx, cancel := ctxT(time.Minute)
	_, err = cl.Stage(ctx, api.StageRequest{Name: "probe", Template: "benchidle/idle"})
	cancel()
	if err != nil {
		return nil, err
	}
	var probe atomic.Int64
	for _, m := range []struct {
		name string
		sig  syscall.Signal
		runs int
	}{{"kill -9", syscall.SIGKILL, cfg.KillRuns}, {"freeze (SIGSTOP)", syscall.SIGSTOP, cfg.FreezeRuns}} {
		if m.runs == 0 {
			continue
		}
		fm := FailoverMode{Mode: m.name, Runs: m.runs}
		var writes, agents []float64
		for r := 0; r < m.runs; r++ {
			w, a, on, err := failoverRun(c, cfg.Agents, m.sig, &probe)
			if err != nil {
				fm.Errors = append(fm.Errors, fmt.Sprintf("run %d: %v", r, err))
				cfg.Log.Printf("failover %s run %d: %v", m.name, r, err)
			} else {
				writes = append(writes, Ms(w)...)
				agents = append(agents, Ms(a)...)
				fm.OnLeader = append(fm.OnLeader, on)
				cfg.Log.Printf("failover %s run %d: write after %s, agents after %s (%d agents were on the leader)", m.name, r, w.Round(time.Millisecond), a.Round(time.Millisecond), on)
			}
		}
		fm.Write, fm.Agents = Summarize("ms", writes), Summarize("ms", agents)
		res.Modes = append(res.Modes, fm)
	}
	return res, nil
}

func failoverRun(c *Cluster, nAgents int, sig syscall.Signal, probe *atomic.Int64) (write, agents time.Duration, onLeader int64, err error) {
	// Settle: all coordinators up, a leader, every agent polling.
	if err := c.WaitReady(90 * time.Second); err != nil {
		return 0, 0, 0, err
	}
	if err := waitUntil(90*time.Second, 100*time.Millisecond, "every agent polling", func() bool {
		n, err := PlanPolls(c.Coords)
		return err == nil && n == int64(nAgents)
	}); err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(2 * time.Second)
	var leader *Coord
	// Agents that left a coordinator stay with the survivors, so after a
	// few runs the leader may serve none and the agents' time would be
	// trivially zero: restart the agents (each starts at a random
	// coordinator) until at least one polls the leader.
	for attempt := 0; ; attempt++ {
		leader, err = c.Leader()
		if err != nil {
			return 0, 0, 0, err
		}
		st, err := leader.Status(time.Second)
		if err != nil {
			return 0, 0, 0, err
		}
		onLeader = st.PlanPolls
		if onLeader > 0 || attempt == 4 {
			break
		}
		for _, a := range c.Agents {
			a.Stop()
			if err := a.Start(); err != nil {
				return 0, 0, 0, err
			}
		}
		if err := waitUntil(90*time.Second, 100*time.Millisecond, "every agent polling again", func() bool {
			n, err := PlanPolls(c.Coords)
			return err == nil && n == int64(nAgents)
		}); err != nil {
			return 0, 0, 0, err
		}
		time.Sleep(time.Second)
	}
	var surv []*Coord
	for _, co := range c.Coords {
		if co != leader {
			surv = append(surv, co)
		}
	}
	var tWrite atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	t0 := time.Now()
	if err := leader.Signal(sig); err != nil {
		return 0, 0, onLeader, err
	}
	// A new attempt on each survivor every 20 ms, not waiting for the
	// ones in flight: a write a follower forwards to a frozen leader
	// hangs until its client gives up, and waiting for it would measure
	// the client's timeout, not the cluster.
	for _, co := range surv {
		go func() {
			wc := c.OperatorAt(co.HTTP)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for tWrite.Load() == 0 {
				go func() {
					ctx, cancel := ctxT(10 * time.Second)
					defer cancel()
					if _, err := wc.SetInputs(ctx, "probe", map[string]string{"x": fmt.Sprint(probe.Add(1))}); err == nil {
						tWrite.CompareAndSwap(0, time.Now().UnixNano())
					}
				}()
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	var tAgents time.Time
	deadline := t0.Add(60 * time.Second)
	for (tAgents.IsZero() || tWrite.Load() == 0) && time.Now().Before(deadline) {
		if tAgents.IsZero() {
			if n, err := PlanPolls(surv); err == nil && n == int64(nAgents) {
				tAgents = time.Now()
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Bring the lost coordinator back: dead for good, then restarted.
	leader.Kill9()
	if rerr := leader.Start(); rerr != nil {
		return 0, 0, onLeader, rerr
	}
	if tAgents.IsZero() || tWrite.Load() == 0 {
		return 0, 0, onLeader, fmt.Errorf("no write accepted or agents not all polling within 60 s (write=%v agents=%v)", tWrite.Load() != 0, !tAgents.IsZero())
	}
	return time.Unix(0, tWrite.Load()).Sub(t0), tAgents.Sub(t0), onLeader, nil
}
