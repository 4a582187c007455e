package plan

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rollout health modes.
const (
	HealthSteps = "steps"
	HealthCheck = "check"
)

// MaxHealthySeconds bounds min_healthy_time (one day).
const MaxHealthySeconds = 86400

// ParseShare checks a count or a percentage of nodes: "3", "10%".
func ParseShare(s string) (n int, percent bool, err error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || v > 100 {
			return 0, false, fmt.Errorf("%q is not a percentage from 0%% to 100%%", s)
		}
		return v, true, nil
	}
	v, err := strconv.Atoi(t)
	if err != nil || v < 0 || v > 1_000_000 {
		return 0, false, fmt.Errorf("%q is not a number of nodes (3) or a percentage (10%%)", s)
	}
	return v, false, nil
}

// ResolveShare turns a share into a number of nodes out of total. A
// percentage rounds up when up is set (max_parallel, canary: 10% of 5
// nodes is 1) and down otherwise (max_failures: 2% of 5 nodes is 0). An
// empty share is def.
func ResolveShare(s string, total int, up bool, def int) int {
	if strings.TrimSpace(s) == "" {
		return def
	}
	n, pct, err := ParseShare(s)
	if err != nil {
		return def
	}
	if pct {
		if up {
			n = (n*total + 99) / 100
		} else {
			n = n * total / 100
		}
	}
	return min(n, total)
}

// ParseHealthyTime reads min_healthy_time: a Go duration ("30s", "2m") or
// a number of seconds.
func ParseHealthyTime(s string) (int, error) {
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
		if n < 0 || n > MaxHealthySeconds {
			return 0, fmt.Errorf("min_healthy_time %q is out of range (0 to 24h)", s)
		}
		return n, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("min_healthy_time %q is not a duration (30s, 2m)", s)
	}
	if d < 0 || d > MaxHealthySeconds*time.Second {
		return 0, fmt.Errorf("min_healthy_time %q is out of range (0 to 24h)", s)
	}
	return int((d + time.Second - 1) / time.Second), nil
}

// Validate checks a strategy's fields.
func (r *Rollout) Validate() error {
	for _, f := range []struct{ name, v string }{
		{"max_parallel", r.MaxParallel}, {"canary", r.Canary}, {"max_failures", r.MaxFailures},
	} {
		if f.v == "" {
			continue
		}
		if _, _, err := ParseShare(f.v); err != nil {
			return fmt.Errorf("rollout %s: %w", f.name, err)
		}
	}
	switch r.Health {
	case "", HealthSteps, HealthCheck:
	default:
		return fmt.Errorf("rollout health %q: want %q or %q", r.Health, HealthSteps, HealthCheck)
	}
	if r.MinHealthySeconds < 0 || r.MinHealthySeconds > MaxHealthySeconds {
		return fmt.Errorf("rollout min_healthy_time: %ds is out of range (0 to 24h)", r.MinHealthySeconds)
	}
	return nil
}

// Staged says whether the strategy changes anything from "every node at
// once": a canary, or a bound on parallelism.
func (r *Rollout) Staged() bool {
	if r == nil {
		return false
	}
	mp, _, _ := ParseShare(r.MaxParallel)
	c, _, _ := ParseShare(r.Canary)
	return mp > 0 || c > 0
}

// Override returns r with the fields set in o (a deploy's flags) taking
// their place. Booleans in o override only when o sets them (see
// RolloutOverride).
func (r *Rollout) Override(o *RolloutOverride) *Rollout {
	out := Rollout{}
	if r != nil {
		out = *r
	}
	if o == nil {
		return &out
	}
	if o.MaxParallel != "" {
		out.MaxParallel = o.MaxParallel
	}
	if o.Canary != "" {
		out.Canary = o.Canary
	}
	if o.MinHealthySeconds != nil {
		out.MinHealthySeconds = *o.MinHealthySeconds
	}
	if o.Health != "" {
		out.Health = o.Health
	}
	if o.MaxFailures != "" {
		out.MaxFailures = o.MaxFailures
	}
	if o.AutoRevert != nil {
		out.AutoRevert = *o.AutoRevert
	}
	if o.ManualPromote != nil {
		out.ManualPromote = *o.ManualPromote
	}
	if o.AllAtOnce {
		out = Rollout{}
	}
	return &out
}

// RolloutOverride is what a deploy's flags say about the rollout: set
// fields replace the template's.
type RolloutOverride struct {
	MaxParallel       string `json:"max_parallel,omitempty"`
	Canary            string `json:"canary,omitempty"`
	MinHealthySeconds *int   `json:"min_healthy_seconds,omitempty"`
	Health            string `json:"health,omitempty"`
	MaxFailures       string `json:"max_failures,omitempty"`
	AutoRevert        *bool  `json:"auto_revert,omitempty"`
	ManualPromote     *bool  `json:"manual_promote,omitempty"`
	// AllAtOnce ignores the template's rollout block: every node at once.
	AllAtOnce bool `json:"all_at_once,omitempty"`
}

// Validate checks the override's fields.
func (o *RolloutOverride) Validate() error {
	if o == nil {
		return nil
	}
	r := (*Rollout)(nil).Override(o)
	return r.Validate()
}
