package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// Recursive change: `service deploy NAME --recursive` and how stale
// services and pending changes show (docs/recursive.md).

// runRecursive is `service deploy NAME --recursive`: the coordinators
// deploy the service and then the services below it, one by one; with
// --wait it follows them to the end, showing each one's progress.
func (c *ServiceDeployCmd) runRecursive(ctx context.Context, cl *api.Client, out *Output) error {
	if c.DryRun {
		return dryRunRecursive(ctx, cl, out, c.Name, c.JSON)
	}
	o, err := c.override() // the rollout flags: for this service only
	if err != nil {
		return err
	}
	svc, err := cl.DeployRecursive(ctx, c.Name, api.DeployRequest{Rollout: o})
	if err != nil {
		return err // a 422 lists the violations of the service's own plan
	}
	if c.JSON && !c.Wait {
		return out.JSON(svc)
	}
	if !c.JSON {
		if svc.PlanSteps == 0 && svc.Plan != nil { // an older coordinator's answer
			svc.PlanNodes = len(svc.Plan.Nodes)
			for _, np := range svc.Plan.Nodes {
				svc.PlanSteps += len(np.Steps)
			}
		}
		line := fmt.Sprintf("deploying %s generation %d (%s on %s)", svc.Name, svc.Generation, plural(svc.PlanSteps, "step"), plural(svc.PlanNodes, "node"))
		if r := svc.Rollout; r != nil && r.Generation == svc.Generation {
			line += fmt.Sprintf(", rolling out to %s: %s", plural(len(r.Order), "node"), rolloutPlan(r))
		}
		out.Printf("%s, then the services below it, one by one\n", line)
	}
	if !c.Wait {
		out.Notef("it carries on without this command: follow with \"dtkctl service status %s\"\n", svc.Name)
		return nil
	}
	rd, err := followRecursive(ctx, cl, out.quietIf(c.JSON), svc.Name, svc.Generation, c.Timeout)
	if c.JSON && rd != nil {
		if jerr := out.JSON(rd); jerr != nil {
			return jerr
		}
	}
	if err != nil {
		return err
	}
	if rd.Status == api.RecursiveFailed {
		return failf("recursive deploy from %s stopped: %s", svc.Name, rd.Reason)
	}
	if !c.JSON {
		out.Printf("%s and the services below it converged (%s)\n", svc.Name, recursiveCounts(rd))
	}
	return nil
}

// followRecursive follows the recursive deploy started from root at
// generation gen until it finishes: the service it is deploying with the
// usual progress, a line as each service finishes. It returns the last
// state seen.
func followRecursive(ctx context.Context, cl *api.Client, out *Output, root string, gen uint64, timeout time.Duration) (*api.RecursiveDeploy, error) {
	wctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	timedOut := func(last *api.RecursiveDeploy) error {
		where := ""
		if cur := last.CurrentService(); cur != nil {
			where = " (at " + cur.Name + ")"
		}
		return failf("timed out after %s waiting for the recursive deploy from %s%s; it carries on: follow with \"dtkctl service status %s\"",
			timeout, root, where, root)
	}
	var last *api.RecursiveDeploy
	printed := map[string]bool{}
	followed := map[string]uint64{}
	var index uint64
	failures := 0
	for {
		st, idx, err := cl.ServiceStatus(wctx, root, index, watchWait)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return last, ctx.Err()
			case wctx.Err() != nil:
				return last, timedOut(last)
			case transient(err) && failures < maxRetries:
				failures++
				backoff(wctx, failures)
				continue
			default:
				return last, err
			}
		}
		failures = 0
		if idx < index {
			index = 0 // a new leader's index went backwards: start over
		} else {
			index = idx
		}
		rd := st.Recursive
		if rd == nil || len(rd.Services) == 0 || rd.Services[0].Generation < gen {
			continue // a coordinator that has not applied it yet
		}
		last = rd
		for _, s := range rd.Services {
			if finished(s.Result) && !printed[s.Name] {
				printed[s.Name] = true
				out.Printf("%s\n", recursiveLine(out, s))
			}
		}
		if rd.Status != api.RecursiveRunning {
			return rd, nil
		}
		cur := rd.CurrentService()
		if cur == nil || cur.Result != api.RecursiveDeploying || followed[cur.Name] == cur.Generation {
			continue
		}
		followed[cur.Name] = cur.Generation
		out.Printf("\n%s generation %d:\n", cur.Name, cur.Generation)
		ss, _, err := watch(wctx, cl, out, cur.Name, cur.Generation, false, 0)
		switch {
		case ctx.Err() != nil:
			return last, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) || wctx.Err() != nil:
			return last, timedOut(last)
		case err != nil:
			return last, err
		}
		if ss != nil && ss.State == plan.StateFailed {
			out.Printf("\n")
			out.stepTable(ss, cur.Generation)
		}
	}
}

func finished(result string) bool {
	return result != api.RecursivePending && result != api.RecursiveDeploying
}

// recursiveLine is one service's outcome: "app: converged at generation 3".
func recursiveLine(out *Output, s api.RecursiveService) string {
	line := "  " + s.Name + ": " + out.paint(s.Result)
	if s.Generation > 0 && (s.Result == api.RecursiveDone || s.Result == api.RecursiveFailedOne || s.Result == api.RecursiveUnchanged) {
		line += fmt.Sprintf(" at generation %d", s.Generation)
	}
	if s.Message != "" {
		line += " (" + s.Message + ")"
	}
	return line
}

// recursiveCounts says how many services ended how: "2 converged, 1 unchanged".
func recursiveCounts(rd *api.RecursiveDeploy) string {
	counts := map[string]int{}
	var order []string
	for _, s := range rd.Services {
		if counts[s.Result] == 0 {
			order = append(order, s.Result)
		}
		counts[s.Result]++
	}
	parts := make([]string, 0, len(order))
	for _, r := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[r], r))
	}
	return strings.Join(parts, ", ")
}

// recursiveOrder lists root and the services below it in the order a
// recursive deploy takes them: parents first, by name among siblings.
func recursiveOrder(svcs []api.ServiceSummary, root string) []api.ServiceSummary {
	children := map[string][]api.ServiceSummary{}
	var top *api.ServiceSummary
	for i, s := range svcs {
		if s.Name == root {
			top = &svcs[i]
		}
		children[s.Parent] = append(children[s.Parent], s)
	}
	if top == nil {
		return nil
	}
	out := []api.ServiceSummary{*top}
	var walk func(string)
	walk = func(name string) {
		ch := children[name]
		sort.Slice(ch, func(i, j int) bool { return ch[i].Name < ch[j].Name })
		for _, c := range ch {
			out = append(out, c)
			walk(c.Name)
		}
	}
	walk(root)
	return out
}

// recursivePlans is what `deploy --recursive --dry-run --json` prints.
type recursivePlans struct {
	Service string             `json:"service"`
	Plans   []*api.PlanPreview `json:"plans"`
	// Skipped lists the services below that were never deployed (a
	// recursive deploy leaves them).
	Skipped []string `json:"skipped,omitempty"`
}

// dryRunRecursive is `service deploy NAME --recursive --dry-run`: the
// plan of the service and of each service below it, in deploy order, each
// compiled as if those above it were deployed with their staged changes.
func dryRunRecursive(ctx context.Context, cl *api.Client, out *Output, root string, asJSON bool) error {
	svcs, err := cl.Services(ctx)
	if err != nil {
		return err
	}
	order := recursiveOrder(svcs, root)
	if order == nil {
		return &api.APIError{Code: 404, Message: fmt.Sprintf("not found: service %q", root)}
	}
	res := recursivePlans{Service: root, Plans: []*api.PlanPreview{}}
	violations := 0
	for i, s := range order {
		if i > 0 && s.Generation == 0 {
			res.Skipped = append(res.Skipped, s.Name)
			continue
		}
		pv, err := cl.Plan(ctx, s.Name)
		if err != nil {
			return err
		}
		if pv.Violations == nil {
			pv.Violations = []plan.Violation{}
		}
		violations += len(pv.Violations)
		res.Plans = append(res.Plans, pv)
		if !asJSON {
			if i > 0 {
				out.Printf("\n---\n\n")
			}
			printPlan(out, s.Name, pv)
		}
	}
	if asJSON {
		if err := out.JSON(res); err != nil {
			return err
		}
	} else {
		if len(res.Skipped) > 0 {
			out.Printf("\nnot deployed, left out: %s\n", strings.Join(res.Skipped, ", "))
		}
		out.Notef("nothing changed (dry run); a service whose plan does not change is passed over\n")
	}
	if violations > 0 {
		return failf("the recursive deploy from %s would stop: %s", root, plural(violations, "violation"))
	}
	return nil
}

// staleText shows a stale list: "stale: export cidr of net".
func staleText(stale []string) string {
	if len(stale) == 0 {
		return "-"
	}
	return strings.Join(stale, ", ")
}
