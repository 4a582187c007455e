package coordinator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/tlsutil"
)

func get(t *testing.T, c *http.Client, url string, hdr ...string) (int, string) {
	t.Helper()
	return send(t, c, "GET", url, "", hdr...)
}

// A scrape after some requests shows them counted by route pattern and
// code, timed, and the Raft and state gauges.
func TestMetrics_Scrape_RouteCountersAndRaftGauges(t *testing.T) {
	s := startServer(t)
	// A leader is known before its first entry is applied.
	waitCond(t, "the first entry applied", func() bool { return s.raft.AppliedIndex() > 0 })
	base := "http://" + s.HTTPAddr()
	c := &http.Client{}
	for range 3 {
		get(t, c, base+"/v1/status")
	}
	get(t, c, base+"/v1/services/nope")
	get(t, c, base+"/v1/no-such-endpoint")
	code, body := get(t, c, base+"/v1/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d %s", code, body)
	}
	for _, want := range []string{
		`dtk_http_requests_total{code="200",method="GET",route="/v1/status"} 3`,
		`dtk_http_requests_total{code="404",method="GET",route="/v1/services/{name}"} 1`,
		`dtk_http_requests_total{code="404",method="any",route="unmatched"} 1`,
		`dtk_http_request_duration_seconds_count{method="GET",route="/v1/status"} 3`,
		`dtk_http_request_duration_seconds_bucket{method="GET",route="/v1/status",le="0.001"}`,
		"dtk_raft_leader 1",
		`dtk_raft_state{state="leader"} 1`,
		`dtk_raft_servers{suffrage="voter"} 1`,
		"dtk_raft_last_contact_seconds 0",
		"dtk_raft_apply_duration_seconds_count",
		`dtk_services{state="converged"} 0`,
		`dtk_nodes{status="up"} 0`,
		`dtk_steps{state="pending"} 0`,
		"dtk_plan_polls 0",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if !strings.Contains(body, "\ndtk_raft_applied_index ") || strings.Contains(body, "\ndtk_raft_applied_index 0\n") {
		t.Errorf("applied index missing or zero")
	}
	// Raft's own go-metrics reach the same registry.
	if !strings.Contains(body, "raft_") || !strings.Contains(body, "raft_commitTime") {
		t.Errorf("scrape lacks Raft's go-metrics (raft_commitTime)")
	}
}

// The metrics need an operator certificate and, with ACLs, operator read;
// pprof needs operator write; the health checks need nothing.
func TestMetrics_Access_OperatorReadMetricsWritePprofPublicHealth(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServerWith(t, p, func(c *Config) { c.ACLEnabled = true })
	ctx := context.Background()
	boot, err := aclClient(p, s, "").ACLBootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mgmt := aclClient(p, s, boot.SecretID)
	token := func(name, rules string) string {
		if _, err := mgmt.PutACLPolicy(ctx, api.ACLPolicy{Name: name, Rules: rules}); err != nil {
			t.Fatal(err)
		}
		tk, err := mgmt.CreateACLToken(ctx, api.ACLTokenRequest{Policies: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		return tk.SecretID
	}
	none := token("services", `service "" { policy = "deploy" }`)
	read := token("op-read", `operator { policy = "read" }`)
	write := token("op-write", `operator { policy = "write" }`)
	base := "https://" + s.HTTPAddr()
	ops, node, anon := p.client(tlsutil.RoleClient, "ops"), p.client(tlsutil.RoleNode, "n1"), p.anonymous()
	tok := func(s string) []string { return []string{api.TokenHeader, s} }
	for _, c := range []struct {
		who    string
		client *http.Client
		hdr    []string
		path   string
		want   int
	}{
		{"anonymous", anon, nil, "/v1/metrics", 401},
		{"node", node, nil, "/v1/metrics", 403},
		{"operator without token", ops, nil, "/v1/metrics", 401},
		{"token without operator rights", ops, tok(none), "/v1/metrics", 403},
		{"operator read", ops, tok(read), "/v1/metrics", 200},
		{"anonymous", anon, nil, "/debug/pprof/", 401},
		{"node", node, nil, "/debug/pprof/goroutine?debug=1", 403},
		{"operator read", ops, tok(read), "/debug/pprof/", 403},
		{"operator read", ops, tok(read), "/debug/pprof/heap", 403},
		{"operator write", ops, tok(write), "/debug/pprof/", 200},
		{"operator write", ops, tok(write), "/debug/pprof/goroutine?debug=1", 200},
		{"operator write", ops, tok(write), "/debug/pprof/cmdline", 200},
		{"anonymous", anon, nil, "/v1/health", 200},
		{"anonymous", anon, nil, "/v1/health/live", 200},
	} {
		code, body := get(t, c.client, base+c.path, c.hdr...)
		if code != c.want {
			t.Errorf("%s GET %s: %d, want %d (%.200s)", c.who, c.path, code, c.want, body)
		}
		if c.want == 403 && !strings.Contains(body, "operator") {
			t.Errorf("%s GET %s: refusal does not name the operator right: %.200s", c.who, c.path, body)
		}
		if c.want == 200 && strings.HasPrefix(c.path, "/debug/pprof/goroutine") && !strings.Contains(body, "goroutine") {
			t.Errorf("goroutine profile: %.200s", body)
		}
	}
}

func health(t *testing.T, s *Server) (int, Health) {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + "/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var h Health
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("health body %q: %v", b, err)
	}
	return resp.StatusCode, h
}

// Health is 200 on every voter of a cluster with a leader, 429 on a
// non-voter, 503 on a coordinator cut off from the leader; liveness stays
// 200 throughout.
func TestHealth_LeaderKnownNonVoterPartitioned(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()
	for _, s := range c.servers {
		waitCond(t, "health 200 on "+s.cfg.Name, func() bool { code, h := health(t, s); return code == 200 && h.Healthy })
	}
	var f *Server
	for _, s := range c.servers {
		if s != leader {
			f = s
			break
		}
	}
	// Demoted to non-voter; marked failed in the pool so that the leader
	// does not promote it again at once.
	c.peers.setStatus(f.cfg.Name, "failed")
	if err := leader.raft.DemoteVoter(raft.ServerID(f.cfg.Name), 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	waitCond(t, "health 429 on the non-voter", func() bool {
		code, h := health(t, f)
		return code == 429 && h.Suffrage == "nonvoter" && strings.Contains(h.Reason, "non-voter")
	})
	c.peers.setStatus(f.cfg.Name, "alive")
	waitCond(t, "promoted again", func() bool { code, _ := health(t, f); return code == 200 })

	c.partition(f)
	waitCond(t, "health 503 on the cut-off coordinator", func() bool {
		code, h := health(t, f)
		return code == 503 && !h.Healthy && h.Leader == "" && strings.Contains(h.Reason, "leader")
	})
	if code, body := get(t, &http.Client{}, "http://"+f.HTTPAddr()+"/v1/health/live"); code != 200 {
		t.Errorf("live on the cut-off coordinator: %d %s", code, body)
	}
}
