// Package telemetry holds what the coordinator's and the agent's metrics
// share: the Prometheus registry they expose, the HTTP handler that serves
// it in the text format, and the bridge that brings the Raft, serf and
// memberlist libraries' own metrics into it.
//
// Why prometheus/client_golang, and go-metrics only as a bridge: dtk's own
// metrics (API requests by route and code, report batches, deploy
// durations, services and steps by state) are typed, labelled and mostly
// histograms, and some are computed from the replicated state only when
// scraped; client_golang does all of that directly (real histogram buckets,
// collectors run at scrape time, one registry per coordinator so in-process
// test clusters do not share counters). hashicorp/go-metrics' Prometheus
// sink is itself built on client_golang, so choosing it would not save the
// dependency; it only turns a process-global, untyped stream of samples
// into summaries and gauges that expire. That stream is the one thing it is
// needed for: raft v1.7.3, raft-boltdb v2.3.1, serf v0.10.4 and memberlist
// v0.6.0 emit through github.com/hashicorp/go-metrics/compat (go-metrics
// v0.6.0, the last release that still has compat: v0.7.0 dropped it and
// breaks raft-boltdb, see the environment notes). Without the
// hashicorpmetrics build tag compat forwards to armon/go-metrics' global,
// and compat/prometheus names the matching sink, so RaftCollector installs
// that sink as the go-metrics global once per process and hands it out as
// a collector for a registry (raft_commitTime, raft_leader_lastContact and
// the rest).
//
// The agent builds a registry only when --metrics-addr is set; with metrics
// off it allocates nothing here and starts no listener.
package telemetry

import (
	"net/http"
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric dtk defines itself.
const Namespace = "dtk"

// DurationBuckets are the histogram buckets (seconds) for request, commit,
// converge and deploy durations: from 1 ms to 10 minutes, the longest plan
// long-poll.
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// NewRegistry is a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus text format (or OpenMetrics, when
// the scraper asks for it).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}

// goMetricsExpiry is how long a library gauge or summary stays exported
// after its last update (go-metrics' default).
const goMetricsExpiry = time.Minute

var (
	sinkOnce sync.Once
	sink     prometheus.Collector
	sinkErr  error
)

// RaftCollector installs, once per process, a go-metrics Prometheus sink as
// the global go-metrics sink (what Raft, raft-boltdb, serf and memberlist
// emit to) and returns it for registering in a registry. The metrics keep
// the libraries' names (raft_commitTime, serf_member_join, ...) and their
// timers are summaries in milliseconds.
func RaftCollector() (prometheus.Collector, error) {
	sinkOnce.Do(func() {
		s, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
			Expiration: goMetricsExpiry,
			Name:       "dtk_gometrics_sink",
			// Registered here only to satisfy the sink; each coordinator
			// registers it in its own registry.
			Registerer: prometheus.NewRegistry(),
		})
		if err != nil {
			sinkErr = err
			return
		}
		cfg := gometrics.DefaultConfig("")
		cfg.EnableHostname = false
		cfg.EnableHostnameLabel = false
		cfg.EnableServiceLabel = false
		// client_golang's Go collector covers the runtime; go-metrics'
		// own would start a goroutine sampling it every second.
		cfg.EnableRuntimeMetrics = false
		if _, err := gometrics.NewGlobal(cfg, s); err != nil {
			sinkErr = err
			return
		}
		sink = s
	})
	return sink, sinkErr
}
