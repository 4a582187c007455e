package telemetry

import (
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	gometrics "github.com/hashicorp/go-metrics/compat"
)

// goMetricsExpiry is how long a library gauge or summary stays exported
// after its last update (go-metrics' default, and its Prometheus sink's).
const goMetricsExpiry = time.Minute

// summaryWindow and summaryQuantiles are those of go-metrics' Prometheus
// sink: quantiles over the last 10 s (the dashboard reads
// raft_commitTime{quantile="0.99"}).
const summaryWindow = 10 * time.Second

var summaryQuantiles = []float64{0.5, 0.9, 0.99}

var (
	sinkOnce sync.Once
	sink     *Sink
	sinkErr  error
)

// LibraryMetrics installs, once per process, a Sink as the global
// go-metrics sink (what Raft, raft-boltdb, serf and memberlist emit to)
// and returns it for a registry to Include. Every coordinator of a process
// shows the same library metrics, as the libraries' sink is process-wide.
func LibraryMetrics() (*Sink, error) {
	sinkOnce.Do(func() {
		s := NewSink(goMetricsExpiry)
		cfg := gometrics.DefaultConfig("")
		cfg.EnableHostname = false
		cfg.EnableHostnameLabel = false
		cfg.EnableServiceLabel = false
		// WriteProcessMetrics covers the runtime; go-metrics' own would
		// start a goroutine sampling it every second.
		cfg.EnableRuntimeMetrics = false
		if _, err := gometrics.NewGlobal(cfg, s); err != nil {
			sinkErr = err
			return
		}
		sink = s
	})
	return sink, sinkErr
}

// Sink is a go-metrics sink that keeps what it is sent in a
// VictoriaMetrics set, named as go-metrics' Prometheus sink names it: key
// parts joined by "_", characters a Prometheus name cannot hold replaced
// by "_" (raft.commitTime → raft_commitTime, memberlist.tcp.sent →
// memberlist_tcp_sent). Gauges are gauges, counters counters, samples
// (timers, in milliseconds) summaries with quantiles 0.5, 0.9 and 0.99 over
// the last 10 s. A gauge or summary not updated for the expiry is dropped
// at the next scrape (a peer that left, a timer no longer run); counters
// stay, so that rate() over them is never broken by a reset. Keys (EmitKey)
// are ignored, as go-metrics' Prometheus sink ignores them.
type Sink struct {
	set    *metrics.Set
	expiry time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*sinkEntry // full name with labels → entry
}

var _ gometrics.MetricSink = (*Sink)(nil)

type sinkKind uint8

const (
	kindGauge sinkKind = iota
	kindCounter
	kindSummary
)

type sinkEntry struct {
	kind    sinkKind
	updated time.Time
	gauge   *metrics.Gauge
	counter *metrics.FloatCounter
	summary *metrics.Summary
}

// NewSink is a sink whose gauges and summaries expire after expiry
// without an update (0: never).
func NewSink(expiry time.Duration) *Sink {
	return &Sink{set: metrics.NewSet(), expiry: expiry, now: time.Now, entries: map[string]*sinkEntry{}}
}

// entry is the metric of kind under name, made if new; nil when the name
// is already taken by a metric of another kind (the sample is dropped).
func (s *Sink) entry(kind sinkKind, key []string, labels []gometrics.Label) *sinkEntry {
	name := flatten(key, labels)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil {
		e = &sinkEntry{kind: kind}
		switch kind {
		case kindGauge:
			e.gauge = s.set.NewGauge(name, nil)
		case kindCounter:
			e.counter = s.set.NewFloatCounter(name)
		case kindSummary:
			e.summary = s.set.NewSummaryExt(name, summaryWindow, summaryQuantiles)
		}
		s.entries[name] = e
	} else if e.kind != kind {
		return nil
	}
	e.updated = s.now()
	return e
}

// SetGauge sets a gauge.
func (s *Sink) SetGauge(key []string, val float32) { s.SetGaugeWithLabels(key, val, nil) }

// SetGaugeWithLabels sets a gauge.
func (s *Sink) SetGaugeWithLabels(key []string, val float32, labels []gometrics.Label) {
	if e := s.entry(kindGauge, key, labels); e != nil {
		e.gauge.Set(float64(val))
	}
}

// EmitKey is ignored.
func (s *Sink) EmitKey(key []string, val float32) {}

// IncrCounter adds to a counter.
func (s *Sink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }

// IncrCounterWithLabels adds to a counter.
func (s *Sink) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	if e := s.entry(kindCounter, key, labels); e != nil {
		e.counter.Add(float64(val))
	}
}

// AddSample adds a sample to a summary.
func (s *Sink) AddSample(key []string, val float32) { s.AddSampleWithLabels(key, val, nil) }

// AddSampleWithLabels adds a sample to a summary.
func (s *Sink) AddSampleWithLabels(key []string, val float32, labels []gometrics.Label) {
	if e := s.entry(kindSummary, key, labels); e != nil {
		e.summary.Update(float64(val))
	}
}

// WritePrometheus drops what expired and writes the rest.
func (s *Sink) WritePrometheus(w io.Writer) {
	if s.expiry > 0 {
		cutoff := s.now().Add(-s.expiry)
		s.mu.Lock()
		for name, e := range s.entries {
			if e.kind != kindCounter && e.updated.Before(cutoff) {
				s.set.UnregisterMetric(name)
				delete(s.entries, name)
			}
		}
		s.mu.Unlock()
	}
	s.set.WritePrometheus(w)
}

// flatten is the Prometheus name of a go-metrics key with its labels,
// label names sorted.
func flatten(key []string, labels []gometrics.Label) string {
	var b strings.Builder
	writeName(&b, strings.Join(key, "_"))
	if len(labels) == 0 {
		return b.String()
	}
	ls := make([]gometrics.Label, len(labels))
	copy(ls, labels)
	sort.SliceStable(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		writeName(&b, l.Name)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(l.Value))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// writeName writes s as a Prometheus name: [a-zA-Z_][a-zA-Z0-9_]*, any
// other byte (a dot, dash, slash, space, ...) becoming "_".
func writeName(b *strings.Builder, s string) {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		b.WriteByte('_')
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
}
