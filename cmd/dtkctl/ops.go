package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// followOp waits for every agent of an operation to finish, calling show
// for each result as it arrives.
func followOp(ctx context.Context, cl *api.Client, out *Output, op *plan.Op, timeout time.Duration, show func(plan.Report)) (*plan.Op, error) {
	return followOpWith(ctx, cl.Op, out, op, timeout, show)
}

// followOpWith is followOp reading the operation with read (cl.Op, or
// cl.OpBrief when the steps are not needed).
func followOpWith(ctx context.Context, read func(context.Context, string, uint64, time.Duration) (*plan.Op, error),
	out *Output, op *plan.Op, timeout time.Duration, show func(plan.Report)) (*plan.Op, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if len(op.Skipped) > 0 {
		out.Notef("left out, down: %s\n", strings.Join(op.Skipped, ", "))
	}
	shown := 0
	for {
		for ; shown < len(op.Results); shown++ {
			show(op.Results[shown])
		}
		if len(op.Done) >= len(op.Steps) {
			return op, nil
		}
		next, err := read(ctx, op.ID, op.Index, 30*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return op, failf("timed out waiting for %s; %d of %d nodes answered", op.Kind, len(op.Done), len(op.Steps))
			}
			return op, err
		}
		op = next
	}
}

func stepName(r plan.Report) string {
	parts := strings.SplitN(r.StepID, "/", 4)
	if len(parts) == 4 {
		return parts[1] + "/" + parts[2]
	}
	return r.StepID
}

// ServiceExecCmd is `dtkctl service exec NAME ACTION`.
type ServiceExecCmd struct {
	Name      string        `arg:"" help:"Service name."`
	Action    string        `arg:"" help:"Custom action to run (as declared in the component)."`
	Node      string        `placeholder:"NODE" help:"Only on this template node."`
	Component string        `placeholder:"INSTANCE" help:"Only on this component instance."`
	Param     []string      `placeholder:"KEY=VALUE" sep:"none" help:"Parameter for the action; repeatable."`
	Timeout   time.Duration `default:"30m" help:"How long to wait for the nodes."`
	JSON      bool          `help:"Print JSON at the end: the operation with every node's report (output, exit code)."`
}

// Help is the detail of `service exec --help`.
func (ServiceExecCmd) Help() string {
	return `Examples:
  dtkctl service exec web restart
  dtkctl service exec db backup --node primary --param target=/var/backups`
}

// Run starts the action and shows each node's output as it arrives.
func (c *ServiceExecCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	params, err := parseInputs("--param", c.Param)
	if err != nil {
		return err
	}
	op, err := cl.StartOp(ctx, c.Name, plan.OpExec, &api.OpRequest{Action: c.Action, Node: c.Node, Component: c.Component, Params: params})
	if err != nil {
		return err
	}
	if !c.JSON {
		out.Printf("running %s on %s\n", c.Action, plural(len(op.Steps), "node"))
	}
	failed := 0
	op, err = followOp(ctx, cl, out, op, c.Timeout, func(r plan.Report) {
		if r.State == plan.StepFailed {
			failed++
		}
		if c.JSON {
			return
		}
		out.Printf("\n== %s %s: %s (exit %d, %s)\n", r.Node, stepName(r), out.paint(r.State), r.ExitCode, fmtDuration(r.DurationMs))
		if r.Output != "" {
			out.Printf("%s", indent(r.Output))
		}
		if r.Error != "" {
			out.Printf("  error: %s\n", r.Error)
		}
	})
	if err != nil {
		return err
	}
	if c.JSON {
		if err := out.JSON(op); err != nil {
			return err
		}
	}
	if failed > 0 {
		return failf("%s failed on %d of the steps", c.Action, failed)
	}
	return nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n"
}

// ServiceCancelCmd is `dtkctl service cancel NAME`.
type ServiceCancelCmd struct {
	Name string `arg:"" help:"Service name."`
	JSON bool   `help:"Print JSON at the end: the operation with every node's answer."`
}

// Run asks every node of the service to stop its running step.
func (c *ServiceCancelCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	op, err := cl.StartOp(ctx, c.Name, plan.OpCancel, nil)
	if err != nil {
		return err
	}
	op, err = followOp(ctx, cl, out, op, time.Minute, func(r plan.Report) {
		if !c.JSON {
			out.Printf("%s: %s\n", r.Node, r.Output)
		}
	})
	if err != nil || !c.JSON {
		return err
	}
	return out.JSON(op)
}

// ServiceLogsCmd is `dtkctl service logs NAME`.
type ServiceLogsCmd struct {
	Name    string        `arg:"" help:"Service name."`
	Node    string        `placeholder:"NODE" help:"Only steps on this node (agent or template node name)."`
	Step    string        `placeholder:"INSTANCE" help:"Only this component instance."`
	Follow  bool          `short:"f" help:"Keep printing the reported output tails as steps run."`
	Bytes   int           `default:"65536" help:"How much of the end of each step's log to fetch from the agents (at most 1048576)."`
	Tail    bool          `help:"Only the output tails the agents reported (kept by the coordinators), without asking the agents."`
	Timeout time.Duration `default:"1m" help:"How long to wait for the agents' logs."`
	JSON    bool          `help:"Print JSON: an array of step logs; with --follow, one object a line as they come."`

	logs []logEntry // collected for --json without --follow
}

// logEntry is one step's log in `service logs --json`.
type logEntry struct {
	Node       string `json:"node"`
	Step       string `json:"step"` // TEMPLATENODE/INSTANCE
	StepID     string `json:"step_id"`
	Action     string `json:"action"`
	State      string `json:"state"`
	ExitCode   int    `json:"exit_code"`
	DurationMs int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
	Output     string `json:"output"`
	// Source says where the output comes from: "agent", the end of the
	// step's log fetched from the agent (up to --bytes); "tail", the tail
	// the agent reported, kept by the coordinators.
	Source string `json:"source"`
}

// emit prints one log entry as JSON: at once, one compact line, with
// --follow; else collected and printed as one array at the end.
func (c *ServiceLogsCmd) emit(out *Output, e logEntry) {
	if !c.Follow {
		c.logs = append(c.logs, e)
		return
	}
	b, _ := json.Marshal(e)
	out.Printf("%s\n", b)
}

// Help is the detail of `service logs --help`.
func (ServiceLogsCmd) Help() string {
	return `By default the end of every step's log is fetched from the agents (each keeps its steps' logs in its data dir); for nodes that are down the tails the agents reported are shown instead. --tail shows only those, without asking the agents; --follow keeps printing them as steps finish. (Output streamed while a step runs is not available yet: a running step's output shows when it ends.)

Examples:
  dtkctl service logs web
  dtkctl service logs web --node web-1 --step nginx --bytes 1048576
  dtkctl service logs web --follow
  dtkctl service logs web --json | jq -r '.[] | select(.state == "failed") | .output'`
}

// Validate checks --bytes.
func (c *ServiceLogsCmd) Validate() error {
	if c.Bytes < 1 || c.Bytes > 1<<20 {
		return usagef("--bytes must be 1 to 1048576, got %d", c.Bytes)
	}
	return nil
}

// Run fetches each step's full log (its end, --bytes) from the agents,
// which keep them in their data dirs under steps/; reports carry only a
// tail. With --follow or --tail it prints the reported tails instead; for
// nodes that are down it falls back to them.
func (c *ServiceLogsCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	var err error
	if !c.Follow && !c.Tail {
		err = c.fetch(ctx, cl, out)
	} else {
		err = c.tails(ctx, cl, out, nil)
	}
	if err != nil || !c.JSON || c.Follow {
		return err
	}
	if c.logs == nil {
		c.logs = []logEntry{}
	}
	return out.JSON(c.logs)
}

// fetch asks the agents for their logs.
func (c *ServiceLogsCmd) fetch(ctx context.Context, cl *api.Client, out *Output) error {
	op, err := cl.StartOp(ctx, c.Name, plan.OpLogs, &api.OpRequest{Node: c.Node, Component: c.Step, LogBytes: c.Bytes})
	if err != nil {
		var ae *api.APIError
		if errors.As(err, &ae) && ae.Code == http.StatusConflict && strings.Contains(ae.Message, "down") {
			out.Notef("every node is down: showing the reported tails\n")

			return c.tails(ctx, cl, out, nil)
		}
		return err
	}
	_, err = followOp(ctx, cl, out, op, c.Timeout, func(r plan.Report) {
		if c.JSON {
			c.emit(out, logEntry{Node: r.Node, Step: stepName(r), StepID: r.StepID, Action: r.Action, State: r.State,
				ExitCode: r.ExitCode, DurationMs: r.DurationMs, Error: r.Error, Output: r.Output, Source: "agent"})
			return
		}
		out.Printf("== %s %s %s", r.Node, stepName(r), r.Action)
		if r.State != plan.StepOK {
			out.Printf(": %s", orDash(r.Error))
		}
		out.Printf("\n")
		if r.Output != "" {
			out.Printf("%s", indent(r.Output))
		}
	})
	if err != nil {
		return err
	}
	if len(op.Skipped) > 0 {
		out.Notef("reported tails of the nodes that are down:\n")
		down := map[string]bool{}
		for _, n := range op.Skipped {
			down[n] = true
		}
		return c.tails(ctx, cl, out, down)
	}
	return nil
}

// tails prints the output tails in the service's status (of the nodes in
// only, when given), and with --follow keeps printing new ones.
func (c *ServiceLogsCmd) tails(ctx context.Context, cl *api.Client, out *Output, only map[string]bool) error {
	seen := map[string]string{}
	shown := map[string]string{} // the output printed so far, per step run
	var index uint64
	for {
		wait := time.Duration(0)
		if c.Follow && index > 0 {
			wait = 5 * time.Minute
		}
		st, idx, err := cl.ServiceStatus(ctx, c.Name, index, wait)
		if err != nil {
			if c.Follow && ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, n := range st.Nodes {
			if (c.Node != "" && c.Node != n.Name && c.Node != n.TemplateNode) || (only != nil && !only[n.Name]) {
				continue
			}
			for _, s := range n.Steps {
				if c.Step != "" && c.Step != s.Instance {
					continue
				}
				run := fmt.Sprint(s.ID, s.Generation, s.StartedAt)
				key := fmt.Sprint(s.State, s.FinishedAt, s.Generation, len(s.Output), s.Output[max(len(s.Output)-64, 0):])
				if seen[s.ID] == key || (s.Output == "" && s.Error == "" && s.State != plan.StepRunning) {
					continue
				}
				first := !strings.HasPrefix(seen[s.ID], plan.StepRunning+" ")
				seen[s.ID] = key
				if c.JSON {
					c.emit(out, logEntry{Node: n.Name, Step: n.TemplateNode + "/" + s.Instance, StepID: s.ID, Action: s.Action,
						State: s.State, ExitCode: s.ExitCode, DurationMs: s.DurationMs, Error: s.Error, Output: s.Output, Source: "tail"})
					continue
				}
				// A running step's output arrives in pieces (the agent
				// reports its log's end every few seconds): print the
				// header once, then only what is new.
				if s.State != plan.StepRunning || first {
					out.Printf("== %s %s/%s %s: %s", n.Name, n.TemplateNode, s.Instance, s.Action, out.paint(s.State))
					if s.State != plan.StepRunning {
						out.Printf(" (exit %d, %s)", s.ExitCode, fmtDuration(s.DurationMs))
					}
					if s.Reason != "" {
						out.Printf(" %s", s.Reason)
					}
					out.Printf("\n")
				}
				if fresh := newOutput(shown[run], s.Output); fresh != "" {
					out.Printf("%s", indent(fresh))
				}
				shown[run] = s.Output
				if s.Error != "" {
					out.Printf("  error: %s\n", s.Error)
				}
			}
		}
		if !c.Follow {
			return nil
		}
		index = idx
	}
}

// newOutput is what tail adds to prev, two windows on the end of one
// growing log: the part after where they overlap, or all of tail (after a
// mark) when they do not.
func newOutput(prev, tail string) string {
	if prev == "" || tail == prev {
		if tail == prev {
			return ""
		}
		return tail
	}
	// The end of prev is somewhere in tail: everything after it is new.
	for n := min(len(prev), 512); n >= min(16, len(prev)) && n > 0; n /= 2 {
		if i := strings.LastIndex(tail, prev[len(prev)-n:]); i >= 0 {
			return strings.TrimPrefix(tail[i+n:], "\n")
		}
	}
	return "[…]\n" + tail
}
