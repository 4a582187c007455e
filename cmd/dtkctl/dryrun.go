package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/term"
	"github.com/dtkhq/dtk/plan"
)

// dryRunResult is what `service deploy --dry-run --json` prints.
type dryRunResult struct {
	Service string `json:"service"`
	// Clusters group the nodes by the change the deploy would make on
	// each, largest first, each with its full list of nodes
	// (docs/dry-run.md).
	Clusters []plan.Cluster `json:"clusters"`
	// BaseGeneration is the generation the clusters compare with.
	BaseGeneration uint64 `json:"base_generation"`
	// Results are the agents' reports, one per step, with its prediction.
	Results []plan.Report `json:"results"`
	// Counts are the number of steps per prediction.
	Counts map[string]int `json:"counts"`
	// Skipped are the nodes left out because they were down.
	Skipped []string `json:"skipped,omitempty"`
	// Runs are the steps predicted unchanged in the plan that the deploy
	// runs all the same (they read an output that changes), by step ID,
	// with why; Counts counts them as would change.
	Runs map[string]string `json:"runs,omitempty"`
}

// shownNodes is how many nodes of a cluster the text output names.
const shownNodes = 5

// dryRun asks the service's nodes what a deploy would do and prints the
// groups of nodes that would change alike, largest first; with verbose,
// every node's prediction for every step after them.
func dryRun(ctx context.Context, cl *api.Client, out *Output, name string, timeout time.Duration, asJSON, verbose bool) error {
	// Brief answers while following: each agent's steps (every step of
	// the plan, 1,000 agents' worth) are not needed, the clusters at the
	// end say what changes.
	op, err := cl.StartOpBrief(ctx, name, plan.OpDryRun, nil)
	if err != nil {
		return err
	}
	if !asJSON {
		out.Printf("dry run of %s on %s (nothing changes)\n", name, countOf(len(op.Steps), "node"))
	}
	op, ferr := followOpWith(ctx, cl.OpBrief, out, op, timeout, func(plan.Report) {})
	// The clusters are there even when some nodes did not answer in
	// time: those are the ones that cannot be predicted. They are read as
	// of what the follow saw, from the same coordinator.
	st, err := cl.DryRunClusters(ctx, op.ID, op.Index)
	if err != nil {
		if ferr != nil {
			return ferr
		}
		return err
	}
	// Each node's answers in the order it gave them (its steps' order),
	// the nodes by name.
	slices.SortStableFunc(op.Results, func(a, b plan.Report) int { return strings.Compare(a.Node, b.Node) })
	counts := map[string]int{}
	for _, r := range op.Results {
		counts[prediction(r, st.Runs)]++
	}
	if asJSON {
		res := dryRunResult{Service: name, Clusters: st.Clusters, BaseGeneration: st.BaseGeneration, Results: op.Results, Counts: counts, Skipped: op.Skipped, Runs: st.Runs}
		if res.Results == nil {
			res.Results = []plan.Report{}
		}
		if res.Clusters == nil {
			res.Clusters = []plan.Cluster{}
		}
		if err := out.JSON(res); err != nil {
			return err
		}
	} else {
		printClusters(out, st.Clusters)
		if verbose {
			var rows [][]string
			for _, r := range op.Results {
				p := r.Prediction
				if why := st.Runs[r.StepID]; why != "" && p == plan.PredictUnchangedPlan {
					p = "may run: " + why
				}
				rows = append(rows, []string{r.Node, stepName(r), r.Action, p})
			}
			out.Printf("\n")
			printTable(out.Out, "", []string{"NODE", "STEP", "ACTION", "PREDICTION"}, rows)
		}
		out.Printf("\n%d would change, %d no change, %d unchanged in the plan, %d cannot predict\n",
			counts[plan.PredictChange], counts[plan.PredictNoChange], counts[plan.PredictUnchangedPlan], counts[plan.PredictCannot])
	}
	if ferr != nil {
		return ferr
	}
	if counts["would fail"] > 0 {
		return failf("%d steps would fail", counts["would fail"])
	}
	return nil
}

// prediction is what a step's answer counts as: a step predicted unchanged
// in the plan that runs all the same (runs) would change.
func prediction(r plan.Report, runs map[string]string) string {
	if r.Prediction == plan.PredictUnchangedPlan && runs[r.StepID] != "" {
		return plan.PredictChange
	}
	return r.Prediction
}

// printClusters prints each group of nodes: how many, what changes on
// them and the first few of their names. A group whose change is the
// largest group's and more says only what more ("also ...").
func printClusters(out *Output, cs []plan.Cluster) {
	var ref []string
	for _, c := range cs {
		if c.Key != plan.ClusterUnchanged && c.Key != plan.ClusterCannotPredict {
			ref = c.Summary
			break
		}
	}
	for _, c := range cs {
		lines, also := c.Summary, ""
		if extra, ok := beyond(c.Summary, ref); ok {
			lines, also = extra, "also "
		}
		head := countOf(len(c.Agents), "node") + ":"
		if len(lines) == 1 {
			out.Printf("%s %s%s\n", head, also, out.paintPrediction(lines[0]))
		} else {
			out.Printf("%s%s\n", head, strings.TrimSuffix(" "+also, " "))
			for _, l := range lines {
				out.Printf("  %s\n", out.paintPrediction(l))
			}
		}
		out.Printf("  on %s\n", abbreviate(c.Agents, shownNodes))
	}
}

// beyond returns the lines of summary that are not in ref, when summary
// holds every line of ref and more.
func beyond(summary, ref []string) ([]string, bool) {
	if len(ref) == 0 || len(summary) <= len(ref) {
		return nil, false
	}
	var extra []string
	for _, l := range summary {
		if !slices.Contains(ref, l) {
			extra = append(extra, l)
		}
	}
	return extra, len(extra) == len(summary)-len(ref)
}

// paintPrediction colours red a summary line's prediction that a step
// would fail, and yellow the line of the nodes that cannot be predicted.
func (o *Output) paintPrediction(line string) string {
	if l, ok := strings.CutSuffix(line, "— would fail"); ok {
		return l + "— " + term.Paint(o.Color, term.Red, "would fail")
	}
	if l, ok := strings.CutPrefix(line, "cannot predict"); ok {
		return term.Paint(o.Color, term.Yellow, "cannot predict") + l
	}
	return line
}

// abbreviate lists the first n names and how many more there are.
func abbreviate(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + " and " + thousands(len(names)-n) + " more"
}

// countOf is "1 node", "4,120 nodes".
func countOf(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return thousands(n) + " " + word + "s"
}

// thousands writes n with a comma between groups of three digits.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
