package main

import (
	"context"
	"time"

	"github.com/dtkhq/dtk/internal/api"
)

// ForceFlags are deploy's --force and what it narrows to.
type ForceFlags struct {
	Force bool   `help:"Run the create steps again even where nothing changed, once (all of the service's, or those of --node, or --step)."`
	Node  string `placeholder:"NODE" help:"With --force: only the steps on this node (template node, group member or agent)."`
	Step  string `placeholder:"INSTANCE|ID" help:"With --force: only this component instance's step (or the step of this ID)."`
}

// force is the flags as the API takes them (nil: no --force).
func (f ForceFlags) force() *api.Part {
	if !f.Force {
		return nil
	}
	return &api.Part{Node: f.Node, Component: f.Step}
}

// Validate checks the flags that go with --force.
func (c *ServiceDeployCmd) Validate() error {
	switch {
	case !c.Force && (c.Node != "" || c.Step != ""):
		return usagef("--node and --step choose what --force runs again: add --force")
	case c.Force && c.DryRun:
		return usagef("--force excludes --dry-run")
	case c.Force && c.Recursive:
		return usagef("--force excludes --recursive: force one service at a time")
	}
	return nil
}

// ServiceRestoreCmd is `dtkctl service restore NAME --node N --component C`.
type ServiceRestoreCmd struct {
	Name      string        `arg:"" help:"Service name."`
	Node      string        `placeholder:"NODE" help:"Bring back what was removed of this node (as given to the partial delete)."`
	Component string        `placeholder:"INSTANCE" help:"Bring back this component instance (as given to the partial delete)."`
	Wait      bool          `help:"Wait until the deploy converges (exit 0) or fails (exit 1), showing progress."`
	Timeout   time.Duration `default:"10m" help:"How long --wait waits (0: no limit)."`
	JSON      bool          `help:"Print JSON: the deployed service; with --wait, its status at the end."`
}

// Help is the detail of `service restore --help`.
func (ServiceRestoreCmd) Help() string {
	return `Takes back a partial delete ("dtkctl service delete NAME --node N --component C"): the service's later deploys leave the removed part out until it is restored. The restore deploys the service at once (a new generation), which creates the part again; it needs the deploy right on the service. Exit 2 when nothing removed matches (the error lists what was removed) or neither --node nor --component is given; with --wait, exit 1 when the deploy fails.

Examples:
  dtkctl service restore web --component nginx --wait
  dtkctl service restore web --node db --wait`
}

// Validate requires a part.
func (c *ServiceRestoreCmd) Validate() error {
	if c.Node == "" && c.Component == "" {
		return usagef("name what to restore: --node, --component or both, as given to \"service delete\"")
	}
	return nil
}

// Run restores and deploys.
func (c *ServiceRestoreCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	svc, err := cl.DeployWith(ctx, c.Name, api.DeployRequest{Restore: &api.Part{Node: c.Node, Component: c.Component}})
	if err != nil {
		return err
	}
	return followDeploy(ctx, cl, out, svc, c.Wait, c.JSON, c.Timeout, "restore")
}
