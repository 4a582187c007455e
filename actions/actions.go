// Package actions runs wrapped assets. Each asset kind is a Runner
// registered under its name; the agent looks the runner up by a step's
// action kind. Runners own process control (process groups, timeouts,
// cancellation), output capture and the contract by which attributes reach
// an asset (environment variables and a JSON file).
package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/dtkhq/dtk/plan"
)

// Request is one action run.
type Request struct {
	Action plan.Action
	// ModuleDir is the unpacked module folder; scripts are relative to it.
	ModuleDir  string
	Attributes map[string]json.RawMessage
	Service    string
	Node       string
	StepID     string
	// DataDir is the agent's data folder; assets may keep state under it.
	DataDir string
	// ScratchDir is a private folder for this step; it holds the
	// attributes file and the full output log.
	ScratchDir string
	// DefaultTimeout applies when the action sets none.
	DefaultTimeout time.Duration
}

// Result states.
const (
	OK      = "ok"
	Changed = "changed"
	Failed  = "failed"
)

// Result is what a run did.
type Result struct {
	State    string
	ExitCode int
	Duration time.Duration
	// Output is the tail of combined stdout and stderr.
	Output string
	// Err explains a failure that is not just a non-zero exit (timeout,
	// cancellation, a missing script).
	Err error
}

// Runner runs one kind of asset.
type Runner interface {
	Kind() string
	Run(ctx context.Context, req Request) Result
}

var (
	mu      sync.RWMutex
	runners = map[string]Runner{}
)

// Register makes a runner available under its kind. It panics on a
// duplicate kind: registration happens in init functions.
func Register(r Runner) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := runners[r.Kind()]; dup {
		panic("actions: runner registered twice: " + r.Kind())
	}
	runners[r.Kind()] = r
}

// Lookup finds the runner for a kind.
func Lookup(kind string) (Runner, error) {
	mu.RLock()
	defer mu.RUnlock()
	if r, ok := runners[kind]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("no runner for action kind %q (have: %v)", kind, kindsLocked())
}

// Kinds lists registered kinds.
func Kinds() []string {
	mu.RLock()
	defer mu.RUnlock()
	return kindsLocked()
}

func kindsLocked() []string {
	out := make([]string, 0, len(runners))
	for k := range runners {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
