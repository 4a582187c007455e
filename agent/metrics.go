package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/dtkhq/dtk/internal/telemetry"
)

// Metrics are an agent's Prometheus metrics, served on their own listener
// when --metrics-addr (metrics_addr) is set (docs/metrics.md). With metrics
// off (the default) the agent has a nil *Metrics: every hook below is then
// a nil check, and no registry, listener or goroutine exists, so that an
// idle agent stays small and opens no port it was not asked to.
type Metrics struct {
	reg      *telemetry.Registry
	converge *telemetry.HistogramVec
	steps    *telemetry.CounterVec
	lastPoll *metrics.Gauge
}

// NewMetrics builds the registry with the agent's metrics (and the Go
// runtime and process metrics).
func NewMetrics() *Metrics {
	reg := telemetry.NewRegistry()
	return &Metrics{
		reg: reg,
		converge: reg.HistogramVec("dtk_agent_converge_duration_seconds",
			"Time of one converge pass over the node's plan slice, by trigger (plan: a new slice arrived; reconcile: the periodic pass with drift checks).",
			telemetry.DurationBuckets, "trigger"),
		steps: reg.CounterVec("dtk_agent_step_runs_total",
			"Steps run by this agent, by action kind (bash, exec, puppet, ansible, container) and result (changed, ok, failed).",
			"kind", "result"),
		lastPoll: reg.Gauge("dtk_agent_last_poll_success_timestamp_seconds",
			"Unix time of the last plan long-poll a coordinator answered (0: none yet)."),
	}
}

// watch adds the gauges read from the agent at scrape time.
func (m *Metrics) watch(a *Agent) {
	m.reg.GaugeFunc("dtk_agent_outbox_reports", "Reports queued in the outbox, not yet accepted by a coordinator.",
		func() float64 { n, _ := a.store.queued(); return float64(n) })
	m.reg.GaugeFunc("dtk_agent_outbox_bytes", "Bytes of the reports queued in the outbox.",
		func() float64 { _, b := a.store.queued(); return float64(b) })
}

func (m *Metrics) converged(checks bool, start time.Time) {
	if m == nil {
		return
	}
	trigger := "plan"
	if checks {
		trigger = "reconcile"
	}
	m.converge.With(trigger).Update(time.Since(start).Seconds())
}

func (m *Metrics) stepRan(kind, result string) {
	if m != nil {
		m.steps.With(kind, result).Inc()
	}
}

func (m *Metrics) polled() {
	if m != nil {
		m.lastPoll.Set(float64(time.Now().UnixNano()) / 1e9)
	}
}

// MetricsServer serves an agent's metrics at /metrics.
type MetricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// ServeMetrics listens on addr (host:port, port 0 picks one) and serves
// m at /metrics, on its own mux (nothing else is reachable there).
func ServeMetrics(m *Metrics, addr string, log *slog.Logger) (*MetricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s (metrics_addr): %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", telemetry.Handler(m.reg))
	ms := &MetricsServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}}
	go func() {
		if err := ms.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	return ms, nil
}

// Addr is the address the metrics are served on.
func (s *MetricsServer) Addr() string { return s.ln.Addr().String() }

// Close stops serving.
func (s *MetricsServer) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }
