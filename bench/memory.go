package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
)

// MemoryConfig configures the memory-per-agent measurement (issue 15):
// one coordinator, simulated agents connected and idle-polling it.
type MemoryConfig struct {
	Bin, WorkDir, AgentDir string
	// Prefix is the loopback prefix of the coordinator (PREFIX.1).
	Prefix string
	// Sizes are the connected fleet sizes measured (ascending); the last
	// is also the size of the service deployed in the state phase.
	Sizes []int
	// ServiceSizes are the node counts of the fleet service measured with
	// the largest fleet connected.
	ServiceSizes []int
	// Generations deployed of the service at each service size (the state
	// keeps up to 10).
	Generations int
	// Linger, when set, adds a last point that long after the agents
	// left: whether what the connections held is let go later.
	Linger time.Duration
	// ProfileDir receives heap profiles (pprof, gzipped protobuf) of the
	// coordinator at each point.
	ProfileDir string
	Log        *log.Logger
}

// MemPoint is the coordinator's memory at one point of the measurement,
// after a forced GC.
type MemPoint struct {
	Phase string `json:"phase"`
	// Agents connected (long-polling), and the nodes of the service.
	Agents       int `json:"agents"`
	ServiceNodes int `json:"service_nodes"`
	PlanPolls    int `json:"plan_polls"`
	Goroutines   int `json:"goroutines"`
	// From runtime.MemStats after runtime.GC (the heap profile's gc=1).
	HeapAllocKiB  int64 `json:"heap_alloc_kib"`
	HeapInuseKiB  int64 `json:"heap_inuse_kib"`
	StackInuseKiB int64 `json:"stack_inuse_kib"`
	SysKiB        int64 `json:"sys_kib"`
	// From /proc.
	RSSKiB  int64  `json:"rss_kib"`
	AnonKiB int64  `json:"rss_anon_kib"`
	Profile string `json:"profile,omitempty"`
}

// LiveKiB is what the Go runtime holds for live data: heap objects and
// goroutine stacks.
func (p MemPoint) LiveKiB() int64 { return p.HeapAllocKiB + p.StackInuseKiB }

// MemoryResult is one run of the memory measurement.
type MemoryResult struct {
	Generations int        `json:"generations"`
	Points      []MemPoint `json:"points"`
}

// RunMemory measures the coordinator's memory with 0 and then cfg.Sizes
// simulated agents connected and idle-polling, with only their nodes
// registered; then, with the largest fleet connected, with a fleet service
// of each of cfg.ServiceSizes nodes deployed cfg.Generations times (state
// that grows with the fleet); then with every agent gone but the state
// kept. Connection cost is the last two points' difference; node records'
// cost is the first phase's slope minus the connection cost.
func RunMemory(cfg MemoryConfig) (*MemoryResult, error) {
	res := &MemoryResult{Generations: cfg.Generations}
	c, err := StartClusterACL(cfg.Bin, filepath.Join(cfg.WorkDir, "cluster"), cfg.Prefix, 1, false, true)
	if err != nil {
		return res, fmt.Errorf("coordinator: %w", err)
	}
	defer c.Stop()
	co := c.Coords[0]
	cl := c.Client()
	modDir := filepath.Join(cfg.WorkDir, "benchmem")
	if err := MemoryModule(modDir); err != nil {
		return res, err
	}
	if _, err := PushModule(cl, modDir); err != nil {
		return res, err
	}
	if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
		return res, err
	}
	point := func(phase string, agents, svcNodes int) error {
		p, err := memPoint(c, co, cfg.ProfileDir, phase, agents, svcNodes)
		if err != nil {
			return fmt.Errorf("%s at %d agents: %w", phase, agents, err)
		}
		cfg.Log.Printf("memory: %-12s agents %5d service nodes %5d: heap %7d KiB, stacks %6d KiB, goroutines %6d, RSS %7d KiB",
			phase, agents, svcNodes, p.HeapAllocKiB, p.StackInuseKiB, p.Goroutines, p.RSSKiB)
		res.Points = append(res.Points, p)
		return nil
	}
	if err := point("nodes", 0, 0); err != nil {
		return res, err
	}
	fleet, err := NewSimFleet(cfg.AgentDir, c.AgentAddrs(), c.PKI, func(i int) map[string]string {
		return map[string]string{"bench_id": fmt.Sprintf("%05d", i)}
	})
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			fleet.Stop()
		}
	}()
	n := 0
	for _, n = range cfg.Sizes {
		cfg.Log.Printf("memory: starting %d simulated agents", n)
		if err := fleet.Grow(n, time.Duration(n)*20*time.Millisecond+60*time.Second); err != nil {
			return res, err
		}
		if err := waitPolls(c, int64(n)); err != nil {
			return res, err
		}
		if err := point("nodes", n, 0); err != nil {
			return res, err
		}
	}
	ctx, cancel := ctxT(time.Minute)
	_, err = cl.Stage(ctx, api.StageRequest{Name: "fleet", Template: "benchmem/fleet", Inputs: map[string]string{"count": "1", "gen": "0"}})
	cancel()
	if err != nil {
		return res, fmt.Errorf("stage: %w", err)
	}
	last := 0
	for _, m := range cfg.ServiceSizes {
		for g := 1; g <= cfg.Generations; g++ {
			ctx, cancel := ctxT(time.Minute)
			_, err := cl.SetInputs(ctx, "fleet", map[string]string{"count": fmt.Sprint(m), "gen": fmt.Sprintf("n%d-g%d", m, g)})
			cancel()
			if err != nil {
				return res, fmt.Errorf("set inputs: %w", err)
			}
			if _, err := deployRun(cl, fleet, "fleet", "", m); err != nil {
				return res, fmt.Errorf("deploy %d nodes, generation %d: %w", m, g, err)
			}
		}
		if err := waitPolls(c, int64(n)); err != nil {
			return res, err
		}
		if err := point("service", n, m); err != nil {
			return res, err
		}
		last = m
	}
	cfg.Log.Printf("memory: stopping the agents")
	fleet.Stop()
	stopped = true
	if err := waitPolls(c, 0); err != nil {
		return res, err
	}
	// The agents' connections close with them; the coordinator notices
	// the last ones within its PING interval. Wait until its goroutines
	// stop falling.
	prev := -1
	err = waitUntil(time.Minute, time.Second, "coordinator goroutines to settle", func() bool {
		g, err := goroutines(c, co)
		if err != nil {
			return false
		}
		ok := g == prev
		prev = g
		return ok
	})
	if err != nil {
		return res, err
	}
	if err := point("disconnected", 0, last); err != nil || cfg.Linger == 0 {
		return res, err
	}
	cfg.Log.Printf("memory: waiting %s", cfg.Linger)
	time.Sleep(cfg.Linger)
	return res, point("later", 0, last)
}

// waitPolls waits until the coordinators count n plan long-polls.
func waitPolls(c *Cluster, n int64) error {
	return waitUntil(2*time.Minute, 100*time.Millisecond, fmt.Sprintf("%d plan long-polls", n), func() bool {
		p, err := PlanPolls(c.Coords)
		return err == nil && p == n
	})
}

// MemoryModule writes module "benchmem": template "fleet", one node_group
// of input.count agents (those labelled bench_id), each with one step
// whose attribute follows the input "gen".
func MemoryModule(dir string) error {
	return writeModule(dir, stepModuleHeader("benchmem")+`
template "fleet" {
  input "gen" {
    type    = string
    default = "0"
  }
  input "count" {
    type    = number
    default = 1
  }
  node_group "n" {
    count = input.count
    component "step" "s" {
      gen = input.gen
    }
  }
}
`)
}

// operatorGet is GET path on co as the benchmark's operator.
func operatorGet(c *Cluster, co *Coord, path string) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	req, _ := http.NewRequestWithContext(ctx, "GET", c.PKI.scheme()+"://"+co.HTTP+path, nil)
	if c.Token != "" {
		req.Header.Set(api.TokenHeader, c.Token)
	}
	resp, err := c.probe.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return cancelBody{resp.Body, cancel}, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(); return err }

func goroutines(c *Cluster, co *Coord) (int, error) {
	b, err := operatorGet(c, co, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	defer b.Close()
	l, err := bufio.NewReader(b).ReadString('\n')
	if err != nil {
		return 0, err
	}
	_, v, _ := strings.Cut(l, "total ")
	return strconv.Atoi(strings.TrimSpace(v))
}

// memStats forces a GC on the coordinator and reads its runtime.MemStats
// (the heap profile's text form ends with them; Stack is StackInuse).
func memStats(c *Cluster, co *Coord) (map[string]int64, error) {
	b, err := operatorGet(c, co, "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return nil, err
	}
	defer b.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(b)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "# ") {
			continue
		}
		k, v, ok := strings.Cut(l[2:], " = ")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		out[k] = n
	}
	return out, sc.Err()
}

// memPoint forces a GC on the coordinator (the heap profile's gc=1), saves
// its heap profile and reads its MemStats and RSS.
func memPoint(c *Cluster, co *Coord, dir, phase string, agents, svcNodes int) (MemPoint, error) {
	p := MemPoint{Phase: phase, Agents: agents, ServiceNodes: svcNodes}
	polls, err := PlanPolls(c.Coords)
	if err != nil {
		return p, err
	}
	p.PlanPolls = int(polls)
	p.Profile = filepath.Join(dir, fmt.Sprintf("heap-%s-%05d-%05d.pb.gz", phase, agents, svcNodes))
	// A collection halves a goroutine's stack at most once, and only if
	// it uses under a quarter of it: the stacks that TLS handshakes and
	// first requests grew take a few collections to come down, which a
	// coordinator's runtime gives them within minutes (it collects at
	// least every 2 minutes). Collect until the stacks stop shrinking.
	prevStack := int64(-1)
	for range 8 {
		ms, err := memStats(c, co)
		if err != nil {
			return p, err
		}
		if ms["Stack"] == prevStack {
			break
		}
		prevStack = ms["Stack"]
	}
	b, err := operatorGet(c, co, "/debug/pprof/heap?gc=1")
	if err != nil {
		return p, err
	}
	f, err := os.Create(p.Profile)
	if err == nil {
		_, err = io.Copy(f, b)
		f.Close()
	}
	b.Close()
	if err != nil {
		return p, err
	}
	ms, err := memStats(c, co)
	if err != nil {
		return p, err
	}
	p.HeapAllocKiB, p.HeapInuseKiB, p.StackInuseKiB, p.SysKiB = ms["HeapAlloc"]/1024, ms["HeapInuse"]/1024, ms["Stack"]/1024, ms["Sys"]/1024
	if p.Goroutines, err = goroutines(c, co); err != nil {
		return p, err
	}
	if g, err := operatorGet(c, co, "/debug/pprof/goroutine?debug=1"); err == nil {
		if f, err := os.Create(strings.TrimSuffix(p.Profile, ".pb.gz") + ".goroutines.txt"); err == nil {
			io.Copy(f, g)
			f.Close()
		}
		g.Close()
	}
	st, err := ReadProcStats(co.PID())
	if err != nil {
		return p, err
	}
	p.RSSKiB, p.AnonKiB = st.RSSKiB, st.AnonKiB
	return p, nil
}

// Slope is the least-squares slope of y over x.
func Slope(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// MemoryFit is what one run's points say per agent (bytes).
type MemoryFit struct {
	// Connected is the slope of live memory (heap + stacks) over the
	// connected agents with only their nodes registered: a connection
	// plus a node record.
	Connected float64 `json:"connected_bytes_per_agent"`
	// Connection is what one connected, long-polling agent costs beyond
	// the state: the largest fleet with the service against the same
	// state with every agent gone, per agent.
	Connection float64 `json:"connection_bytes_per_agent"`
	// Node is Connected minus Connection: a registered node's records.
	Node float64 `json:"node_bytes_per_agent"`
	// Service is the slope over the service's nodes (largest fleet
	// connected, Generations deploys at each size).
	Service float64 `json:"service_bytes_per_node"`
	// RSS slopes, for comparison (RSS is not given back at once after a
	// GC, so these are noisier).
	ConnectedRSS float64 `json:"connected_rss_bytes_per_agent"`
	ServiceRSS   float64 `json:"service_rss_bytes_per_node"`
	// Goroutines per connected agent.
	Goroutines float64 `json:"goroutines_per_agent"`
}

// Fit computes the per-agent figures of one run.
func (r *MemoryResult) Fit() MemoryFit {
	var f MemoryFit
	var ax, ay, ar, ag, sx, sy, sr []float64
	var top, bottom *MemPoint
	for i := range r.Points {
		p := &r.Points[i]
		switch p.Phase {
		case "nodes":
			ax = append(ax, float64(p.Agents))
			ay = append(ay, float64(p.LiveKiB()*1024))
			ar = append(ar, float64(p.RSSKiB*1024))
			ag = append(ag, float64(p.Goroutines))
		case "service":
			sx = append(sx, float64(p.ServiceNodes))
			sy = append(sy, float64(p.LiveKiB()*1024))
			sr = append(sr, float64(p.RSSKiB*1024))
			top = p
		case "disconnected":
			bottom = p
		}
	}
	f.Connected, f.ConnectedRSS, f.Goroutines = Slope(ax, ay), Slope(ax, ar), Slope(ax, ag)
	f.Service, f.ServiceRSS = Slope(sx, sy), Slope(sx, sr)
	if top != nil && bottom != nil && top.Agents > 0 {
		f.Connection = float64((top.LiveKiB()-bottom.LiveKiB())*1024) / float64(top.Agents)
		f.Node = f.Connected - f.Connection
	}
	return f
}

// WriteMemory writes the runs' points and fits as markdown to w.
func WriteMemory(w io.Writer, runs []*MemoryResult) {
	kib := func(b float64) string { return fmt.Sprintf("%.1f", b/1024) }
	var fits []MemoryFit
	for i, r := range runs {
		fmt.Fprintf(w, "\n### Run %d\n\n", i+1)
		fmt.Fprintln(w, "| phase | agents connected | service nodes | plan polls | goroutines | heap alloc KiB | stacks KiB | live KiB | heap in use KiB | RSS KiB |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, p := range r.Points {
			fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d |\n", p.Phase, p.Agents, p.ServiceNodes, p.PlanPolls,
				p.Goroutines, p.HeapAllocKiB, p.StackInuseKiB, p.LiveKiB(), p.HeapInuseKiB, p.RSSKiB)
		}
		f := r.Fit()
		fits = append(fits, f)
		fmt.Fprintf(w, "\nPer agent (KiB): connected agent with its node %s (RSS %s), of which connection %s and node records %s; service state per node (%d generations) %s (RSS %s); goroutines per agent %.2f.\n",
			kib(f.Connected), kib(f.ConnectedRSS), kib(f.Connection), kib(f.Node), r.Generations, kib(f.Service), kib(f.ServiceRSS), f.Goroutines)
	}
	if len(fits) == 0 {
		return
	}
	col := func(get func(MemoryFit) float64) string {
		var v []float64
		for _, f := range fits {
			v = append(v, get(f)/1024)
		}
		s := Summarize("KiB", v)
		return fmt.Sprintf("%.1f (%.1f–%.1f)", s.P50, s.Min, s.Max)
	}
	fmt.Fprintf(w, "\n### Median of %d runs (range)\n\n| per agent | KiB |\n| --- | ---: |\n", len(fits))
	fmt.Fprintf(w, "| connected agent and its node (live heap + stacks slope) | %s |\n", col(func(f MemoryFit) float64 { return f.Connected }))
	fmt.Fprintf(w, "| of which the connection and its long-polls | %s |\n", col(func(f MemoryFit) float64 { return f.Connection }))
	fmt.Fprintf(w, "| of which the node's records | %s |\n", col(func(f MemoryFit) float64 { return f.Node }))
	fmt.Fprintf(w, "| fleet service state per node (current plan + kept generations) | %s |\n", col(func(f MemoryFit) float64 { return f.Service }))
	fmt.Fprintf(w, "| RSS slope, connected agents | %s |\n", col(func(f MemoryFit) float64 { return f.ConnectedRSS }))
	fmt.Fprintf(w, "| RSS slope, service nodes | %s |\n", col(func(f MemoryFit) float64 { return f.ServiceRSS }))
	fmt.Fprintf(w, "| goroutines per connected agent | %s |\n", col(func(f MemoryFit) float64 { return f.Goroutines * 1024 }))
}
