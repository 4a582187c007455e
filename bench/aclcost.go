package bench

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dtkhq/dtk/internal/api"
)

// ACLCostConfig configures the access-control comparison: propagation,
// the write path and operator reads on a secure cluster with ACLs on
// (--acl-enabled, a bootstrapped management token) and one with ACLs off,
// alternately, on the same machine.
type ACLCostConfig struct {
	Bin, WorkDir, AgentDir string
	// Rounds of one cluster with ACLs and one without; the order
	// alternates (ACLs first in even rounds).
	Rounds        int
	Sizes         []int
	Runs, Warmups int
	WritePathSize int
	WritePathDur  time.Duration
	WritePathWarm time.Duration
	// OpCalls is how many GET /v1/services/NAME calls each operator-read
	// measurement makes, one at a time and then OpParallel at once.
	OpCalls, OpParallel int
	// Tokens is how many tokens the state holds for the second
	// operator-read measurement with ACLs on (0: skip it); at most
	// 10,000, the coordinator's limit.
	Tokens int
	Log    *log.Logger
}

// ACLCostMode is what one configuration measured, over every round.
type ACLCostMode struct {
	Mode   string `json:"mode"`
	ACL    bool   `json:"acl"`
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
	// Ops are the operator reads, per caller, token count and
	// parallelism.
	Ops []OpReadResult `json:"operator_reads"`
	// CoordCPU is the coordinators' CPU-seconds for the whole round.
	CoordCPU Summary `json:"coordinator_cpu_seconds"`
	// TokenFill is the time to create the tokens up to Tokens (ACLs on).
	TokenFill Summary  `json:"token_fill_seconds"`
	Errors    []string `json:"errors,omitempty"`

	raw  map[int]*propSamples
	wp   struct{ perSec, cpu, lat []float64 }
	ops  map[opKey]*opSamples
	cpu  []float64
	fill []float64
}

// OpReadResult is one operator-read measurement: OpCalls GET
// /v1/services/NAME on one coordinator by a caller with the given
// credential, Parallel at a time.
type OpReadResult struct {
	Caller   string `json:"caller"`
	Tokens   int    `json:"tokens_in_state"`
	Parallel int    `json:"parallel"`
	// Latency pools every request over rounds (ms); PerSec is each
	// round's requests/s, CPUPer1k the coordinator's CPU-ms per 1,000
	// requests, over rounds.
	Latency  Summary `json:"latency"`
	PerSec   Summary `json:"requests_per_sec"`
	CPUPer1k Summary `json:"coordinator_cpu_ms_per_1000_requests"`
	Bytes    int64   `json:"response_bytes"`
	Errors   int64   `json:"errors"`
}

type opKey struct {
	caller           string
	tokens, parallel int
}

type opSamples struct {
	lat, perSec, cpu []float64
	bytes, errs      int64
}

// Operator-read callers.
const (
	callerNoACL      = "no token (ACLs off)"
	callerManagement = "management token"
	callerPolicy     = "policy token (service read on a prefix)"
)

// ACLCostResult is the access-control comparison.
type ACLCostResult struct {
	Rounds     int      `json:"rounds"`
	Order      []string `json:"order"`
	Sizes      []int    `json:"sizes"`
	Runs       int      `json:"runs_per_size_per_round"`
	OpCalls    int      `json:"operator_calls"`
	OpParallel int      `json:"operator_parallel"`
	OpService  string   `json:"operator_service"`
	Tokens     int      `json:"tokens"`
	// Modes are ACLs on and ACLs off, in that order.
	Modes []*ACLCostMode `json:"modes"`
}

// RunACLCost runs the comparison.
func RunACLCost(cfg ACLCostConfig) (*ACLCostResult, error) {
	if len(cfg.Sizes) == 0 {
		return nil, fmt.Errorf("no fleet sizes")
	}
	cfg.Tokens = min(cfg.Tokens, 10000)
	res := &ACLCostResult{Rounds: cfg.Rounds, Sizes: cfg.Sizes, Runs: cfg.Runs, OpCalls: cfg.OpCalls, OpParallel: cfg.OpParallel,
		OpService: "fleet-one", Tokens: cfg.Tokens}
	on := &ACLCostMode{Mode: "ACLs on (--acl-enabled, management token for the benchmark's operator calls)", ACL: true}
	off := &ACLCostMode{Mode: "ACLs off"}
	res.Modes = []*ACLCostMode{on, off}
	for _, m := range res.Modes {
		m.raw, m.ops = map[int]*propSamples{}, map[opKey]*opSamples{}
	}
	for r := 0; r < cfg.Rounds; r++ {
		order := []*ACLCostMode{on, off}
		if r%2 == 1 {
			order = []*ACLCostMode{off, on}
		}
		for _, m := range order {
			res.Order = append(res.Order, fmt.Sprintf("%d:%s", r, map[bool]string{true: "acl", false: "no-acl"}[m.ACL]))
			cfg.Log.Printf("acl cost: round %d, %s", r, m.Mode)
			if err := aclCostRound(cfg, res.OpService, r, m); err != nil {
				m.Errors = append(m.Errors, fmt.Sprintf("round %d: %v", r, err))
				cfg.Log.Printf("acl cost: round %d, %s: %v", r, m.Mode, err)
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

func aclCostRound(cfg ACLCostConfig, svc string, r int, m *ACLCostMode) error {
	tag := map[bool]string{true: "acl", false: "noacl"}[m.ACL]
	prefix := map[bool]string{true: "127.0.206", false: "127.0.207"}[m.ACL]
	dir := filepath.Join(cfg.WorkDir, fmt.Sprintf("%s-%d", tag, r))
	agentDir := filepath.Join(cfg.AgentDir, fmt.Sprintf("%s-%d", tag, r))
	defer os.RemoveAll(agentDir)
	c, err := StartClusterACL(cfg.Bin, dir, prefix, 3, false, m.ACL)
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
	if wp := fr.WritePath; wp != nil {
		m.WritePath = append(m.WritePath, wp)
		m.wp.perSec = append(m.wp.perSec, wp.ReportsPerSec)
		m.wp.cpu = append(m.wp.cpu, wp.CoordCPUMsPer1k)
		m.wp.lat = append(m.wp.lat, wp.lat...)
	}
	if err := aclOpReads(cfg, c, svc, r, m); err != nil {
		return fmt.Errorf("operator reads: %w", err)
	}
	m.cpu = append(m.cpu, coordCPU(c).Seconds())
	return nil
}

// aclOpReads measures operator reads on the round's cluster: with ACLs
// off a caller without a token; with ACLs on the management token and a
// policy token, with the state holding two tokens and then cfg.Tokens.
func aclOpReads(cfg ACLCostConfig, c *Cluster, svc string, r int, m *ACLCostMode) error {
	co := c.Coords[0]
	if err := stageOne(c, filepath.Join(cfg.WorkDir, fmt.Sprintf("benchacl-%d-%v", r, m.ACL)), svc); err != nil {
		return err
	}
	if !m.ACL {
		return m.opRead(cfg, c, co, callerNoACL, "", svc, 0)
	}
	admin := c.Client()
	defer admin.HTTP.CloseIdleConnections()
	ctx, cancel := ctxT(30 * time.Second)
	defer cancel()
	if _, err := admin.PutACLPolicy(ctx, api.ACLPolicy{Name: "bench-read", Rules: `service "fleet-" { policy = "read" }`}); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	pt, err := admin.CreateACLToken(ctx, api.ACLTokenRequest{Description: "bench reader", Policies: []string{"bench-read"}})
	if err != nil {
		return fmt.Errorf("policy token: %w", err)
	}
	// The new token must be in the state of the coordinator asked (it
	// may be a follower that has not applied it yet).
	probe := c.OperatorAt(co.HTTP)
	probe.Token = pt.SecretID
	if err := waitUntil(10*time.Second, 5*time.Millisecond, "the policy token on "+co.Name, func() bool {
		ctx, cancel := ctxT(5 * time.Second)
		defer cancel()
		_, _, err := probe.ServiceStatus(ctx, svc, 0, 0)
		return err == nil
	}); err != nil {
		return err
	}
	probe.HTTP.CloseIdleConnections()
	// Count on the coordinator asked: it holds the policy token now.
	n, err := countTokensAt(c, co)
	if err != nil {
		return err
	}
	// Alternate which token goes first, round by round.
	callers := [][2]string{{callerManagement, c.Token}, {callerPolicy, pt.SecretID}}
	if r%2 == 1 {
		callers[0], callers[1] = callers[1], callers[0]
	}
	for _, x := range callers {
		if err := m.opRead(cfg, c, co, x[0], x[1], svc, n); err != nil {
			return err
		}
	}
	if cfg.Tokens <= n {
		return nil
	}
	t := time.Now()
	if err := fillTokens(c, cfg.Tokens-n); err != nil {
		return err
	}
	m.fill = append(m.fill, time.Since(t).Seconds())
	n = cfg.Tokens
	// Wait for the coordinator asked to have applied the last of them.
	if err := waitUntil(60*time.Second, 20*time.Millisecond, "every token on "+co.Name, func() bool {
		k, err := countTokensAt(c, co)
		return err == nil && k >= n
	}); err != nil {
		return err
	}
	cfg.Log.Printf("acl cost: %d tokens in the state (%s to create)", n, time.Since(t).Round(time.Millisecond))
	for _, x := range callers {
		if err := m.opRead(cfg, c, co, x[0], x[1], svc, n); err != nil {
			return err
		}
	}
	return nil
}

// stageOne stages svc from module benchacl: one step on the fleet's
// first node, so that GET /v1/services/svc answers a small document and
// the request's fixed costs (TLS, routing, ACL) show.
func stageOne(c *Cluster, dir, svc string) error {
	if err := writeModule(dir, `module {
  name    = "benchacl"
  version = "1.0.0"
}

component "step" {
  create {
    inline = "true"
  }
}

template "one" {
  node "n00001" {
    labels = { bench_id = "00001" }
    component "step" "s" {}
  }
}
`); err != nil {
		return err
	}
	cl := c.Client()
	defer cl.HTTP.CloseIdleConnections()
	if _, err := PushModule(cl, dir); err != nil {
		return err
	}
	ctx, cancel := ctxT(30 * time.Second)
	defer cancel()
	if _, err := cl.Stage(ctx, api.StageRequest{Name: svc, Template: "benchacl/one"}); err != nil {
		return fmt.Errorf("stage %s: %w", svc, err)
	}
	// GETs go to Coords[0], which may apply the stage a moment later.
	ca := c.OperatorAt(c.Coords[0].HTTP)
	defer ca.HTTP.CloseIdleConnections()
	return waitUntil(10*time.Second, 5*time.Millisecond, svc+" on "+c.Coords[0].Name, func() bool {
		ctx, cancel := ctxT(5 * time.Second)
		defer cancel()
		_, _, err := ca.ServiceStatus(ctx, svc, 0, 0)
		return err == nil
	})
}

func countTokens(cl *api.Client) (int, error) {
	ctx, cancel := ctxT(30 * time.Second)
	defer cancel()
	ts, err := cl.ACLTokens(ctx)
	return len(ts), err
}

func countTokensAt(c *Cluster, co *Coord) (int, error) {
	cl := c.OperatorAt(co.HTTP)
	defer cl.HTTP.CloseIdleConnections()
	return countTokens(cl)
}

// fillTokens creates n tokens with the bench-read policy, 16 requests at
// a time (they go to the leader and are committed in Raft batches).
func fillTokens(c *Cluster, n int) error {
	const workers = 16
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.OperatorAt(c.Addrs()[w%len(c.Coords)])
			defer cl.HTTP.CloseIdleConnections()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				ctx, cancel := ctxT(30 * time.Second)
				_, err := cl.CreateACLToken(ctx, api.ACLTokenRequest{Description: fmt.Sprintf("filler %d", i), Policies: []string{"bench-read"}})
				cancel()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("token %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// opRead runs cfg.OpCalls GET /v1/services/svc on co with token (none:
// ""), one at a time and then cfg.OpParallel at once (one connection per
// worker), after a warm-up of as many calls per worker, and records
// latency, requests/s and co's CPU per 1,000 requests.
func (m *ACLCostMode) opRead(cfg ACLCostConfig, c *Cluster, co *Coord, caller, token, svc string, tokens int) error {
	for _, par := range []int{1, cfg.OpParallel} {
		if par < 1 {
			continue
		}
		k := opKey{caller, tokens, par}
		s := m.ops[k]
		if s == nil {
			s = &opSamples{}
			m.ops[k] = s
		}
		clients := make([]*http.Client, par)
		for i := range clients {
			clients[i] = c.PKI.HTTP(c.PKI.operatorStore())
		}
		u := c.PKI.scheme() + "://" + co.HTTP + "/v1/services/" + url.PathEscape(svc)
		run := func(calls int, lat *[]float64) (time.Duration, int64, int64, error) {
			var next, errs, bytes atomic.Int64
			var mu sync.Mutex
			var firstErr error
			var wg sync.WaitGroup
			t0 := time.Now()
			for w := range par {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []float64
					for next.Add(1) <= int64(calls) {
						t := time.Now()
						b, err := getOnce(clients[w], u, token)
						d := time.Since(t)
						if err != nil {
							errs.Add(1)
							mu.Lock()
							if firstErr == nil {
								firstErr = err
							}
							mu.Unlock()
							continue
						}
						bytes.Store(b)
						mine = append(mine, Ms(d)...)
					}
					if lat != nil {
						mu.Lock()
						*lat = append(*lat, mine...)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			return time.Since(t0), errs.Load(), bytes.Load(), firstErr
		}
		if _, _, _, err := run(max(par*50, 500), nil); err != nil {
			return fmt.Errorf("%s: warm-up: %w", caller, err)
		}
		cpu0 := procCPU(co)
		var lat []float64
		wall, errs, b, err := run(cfg.OpCalls, &lat)
		cpu := procCPU(co) - cpu0
		for _, hc := range clients {
			hc.CloseIdleConnections()
		}
		s.errs += errs
		if err != nil && errs > int64(cfg.OpCalls)/100 {
			return fmt.Errorf("%s: %d of %d calls failed, first: %w", caller, errs, cfg.OpCalls, err)
		}
		ok := float64(len(lat))
		s.lat = append(s.lat, lat...)
		s.perSec = append(s.perSec, ok/wall.Seconds())
		if ok > 0 {
			s.cpu = append(s.cpu, 1e6*cpu.Seconds()/ok)
		}
		s.bytes = b
		cfg.Log.Printf("acl cost: %s, %d tokens, %d at a time: %.0f requests/s, p50 %.3f ms, coordinator CPU %s", caller, tokens, par, ok/wall.Seconds(),
			Summarize("ms", lat).P50, cpu.Round(time.Millisecond))
	}
	return nil
}

// getOnce is one GET with the token (when given); it returns the body's
// size.
func getOnce(hc *http.Client, u, token string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	if token != "" {
		req.Header.Set(api.TokenHeader, token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return n, nil
}

// procCPU is a coordinator's CPU time so far.
func procCPU(co *Coord) time.Duration {
	st, _ := ReadProcStats(co.PID())
	return st.CPU
}

func (m *ACLCostMode) summarise(sizes []int) {
	for _, n := range sizes {
		if s := m.raw[n]; s != nil {
			m.Propagation = append(m.Propagation, PropagationResult{
				Agents: n, Runs: len(s.last), Runner: "no-op runner", Early: s.early,
				DeployCall: Summarize("ms", s.calls), Received: Summarize("ms", s.recv), ReceivedFromSend: Summarize("ms", s.recvSend),
				Started: Summarize("ms", s.started), LastAgent: Summarize("ms", s.last),
			})
		}
	}
	m.WritePathPerSec = Summarize("reports/s", m.wp.perSec)
	m.WritePathCPU = Summarize("ms", m.wp.cpu)
	m.WritePathLatency = Summarize("ms", m.wp.lat)
	m.CoordCPU = Summarize("s", m.cpu)
	m.TokenFill = Summarize("s", m.fill)
	keys := make([]opKey, 0, len(m.ops))
	for k := range m.ops {
		keys = append(keys, k)
	}
	rank := map[string]int{callerNoACL: 0, callerManagement: 1, callerPolicy: 2}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.parallel != b.parallel {
			return a.parallel < b.parallel
		}
		if a.tokens != b.tokens {
			return a.tokens < b.tokens
		}
		return rank[a.caller] < rank[b.caller]
	})
	for _, k := range keys {
		s := m.ops[k]
		m.Ops = append(m.Ops, OpReadResult{Caller: k.caller, Tokens: k.tokens, Parallel: k.parallel,
			Latency: Summarize("ms", s.lat), PerSec: Summarize("requests/s", s.perSec), CPUPer1k: Summarize("ms", s.cpu), Bytes: s.bytes, Errors: s.errs})
	}
}

// markdown renders the comparison.
func (t *ACLCostResult) markdown(p func(string, ...any)) {
	if len(t.Modes) != 2 {
		return
	}
	on, off := t.Modes[0], t.Modes[1]
	ratio := func(a, b float64) string {
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.3f×", a/b)
	}
	p("\n## What access control costs\n\n")
	p("The same figures on a secure cluster with ACLs on (`--acl-enabled`; the benchmark bootstraps a management token and sends it with every operator call; agents, with node certificates, carry no token) and on one with ACLs off, both with mutual TLS, in %d rounds of one cluster each, alternating which goes first (%v). Each round starts fresh coordinators and a fresh fleet. Ratios are ACLs on over ACLs off, of the medians (or of the pooled percentiles).\n\n", t.Rounds, t.Order)
	p("### Plan propagation\n\nPooled over agents × %d runs × rounds (after warm-ups), no-op runner; times from the deploy call's return.\n\n", t.Runs)
	p("| agents | configuration | received p50 | p90 | p99 | deploy call p50 | last agent per run p50 | n |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, a := range on.Propagation {
		var b PropagationResult
		for _, x := range off.Propagation {
			if x.Agents == a.Agents {
				b = x
			}
		}
		for _, x := range []struct {
			m string
			r PropagationResult
		}{{"ACLs on", a}, {"ACLs off", b}} {
			r := x.r
			p("| %d | %s | %s | %s | %s | %s | %s | %d |\n", a.Agents, x.m, num(r.Received.P50, "ms"), num(r.Received.P90, "ms"), num(r.Received.P99, "ms"),
				num(r.DeployCall.P50, "ms"), num(r.LastAgent.P50, "ms"), r.Received.N)
		}
		p("| %d | **ratio** | %s | %s | %s | %s | %s | |\n", a.Agents, ratio(a.Received.P50, b.Received.P50), ratio(a.Received.P90, b.Received.P90),
			ratio(a.Received.P99, b.Received.P99), ratio(a.DeployCall.P50, b.DeployCall.P50), ratio(a.LastAgent.P50, b.LastAgent.P50))
	}
	p("\n### Write path\n\n")
	if len(on.WritePath) > 0 {
		w := on.WritePath[0]
		p("%d concurrent clients (node certificates, as agents), one report per request, %.0f s after a %.0f s warm-up, per round; reports/s is the median over rounds (min–max), latency pooled; coordinator CPU is the three coordinators' CPU time in the measured window per 1,000 reports.\n\n", w.Clients, w.Seconds, w.WarmSeconds)
	}
	p("| configuration | reports/s (median) | min–max | request p50 | p99 | coordinator CPU per 1,000 reports | errors |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, m := range t.Modes {
		var errs int64
		for _, w := range m.WritePath {
			errs += w.Errors
		}
		p("| %s | **%.0f** | %.0f–%.0f | %s | %s | %s | %d |\n", map[bool]string{true: "ACLs on", false: "ACLs off"}[m.ACL], m.WritePathPerSec.P50, m.WritePathPerSec.Min, m.WritePathPerSec.Max,
			num(m.WritePathLatency.P50, "ms"), num(m.WritePathLatency.P99, "ms"), num(m.WritePathCPU.P50, "ms"), errs)
	}
	p("| **ratio** | %s | | %s | %s | %s | |\n", ratio(on.WritePathPerSec.P50, off.WritePathPerSec.P50), ratio(on.WritePathLatency.P50, off.WritePathLatency.P50),
		ratio(on.WritePathLatency.P99, off.WritePathLatency.P99), ratio(on.WritePathCPU.P50, off.WritePathCPU.P50))
	p("\n### Operator reads with a token\n\n")
	p("%d × `GET /v1/services/%s` on one coordinator (served there, no forwarding), after a warm-up, one at a time and %d at a time (one connection each, reused); latency pooled over rounds, requests/s and the coordinator's CPU per 1,000 requests the median over rounds. With ACLs on, every request resolves its token from the replicated state (`State.ACLTokenByHash`: a SHA-256 and a scan over every token) and builds an authorizer; a policy token also lists and looks up its policies. *Tokens* is how many tokens the state held.\n\n", t.OpCalls, t.OpService, t.OpParallel)
	p("| at a time | caller | tokens | p50 | p90 | p99 | requests/s | coordinator CPU per 1,000 requests | p50 vs ACLs off | requests/s vs ACLs off |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	base := map[int]OpReadResult{}
	for _, o := range off.Ops {
		base[o.Parallel] = o
	}
	for _, o := range append(append([]OpReadResult(nil), off.Ops...), on.Ops...) {
		b := base[o.Parallel]
		tok := fmt.Sprint(o.Tokens)
		if o.Caller == callerNoACL {
			tok = "—"
		}
		p("| %d | %s | %s | %s | %s | %s | %.0f | %s | %s | %s |\n", o.Parallel, o.Caller, tok, num(o.Latency.P50, "ms"), num(o.Latency.P90, "ms"), num(o.Latency.P99, "ms"),
			o.PerSec.P50, num(o.CPUPer1k.P50, "ms"), ratio(o.Latency.P50, b.Latency.P50), ratio(o.PerSec.P50, b.PerSec.P50))
	}
	if len(on.Ops) > 0 {
		p("\nThe answer is %d bytes of JSON.", on.Ops[0].Bytes)
	}
	if on.TokenFill.N > 0 {
		p(" Creating the tokens up to %d took %s (median over rounds; 16 `POST /v1/acl/tokens` at a time).", t.Tokens, num(on.TokenFill.P50, "s"))
	}
	p("\n\n| figure | ACLs on | ACLs off | ratio |\n| --- | --- | --- | --- |\n")
	p("| coordinators' CPU for a whole round (start, fleet, deploys, write path, operator reads; ACLs on also the token creation; sum of three) | %s | %s | %s |\n",
		num(on.CoordCPU.P50, "s"), num(off.CoordCPU.P50, "s"), ratio(on.CoordCPU.P50, off.CoordCPU.P50))
	for _, m := range t.Modes {
		for _, e := range m.Errors {
			p("\n- error (%s): %s", m.Mode, e)
		}
	}
	p("\n")
}
