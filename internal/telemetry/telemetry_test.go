package telemetry

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
)

func scrape(w Writer) string {
	var b bytes.Buffer
	w.WritePrometheus(&b)
	return b.String()
}

func wantLines(t *testing.T, body string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(body, l+"\n") {
			t.Errorf("scrape lacks %q:\n%s", l, body)
		}
	}
}

// Labelled families print their labels sorted by name with values escaped,
// histograms have classic le buckets, and every family has its help and type.
func TestRegistry_WritePrometheus_LabelsBucketsHelp(t *testing.T) {
	r := NewRegistry()
	c := r.CounterVec("x_requests_total", "Requests.", "method", "route", "code")
	c.With("GET", `/a/{name}`, "200").Inc()
	c.With("GET", `/a/{name}`, "200").Add(2)
	c.With("GET", `q"\`, "404").Inc()
	h := r.HistogramVec("x_duration_seconds", "Durations.", []float64{.01, 1}, "trigger")
	h.With("plan").Update(0.5)
	r.Histogram("x_size", "Sizes.", ExponentialBuckets(1, 2, 3)).Update(3)
	r.Gauge("x_last", "Last.").Set(1.5)
	r.GaugeFunc("x_fn", "Computed.", func() float64 { return 7 })
	states := &Desc{Name: "x_state", Help: "States\nby name.", Labels: []string{"state"}}
	one := &Desc{Name: "x_one", Help: "One."}
	r.Collect(func(g *Gauges) {
		g.Add(states, 1, "a")
		g.Add(one, 1e6)
		g.Add(states, 0, "b") // after another family: still grouped
	})
	body := scrape(r)
	wantLines(t, body,
		"# HELP x_requests_total Requests.",
		"# TYPE x_requests_total counter",
		`x_requests_total{code="200",method="GET",route="/a/{name}"} 3`,
		`x_requests_total{code="404",method="GET",route="q\"\\"} 1`,
		"# TYPE x_duration_seconds histogram",
		`x_duration_seconds_bucket{trigger="plan",le="0.01"} 0`,
		`x_duration_seconds_bucket{trigger="plan",le="1"} 1`,
		`x_duration_seconds_bucket{trigger="plan",le="+Inf"} 1`,
		`x_duration_seconds_count{trigger="plan"} 1`,
		`x_size_bucket{le="2"} 0`,
		`x_size_bucket{le="4"} 1`,
		"x_last 1.5",
		"x_fn 7",
		`# HELP x_state States\nby name.`,
		"# TYPE x_state gauge",
		"x_one 1e+06",
		"go_goroutines",
	)
	if !strings.Contains(body, "x_state{state=\"a\"} 1\nx_state{state=\"b\"} 0\n") {
		t.Errorf("x_state samples not grouped:\n%s", body)
	}
	if !strings.Contains(body, "\nprocess_resident_memory_bytes ") {
		t.Errorf("no process metrics")
	}
	rec := httptest.NewRecorder()
	Handler(r).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
}

func TestRegistry_Define_TwiceOrWrongLabelCountPanics(t *testing.T) {
	r := NewRegistry()
	r.Counter("x_total", "X.")
	for name, f := range map[string]func(){
		"twice":        func() { r.Gauge("x_total", "Again.") },
		"label values": func() { r.CounterVec("y_total", "Y.", "a", "b").With("1") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// The go-metrics sink names metrics as go-metrics' Prometheus sink did,
// keeps counters, and drops gauges and summaries not updated for the expiry.
func TestSink_NamesKindsExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewSink(time.Minute)
	s.now = func() time.Time { return now }
	s.AddSample([]string{"raft", "commitTime"}, 2)
	s.AddSample([]string{"raft", "commitTime"}, 4)
	s.IncrCounter([]string{"memberlist", "tcp.sent"}, 10)
	s.IncrCounter([]string{"memberlist", "tcp.sent"}, 5)
	s.SetGaugeWithLabels([]string{"raft", "peers"}, 3, []gometrics.Label{{Name: "z", Value: "1"}, {Name: "a-b", Value: `"x"`}})
	s.SetGauge([]string{"raft", "replication", "heartbeat", "node-2.example:7947"}, 1)
	s.SetGauge([]string{"9lives"}, 1)
	s.EmitKey([]string{"ignored"}, 1)
	s.SetGauge([]string{"memberlist", "tcp", "sent"}, 1) // taken by a counter: dropped, no panic
	body := scrape(s)
	wantLines(t, body,
		"# TYPE raft_commitTime summary",
		`raft_commitTime{quantile="0.99"} 4`,
		"raft_commitTime_count 2",
		"# TYPE memberlist_tcp_sent counter",
		"memberlist_tcp_sent 15",
		`raft_peers{a_b="\"x\"",z="1"} 3`,
		"raft_replication_heartbeat_node_2_example_7947 1",
		"_9lives 1",
	)
	if strings.Contains(body, "ignored") {
		t.Errorf("EmitKey exported:\n%s", body)
	}
	now = now.Add(61 * time.Second)
	s.SetGauge([]string{"9lives"}, 2)
	body = scrape(s)
	wantLines(t, body, "memberlist_tcp_sent 15", "_9lives 2")
	if strings.Contains(body, "raft_commitTime") || strings.Contains(body, "raft_peers") {
		t.Errorf("expired gauge or summary still exported:\n%s", body)
	}
	s.AddSample([]string{"raft", "commitTime"}, 1) // comes back
	wantLines(t, scrape(s), "raft_commitTime_count 1")
}
