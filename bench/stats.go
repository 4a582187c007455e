// Package bench measures dtk on this machine and, in the same run, the
// peers that run here (puppet apply, ansible-playbook). `make bench` runs
// bench/cmd/dtkbench, which writes bench/results/<date>.md and .json.
package bench

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Summary describes a sample: its size, median, tail and spread. Values
// are in the unit named by Unit (milliseconds unless said otherwise).
type Summary struct {
	Unit string  `json:"unit"`
	N    int     `json:"n"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// Summarize computes a Summary; percentiles use the nearest-rank method
// (p99 of 100 values is the 99th smallest).
func Summarize(unit string, xs []float64) Summary {
	s := Summary{Unit: unit, N: len(xs)}
	if len(xs) == 0 {
		return s
	}
	v := append([]float64(nil), xs...)
	sort.Float64s(v)
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	s.P50, s.P90, s.P99 = rank(v, 0.50), rank(v, 0.90), rank(v, 0.99)
	s.Min, s.Max, s.Mean = v[0], v[len(v)-1], sum/float64(len(v))
	return s
}

func rank(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Ms converts durations to milliseconds.
func Ms(ds ...time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// String is "p50 X · p99 Y (min–max, n)".
func (s Summary) String() string {
	if s.N == 0 {
		return "—"
	}
	return fmt.Sprintf("p50 %s · p90 %s · p99 %s (min %s, max %s, n=%d)",
		num(s.P50, s.Unit), num(s.P90, s.Unit), num(s.P99, s.Unit), num(s.Min, s.Unit), num(s.Max, s.Unit), s.N)
}

// num formats a value with its unit, milliseconds shown as s above 10 s.
func num(v float64, unit string) string {
	switch unit {
	case "ms":
		switch {
		case v >= 10000:
			return fmt.Sprintf("%.1f s", v/1000)
		case v >= 100:
			return fmt.Sprintf("%.0f ms", v)
		case v >= 10:
			return fmt.Sprintf("%.1f ms", v)
		default:
			return fmt.Sprintf("%.2f ms", v)
		}
	case "MiB":
		return fmt.Sprintf("%.1f MiB", v)
	default:
		if v >= 100 {
			return fmt.Sprintf("%.0f %s", v, unit)
		}
		return fmt.Sprintf("%.2f %s", v, unit)
	}
}
