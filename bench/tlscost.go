package bench

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// TLSCostConfig configures the TLS comparison: figures 1 and 6 (and the
// coordinators' memory with the fleet connected) on a secure cluster and
// an insecure one, alternately, on the same machine.
type TLSCostConfig struct {
	Bin, WorkDir, AgentDir string
	// Rounds of one secure and one insecure cluster; the order alternates
	// (secure first in even rounds) so that drift in background load
	// falls on both.
	Rounds        int
	Sizes         []int
	Runs, Warmups int
	WritePathSize int
	WritePathDur  time.Duration
	WritePathWarm time.Duration
	// ConnProbes is how many new connections the connection-setup probe
	// opens per round.
	ConnProbes int
	Log        *log.Logger
}

// TLSCostMode is what one configuration measured, over every round.
type TLSCostMode struct {
	Mode   string `json:"mode"`
	Secure bool   `json:"secure"`
	Rounds int    `json:"rounds"`
	// Propagation pools agents × runs × rounds per size.
	Propagation []PropagationResult `json:"propagation"`
	// WritePath is each round's write path; WritePathPerSec and
	// WritePathCPU summarise them over rounds (reports/s; coordinator
	// CPU-ms per 1,000 reports), WritePathLatency pools the requests.
	WritePath        []*WritePathResult `json:"write_path_rounds"`
	WritePathPerSec  Summary            `json:"write_path_reports_per_sec"`
	WritePathCPU     Summary            `json:"write_path_coordinator_cpu_ms_per_1000_reports"`
	WritePathLatency Summary            `json:"write_path_latency"`
	// WritePathFirst pools the clients' first requests (connection set-up
	// under a storm of 1,000 clients starting at once).
	WritePathFirst Summary `json:"write_path_first_request"`
	// Startup: per size, seconds from starting the new agents to all of
	// them registered and polling, over rounds.
	Startup []SizeSummary `json:"startup"`
	// Coord is the coordinators' memory once every agent polls, per round
	// and size; CoordRSS per size the mean RSS of the three, over rounds.
	Coord    []CoordFootprint `json:"coordinator_footprint"`
	CoordRSS []SizeSummary    `json:"coordinator_rss_mib"`
	// ConnFirst is a GET /v1/status on a new connection (TCP, and TLS
	// handshake with a node certificate the coordinator has not seen);
	// ConnReuse the next one on the same connection.
	ConnFirst Summary `json:"conn_first_request"`
	ConnReuse Summary `json:"conn_reused_request"`
	// CoordCPU is the coordinators' CPU-seconds for the whole round
	// (start-up, fleet, deploys, write path), over rounds; BenchCPU the
	// benchmark process's (the simulated agents and clients).
	CoordCPU Summary  `json:"coordinator_cpu_seconds"`
	BenchCPU Summary  `json:"bench_process_cpu_seconds"`
	Errors   []string `json:"errors,omitempty"`

	raw map[int]*propSamples
	wp  struct{ perSec, cpu, lat, first []float64 }
	up  map[int][]float64
	rss map[int][]float64
	cpu struct{ coord, bench []float64 }
	cn  struct{ first, reuse []float64 }
}

// SizeSummary is a summary for one fleet size.
type SizeSummary struct {
	Agents int     `json:"agents"`
	S      Summary `json:"summary"`
}

// TLSCostResult is the TLS comparison.
type TLSCostResult struct {
	Rounds int      `json:"rounds"`
	Order  []string `json:"order"`
	Sizes  []int    `json:"sizes"`
	Runs   int      `json:"runs_per_size_per_round"`
	// Modes are the secure and the insecure configuration, in that order.
	Modes []*TLSCostMode `json:"modes"`
}

// RunTLSCost runs the comparison.
func RunTLSCost(cfg TLSCostConfig) (*TLSCostResult, error) {
	res := &TLSCostResult{Rounds: cfg.Rounds, Sizes: cfg.Sizes, Runs: cfg.Runs}
	sec := &TLSCostMode{Mode: "mutual TLS, encrypted gossip", Secure: true}
	ins := &TLSCostMode{Mode: "--insecure (plain HTTP)"}
	res.Modes = []*TLSCostMode{sec, ins}
	for _, m := range res.Modes {
		m.raw, m.up, m.rss = map[int]*propSamples{}, map[int][]float64{}, map[int][]float64{}
	}
	for r := 0; r < cfg.Rounds; r++ {
		order := []*TLSCostMode{sec, ins}
		if r%2 == 1 {
			order = []*TLSCostMode{ins, sec}
		}
		for _, m := range order {
			res.Order = append(res.Order, fmt.Sprintf("%d:%s", r, map[bool]string{true: "secure", false: "insecure"}[m.Secure]))
			cfg.Log.Printf("tls cost: round %d, %s", r, m.Mode)
			if err := tlsCostRound(cfg, r, m); err != nil {
				m.Errors = append(m.Errors, fmt.Sprintf("round %d: %v", r, err))
				cfg.Log.Printf("tls cost: round %d, %s: %v", r, m.Mode, err)
				continue
			}
			m.Rounds++
		}
	}
	for _, m := range res.Modes {
		m.summarise(cfg.Sizes)
	}
	return res, nil
}

func tlsCostRound(cfg TLSCostConfig, r int, m *TLSCostMode) error {
	tag := map[bool]string{true: "secure", false: "insecure"}[m.Secure]
	prefix := map[bool]string{true: "127.0.204", false: "127.0.205"}[m.Secure]
	dir := filepath.Join(cfg.WorkDir, fmt.Sprintf("%s-%d", tag, r))
	agentDir := filepath.Join(cfg.AgentDir, fmt.Sprintf("%s-%d", tag, r))
	defer os.RemoveAll(agentDir)
	bench0 := selfCPU()
	// ACLs off on both sides: this compares TLS alone (-acl-compare
	// measures access control).
	c, err := StartClusterACL(cfg.Bin, dir, prefix, 3, !m.Secure, false)
	if err != nil {
		return err
	}
	defer c.Stop()
	fr, err := RunFleet(FleetConfig{
		Cluster: c, AgentDir: agentDir, WorkDir: filepath.Join(dir, "fleet-work"), Sizes: cfg.Sizes,
		Runs: cfg.Runs, Warmups: cfg.Warmups, WritePathSize: cfg.WritePathSize, WritePathDur: cfg.WritePathDur, WritePathWarm: cfg.WritePathWarm, Log: cfg.Log,
	})
	if err != nil {
		return err
	}
	first, reuse, err := connSetup(c, cfg.ConnProbes)
	if err != nil {
		return fmt.Errorf("connection setup: %w", err)
	}
	m.cn.first = append(m.cn.first, first...)
	m.cn.reuse = append(m.cn.reuse, reuse...)
	m.cpu.coord = append(m.cpu.coord, coordCPU(c).Seconds())
	m.cpu.bench = append(m.cpu.bench, (selfCPU() - bench0).Seconds())
	for _, p := range fr.Propagation {
		s := m.raw[p.Agents]
		if s == nil {
			s = &propSamples{}
			m.raw[p.Agents] = s
		}
		s.calls = append(s.calls, p.raw.calls...)
		s.recv = append(s.recv, p.raw.recv...)
		s.recvSend = append(s.recvSend, p.raw.recvSend...)
		s.started = append(s.started, p.raw.started...)
		s.last = append(s.last, p.raw.last...)
		s.early += p.raw.early
	}
	for _, st := range fr.Startup {
		m.up[st.Agents] = append(m.up[st.Agents], st.Seconds)
	}
	for _, cf := range fr.Coord {
		m.Coord = append(m.Coord, cf)
		sum := 0.0
		for _, x := range cf.RSSMiB {
			sum += x
		}
		m.rss[cf.Agents] = append(m.rss[cf.Agents], sum/float64(max(1, len(cf.RSSMiB))))
	}
	if wp := fr.WritePath; wp != nil {
		m.WritePath = append(m.WritePath, wp)
		m.wp.perSec = append(m.wp.perSec, wp.ReportsPerSec)
		m.wp.cpu = append(m.wp.cpu, wp.CoordCPUMsPer1k)
		m.wp.lat = append(m.wp.lat, wp.lat...)
		m.wp.first = append(m.wp.first, wp.first...)
	}
	return nil
}

func (m *TLSCostMode) summarise(sizes []int) {
	for _, n := range sizes {
		if s := m.raw[n]; s != nil {
			m.Propagation = append(m.Propagation, PropagationResult{
				Agents: n, Runs: len(s.last), Runner: "no-op runner", Early: s.early,
				DeployCall: Summarize("ms", s.calls), Received: Summarize("ms", s.recv), ReceivedFromSend: Summarize("ms", s.recvSend),
				Started: Summarize("ms", s.started), LastAgent: Summarize("ms", s.last),
			})
		}
		if xs := m.up[n]; len(xs) > 0 {
			m.Startup = append(m.Startup, SizeSummary{n, Summarize("s", xs)})
		}
		if xs := m.rss[n]; len(xs) > 0 {
			m.CoordRSS = append(m.CoordRSS, SizeSummary{n, Summarize("MiB", xs)})
		}
	}
	m.WritePathPerSec = Summarize("reports/s", m.wp.perSec)
	m.WritePathCPU = Summarize("ms", m.wp.cpu)
	m.WritePathLatency = Summarize("ms", m.wp.lat)
	m.WritePathFirst = Summarize("ms", m.wp.first)
	m.ConnFirst, m.ConnReuse = Summarize("ms", m.cn.first), Summarize("ms", m.cn.reuse)
	m.CoordCPU, m.BenchCPU = Summarize("s", m.cpu.coord), Summarize("s", m.cpu.bench)
}

// connSetup opens n new connections one after the other, each with a
// node certificate of its own (as n agents would), spread over the
// coordinators, and times GET /v1/status on the new connection and once
// more on the same connection.
func connSetup(c *Cluster, n int) (first, reuse []float64, err error) {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("conn-%04d", i+1)
	}
	stores, err := c.PKI.NodeStores(names)
	if err != nil {
		return nil, nil, err
	}
	get := func(hc *http.Client, co *Coord) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", c.PKI.scheme()+"://"+co.HTTP+"/v1/status", nil)
		t := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t)
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET /v1/status: %s", resp.Status)
		}
		return d, nil
	}
	for i := range n {
		hc := c.PKI.HTTP(stores[i])
		co := c.Coords[i%len(c.Coords)]
		d1, err := get(hc, co)
		if err != nil {
			return nil, nil, err
		}
		d2, err := get(hc, co)
		if err != nil {
			return nil, nil, err
		}
		hc.CloseIdleConnections()
		first, reuse = append(first, Ms(d1)...), append(reuse, Ms(d2)...)
	}
	return first, reuse, nil
}

// selfCPU is this process's CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// markdown renders the comparison.
func (t *TLSCostResult) markdown(p func(string, ...any)) {
	if len(t.Modes) != 2 {
		return
	}
	s, in := t.Modes[0], t.Modes[1]
	p("\n## What TLS costs\n\n")
	p("The same figures on a secure cluster (%s: the coordinators' API, forwarding, blob replication and Raft over mutual TLS, each simulated agent and write-path client with a node certificate of its own, operator calls with a client certificate) and on an insecure one (`--insecure`), both without access control (ACLs off: see What access control costs for them), in %d rounds of one cluster each, alternating which goes first (%v). Each round starts fresh coordinators and a fresh fleet. Ratios are secure over insecure, of the medians (or of the pooled percentiles).\n\n",
		s.Mode, t.Rounds, t.Order)
	ratio := func(a, b float64) string {
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	p("### Plan propagation\n\nPooled over agents × %d runs × rounds (after warm-ups), no-op runner; times from the deploy call's return unless said otherwise.\n\n", t.Runs)
	p("| agents | configuration | received p50 | p90 | p99 | from call sent p50 | p99 | deploy call p50 | last agent per run p50 | n | early |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for i := range s.Propagation {
		a := s.Propagation[i]
		var b PropagationResult
		for _, x := range in.Propagation {
			if x.Agents == a.Agents {
				b = x
			}
		}
		for _, x := range []struct {
			m string
			r PropagationResult
		}{{"secure", a}, {"insecure", b}} {
			r := x.r
			p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d |\n", a.Agents, x.m, num(r.Received.P50, "ms"), num(r.Received.P90, "ms"), num(r.Received.P99, "ms"),
				num(r.ReceivedFromSend.P50, "ms"), num(r.ReceivedFromSend.P99, "ms"), num(r.DeployCall.P50, "ms"), num(r.LastAgent.P50, "ms"), r.Received.N, r.Early)
		}
		p("| %d | **ratio** | %s | %s | %s | %s | %s | %s | %s | | |\n", a.Agents, ratio(a.Received.P50, b.Received.P50), ratio(a.Received.P90, b.Received.P90), ratio(a.Received.P99, b.Received.P99),
			ratio(a.ReceivedFromSend.P50, b.ReceivedFromSend.P50), ratio(a.ReceivedFromSend.P99, b.ReceivedFromSend.P99), ratio(a.DeployCall.P50, b.DeployCall.P50), ratio(a.LastAgent.P50, b.LastAgent.P50))
	}
	p("\n### Write path\n\n")
	if len(s.WritePath) > 0 {
		w := s.WritePath[0]
		p("%d concurrent clients starting at once, one report per request, %.0f s after a %.0f s warm-up (long enough for every client's connection to be set up: the first-request columns), per round; reports/s is the median over rounds (min–max), latency pooled over rounds; coordinator CPU is the three coordinators' CPU time in the measured window per 1,000 reports committed.\n\n", w.Clients, w.Seconds, w.WarmSeconds)
	}
	p("| configuration | reports/s (median) | min–max | request p50 | p99 | coordinator CPU per 1,000 reports | first request (connect) p50 | p99 | errors |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	var errMsgs []string
	for _, m := range t.Modes {
		var errs int64
		for _, w := range m.WritePath {
			errs += w.Errors
			if w.FirstError != "" {
				errMsgs = append(errMsgs, m.Mode+": "+w.FirstError)
			}
		}
		p("| %s | **%.0f** | %.0f–%.0f | %s | %s | %s | %s | %s | %d |\n", m.Mode, m.WritePathPerSec.P50, m.WritePathPerSec.Min, m.WritePathPerSec.Max,
			num(m.WritePathLatency.P50, "ms"), num(m.WritePathLatency.P99, "ms"), num(m.WritePathCPU.P50, "ms"),
			num(m.WritePathFirst.P50, "ms"), num(m.WritePathFirst.P99, "ms"), errs)
	}
	p("| **ratio** | %s | | %s | %s | %s | %s | %s | |\n", ratio(s.WritePathPerSec.P50, in.WritePathPerSec.P50), ratio(s.WritePathLatency.P50, in.WritePathLatency.P50),
		ratio(s.WritePathLatency.P99, in.WritePathLatency.P99), ratio(s.WritePathCPU.P50, in.WritePathCPU.P50),
		ratio(s.WritePathFirst.P50, in.WritePathFirst.P50), ratio(s.WritePathFirst.P99, in.WritePathFirst.P99))
	for _, e := range errMsgs {
		p("\n- first write-path error of a round (%s)", e)
	}
	if len(errMsgs) > 0 {
		p("\n")
	}
	p("\n### Connections, start-up, memory, CPU\n\n")
	p("| figure | secure | insecure | ratio |\n| --- | --- | --- | --- |\n")
	p("| GET /v1/status on a new connection (TCP + TLS handshake, a node certificate the coordinator has not seen), p50 / p99 | %s / %s | %s / %s | %s |\n",
		num(s.ConnFirst.P50, "ms"), num(s.ConnFirst.P99, "ms"), num(in.ConnFirst.P50, "ms"), num(in.ConnFirst.P99, "ms"), ratio(s.ConnFirst.P50, in.ConnFirst.P50))
	p("| the same request again on that connection, p50 / p99 | %s / %s | %s / %s | %s |\n",
		num(s.ConnReuse.P50, "ms"), num(s.ConnReuse.P99, "ms"), num(in.ConnReuse.P50, "ms"), num(in.ConnReuse.P99, "ms"), ratio(s.ConnReuse.P50, in.ConnReuse.P50))
	sizeRow := func(what string, a, b []SizeSummary, unit string) {
		for _, x := range a {
			for _, y := range b {
				if x.Agents == y.Agents {
					p("| %s, %d agents (median over rounds) | %s | %s | %s |\n", what, x.Agents, num(x.S.P50, unit), num(y.S.P50, unit), ratio(x.S.P50, y.S.P50))
				}
			}
		}
	}
	sizeRow("fleet start: new agents started → all registered and polling", s.Startup, in.Startup, "s")
	sizeRow("coordinator RSS with every agent long-polling (mean of the three)", s.CoordRSS, in.CoordRSS, "MiB")
	p("| coordinators' CPU for a whole round (start, fleet, deploys, write path; sum of three) | %s | %s | %s |\n", num(s.CoordCPU.P50, "s"), num(in.CoordCPU.P50, "s"), ratio(s.CoordCPU.P50, in.CoordCPU.P50))
	p("| benchmark process CPU for a whole round (simulated agents, clients, certificate issuing) | %s | %s | %s |\n", num(s.BenchCPU.P50, "s"), num(in.BenchCPU.P50, "s"), ratio(s.BenchCPU.P50, in.BenchCPU.P50))
	for _, m := range t.Modes {
		for _, e := range m.Errors {
			p("\n- error (%s): %s", m.Mode, e)
		}
	}
	p("\n")
}
