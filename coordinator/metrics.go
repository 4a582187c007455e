package coordinator

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/telemetry"
	"github.com/dtkhq/dtk/plan"
)

// A coordinator's metrics (GET /v1/metrics; docs/metrics.md lists them).
// Counters and histograms are updated where things happen: the route
// wrapper (instrument), the report batcher, Raft applies and the deploy
// tracker. Gauges about Raft and the replicated state are computed when
// scraped (coordCollector), so nothing runs between scrapes; the state
// counts are cached per state index, so a scrape of an unchanged state does
// not take the state's read lock for more than a moment.
type coordMetrics struct {
	reg *telemetry.Registry

	requests     *telemetry.CounterVec
	latency      *telemetry.HistogramVec
	applyLatency *metrics.PrometheusHistogram
	batchSize    *metrics.PrometheusHistogram
	batchCommit  *metrics.PrometheusHistogram
	driftRepairs *metrics.Counter
	deploys      *telemetry.HistogramVec
	deployPlans  *telemetry.CounterVec
	recompiles   *telemetry.CounterVec

	// deploying tracks deploys this coordinator started as leader until
	// they converge or fail (service name → generation).
	mu        sync.Mutex
	deploying map[string]uint64
}

func newCoordMetrics(s *Server) *coordMetrics {
	reg := telemetry.NewRegistry()
	m := &coordMetrics{
		reg: reg,
		requests: reg.CounterVec("dtk_http_requests_total",
			"API requests answered by this coordinator, by method, route pattern and status code.",
			"method", "route", "code"),
		latency: reg.HistogramVec("dtk_http_request_duration_seconds",
			"Time to answer an API request, by method and route pattern (blocking queries included).",
			telemetry.DurationBuckets, "method", "route"),
		applyLatency: reg.Histogram("dtk_raft_apply_duration_seconds",
			"Time from handing a command to Raft until it is committed and applied (leader only).",
			telemetry.DurationBuckets),
		batchSize: reg.Histogram("dtk_reports_batch_size",
			"Agent reports per Raft entry written by the report batcher.",
			telemetry.ExponentialBuckets(1, 2, 12)), // 1 … 2048 (batchMax)
		batchCommit: reg.Histogram("dtk_reports_batch_commit_seconds",
			"Time to commit one batch of agent reports through Raft.",
			telemetry.DurationBuckets),
		driftRepairs: reg.Counter("dtk_drift_repairs_total",
			"Step runs reported as having repaired drift, counted by the coordinator that committed the report (the leader)."),
		deploys: reg.HistogramVec("dtk_deploy_duration_seconds",
			"Time from a deploy's acceptance until its service converged or failed, by result (measured by the leader that accepted it).",
			telemetry.DurationBuckets, "result"),
		deployPlans: reg.CounterVec("dtk_deploy_entries_total",
			"Deploy entries this coordinator committed as leader, by how the plan was made (planned: on the leader; stale: a planned entry refused and planned again; in_apply: compiled in every replica's Apply).",
			"plan"),
		recompiles: reg.CounterVec("dtk_recompile_entries_total",
			"Recompiles (a service's plan compiled again at the same generation after an output it reads arrived) this coordinator committed as leader, by how the plan was made (planned, stale, in_apply).",
			"plan"),
		deploying: map[string]uint64{},
	}
	c := &coordCollector{s: s}
	reg.Collect(c.collect)
	if lib, err := telemetry.LibraryMetrics(); err == nil {
		reg.Include(lib)
	} else {
		s.log.Warn("raft library metrics not exported", "err", err)
	}
	return m
}

// getMetrics serves the registry (GET /v1/metrics).
func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request) error {
	telemetry.Handler(s.metrics.reg).ServeHTTP(w, r)
	return nil
}

// instrument counts a route's requests by status code and times them. It
// sits outside the route's wrapper, so refusals (401, 403, 413) and
// forwarded requests are counted too, under the route's pattern.
func (s *Server) instrument(pattern string, next http.Handler) http.Handler {
	method, route, ok := strings.Cut(pattern, " ")
	if !ok {
		method, route = "any", pattern
	}
	if route == "/" {
		route = "unmatched" // the catch-all 404: do not label by path
	}
	lat := s.metrics.latency.With(method, route)
	deploy := pattern == "POST /v1/services/{name}/deploy"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		code := cw.code
		if code == 0 {
			code = http.StatusOK
		}
		s.metrics.requests.With(method, route, strconv.Itoa(code)).Inc()
		lat.Update(time.Since(start).Seconds())
		if deploy && code == http.StatusOK {
			s.trackDeploy(r.PathValue("name"), start)
		}
	})
}

// observeApply records one Raft apply's latency.
func (s *Server) observeApply(start time.Time) {
	if s.metrics != nil {
		s.metrics.applyLatency.Update(time.Since(start).Seconds())
	}
}

// observeBatch records a committed report batch.
func (s *Server) observeBatch(reports []plan.Report, took time.Duration) {
	if s.metrics == nil {
		return
	}
	s.metrics.batchSize.Update(float64(len(reports)))
	s.metrics.batchCommit.Update(took.Seconds())
	for i := range reports {
		if reports[i].Drift && reports[i].State == plan.StepOK {
			s.metrics.driftRepairs.Inc()
		}
	}
}

// deployTrackMax bounds how long a deploy is followed for its duration.
const deployTrackMax = 24 * time.Hour

// trackDeploy follows a deploy this coordinator accepted as leader until
// its service converges or fails (or moves on to another generation, is
// deleted, or the coordinator stops), and records its duration.
func (s *Server) trackDeploy(name string, start time.Time) {
	if s.raft.State() != raft.Leader {
		return // forwarded: the leader that ran it measures it
	}
	svc := s.State().Service(name)
	if svc == nil {
		return
	}
	gen := svc.Generation
	m := s.metrics
	m.mu.Lock()
	_, already := m.deploying[name]
	m.deploying[name] = gen
	m.mu.Unlock()
	if already {
		return // the running tracker follows the new generation
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			m.mu.Lock()
			delete(m.deploying, name)
			m.mu.Unlock()
		}()
		deadline := time.NewTimer(deployTrackMax)
		defer deadline.Stop()
		done := make(chan struct{})
		defer close(done)
		var idx uint64
		for {
			m.mu.Lock()
			gen := m.deploying[name]
			m.mu.Unlock()
			svc := s.State().Service(name)
			if svc == nil || svc.Generation > gen {
				return
			}
			if svc.Generation == gen && (svc.State == plan.StateConverged || svc.State == plan.StateFailed) {
				m.deploys.With(svc.State).Update(time.Since(start).Seconds())
				return
			}
			idx = svc.ModifyIndex
			wake := make(chan struct{})
			go func() {
				s.State().WaitService(done, name, idx)
				close(wake)
			}()
			select {
			case <-wake:
			case <-s.stop:
				return
			case <-deadline.C:
				return
			}
		}
	}()
}

// coordCollector computes Raft and state gauges at scrape time.
type coordCollector struct {
	s *Server

	mu     sync.Mutex
	index  uint64
	counts stateCounts
}

var (
	descLeader      = &telemetry.Desc{Name: "dtk_raft_leader", Help: "1 when this coordinator is the Raft leader."}
	descRaftState   = &telemetry.Desc{Name: "dtk_raft_state", Help: "1 for this coordinator's Raft state (follower, candidate, leader, shutdown).", Labels: []string{"state"}}
	descHasLeader   = &telemetry.Desc{Name: "dtk_raft_has_leader", Help: "1 when this coordinator knows a leader."}
	descApplied     = &telemetry.Desc{Name: "dtk_raft_applied_index", Help: "Last Raft index applied to this coordinator's state."}
	descCommit      = &telemetry.Desc{Name: "dtk_raft_commit_index", Help: "Last Raft index known committed."}
	descLastIndex   = &telemetry.Desc{Name: "dtk_raft_last_index", Help: "Last Raft index in this coordinator's log."}
	descLastContact = &telemetry.Desc{Name: "dtk_raft_last_contact_seconds", Help: "Seconds since a follower last heard from the leader (0 on the leader; -1 never)."}
	descServers     = &telemetry.Desc{Name: "dtk_raft_servers", Help: "Servers in the Raft configuration, by suffrage (voter, nonvoter).", Labels: []string{"suffrage"}}
	descPlanPolls   = &telemetry.Desc{Name: "dtk_plan_polls", Help: "Plan long-polls from agents being served by this coordinator."}
	descServices    = &telemetry.Desc{Name: "dtk_services", Help: "Services by state (staged, deploying, converged, failed, deleting).", Labels: []string{"state"}}
	descNodes       = &telemetry.Desc{Name: "dtk_nodes", Help: "Registered nodes by status (up, down).", Labels: []string{"status"}}
	descSteps       = &telemetry.Desc{Name: "dtk_steps", Help: "Steps of the current plans by the state of their latest report (pending when none matches).", Labels: []string{"state"}}
	descStateIndex  = &telemetry.Desc{Name: "dtk_state_index", Help: "Raft index of the replicated state this coordinator serves."}
)

// collect writes the gauges (telemetry.Registry.Collect).
func (c *coordCollector) collect(g *telemetry.Gauges) {
	s := c.s
	gauge := g.Add
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	if r := s.raft; r != nil {
		st := r.State()
		gauge(descLeader, b(st == raft.Leader))
		for _, name := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
			gauge(descRaftState, b(st == name), strings.ToLower(name.String()))
		}
		addr, _ := r.LeaderWithID()
		gauge(descHasLeader, b(addr != ""))
		gauge(descApplied, float64(r.AppliedIndex()))
		gauge(descCommit, float64(r.CommitIndex()))
		gauge(descLastIndex, float64(r.LastIndex()))
		switch last := r.LastContact(); {
		case st == raft.Leader:
			gauge(descLastContact, 0)
		case last.IsZero():
			gauge(descLastContact, -1)
		default:
			gauge(descLastContact, time.Since(last).Seconds())
		}
		if f := r.GetConfiguration(); f.Error() == nil {
			var voters, nonvoters int
			for _, srv := range f.Configuration().Servers {
				if srv.Suffrage == raft.Voter {
					voters++
				} else {
					nonvoters++
				}
			}
			gauge(descServers, float64(voters), "voter")
			gauge(descServers, float64(nonvoters), "nonvoter")
		}
	}
	gauge(descPlanPolls, float64(s.planPolls.Load()))
	if s.fsm == nil {
		return
	}
	st := s.State()
	idx := st.Index()
	c.mu.Lock()
	if c.counts.services == nil || idx != c.index {
		c.counts, c.index = st.counts(), idx
	}
	counts := c.counts
	c.mu.Unlock()
	gauge(descStateIndex, float64(idx))
	for _, state := range []string{plan.StateStaged, plan.StateDeploying, plan.StateConverged, plan.StateFailed, plan.StateDeleting} {
		gauge(descServices, float64(counts.services[state]), state)
	}
	for state, n := range counts.services {
		if !knownServiceState(state) {
			gauge(descServices, float64(n), state)
		}
	}
	for _, status := range []string{plan.NodeUp, plan.NodeDown} {
		gauge(descNodes, float64(counts.nodes[status]), status)
	}
	for status, n := range counts.nodes {
		if status != plan.NodeUp && status != plan.NodeDown {
			gauge(descNodes, float64(n), status)
		}
	}
	for state, n := range counts.steps {
		gauge(descSteps, float64(n), state)
	}
}

func knownServiceState(s string) bool {
	switch s {
	case plan.StateStaged, plan.StateDeploying, plan.StateConverged, plan.StateFailed, plan.StateDeleting:
		return true
	}
	return false
}

// stateCounts are the state's objects counted by state.
type stateCounts struct {
	services, nodes, steps map[string]int
}

// counts counts services, nodes and steps under one read lock: a pass over
// the current plans' steps with one map lookup each, no copies.
func (s *State) counts() stateCounts {
	c := stateCounts{services: map[string]int{}, nodes: map[string]int{}, steps: map[string]int{plan.StepPending: 0}}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, n := range s.data.Nodes {
		c.nodes[n.Status]++
	}
	for _, svc := range s.data.Services {
		c.services[svc.State]++
		if svc.Plan == nil {
			continue
		}
		for _, np := range svc.Plan.Nodes {
			for _, step := range np.Steps {
				state := plan.StepPending
				if r := s.data.Reports[step.ID]; r != nil && r.Digest == step.Digest && r.Generation >= step.Generation {
					state = r.State
				}
				c.steps[state]++
			}
		}
	}
	return c
}
