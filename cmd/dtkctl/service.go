package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/term"
	"github.com/dtkhq/dtk/plan"
)

// ServiceCmd is `dtkctl service`.
type ServiceCmd struct {
	Stage       ServiceStageCmd       `cmd:"" help:"Stage a template as a service (does not deploy it)."`
	Set         ServiceSetCmd         `cmd:"" help:"Change a staged service's inputs (KEY= unsets one)."`
	Plan        ServicePlanCmd        `cmd:"" help:"Preview the steps the next deploy would run on each node."`
	Deploy      ServiceDeployCmd      `cmd:"" help:"Compile and publish a service's plan to its nodes."`
	Status      ServiceStatusCmd      `cmd:"" help:"Show a service's state and the state of each step."`
	List        ServiceListCmd        `cmd:"" help:"List services."`
	Delete      ServiceDeleteCmd      `cmd:"" help:"Run a service's delete steps and remove it (or part of it)."`
	Upgrade     ServiceUpgradeCmd     `cmd:"" help:"Move a service to another version of its module (then deploy)."`
	Exec        ServiceExecCmd        `cmd:"" help:"Run a custom action (restart, backup, ...) on the nodes that carry it."`
	Cancel      ServiceCancelCmd      `cmd:"" help:"Stop the service's running steps (their whole process groups)."`
	Logs        ServiceLogsCmd        `cmd:"" help:"Show the output of the service's steps."`
	Graph       ServiceGraphCmd       `cmd:"" help:"Draw the environment tree and component dependencies (DOT or Mermaid)."`
	History     ServiceHistoryCmd     `cmd:"" help:"Show a service's recent deploys, deletes, execs and changes: who, when, how they went."`
	Pause       ServicePauseCmd       `cmd:"" help:"Pause a running rollout: no more nodes get the new generation until resume."`
	Resume      ServiceResumeCmd      `cmd:"" help:"Resume a paused rollout."`
	Promote     ServicePromoteCmd     `cmd:"" help:"Let a rollout go on past its healthy canaries (manual promotion)."`
	Abort       ServiceAbortCmd       `cmd:"" help:"Stop a running rollout (and revert the nodes it changed, with auto_revert)."`
	Revert      ServiceRevertCmd      `cmd:"" help:"Deploy a kept generation's configuration again (default: the last converged one)."`
	Restore     ServiceRestoreCmd     `cmd:"" help:"Bring back what \"service delete --node/--component\" removed, and deploy."`
	Generations ServiceGenerationsCmd `cmd:"" help:"List the generations kept for revert."`
}

// parseInputs turns KEY=VALUE arguments into a map; the last value of a
// key repeated wins. VALUE may be empty and may contain "=" and ",".
func parseInputs(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usagef("%s %q: expected KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// maxValueFile bounds a --set-file value (the coordinator takes request
// bodies up to 4 MiB in all).
const maxValueFile = 1 << 20

// readValueFile reads a value's file, refusing one over maxValueFile.
func readValueFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxValueFile+1))
	if err == nil && len(b) > maxValueFile {
		err = fmt.Errorf("%s is larger than %d bytes", path, maxValueFile)
	}
	return b, err
}

// readInputFiles turns KEY=PATH arguments (--set-file) into a map of
// each file's content, less one trailing newline, so that a secret never
// passes through the command line or shell history. A key also set with
// --set, or a file that cannot be read, is a usage error.
func readInputFiles(kvs []string, set map[string]string) (map[string]string, error) {
	files, err := parseInputs("--set-file", kvs)
	if err != nil || files == nil {
		return set, err
	}
	out := make(map[string]string, len(set)+len(files))
	for k, v := range set {
		out[k] = v
	}
	for _, k := range sortedKeys(files) {
		path := files[k]
		if _, dup := set[k]; dup {
			return nil, usagef("--set-file %s: input %q is also given with --set or as KEY=VALUE", k, k)
		}
		if path == "" {
			return nil, usagef("--set-file %s=: expected KEY=PATH", k)
		}
		b, err := readValueFile(path)
		if err != nil {
			return nil, usagef("--set-file %s: cannot read the value's file: %v", k, err)
		}
		v := strings.TrimSuffix(string(b), "\n")
		if len(v) < len(b) {
			v = strings.TrimSuffix(v, "\r")
		}
		if v == "" {
			return nil, usagef("--set-file %s: %s is empty (KEY= unsets an input)", k, path)
		}
		out[k] = v
	}
	return out, nil
}

// ServiceStageCmd is `dtkctl service stage NAME --template MODULE/TEMPLATE`.
type ServiceStageCmd struct {
	Name     string   `arg:"" help:"Service name."`
	Template string   `required:"" placeholder:"MODULE/TEMPLATE" help:"Template to stage: MODULE/TEMPLATE or MODULE@VERSION/TEMPLATE."`
	Parent   string   `placeholder:"SERVICE" help:"Service to deploy with respect to (its environment)."`
	Set      []string `placeholder:"KEY=VALUE" sep:"none" help:"Set an input; repeatable."`
	SetFile  []string `placeholder:"KEY=PATH" sep:"none" help:"Set an input to the content of a file (less one trailing newline), for secrets; repeatable."`
	JSON     bool     `help:"Print the staged service as JSON."`
}

// Help is the detail of `service stage --help`.
func (ServiceStageCmd) Help() string {
	return `Examples:
  dtkctl service stage web --template hello/site --set greeting=Bonjour
  dtkctl service stage web-eu --template hello@1.2.0/site --parent network-eu
  dtkctl service stage db --template pg/primary --set-file password=./db-password.txt`
}

// Validate checks --set and --set-file before anything is sent.
func (c *ServiceStageCmd) Validate() error {
	if _, err := parseInputs("--set", c.Set); err != nil {
		return err
	}
	_, err := parseInputs("--set-file", c.SetFile)
	return err
}

// Run stages the service.
func (c *ServiceStageCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	inputs, err := parseInputs("--set", c.Set)
	if err != nil {
		return err
	}
	if inputs, err = readInputFiles(c.SetFile, inputs); err != nil {
		return err
	}
	svc, err := cl.Stage(ctx, api.StageRequest{Name: c.Name, Template: c.Template, Parent: c.Parent, Inputs: inputs})
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(svc)
	}
	parent := ""
	if svc.Parent != "" {
		parent = " with respect to " + svc.Parent
	}
	out.Printf("staged %s (%s@%s/%s%s)\n", svc.Name, svc.Module, svc.Version, svc.Template, parent)
	out.Notef("next: \"dtkctl service plan %s\", then \"dtkctl service deploy %s --wait\"\n", svc.Name, svc.Name)
	return nil
}

// ServiceSetCmd is `dtkctl service set NAME KEY=VALUE...`.
type ServiceSetCmd struct {
	Name    string   `arg:"" help:"Service name."`
	Inputs  []string `arg:"" optional:"" name:"key=value" sep:"none" help:"Inputs to set; KEY= unsets KEY."`
	SetFile []string `placeholder:"KEY=PATH" sep:"none" help:"Set an input to the content of a file (less one trailing newline), for secrets; repeatable."`
	JSON    bool     `help:"Print the updated service as JSON (sensitive values redacted)."`
}

// Validate checks the KEY=VALUE and KEY=PATH arguments.
func (c *ServiceSetCmd) Validate() error {
	if len(c.Inputs) == 0 && len(c.SetFile) == 0 {
		return usagef("nothing to set: give KEY=VALUE arguments or --set-file KEY=PATH")
	}
	if _, err := parseInputs("input", c.Inputs); err != nil {
		return err
	}
	_, err := parseInputs("--set-file", c.SetFile)
	return err
}

// Run changes the inputs.
func (c *ServiceSetCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	inputs, err := parseInputs("input", c.Inputs)
	if err != nil {
		return err
	}
	if inputs, err = readInputFiles(c.SetFile, inputs); err != nil {
		return err
	}
	svc, err := cl.SetInputs(ctx, c.Name, inputs)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(svc)
	}
	// Values are shown as the coordinator answers them: a sensitive one
	// as "(sensitive)", never as typed.
	var changed []string
	for _, k := range sortedKeys(inputs) {
		v, ok := svc.Inputs[k]
		switch {
		case inputs[k] == "":
			changed = append(changed, k+" unset")
		case ok:
			changed = append(changed, k+"="+v)
		default:
			changed = append(changed, k+" set")
		}
	}
	out.Printf("updated %s: %s\n", svc.Name, strings.Join(changed, ", "))
	out.Notef("not deployed yet: run \"dtkctl service deploy %s --wait\"\n", svc.Name)
	return nil
}

// ServicePlanCmd is `dtkctl service plan NAME`.
type ServicePlanCmd struct {
	Name string `arg:"" help:"Service name."`
	JSON bool   `help:"Print JSON."`

	WithoutPending bool `name:"without-pending" help:"Compile against the services above as deployed, leaving out their staged changes (what deploying this service alone would do now)."`
}

// Help is the detail of `service plan --help`.
func (ServicePlanCmd) Help() string {
	return `Shows, per node (by name), each step the next deploy would add (+), change (~), remove (-) or leave (=), with every attribute's value in full and where it comes from; a changed value as OLD → NEW, a sensitive one only as "(sensitive)". A step whose plan is unchanged but that reads an output of a step that runs, or subscribes to one, is marked ↻ with why ("reads output pg of node db, which runs in this deploy"): it may run, if the value it reads is new (only that run tells). When a service above has staged changes that would change exports this one reads, the plan assumes them deployed (as "deploy --recursive" from there does) and marks those values "(pending change)". Exit 1 when the plan has violations (it cannot be deployed).

Examples:
  dtkctl service plan web
  dtkctl service plan web --without-pending
  dtkctl service plan web --json | jq '.nodes[].steps[] | select(.change != "unchanged")'`
}

// Run previews the plan; violations make it fail (exit 1): the plan cannot
// be deployed.
func (c *ServicePlanCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	preview := cl.Plan
	if c.WithoutPending {
		preview = cl.PlanDeployedAncestors
	}
	pv, err := preview(ctx, c.Name)
	if err != nil {
		return err
	}
	if c.JSON {
		if pv.Violations == nil {
			pv.Violations = []plan.Violation{}
		}
		if err := out.JSON(pv); err != nil {
			return err
		}
	} else {
		printPlan(out, c.Name, pv)
	}
	if n := len(pv.Violations); n > 0 {
		return failf("%s cannot be deployed: the plan has %s", c.Name, plural(n, "violation"))
	}
	return nil
}

var changeMark = map[string]string{
	plan.ChangeAdd: "+", plan.ChangeChange: "~", plan.ChangeRemove: "-", plan.ChangeUnchanged: "=", plan.ChangeRun: "↻",
}

func printPlan(out *Output, name string, pv *api.PlanPreview) {
	if len(pv.Violations) > 0 {
		out.Printf("%s cannot be deployed as staged:\n", name)
		for _, v := range pv.Violations {
			out.Printf("  %s\n", strings.ReplaceAll(v.String(), "\n", "\n  "))
		}
		return
	}
	cols := 0
	if out.Size != nil {
		cols, _ = out.Size()
	}
	out.Printf("plan for %s, generation %d:\n", name, pv.Generation)
	for _, n := range pv.Notes {
		out.Printf("  note: %s\n", n)
	}
	counts := map[string]int{}
	for _, nd := range pv.Nodes {
		out.Printf("\nnode %s → %s\n", nd.Name, orDash(nd.Agent))
		if len(nd.Selector) > 0 {
			out.Printf("  selected by:\n")
			printValues(out, "      ", valueRows(nd.Selector, nil), cols)
		}
		if len(nd.Steps) == 0 {
			out.Printf("  no steps\n")
		}
		var instW, compW int
		for _, st := range nd.Steps {
			instW, compW = max(instW, term.StringWidth(st.Instance)), max(compW, term.StringWidth(st.Component)+2)
		}
		for _, st := range nd.Steps {
			counts[st.Change]++
			line := fmt.Sprintf("  %s %s %s %s", orDash(changeMark[st.Change]), term.PadRight(st.Instance, instW), term.PadRight("("+st.Component+")", compW), st.Action)
			if st.AssetOnly {
				line += "  [asset changed]"
			}
			if st.Reason != "" {
				line += "  [may run: " + st.Reason + "]"
			}
			if len(st.Waiting) > 0 {
				line += "  [waits for " + strings.Join(st.Waiting, "; ") + "]"
			}
			out.Printf("%s\n", line)
			if st.Change != plan.ChangeAdd && st.Change != plan.ChangeChange {
				continue
			}
			printValues(out, "      ", valueRows(st.Attributes, st.Changed), cols)
		}
	}
	if len(pv.Inputs) > 0 {
		out.Printf("\ninputs:\n")
		printValues(out, "  ", valueRows(pv.Inputs, nil), cols)
	}
	if len(pv.Exports) > 0 {
		out.Printf("\nexports (offered to services staged under %s):\n", name)
		rows := valueRows(pv.Exports, nil)
		for i := range rows {
			rows[i][2] = "" // an export's source is this service
		}
		printValues(out, "  ", rows, cols)
	}
	run := ""
	if n := counts[plan.ChangeRun]; n > 0 {
		run = fmt.Sprintf(", %d may run", n) // unchanged, reading an output of a step that runs
	}
	out.Printf("\n%d to add, %d to change%s, %d to remove, %d unchanged\n",
		counts[plan.ChangeAdd], counts[plan.ChangeChange], run, counts[plan.ChangeRemove], counts[plan.ChangeUnchanged])
}

// valueRows are name, value and source of each value: a changed one's
// (named in changed) "old → new"; a sensitive one only "(sensitive)".
func valueRows(vs []*plan.Value, changed []string) [][3]string {
	rows := make([][3]string, 0, len(vs))
	for _, v := range vs {
		val := compactJSON(v.Value)
		if v.Value == nil {
			val = "(known after apply)"
		}
		if slices.Contains(changed, v.Name) {
			if v.Old != nil && !v.Sensitive {
				val = compactJSON(v.Old) + " → " + val
			} else {
				val += " (changed)"
			}
		}
		src := ""
		if v.Source != "" {
			src = "← " + v.Source
		}
		rows = append(rows, [3]string{v.Name, val, src})
	}
	return rows
}

// compactJSON is a value on one line (the coordinator's answer is
// indented JSON, values included).
func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// printValues prints "name = value ← source" rows in three aligned
// columns, every value in full: with cols (the terminal's width; 0: no
// limit), a value too wide for its column wraps within it.
func printValues(out *Output, indent string, rows [][3]string, cols int) {
	var nameW, valW, srcW int
	for _, r := range rows {
		nameW, valW, srcW = max(nameW, term.StringWidth(r[0])), max(valW, term.StringWidth(r[1])), max(srcW, term.StringWidth(r[2]))
	}
	if cols > 0 {
		avail := cols - 1 - term.StringWidth(indent) - nameW - len(" = ")
		if srcW > 0 {
			avail -= srcW + 2
		}
		valW = min(valW, max(avail, minValueWidth))
	}
	var b strings.Builder
	for _, r := range rows {
		for i, chunk := range term.Wrap(r[1], valW) {
			head := strings.Repeat(" ", nameW+len(" = "))
			if i == 0 {
				head = term.PadRight(r[0], nameW) + " = "
			}
			line := indent + head + term.PadRight(chunk, valW)
			if i == 0 && r[2] != "" {
				line += "  " + r[2]
			}
			b.WriteString(strings.TrimRight(line, " "))
			b.WriteByte('\n')
		}
	}
	out.Printf("%s", b.String())
}

// minValueWidth is the narrowest a wrapped value column gets, however
// narrow the terminal.
const minValueWidth = 24

// ServiceDeployCmd is `dtkctl service deploy NAME`.
type ServiceDeployCmd struct {
	Name    string        `arg:"" help:"Service name."`
	Wait    bool          `help:"Wait until the deploy converges (exit 0) or fails (exit 1), showing progress."`
	DryRun  bool          `name:"dry-run" help:"Change nothing: ask the nodes to predict what the deploy would do."`
	Timeout time.Duration `default:"10m" help:"How long --wait waits (0: no limit)."`
	JSON    bool          `help:"Print JSON: the deployed service; with --wait, its status at the end (no progress); with --dry-run, the predictions."`
	RolloutFlags

	// Recursive: recursive.go.
	Recursive bool `help:"Then deploy the services below it, one by one (parents first, by name among siblings), each once the one before converged, stopping at the first failure; unchanged ones are passed over, and the coordinators carry on if this command goes away. With --wait, waits for all of them; with --dry-run, shows each one's plan; with --json --wait, prints the recursive deploy at the end."`
	Verbose   bool `short:"v" help:"With --dry-run: also every node's prediction for every step, after the groups of nodes."`

	// Force: force.go.
	ForceFlags
}

// Help is the detail of `service deploy --help`.
func (ServiceDeployCmd) Help() string {
	return `Compiles the staged service into a plan (a new generation) and publishes it; the agents pick it up and run the steps. With --wait, follows the deploy to its end: on a terminal a live block per node that fits the window, elsewhere one line per step change. Exit 0 converged, 1 failed or timed out, 2 when the plan has violations.

A template's rollout block (or the rollout flags) makes the deploy walk through the nodes: canaries first, then at most --max-parallel at a time, each healthy for --min-healthy-time before the next; see docs/rollouts.md. --wait then follows the rollout to its end, and an auto-revert ends it with exit 1.

With --dry-run, nothing changes: every node predicts each of its steps, and the nodes are printed in groups that would change alike, the largest first ("2,031 nodes: web/index: message ..."); the nodes that cannot predict (down, or no answer in time) are a group too. -v adds every node's prediction for every step, --json every group's full list of nodes (docs/dry-run.md).

Examples:
  dtkctl service deploy web --wait
  dtkctl service deploy web --dry-run
  dtkctl service deploy web --wait --max-parallel 2 --canary 1 --min-healthy-time 30s --auto-revert
  dtkctl service deploy web --wait --timeout 30m --json > status.json
  dtkctl service deploy network --recursive --wait
  dtkctl service deploy web --force --node web-1 --step nginx --wait`
}

// Run deploys and, with --wait, follows the deploy to its end.
func (c *ServiceDeployCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if c.Recursive {
		return c.runRecursive(ctx, cl, out)
	}
	if c.DryRun {
		return dryRun(ctx, cl, out, c.Name, c.Timeout, c.JSON, c.Verbose)
	}
	o, err := c.override()
	if err != nil {
		return err
	}
	svc, err := cl.DeployWith(ctx, c.Name, api.DeployRequest{Rollout: o, Force: c.force()})
	if err != nil {
		return err // a 422 lists the violations
	}
	return followDeploy(ctx, cl, out, svc, c.Wait, c.JSON, c.Timeout, "deploy")
}

// followDeploy prints a deploy (or revert) just made and, with wait,
// follows it to its end: converged (nil), failed or auto-reverted (exit 1).
func followDeploy(ctx context.Context, cl *api.Client, out *Output, svc *api.DeployAnswer, wait, asJSON bool, timeout time.Duration, what string) error {
	gen := svc.Generation
	if svc.PlanSteps == 0 && svc.Plan != nil && len(svc.Plan.Nodes) > 0 { // an older coordinator's answer
		svc.PlanNodes = len(svc.Plan.Nodes)
		for _, np := range svc.Plan.Nodes {
			svc.PlanSteps += len(np.Steps)
		}
	}
	if asJSON && !wait {
		return out.JSON(svc)
	}
	if !asJSON {
		line := fmt.Sprintf("%sing %s generation %d (%s on %s)", strings.TrimSuffix(what, "e"), svc.Name, gen, plural(svc.PlanSteps, "step"), plural(svc.PlanNodes, "node"))
		if r := svc.Rollout; r != nil && r.Generation == gen {
			line += fmt.Sprintf(", rolling out to %s: %s", plural(len(r.Order), "node"), rolloutPlan(r))
		}
		out.Printf("%s\n", line)
	}
	if !wait {
		out.Notef("follow with \"dtkctl service status %s\"\n", svc.Name)
		return nil
	}
	last, _, err := watch(ctx, cl, out.quietIf(asJSON), svc.Name, gen, false, timeout)
	if last != nil && asJSON {
		if jerr := out.JSON(last); jerr != nil {
			return jerr
		}
	} else if last != nil {
		out.Printf("\n")
		out.stepTable(last, last.Generation)
	}
	if err != nil {
		return err
	}
	if r := last.Rollout; last.Generation > gen && r != nil && r.Generation == gen && r.Status == plan.RolloutReverted {
		return failf("%s of %s failed at generation %d: %s; auto-revert deployed generation %d (%s)", what, svc.Name, gen, r.Reason, last.Generation, last.State)
	}
	if last.State == plan.StateFailed {
		msg := failedCount(last, gen)
		if r := last.Rollout; r != nil && r.Generation == gen && r.Reason != "" {
			msg = "rollout " + r.Status + ": " + r.Reason
		}
		return failf("%s of %s failed at generation %d: %s", what, svc.Name, gen, msg)
	}
	if !asJSON {
		out.Printf("%s converged at generation %d\n", svc.Name, gen)
	}
	return nil
}

// rolloutPlan describes a rollout's strategy in a few words.
func rolloutPlan(r *plan.RolloutState) string {
	parts := []string{}
	if r.Canaries > 0 {
		parts = append(parts, plural(r.Canaries, "canary")+" first")
	}
	parts = append(parts, fmt.Sprintf("at most %d at a time", r.MaxParallel))
	if r.Strategy.MinHealthySeconds > 0 {
		parts = append(parts, fmt.Sprintf("each healthy for %ds", r.Strategy.MinHealthySeconds))
	}
	if r.Strategy.AutoRevert {
		parts = append(parts, "auto-revert")
	}
	return strings.Join(parts, ", ")
}

func planSize(p *plan.Plan) string {
	if p == nil {
		return "no steps"
	}
	steps := 0
	for _, np := range p.Nodes {
		steps += len(np.Steps)
	}
	return plural(steps, "step") + " on " + plural(len(p.Nodes), "node")
}

func failedCount(st *api.ServiceStatus, gen uint64) string {
	n := 0
	for _, ns := range st.Nodes {
		for _, s := range ns.Steps {
			if stepState(s, gen) == plan.StepFailed {
				n++
			}
		}
	}
	return plural(n, "step") + " failed"
}

// watchWait bounds one blocking status query.
const watchWait = 30 * time.Second

// watch follows a service with blocking status queries until, at generation
// gen or later, it converges or fails or (deleting) disappears. It shows
// progress as it goes and returns the last status seen and whether the
// service is gone. A status from an older generation (a follower behind) is
// skipped. Connection failures and 5xx answers are retried a few times.
func watch(ctx context.Context, cl *api.Client, out *Output, name string, gen uint64, deleting bool, timeout time.Duration) (last *api.ServiceStatus, gone bool, err error) {
	wctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	p := out.progress(gen)
	defer p.close()
	var index uint64
	failures := 0
	for {
		st, idx, err := cl.ServiceStatus(wctx, name, index, watchWait)
		if err != nil {
			var ae *api.APIError
			switch {
			case deleting && errors.As(err, &ae) && ae.Code == http.StatusNotFound:
				return last, true, nil
			case ctx.Err() != nil:
				return last, false, ctx.Err()
			case wctx.Err() != nil:
				what := "converge"
				if deleting {
					what = "be deleted"
				}
				state := "unknown"
				if last != nil {
					state = last.State
				}
				return last, false, failf("timed out after %s waiting for %s to %s (state %s); it carries on: follow with \"dtkctl service status %s\"",
					timeout, name, what, state, name)
			case transient(err) && failures < maxRetries:
				failures++
				backoff(wctx, failures) // a cancellation shows in the next query
				continue
			default:
				return last, false, err
			}
		}
		failures = 0
		if idx < index {
			index = 0 // the index went backwards (a new leader): start over
		} else {
			index = idx
		}
		if st.Generation < gen {
			continue
		}
		last = st
		p.update(st)
		switch {
		case rolloutRunning(st) && !deleting:
			// A tolerated failure does not end it, nor a wait for promotion.
		case st.State == plan.StateFailed:
			return last, false, nil
		case st.State == plan.StateConverged && !deleting:
			return last, false, nil
		}
	}
}

const maxRetries = 5

// transient says a failed query is worth retrying: no answer, or a 5xx.
func transient(err error) bool {
	var ae *api.APIError
	if errors.As(err, &ae) {
		return ae.Code >= 500
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// backoff waits 250ms, 500ms, 1s, ... (capped at 4s) or until ctx ends.
func backoff(ctx context.Context, attempt int) {
	t := time.NewTimer(min(250*time.Millisecond<<(attempt-1), 4*time.Second))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// ServiceStatusCmd is `dtkctl service status NAME`.
type ServiceStatusCmd struct {
	Name string `arg:"" help:"Service name."`
	JSON bool   `help:"Print JSON (the shape is stable: state, generation, nodes[].steps[])."`
}

// Help is the detail of `service status --help`.
func (ServiceStatusCmd) Help() string {
	return `The STATE of a step whose last run succeeded says what it did: changed, unchanged (the run found nothing to change) or drift repaired (its check had failed); skipped means it did not run (converged at this plan already).

Examples:
  dtkctl service status web
  dtkctl service status web --json | jq -r '.nodes[].steps[] | select(.state == "failed") | .id'`
}

// Run shows the status.
func (c *ServiceStatusCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	st, _, err := cl.ServiceStatus(ctx, c.Name, 0, 0)
	if err != nil {
		return err
	}
	if st.Nodes == nil {
		st.Nodes = []api.NodeStatus{}
	}
	if c.JSON {
		return out.JSON(st)
	}
	out.Printf("service:    %s\n", st.Name)
	out.Printf("state:      %s\n", out.paint(st.State))
	out.Printf("generation: %d\n", st.Generation)
	if l := rolloutLine(st, st.Generation); l != "" {
		out.Printf("rollout:    %s\n", strings.TrimPrefix(l, "rollout "))
	}
	out.Printf("template:   %s@%s/%s\n", st.Module, st.Version, st.Template)
	out.Printf("parent:     %s\n", orDash(st.Parent))
	if len(st.Stale) > 0 {
		out.Printf("stale:      %s changed since it was deployed (dtkctl service deploy %s)\n", staleText(st.Stale), st.Name)
	}
	if rd := st.Recursive; rd != nil {
		out.Printf("recursive:  %s (%s)\n", out.paint(rd.Status), recursiveCounts(rd))
	}
	if len(st.Inputs) > 0 {
		var kvs []string
		for _, k := range sortedKeys(st.Inputs) {
			kvs = append(kvs, k+"="+st.Inputs[k])
		}
		out.Printf("inputs:     %s\n", strings.Join(kvs, ", "))
	}
	if st.Generation == 0 && len(st.Nodes) == 0 {
		out.Printf("\nnot deployed yet\n")
		return nil
	}
	out.Printf("\n")
	out.stepTable(st, st.Generation)
	return nil
}

// ServiceListCmd is `dtkctl service list`.
type ServiceListCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run lists services.
func (c *ServiceListCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	svcs, err := cl.Services(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		if svcs == nil {
			svcs = []api.ServiceSummary{}
		}
		return out.JSON(svcs)
	}
	rows := make([][]string, 0, len(svcs))
	for _, s := range svcs {
		rows = append(rows, []string{s.Name, out.paint(s.State), fmt.Sprint(s.Generation),
			fmt.Sprintf("%s@%s/%s", s.Module, s.Version, s.Template), orDash(s.Parent), staleText(s.Stale)})
	}
	out.Table([]string{"NAME", "STATE", "GEN", "TEMPLATE", "PARENT", "STALE"}, rows)
	if len(svcs) == 0 {
		out.Notef("no services yet: stage one with \"dtkctl service stage NAME --template MODULE/TEMPLATE\"\n")
	}
	return nil
}

// ServiceDeleteCmd is `dtkctl service delete NAME`.
type ServiceDeleteCmd struct {
	Name      string        `arg:"" help:"Service name."`
	Node      string        `placeholder:"NODE" help:"Delete only what runs on this template node (the rest stays)."`
	Component string        `placeholder:"INSTANCE" help:"Delete only this component instance (the rest stays)."`
	Recursive bool          `help:"Also delete the services staged with respect to this one, leaves first."`
	Wait      bool          `help:"Wait until the service is gone (exit 0) or a delete step fails (exit 1), showing progress."`
	Timeout   time.Duration `default:"10m" help:"How long --wait waits (0: no limit)."`
	JSON      bool          `help:"Print JSON: the service being deleted; with --wait, the outcome (no progress)."`
}

// Help is the detail of `service delete --help`.
func (ServiceDeleteCmd) Help() string {
	return `Runs the delete steps of the service's components on its nodes, then forgets it. --node or --component removes only part of it.

Examples:
  dtkctl service delete web --wait
  dtkctl service delete web --node db --wait
  dtkctl service delete network-eu --recursive --wait`
}

// deleteResult is what `service delete --wait --json` prints.
type deleteResult struct {
	Service string `json:"service"`
	// Deleted says the service (or the part of it) is gone.
	Deleted bool `json:"deleted"`
	// Status is the last status seen when the delete did not finish.
	Status *api.ServiceStatus `json:"status,omitempty"`
}

// Run starts the delete and, with --wait, follows it to its end.
func (c *ServiceDeleteCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	svc, err := cl.Delete(ctx, c.Name, api.DeleteOptions{Node: c.Node, Component: c.Component, Recursive: c.Recursive})
	if err != nil {
		return err
	}
	if c.JSON {
		return c.runJSON(ctx, cl, out, svc)
	}
	gen := svc.Generation
	if c.Node != "" || c.Component != "" {
		out.Printf("removing part of %s (generation %d)\n", c.Name, gen)
		if !c.Wait {
			return nil
		}
		last, _, err := watch(ctx, cl, out, svc.Name, gen, false, c.Timeout)
		if err != nil {
			return err
		}
		if last.State == plan.StateFailed {
			return failf("partial delete of %s failed: %s", svc.Name, failedCount(last, gen))
		}
		out.Printf("removed; the rest of %s is unchanged\n", c.Name)
		return nil
	}
	if svc.State != plan.StateDeleting {
		// Nothing to undo: the coordinator removed the service at once.
		out.Printf("deleted %s\n", c.Name)
		return nil
	}
	out.Printf("deleting %s generation %d (%s)\n", c.Name, gen, planSize(svc.Plan))
	if !c.Wait {
		out.Notef("follow with \"dtkctl service status %s\"\n", c.Name)
		return nil
	}
	last, gone, err := watch(ctx, cl, out, c.Name, gen, true, c.Timeout)
	if last != nil && !gone { // a finished delete's last status is stale
		out.Printf("\n")
		out.stepTable(last, gen)
	}
	if err != nil {
		return err
	}
	if !gone {
		return failf("delete of %s failed at generation %d: %s; fix it and run \"dtkctl service delete %s\" again",
			c.Name, gen, failedCount(last, gen), c.Name)
	}
	out.Printf("deleted %s\n", c.Name)
	return nil
}

// runJSON is delete with --json: the service as the coordinator answered,
// or with --wait the outcome, without progress.
func (c *ServiceDeleteCmd) runJSON(ctx context.Context, cl *api.Client, out *Output, svc *plan.Service) error {
	if !c.Wait {
		return out.JSON(svc)
	}
	partial := c.Node != "" || c.Component != ""
	res := deleteResult{Service: c.Name, Deleted: !partial && svc.State != plan.StateDeleting}
	if !res.Deleted {
		last, gone, err := watch(ctx, cl, out.quietIf(true), svc.Name, svc.Generation, !partial, c.Timeout)
		if err != nil {
			return err
		}
		res.Deleted = gone || partial && last.State != plan.StateFailed
		if !res.Deleted {
			res.Status = last
		}
	}
	if err := out.JSON(res); err != nil {
		return err
	}
	if !res.Deleted {
		return failf("delete of %s failed at generation %d: %s", c.Name, svc.Generation, failedCount(res.Status, svc.Generation))
	}
	return nil
}

// ServiceUpgradeCmd is `dtkctl service upgrade NAME [--version V]`.
type ServiceUpgradeCmd struct {
	Name    string `arg:"" help:"Service name."`
	Version string `placeholder:"VERSION" help:"Module version (default: the highest pushed)."`
	JSON    bool   `help:"Print the upgraded service as JSON."`
}

// Run moves the service to another module version.
func (c *ServiceUpgradeCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	svc, err := cl.Upgrade(ctx, c.Name, c.Version)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(svc)
	}
	out.Printf("%s now uses %s@%s/%s\n", svc.Name, svc.Module, svc.Version, svc.Template)
	out.Notef("see what changes with \"dtkctl service plan %s\", then deploy it\n", svc.Name)
	return nil
}
