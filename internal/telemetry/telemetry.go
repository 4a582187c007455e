// Package telemetry holds what the coordinator's and the agent's metrics
// share: the registry they expose, the HTTP handler that serves it in the
// Prometheus text format, and the bridge that brings the Raft, serf and
// memberlist libraries' own metrics into it.
//
// Why github.com/VictoriaMetrics/metrics and not prometheus/client_golang:
// dtk is one binary, and every package linked into it runs its init at
// start, whether metrics are on or off. client_golang brings in
// google.golang.org/protobuf (which registers its descriptors at init),
// prometheus/client_model, prometheus/common and procfs: the peak RSS of
// `dtk-agent version` was 20.7 MB with them and is 18.9 MB without (the
// binary 2.3 MB smaller), and an idle agent with metrics off went from
// 25.6 to 23.9 MB (docs/metrics.md; issue 13 asks for 20).
// VictoriaMetrics/metrics writes the same text format (0.0.4; there is no
// OpenMetrics negotiation any more) with no protobuf and two tiny
// dependencies, and has what dtk needs: sets (one per coordinator
// or agent, so in-process test clusters do not share counters), counters,
// gauges read by a callback at scrape time, classic Prometheus histograms
// with fixed `le` buckets (PrometheusHistogram; its own vmrange histograms
// are not used, the dashboards and alerts need `le`) and summaries. What it
// lacks, this package adds in a few lines: labelled families (CounterVec,
// HistogramVec), help text, and gauges computed at scrape time with labels
// (Gauges).
//
// The libraries' metrics: raft v1.7.3, raft-boltdb v2.3.1, serf v0.10.4 and
// memberlist v0.6.0 emit through github.com/hashicorp/go-metrics/compat
// (go-metrics v0.6.0, the last release that still has compat: v0.7.0
// dropped it and breaks raft-boltdb, see the environment notes). Without
// the hashicorpmetrics build tag compat forwards to armon/go-metrics'
// global, so LibraryMetrics installs a sink of its own there (sink.go) that
// keeps the samples in a VictoriaMetrics set under the names go-metrics'
// Prometheus sink gave them (raft_commitTime, raft_leader_lastContact,
// ...), timers as summaries in milliseconds.
//
// The agent builds a registry only when --metrics-addr is set; with metrics
// off it allocates nothing here and starts no listener.
package telemetry

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"
)

// DurationBuckets are the histogram buckets (seconds) for request, commit,
// converge and deploy durations: from 1 ms to 10 minutes, the longest plan
// long-poll.
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// ExponentialBuckets are count buckets from start, each factor times the
// one before.
func ExponentialBuckets(start, factor float64, count int) []float64 {
	return metrics.ExponentialBuckets(start, factor, count)
}

// A Writer writes metrics in the Prometheus text format.
type Writer interface {
	WritePrometheus(w io.Writer)
}

// Registry is one coordinator's or agent's metrics. Its methods that
// create a metric panic on a name used twice or an invalid name, as
// registering does in client_golang: both are programming errors.
type Registry struct {
	set *metrics.Set

	mu       sync.Mutex
	help     map[string]string // family → help text
	includes []Writer
}

// NewRegistry is an empty registry; its scrape also has the Go runtime and
// process metrics (go_*, process_*).
func NewRegistry() *Registry {
	// TYPE lines for every family (the HELP lines' text is filled in by
	// WritePrometheus): without them Prometheus would take the histograms
	// and summaries as untyped series.
	metrics.ExposeMetadata(true)
	return &Registry{set: metrics.NewSet(), help: map[string]string{}}
}

func (r *Registry) describe(name, help string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.help[name]; dup {
		panic(fmt.Sprintf("telemetry: metric %s defined twice", name))
	}
	r.help[name] = help
}

// Counter is a counter without labels.
func (r *Registry) Counter(name, help string) *metrics.Counter {
	r.describe(name, help)
	return r.set.NewCounter(name)
}

// Gauge is a gauge without labels that is set by the caller.
func (r *Registry) Gauge(name, help string) *metrics.Gauge {
	r.describe(name, help)
	return r.set.NewGauge(name, nil)
}

// GaugeFunc is a gauge without labels that f computes at scrape time.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	r.describe(name, help)
	r.set.NewGauge(name, f)
}

// Histogram is a histogram without labels with the given upper bounds
// (classic `le` buckets; +Inf is implied).
func (r *Registry) Histogram(name, help string, buckets []float64) *metrics.PrometheusHistogram {
	r.describe(name, help)
	return r.set.NewPrometheusHistogramExt(name, buckets)
}

// CounterVec is a family of counters by the given labels.
func (r *Registry) CounterVec(name, help string, labels ...string) *CounterVec {
	r.describe(name, help)
	return &CounterVec{vec: newVec(name, labels, r.set.GetOrCreateCounter)}
}

// HistogramVec is a family of histograms by the given labels.
func (r *Registry) HistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	r.describe(name, help)
	if err := metrics.ValidateBuckets(buckets); err != nil {
		panic(fmt.Sprintf("telemetry: %s: %v", name, err))
	}
	return &HistogramVec{vec: newVec(name, labels, func(n string) *metrics.PrometheusHistogram {
		return r.set.GetOrCreatePrometheusHistogramExt(n, buckets)
	})}
}

// Collect has f write gauges computed at scrape time, with labels that
// need not be known in advance.
func (r *Registry) Collect(f func(g *Gauges)) {
	r.set.RegisterMetricsWriter(func(w io.Writer) {
		g := &Gauges{}
		f(g)
		g.writeTo(w)
	})
}

// Include adds another writer's metrics to the scrape (the libraries'
// metrics from LibraryMetrics).
func (r *Registry) Include(w Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.includes = append(r.includes, w)
}

// WritePrometheus writes the registry in the Prometheus text format (0.0.4),
// followed by the included writers and the Go runtime and process metrics.
func (r *Registry) WritePrometheus(w io.Writer) {
	var buf bytes.Buffer
	r.set.WritePrometheus(&buf)
	r.mu.Lock()
	includes := slices.Clone(r.includes)
	r.mu.Unlock()
	for _, inc := range includes {
		inc.WritePrometheus(&buf)
	}
	metrics.WriteProcessMetrics(&buf)
	metrics.WriteFDMetrics(&buf)
	// The library writes a bare "# HELP name" line for each family: put
	// the text this registry was given there.
	bw := bufio.NewWriter(w)
	for line := range bytes.Lines(buf.Bytes()) {
		if name, ok := bytes.CutPrefix(line, []byte("# HELP ")); ok {
			name = bytes.TrimSuffix(name, []byte("\n"))
			r.mu.Lock()
			help, known := r.help[string(name)]
			r.mu.Unlock()
			if known {
				fmt.Fprintf(bw, "# HELP %s %s\n", name, escapeHelp(help))
				continue
			}
		}
		bw.Write(line)
	}
	bw.Flush()
}

// Handler serves reg in the Prometheus text format.
func Handler(reg *Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		reg.WritePrometheus(w)
	})
}

// vec is a family of metrics of one kind keyed by label values.
type vec[M any] struct {
	family string
	labels []string // in the order given
	order  []int    // indexes into labels, sorted by label name (client_golang's output order)
	get    func(name string) M
	m      sync.Map // label values joined by \xff → M
}

func newVec[M any](family string, labels []string, get func(string) M) vec[M] {
	order := make([]int, len(labels))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(i, j int) bool { return labels[order[i]] < labels[order[j]] })
	return vec[M]{family: family, labels: slices.Clone(labels), order: order, get: get}
}

func (v *vec[M]) with(values []string) M {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("telemetry: %s takes %d label values (%s), got %d", v.family, len(v.labels),
			strings.Join(v.labels, ", "), len(values)))
	}
	key := strings.Join(values, "\xff")
	if m, ok := v.m.Load(key); ok {
		return m.(M)
	}
	var b strings.Builder
	b.WriteString(v.family)
	b.WriteByte('{')
	for i, j := range v.order {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(v.labels[j])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(values[j]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	m, _ := v.m.LoadOrStore(key, v.get(b.String()))
	return m.(M)
}

// CounterVec is a family of counters by label values.
type CounterVec struct{ vec vec[*metrics.Counter] }

// With is the counter for these label values, in the order of the labels
// the family was made with.
func (c *CounterVec) With(values ...string) *metrics.Counter { return c.vec.with(values) }

// HistogramVec is a family of histograms by label values.
type HistogramVec struct {
	vec vec[*metrics.PrometheusHistogram]
}

// With is the histogram for these label values, in the order of the labels
// the family was made with.
func (h *HistogramVec) With(values ...string) *metrics.PrometheusHistogram { return h.vec.with(values) }

// Desc describes a gauge family written at scrape time through Gauges.
type Desc struct {
	Name, Help string
	Labels     []string
}

// Gauges collects the samples of gauges computed at scrape time and writes
// them grouped by family, whatever order they were added in.
type Gauges struct {
	order   []*Desc
	samples map[*Desc][]string
}

// Add adds one sample of d with label values in the order of d.Labels.
func (g *Gauges) Add(d *Desc, v float64, values ...string) {
	if len(values) != len(d.Labels) {
		panic(fmt.Sprintf("telemetry: %s takes %d label values, got %d", d.Name, len(d.Labels), len(values)))
	}
	if g.samples == nil {
		g.samples = map[*Desc][]string{}
	}
	if _, ok := g.samples[d]; !ok {
		g.order = append(g.order, d)
	}
	var b strings.Builder
	b.WriteString(d.Name)
	if len(values) > 0 {
		b.WriteByte('{')
		for i, l := range d.Labels {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(l + `="` + escapeLabel(values[i]) + `"`)
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	b.WriteByte('\n')
	g.samples[d] = append(g.samples[d], b.String())
}

func (g *Gauges) writeTo(w io.Writer) {
	for _, d := range g.order {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", d.Name, escapeHelp(d.Help), d.Name)
		for _, s := range g.samples[d] {
			io.WriteString(w, s)
		}
	}
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
