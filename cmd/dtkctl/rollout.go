package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// RolloutFlags are a deploy's overrides of the template's rollout block.
type RolloutFlags struct {
	MaxParallel    string        `name:"max-parallel" placeholder:"N|P%" help:"Converge at most this many nodes at once (a number, or a percentage of the nodes the deploy changes)."`
	Canary         string        `placeholder:"N|P%" help:"Nodes that go first; the others wait until they are healthy."`
	MinHealthyTime time.Duration `name:"min-healthy-time" help:"How long a node must stay healthy before the next ones go (30s)."`
	Health         string        `enum:",steps,check" default:"" help:"What healthy means: steps (the node's steps ok) or check (and each component's check keeps passing for --min-healthy-time)."`
	MaxFailures    string        `name:"max-failures" placeholder:"N|P%" help:"Nodes that may fail before the rollout stops."`
	AutoRevert     *bool         `name:"auto-revert" negatable:"" help:"When the rollout stops, deploy the last converged generation to the nodes it changed (--no-auto-revert: leave them)."`
	ManualPromote  bool          `name:"manual-promote" help:"Wait for \"dtkctl service promote\" once the canaries are healthy."`
	AllAtOnce      bool          `name:"all-at-once" help:"Ignore the template's rollout block: every node at once."`
}

// override is the flags as the API takes them (nil: none set).
func (f RolloutFlags) override() (*plan.RolloutOverride, error) {
	o := &plan.RolloutOverride{
		MaxParallel: f.MaxParallel, Canary: f.Canary, Health: f.Health, MaxFailures: f.MaxFailures,
		AutoRevert: f.AutoRevert, AllAtOnce: f.AllAtOnce,
	}
	if f.MinHealthyTime != 0 {
		if f.MinHealthyTime < 0 || f.MinHealthyTime > plan.MaxHealthySeconds*time.Second {
			return nil, usagef("--min-healthy-time %s is out of range (0 to 24h)", f.MinHealthyTime)
		}
		secs := int((f.MinHealthyTime + time.Second - 1) / time.Second)
		o.MinHealthySeconds = &secs
	}
	if f.ManualPromote {
		t := true
		o.ManualPromote = &t
	}
	if *o == (plan.RolloutOverride{}) {
		return nil, nil
	}
	if f.AllAtOnce && (f.MaxParallel != "" || f.Canary != "") {
		return nil, usagef("--all-at-once excludes --max-parallel and --canary")
	}
	if err := o.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	return o, nil
}

// rolloutLine says where a rollout of generation gen (or of the one an
// auto-revert replaced) stands: "rollout: 3 of 10 nodes (1 canary), max 2
// at a time, running".
func rolloutLine(st *api.ServiceStatus, gen uint64) string {
	r := st.Rollout
	if r == nil || (r.Generation != gen && r.Generation != st.Generation && r.Status != plan.RolloutReverted) {
		return ""
	}
	parts := []string{fmt.Sprintf("rollout of generation %d: %d of %d nodes", r.Generation, len(r.Admitted), r.Nodes)}
	if r.Canaries > 0 {
		parts = append(parts, plural(r.Canaries, "canary"))
	}
	parts = append(parts, fmt.Sprintf("max %d at a time", r.MaxParallel))
	if len(r.Healthy) > 0 {
		parts = append(parts, fmt.Sprintf("%d healthy", len(r.Healthy)))
	}
	if len(r.Failed) > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", len(r.Failed)))
	}
	status := r.Status
	if r.Paused {
		status += ", paused"
	}
	line := strings.Join(parts, ", ") + " — " + status
	if r.Reason != "" {
		line += " (" + r.Reason + ")"
	}
	return line
}

// rolloutRunning says the service's current generation is still rolling
// out (a failed step on a tolerated node does not end the deploy).
func rolloutRunning(st *api.ServiceStatus) bool {
	r := st.Rollout
	return r != nil && r.Generation == st.Generation && (r.Status == plan.RolloutRunning || r.Status == plan.RolloutPromote)
}

// ServicePauseCmd is `dtkctl service pause NAME`.
type ServicePauseCmd struct {
	Name string `arg:"" help:"Service name."`
	JSON bool   `help:"Print JSON: the service's status."`
}

// Run pauses.
func (c *ServicePauseCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	return rolloutAction(ctx, cl, out, c.Name, "pause", c.JSON)
}

// ServiceResumeCmd is `dtkctl service resume NAME`.
type ServiceResumeCmd struct {
	Name string `arg:"" help:"Service name."`
	JSON bool   `help:"Print JSON: the service's status."`
}

// Run resumes.
func (c *ServiceResumeCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	return rolloutAction(ctx, cl, out, c.Name, "resume", c.JSON)
}

// ServicePromoteCmd is `dtkctl service promote NAME`.
type ServicePromoteCmd struct {
	Name string `arg:"" help:"Service name."`
	JSON bool   `help:"Print JSON: the service's status."`
}

// Run promotes.
func (c *ServicePromoteCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	return rolloutAction(ctx, cl, out, c.Name, "promote", c.JSON)
}

// ServiceAbortCmd is `dtkctl service abort NAME`.
type ServiceAbortCmd struct {
	Name string `arg:"" help:"Service name."`
	JSON bool   `help:"Print JSON: the service's status."`
}

// Help is the detail of `service abort --help`.
func (ServiceAbortCmd) Help() string {
	return `Stops the running rollout: no more nodes get the new generation. With auto_revert, the nodes it changed get the last converged generation again; without, they keep the new one and the service is failed.`
}

// Run aborts.
func (c *ServiceAbortCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	return rolloutAction(ctx, cl, out, c.Name, "abort", c.JSON)
}

func rolloutAction(ctx context.Context, cl *api.Client, out *Output, name, action string, asJSON bool) error {
	if err := cl.RolloutAction(ctx, name, action); err != nil {
		return err
	}
	st, _, err := cl.ServiceStatus(ctx, name, 0, 0)
	if err != nil {
		return err
	}
	if asJSON {
		return out.JSON(st)
	}
	if l := rolloutLine(st, st.Generation); l != "" {
		out.Printf("%s\n", l)
	} else {
		out.Printf("%s: %s at generation %d\n", name, st.State, st.Generation)
	}
	return nil
}

// ServiceRevertCmd is `dtkctl service revert NAME`.
type ServiceRevertCmd struct {
	Name    string        `arg:"" help:"Service name."`
	To      uint64        `help:"Generation to go back to (default: the newest converged one before the current)."`
	Wait    bool          `help:"Wait until the revert converges (exit 0) or fails (exit 1)."`
	Timeout time.Duration `default:"10m" help:"How long --wait waits (0: no limit)."`
	JSON    bool          `help:"Print JSON: the service; with --wait, its status at the end."`
	RolloutFlags
}

// Help is the detail of `service revert --help`.
func (ServiceRevertCmd) Help() string {
	return `Stages a kept generation's configuration again (module version, inputs) and deploys it as a new generation, with the template's rollout unless flags say otherwise. "dtkctl service history NAME" and "dtkctl service generations NAME" show what is kept.

Examples:
  dtkctl service revert web --wait
  dtkctl service revert web --to 4 --max-parallel 2`
}

// Run reverts.
func (c *ServiceRevertCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	o, err := c.override()
	if err != nil {
		return err
	}
	svc, err := cl.Revert(ctx, c.Name, api.RevertRequest{To: c.To, Rollout: o})
	if err != nil {
		return err
	}
	return followDeploy(ctx, cl, out, svc, c.Wait, c.JSON, c.Timeout, "revert")
}

// ServiceGenerationsCmd is `dtkctl service generations NAME`.
type ServiceGenerationsCmd struct {
	Name string `arg:"" help:"Service name."`
	JSON bool   `help:"Print JSON."`
}

// Run lists the kept generations.
func (c *ServiceGenerationsCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	gens, err := cl.Generations(ctx, c.Name)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(gens)
	}
	rows := [][]string{}
	for _, g := range gens {
		conv := "no"
		if g.Converged {
			conv = "yes"
		}
		rows = append(rows, []string{fmt.Sprint(g.Generation), g.Module + "@" + g.Version, conv})
	}
	out.Table([]string{"GENERATION", "MODULE", "CONVERGED"}, rows)
	return nil
}
