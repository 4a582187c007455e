package bench

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// PropagationResult is figure 1 for one fleet size.
type PropagationResult struct {
	Agents  int    `json:"agents"`
	Runs    int    `json:"runs"`
	Warmups int    `json:"warmups"`
	Runner  string `json:"runner"`
	// DeployCall is the deploy API call (compile + Raft commit + apply on
	// the leader, forwarded when sent to a follower).
	DeployCall Summary `json:"deploy_call"`
	// Received: from the deploy call's return to each agent holding the
	// new slice (answer read and decoded), pooled over agents and runs.
	Received Summary `json:"received"`
	// ReceivedFromSend: the same from the moment the deploy call was sent.
	ReceivedFromSend Summary `json:"received_from_send"`
	// Started: from the deploy call's return to the agent starting the
	// new step (slice saved to its state file, converge begun).
	Started Summary `json:"started"`
	// LastAgent: per run, from the deploy call's return to the last agent
	// holding the slice.
	LastAgent Summary `json:"last_agent"`
	// Early counts samples where an agent held the slice before the
	// deploy call returned (followers apply as the leader answers);
	// they enter the sample as negative values.
	Early int `json:"early"`

	// raw are the samples behind the summaries (ms), for pooling runs of
	// several clusters (the TLS comparison).
	raw propSamples
}

type propSamples struct {
	calls, recv, recvSend, started, last []float64
	early                                int
}

// FleetResult is figure 2 for one fleet size and runner.
type FleetResult struct {
	Agents int    `json:"agents"`
	Runner string `json:"runner"`
	Runs   int    `json:"runs"`
	// Converged: from sending the deploy call to the service status
	// saying converged (every step report committed), seen by polling
	// GET /v1/services every 20 ms.
	Converged Summary `json:"converged"`
}

// CoordFootprint is coordinator memory with a fleet connected.
type CoordFootprint struct {
	Agents    int       `json:"agents"`
	PlanPolls int64     `json:"plan_polls"`
	RSSMiB    []float64 `json:"rss_mib"`
	PeakMiB   []float64 `json:"peak_rss_mib"`
	Leader    string    `json:"leader"`
	// ReplicaRSSMiB and ReplicaPeakMiB are the read replicas' (when the
	// run has some: agents then poll them, not the voters).
	ReplicaRSSMiB  []float64 `json:"replica_rss_mib,omitempty"`
	ReplicaPeakMiB []float64 `json:"replica_peak_rss_mib,omitempty"`
	// BenchRSSMiB is this process's RSS: the simulated agents.
	BenchRSSMiB float64 `json:"bench_process_rss_mib"`
}

// WritePathResult is figure 6.
type WritePathResult struct {
	Clients         int     `json:"clients"`
	ReportsPerReq   int     `json:"reports_per_request"`
	Seconds         float64 `json:"seconds"`
	WarmSeconds     float64 `json:"warm_up_seconds"`
	Reports         int64   `json:"reports"`
	ReportsPerSec   float64 `json:"reports_per_sec"`
	Latency         Summary `json:"latency"`
	RaftEntries     uint64  `json:"raft_entries"`
	ReportsPerEntry float64 `json:"reports_per_entry"`
	Errors          int64   `json:"errors"`
	// CoordCPUSeconds is the CPU time the three coordinators used in the
	// measured window; CoordCPUMsPer1k the same per 1,000 reports.
	CoordCPUSeconds float64 `json:"coordinator_cpu_seconds"`
	CoordCPUMsPer1k float64 `json:"coordinator_cpu_ms_per_1000_reports"`
	// FirstRequest is each client's first request, which opens its
	// connection (TCP, and the TLS handshake when secure), all clients
	// starting at once, whether or not it falls in the measured window.
	FirstRequest Summary `json:"first_request"`
	// FirstError is the first failed request's error, if any.
	FirstError string `json:"first_error,omitempty"`
	// ConnectErrors are failed requests of clients that had not yet had
	// an answer (connection set-up: dial and TLS handshake timeouts);
	// Errors counts them too. FailedClients never got an answer;
	// LateClients got their first one only after the measured window
	// began, so the warm-up was too short for them.
	ConnectErrors int64 `json:"connect_errors"`
	FailedClients int   `json:"failed_clients"`
	LateClients   int   `json:"late_clients"`
	// ConnectedAtATime is WritePathConnect: the clients were connected
	// beforehand, that many at a time (0: on their first report).
	ConnectedAtATime int `json:"connected_at_a_time,omitempty"`
	// CoordCPU is each coordinator's CPU time in the measured window
	// (seconds, in the cluster's order), Leader the leader's name at its
	// start; BenchCPUSeconds is this process's (the clients, and the
	// simulated agents long-polling meanwhile), MachineCPUSeconds every
	// process's on the machine, other engineers' work included.
	CoordCPU []float64 `json:"coordinator_cpu_seconds_each"`
	Leader   string    `json:"leader"`
	// LeaderEnd is the leader at the window's end: another one means
	// the leader was lost in the window (on a starved machine, missed
	// heartbeats), and the figure measures the election.
	LeaderEnd         string  `json:"leader_end"`
	BenchCPUSeconds   float64 `json:"bench_process_cpu_seconds"`
	MachineCPUSeconds float64 `json:"machine_cpu_seconds"`

	lat, first []float64
}

// FleetStartup is how long a fleet took to start.
type FleetStartup struct {
	Agents int `json:"agents"`
	// Seconds: from starting the new agents to every agent having
	// registered and received its first plan answer.
	Seconds float64 `json:"seconds"`
	// IssuingSeconds: issuing the new agents' certificates, before.
	IssuingSeconds float64 `json:"issuing_seconds"`
}

// FleetConfig configures figures 1, 2, 4 (coordinator part) and 6.
type FleetConfig struct {
	Cluster  *Cluster
	AgentDir string
	WorkDir  string
	Sizes    []int
	// BashSizes are sizes also deployed with the real bash runner.
	BashSizes     []int
	Runs, Warmups int
	WritePathSize int
	WritePathDur  time.Duration
	// WritePathWarm is the write path's unmeasured start (default 2 s):
	// with TLS, 1,000 clients connecting at once take a few seconds to
	// get through their handshakes on two cores.
	WritePathWarm time.Duration
	// WritePathConnect, when positive, connects the write path's clients
	// before it starts, that many at a time (each a GET /v1/status on its
	// own connection), so that the warm-up and the window measure writes
	// on open connections, as agents send their reports on the connection
	// they poll on; 0 starts every client at once, connecting on its first
	// report (the TLS handshakes of 1,000 clients then land on the
	// coordinators together).
	WritePathConnect int
	// CoordProfile, when set, is where CPU profiles taken over the write
	// path's measured window go: PREFIX-<coordinator>.cpu for each
	// coordinator (GET /debug/pprof/profile with the operator's
	// certificate and token; the leader's name ends in -leader) and
	// PREFIX-bench.cpu for this process (unless it is profiled already).
	CoordProfile   string
	RegisterPerSec int
	Log            *log.Logger
}

// FleetResults gathers what RunFleet measured.
type FleetResults struct {
	Propagation []PropagationResult `json:"propagation"`
	Fleet       []FleetResult       `json:"fleet_deploy"`
	Coord       []CoordFootprint    `json:"coordinator_footprint"`
	WritePath   *WritePathResult    `json:"write_path,omitempty"`
	Startup     []FleetStartup      `json:"startup"`
	Notes       []string            `json:"notes,omitempty"`
}

// RunFleet runs figures 1, 2 and 6 on a 3-coordinator cluster with
// simulated agents, growing the fleet through cfg.Sizes.
func RunFleet(cfg FleetConfig) (*FleetResults, error) {
	res := &FleetResults{}
	cl := cfg.Cluster.Client()
	modDir := filepath.Join(cfg.WorkDir, "benchfleet")
	if err := FleetModule(modDir, cfg.Sizes); err != nil {
		return res, err
	}
	if _, err := PushModule(cl, modDir); err != nil {
		return res, err
	}
	fleet, err := NewSimFleet(cfg.AgentDir, cfg.Cluster.AgentAddrs(), cfg.Cluster.PKI, func(i int) map[string]string {
		return map[string]string{"bench_id": fmt.Sprintf("%05d", i)}
	})
	if err != nil {
		return res, err
	}
	defer fleet.Stop()
	for _, n := range cfg.Sizes {
		cfg.Log.Printf("fleet: starting %d simulated agents", n)
		iss0 := fleet.Issuing
		t := time.Now()
		if err := fleet.Grow(n, time.Duration(n)*20*time.Millisecond+60*time.Second); err != nil {
			return res, err
		}
		iss := fleet.Issuing - iss0
		up := time.Since(t) - iss
		res.Startup = append(res.Startup, FleetStartup{Agents: n, Seconds: up.Seconds(), IssuingSeconds: iss.Seconds()})
		cfg.Log.Printf("fleet: %d agents registered and polling in %s (after issuing their certificates in %s)", n, up.Round(time.Millisecond), iss.Round(time.Millisecond))
		svc := fmt.Sprintf("fleet-%d", n)
		ctx, cancel := ctxT(time.Minute)
		_, err := cl.Stage(ctx, api.StageRequest{Name: svc, Template: fmt.Sprintf("benchfleet/fleet%d", n), Inputs: map[string]string{"gen": "w0"}})
		cancel()
		if err != nil {
			return res, fmt.Errorf("stage %s: %w", svc, err)
		}
		// First deploy: every agent downloads the module; not measured.
		if _, err := deployRun(cl, fleet, svc, "", n); err != nil {
			return res, fmt.Errorf("first deploy of %s: %w", svc, err)
		}
		runners := []bool{false}
		for _, b := range cfg.BashSizes {
			if b == n {
				runners = append(runners, true)
			}
		}
		for _, bash := range runners {
			fleet.RealBash.Store(bash)
			runner := "no-op runner"
			if bash {
				runner = "real bash runner (spawns bash -c true)"
			}
			pr := PropagationResult{Agents: n, Runs: cfg.Runs, Warmups: cfg.Warmups, Runner: runner}
			var calls, recv, recvSend, started, last, conv []float64
			for r := 0; r < cfg.Warmups+cfg.Runs; r++ {
				gen := fmt.Sprintf("g%d-%v-%d", n, bash, r)
				s, err := deployRun(cl, fleet, svc, gen, n)
				if err != nil {
					return res, fmt.Errorf("%s run %d: %w", svc, r, err)
				}
				cfg.Log.Printf("fleet: %d agents, %s, run %d%s: deploy call %s, last agent %s, converged %s", n, runner, r,
					map[bool]string{true: " (warm-up)", false: ""}[r < cfg.Warmups], s.call.Round(time.Millisecond),
					s.last.Round(time.Millisecond), s.converged.Round(time.Millisecond))
				if r < cfg.Warmups {
					continue
				}
				calls = append(calls, Ms(s.call)...)
				recv = append(recv, Ms(s.recv...)...)
				recvSend = append(recvSend, Ms(s.recvSend...)...)
				started = append(started, Ms(s.started...)...)
				last = append(last, Ms(s.last)...)
				conv = append(conv, Ms(s.converged)...)
				pr.Early += s.early
			}
			pr.DeployCall = Summarize("ms", calls)
			pr.Received = Summarize("ms", recv)
			pr.ReceivedFromSend = Summarize("ms", recvSend)
			pr.Started = Summarize("ms", started)
			pr.LastAgent = Summarize("ms", last)
			pr.raw = propSamples{calls, recv, recvSend, started, last, pr.Early}
			if !bash {
				res.Propagation = append(res.Propagation, pr)
			}
			res.Fleet = append(res.Fleet, FleetResult{Agents: n, Runner: runner, Runs: cfg.Runs, Converged: Summarize("ms", conv)})
		}
		fleet.RealBash.Store(false)
		res.Coord = append(res.Coord, coordFootprint(cfg.Cluster, n))
		if n == cfg.WritePathSize && cfg.WritePathDur > 0 {
			warm := cmp.Or(cfg.WritePathWarm, 2*time.Second)
			cfg.Log.Printf("write path: %d clients for %s after %s", n, cfg.WritePathDur, warm)
			wp, err := writePath(cfg.Cluster, svc, n, warm, cfg.WritePathDur, cfg.WritePathConnect, cfg.CoordProfile, cfg.Log)
			if err != nil {
				return res, fmt.Errorf("write path: %w", err)
			}
			res.WritePath = wp
		}
	}
	return res, nil
}

type runSample struct {
	call, last, converged   time.Duration
	recv, recvSend, started []time.Duration
	early                   int
}

// deployRun sets the service's input gen (when given), deploys, and waits
// until every agent holds the new slice, has started its step, and the
// service says converged.
func deployRun(cl *api.Client, fleet *SimFleet, svc, gen string, n int) (*runSample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var thr uint64
	if gen != "" {
		s, err := cl.SetInputs(ctx, svc, map[string]string{"gen": gen})
		if err != nil {
			return nil, fmt.Errorf("set inputs: %w", err)
		}
		thr = s.ModifyIndex
		fleet.Arm(thr, gen)
	}
	t0 := time.Now()
	d, err := cl.Deploy(ctx, svc)
	t1 := time.Now()
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	var tconv time.Time
	for {
		if tconv.IsZero() {
			list, err := cl.Services(ctx)
			if err == nil {
				for _, s := range list {
					if s.Name == svc && s.Generation == d.Generation && s.State == plan.StateConverged {
						tconv = time.Now()
					}
					if s.Name == svc && s.State == plan.StateFailed {
						return nil, fmt.Errorf("service %s failed%s", svc, firstFailure(ctx, cl, svc))
					}
				}
			}
		}
		r, ra := fleet.Counts()
		if !tconv.IsZero() && (gen == "" || (r >= int64(n) && ra >= int64(n))) {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("timed out: %d/%d agents hold the slice, %d started, converged=%v", r, n, ra, !tconv.IsZero())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := &runSample{call: t1.Sub(t0), converged: tconv.Sub(t0)}
	if gen == "" {
		return s, nil
	}
	recv, ran := fleet.Times(n)
	s.last = recv[0].Sub(t1)
	for i := range recv {
		d := recv[i].Sub(t1)
		if d < 0 {
			s.early++
		}
		s.recv = append(s.recv, d)
		s.recvSend = append(s.recvSend, recv[i].Sub(t0))
		s.started = append(s.started, ran[i].Sub(t1))
		s.last = max(s.last, d)
	}
	return s, nil
}

// firstFailure is ": STEP on NODE: ERROR" for a failed step of svc, if
// the status says one.
func firstFailure(ctx context.Context, cl *api.Client, svc string) string {
	st, _, err := cl.ServiceStatus(ctx, svc, 0, 0)
	if err != nil {
		return ""
	}
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			if s.State == plan.StepFailed {
				return fmt.Sprintf(": %s on %s: %s %s", s.ID, n.Name, s.Error, s.Output)
			}
		}
	}
	return ""
}

func coordFootprint(c *Cluster, n int) CoordFootprint {
	cf := CoordFootprint{Agents: n}
	cf.PlanPolls, _ = PlanPolls(append(append([]*Coord(nil), c.Coords...), c.Replicas...))
	for _, co := range c.Coords {
		st, _ := ReadProcStats(co.PID())
		cf.RSSMiB = append(cf.RSSMiB, float64(st.RSSKiB)/1024)
		cf.PeakMiB = append(cf.PeakMiB, float64(st.HWMKiB)/1024)
	}
	for _, co := range c.Replicas {
		st, _ := ReadProcStats(co.PID())
		cf.ReplicaRSSMiB = append(cf.ReplicaRSSMiB, float64(st.RSSKiB)/1024)
		cf.ReplicaPeakMiB = append(cf.ReplicaPeakMiB, float64(st.HWMKiB)/1024)
	}
	if l, err := c.Leader(); err == nil {
		cf.Leader = l.Name
	}
	if st, err := ReadProcStats(osPID()); err == nil {
		cf.BenchRSSMiB = float64(st.RSSKiB) / 1024
	}
	return cf
}

// writePath drives n concurrent API clients, each posting one step report
// per request (the report an agent sends when a step finishes: the same
// step, digest and generation as the fleet's), for warm-up plus dur, and
// counts the reports acknowledged (committed) inside the measured window.
func writePath(c *Cluster, svc string, n int, warm, dur time.Duration, connect int, profile string, lg *log.Logger) (*WritePathResult, error) {
	cl := c.Client()
	reports := make([]plan.Report, n)
	for i := 1; i <= n; i++ {
		ctx, cancel := ctxT(30 * time.Second)
		sl, err := cl.NodePlan(ctx, SimName(i), 0, time.Second)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, st := range sl.Steps {
			if st.Service == svc {
				reports[i-1] = plan.Report{
					Node: fmt.Sprintf("wp-%05d", i), Service: svc, StepID: st.ID, Action: st.Action,
					Generation: st.Generation, Digest: st.Digest, State: plan.StepOK,
				}
			}
		}
		if reports[i-1].StepID == "" {
			return nil, fmt.Errorf("no step of %s in the slice of %s", svc, SimName(i))
		}
	}
	// Each client speaks for its own node, with that node's certificate
	// (a node may post reports only for itself).
	names := make([]string, n)
	for i := range reports {
		names[i] = reports[i].Node
	}
	stores, err := c.PKI.NodeStores(names)
	if err != nil {
		return nil, fmt.Errorf("node certificates: %w", err)
	}
	addrs := c.Addrs()
	clients := make([]*api.Client, n)
	for i := range clients {
		clients[i] = c.PKI.Client(stores[i], addrs[i%len(addrs)])
	}
	if connect > 0 {
		t := time.Now()
		if err := connectAll(clients, connect); err != nil {
			return nil, err
		}
		lg.Printf("write path: %d clients connected, %d at a time, in %s", n, connect, time.Since(t).Round(time.Millisecond))
	}
	start := time.Now()
	from, to := start.Add(warm), start.Add(warm+dur)
	var (
		mu        sync.Mutex
		lat       []float64
		firsts    []float64
		firstErr  string
		count     atomic.Int64
		errs      atomic.Int64
		connErrs  atomic.Int64
		failed    int
		late      int
		idx0      uint64
		idx1      uint64
		cpu0      time.Duration
		cpu1      time.Duration
		wg        sync.WaitGroup
		leaderIdx = func() uint64 {
			if l, err := c.Leader(); err == nil {
				if st, err := l.Status(time.Second); err == nil {
					return st.Index
				}
			}
			return 0
		}
	)
	var (
		each0, each1   []time.Duration
		bench0, bench1 time.Duration
		mach0, mach1   float64
		leader         string
		leaderEnd      string
		window         sync.WaitGroup
	)
	window.Add(1)
	go func() {
		defer window.Done()
		time.Sleep(time.Until(from))
		cpu0, each0 = coordCPUEach(c)
		bench0, mach0 = selfCPU(), machineCPU()
		idx0 = leaderIdx()
		if l, err := c.Leader(); err == nil {
			leader = l.Name
		}
		if profile != "" {
			for _, co := range c.Coords {
				name := co.Name
				if name == leader {
					name += "-leader"
				}
				window.Add(1)
				go func() {
					defer window.Done()
					if err := c.cpuProfile(co, dur, profile+"-"+name+".cpu"); err != nil {
						lg.Printf("write path: CPU profile of %s: %v", co.Name, err)
					}
				}()
			}
			// This process too, unless -cpuprofile already profiles it.
			if f, err := os.Create(profile + "-bench.cpu"); err == nil {
				if pprof.StartCPUProfile(f) == nil {
					window.Add(1)
					go func() {
						defer window.Done()
						time.Sleep(time.Until(to))
						pprof.StopCPUProfile()
						f.Close()
					}()
				} else {
					f.Close()
					os.Remove(f.Name())
				}
			}
		}
		time.Sleep(time.Until(to))
		cpu1, each1 = coordCPUEach(c)
		bench1, mach1 = selfCPU(), machineCPU()
		idx1 = leaderIdx()
		if l, err := c.Leader(); err == nil {
			leaderEnd = l.Name
		}
	}()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wc := clients[i]
			r := reports[i]
			var mine []float64
			var first float64
			var answered time.Time
			for seq := 1; ; seq++ {
				t := time.Now()
				if t.After(to) {
					break
				}
				r.ID = fmt.Sprintf("%s:%d", r.Node, seq)
				ctx, cancel := ctxT(30 * time.Second)
				_, err := wc.Reports(ctx, r.Node, []plan.Report{r})
				cancel()
				done := time.Now()
				if err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						firstErr = err.Error()
						mu.Unlock()
					}
					if answered.IsZero() {
						connErrs.Add(1)
					}
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if seq == 1 {
					first = Ms(done.Sub(t))[0]
				}
				if answered.IsZero() {
					answered = done
				}
				if done.After(from) && !done.After(to) {
					count.Add(1)
					mine = append(mine, Ms(done.Sub(t))...)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			if first > 0 {
				firsts = append(firsts, first)
			}
			switch {
			case answered.IsZero():
				failed++
			case answered.After(from):
				late++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	window.Wait()
	wp := &WritePathResult{
		Clients: n, ReportsPerReq: 1, Seconds: dur.Seconds(), WarmSeconds: warm.Seconds(), Reports: count.Load(),
		ReportsPerSec: float64(count.Load()) / dur.Seconds(), Latency: Summarize("ms", lat), Errors: errs.Load(),
	}
	if idx1 > idx0 {
		wp.RaftEntries = idx1 - idx0
		wp.ReportsPerEntry = float64(wp.Reports) / float64(wp.RaftEntries)
	}
	wp.CoordCPUSeconds = (cpu1 - cpu0).Seconds()
	if wp.Reports > 0 {
		wp.CoordCPUMsPer1k = 1e6 * wp.CoordCPUSeconds / float64(wp.Reports)
	}
	wp.FirstRequest, wp.FirstError = Summarize("ms", firsts), firstErr
	wp.ConnectErrors, wp.FailedClients, wp.LateClients = connErrs.Load(), failed, late
	for i := range each1 {
		if i < len(each0) {
			wp.CoordCPU = append(wp.CoordCPU, (each1[i] - each0[i]).Seconds())
		}
	}
	wp.Leader, wp.LeaderEnd = leader, leaderEnd
	wp.ConnectedAtATime = connect
	wp.BenchCPUSeconds = (bench1 - bench0).Seconds()
	wp.MachineCPUSeconds = mach1 - mach0
	wp.lat, wp.first = lat, firsts
	return wp, nil
}

// connectAll opens each client's connection (GET /v1/status), at most
// parallel at a time, retrying a failed one for up to a minute.
func connectAll(clients []*api.Client, parallel int) error {
	sem := make(chan struct{}, parallel)
	errs := make(chan error, len(clients))
	for _, cl := range clients {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			deadline := time.Now().Add(time.Minute)
			for {
				ctx, cancel := ctxT(10 * time.Second)
				_, err := cl.Status(ctx)
				cancel()
				if err == nil || time.Now().After(deadline) {
					errs <- err
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			return fmt.Errorf("connect the write path's clients: %w", err)
		}
	}
	return nil
}

// coordCPU is the CPU time the cluster's coordinators have used.
func coordCPU(c *Cluster) time.Duration {
	t, _ := coordCPUEach(c)
	return t
}

// coordCPUEach is coordCPU, in all and for each coordinator.
func coordCPUEach(c *Cluster) (time.Duration, []time.Duration) {
	var t time.Duration
	each := make([]time.Duration, len(c.Coords))
	for i, co := range c.Coords {
		if st, err := ReadProcStats(co.PID()); err == nil {
			t += st.CPU
			each[i] = st.CPU
		}
	}
	return t, each
}

// machineCPU is the CPU time every process on the machine has used
// (seconds; /proc/stat, not idle, not iowait).
func machineCPU() float64 {
	idle, total := procStat()
	return float64(total-idle) / float64(clkTck)
}
