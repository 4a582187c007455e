package coordinator

import (
	"net/http"
	"net/http/pprof"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/acl"
)

// observabilityRoutes adds the routes for metrics, health checks and
// profiling to the API (docs/api.md, docs/security.md):
//
//   - GET /v1/metrics: Prometheus text format; an operator certificate
//     and, with ACLs, operator read (what GET /v1/operator/raft needs: it
//     shows the same kind of cluster internals);
//   - GET /v1/health and /v1/health/live: public, so that a load balancer
//     without a client certificate or token can probe them; they tell only
//     whether this coordinator serves and sees a leader;
//   - /debug/pprof/: an operator certificate and, with ACLs, operator
//     write (a profile shows memory contents and costs CPU while it runs).
//
// The pprof handlers are the standard library's, registered on the API mux
// explicitly; nothing is registered on http.DefaultServeMux.
func (s *Server) observabilityRoutes(route func(string, access, needFunc, handlerFunc)) {
	route("GET /v1/metrics", accessOperator, need(acl.KindOperator, acl.Read), s.getMetrics)
	route("GET /v1/health", accessPublic, nil, s.getHealth)
	route("GET /v1/health/live", accessPublic, nil, s.getLive)
	pp := func(h http.HandlerFunc) handlerFunc {
		return func(w http.ResponseWriter, r *http.Request) error { h(w, r); return nil }
	}
	opW := need(acl.KindOperator, acl.Write)
	// Index also serves the named profiles: /debug/pprof/heap, goroutine…
	route("GET /debug/pprof/", accessOperator, opW, pp(pprof.Index))
	route("GET /debug/pprof/cmdline", accessOperator, opW, pp(pprof.Cmdline))
	route("GET /debug/pprof/profile", accessOperator, opW, pp(pprof.Profile))
	route("GET /debug/pprof/symbol", accessOperator, opW, pp(pprof.Symbol))
	route("GET /debug/pprof/trace", accessOperator, opW, pp(pprof.Trace))
}

// Health is the body of GET /v1/health.
type Health struct {
	// Healthy: this coordinator knows a leader and is a voter.
	Healthy bool   `json:"healthy"`
	Name    string `json:"name"`
	// Leader is the leader's server ID ("" when none is known).
	Leader   string `json:"leader"`
	IsLeader bool   `json:"is_leader"`
	// Suffrage is this coordinator's place in the Raft configuration:
	// voter, nonvoter (catching up before it is promoted), or "" when it
	// is not in it.
	Suffrage     string `json:"suffrage"`
	AppliedIndex uint64 `json:"applied_index"`
	// Reason says why it is not healthy.
	Reason string `json:"reason,omitempty"`
}

// getHealth answers 200 when this coordinator knows a leader and is a
// voter in the Raft configuration, 429 when it is a non-voter still
// catching up (alive, do not send it traffic yet), 503 otherwise, as
// Consul and Vault do.
func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) error {
	h, code := s.health()
	return writeJSON(w, code, h)
}

func (s *Server) health() (Health, int) {
	h := Health{Name: s.cfg.Name, AppliedIndex: s.raft.AppliedIndex(), IsLeader: s.raft.State() == raft.Leader}
	_, leader := s.raft.LeaderWithID()
	h.Leader = string(leader)
	inConfig := false
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if srv.ID == raft.ServerID(s.cfg.Name) {
				inConfig = true
				h.Suffrage = suffrageName(srv.Suffrage)
			}
		}
	}
	switch {
	case h.Leader == "":
		h.Reason = "no known Raft leader (an election is under way, or too few coordinators are up for a quorum)"
		return h, http.StatusServiceUnavailable
	case !inConfig:
		h.Reason = "this coordinator is not in the Raft configuration (not joined yet, or removed)"
		return h, http.StatusServiceUnavailable
	case h.Suffrage == "nonvoter":
		h.Reason = "this coordinator is a non-voter catching up with the log; the leader promotes it when it has"
		return h, http.StatusTooManyRequests
	}
	h.Healthy = true
	return h, http.StatusOK
}

func suffrageName(v raft.ServerSuffrage) string {
	switch v {
	case raft.Voter:
		return "voter"
	case raft.Nonvoter:
		return "nonvoter"
	default:
		return "staging"
	}
}

// getLive answers 200 for as long as the process serves HTTP.
func (s *Server) getLive(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]any{"live": true, "name": s.cfg.Name})
}
