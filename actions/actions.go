// Package actions runs wrapped assets. Each asset kind is a Runner
// registered under its name; the agent looks the runner up by a step's
// action kind. Runners own process control (process groups, timeouts,
// cancellation), output capture and the contract by which attributes reach
// an asset (environment variables and a JSON file) and outputs come back.
//
// The kinds are bash (bash.go), exec (exec.go), puppet (puppet.go),
// ansible (ansible.go) and container (container.go). Adding a kind is one
// file whose init calls Register, plus its action-block settings in the
// DSL. docs/actions.md is the contract between the agent and an asset.
package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
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
	// ActionName is the action's name in its component: "create",
	// "delete" or a custom action. Empty means the last segment of StepID
	// (see Name).
	ActionName string
	// DryRun asks the runner to predict what a run would do and change
	// nothing. Runners that can predict (puppet --noop, ansible --check,
	// container) report OK or Changed as the prediction; the others (bash,
	// exec) report Changed with CannotPredict set.
	DryRun bool
	// Sensitive names attributes whose values must not be shown: they are
	// redacted to "(sensitive)" in Output, Err and the output log, and
	// reach the asset only through the environment or files in ScratchDir,
	// never through its command line.
	Sensitive []string
	// StepUser and StepGroup are the agent's step_user and step_group:
	// the account a run takes on when its action names none (see
	// identity). Empty means the agent's own. Container runs ignore them.
	StepUser, StepGroup string
	// Origin and Origins say where the step's instance and the
	// attributes it sets are written in the HCL (plan.Step's fields of the
	// same names): a failed Puppet run names the one behind the parameter
	// Puppet complains about.
	Origin  string
	Origins map[string]string
	// Processes, when set, is told about every process the run starts
	// (each leads its own process group) before the runner waits on it,
	// and when it has exited.
	Processes ProcessRecorder
}

// ProcessRecorder learns the process groups a run starts, so that an agent
// that dies mid-step lets its successor find and stop them. Started is
// called after the process started and before the runner waits on it (the
// process cannot have been reaped yet, so its pid is still its own);
// Ended after it has exited. An error from Started is noted in the run's
// output and does not stop the run.
type ProcessRecorder interface {
	Started(pid int) error
	Ended(pid int)
}

// Name is the action's name: ActionName, else the last segment of StepID
// ("service/node/instance/action").
func (r Request) Name() string {
	if r.ActionName != "" {
		return r.ActionName
	}
	if i := strings.LastIndexByte(r.StepID, '/'); i >= 0 {
		return r.StepID[i+1:]
	}
	return r.StepID
}

// Result states.
const (
	// OK: the run succeeded and changed nothing (or, on a dry run, would
	// change nothing).
	OK = "ok"
	// Changed: the run succeeded and changed something (or would).
	Changed = "changed"
	// Failed: the run failed; ExitCode and Err say how.
	Failed = "failed"
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
	// Outputs are the values the asset set (see docs/actions.md), strings
	// as is and other JSON values as their JSON text. They are not
	// redacted: an asset that outputs a secret hands it on deliberately.
	Outputs map[string]string
	// CannotPredict is set on a dry run by a runner that cannot tell
	// whether the run would change anything (bash, exec): State is then
	// Changed, read as "would run", never as "no change".
	CannotPredict bool
	// Changes is what a dry run that predicted a change found would
	// change, one line each (at most 20): Puppet's "(noop)" events,
	// Ansible's changed tasks, the container runner's "would ..." notes.
	// Redacted like Output. Empty when the runner cannot tell.
	Changes []string
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
