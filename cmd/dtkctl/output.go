package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/term"
	"github.com/dtkhq/dtk/plan"
)

// Output is where commands print: results to Out, notes to Err.
type Output struct {
	Out io.Writer
	Err io.Writer
	// TTY says Out is a terminal that understands ANSI cursor movement:
	// live progress is redrawn in place. Elsewhere output is append-only
	// lines with no escape sequence.
	TTY bool
	// Color says to colour states: Out is a terminal, and neither
	// NO_COLOR nor --no-color turned colour off.
	Color bool
	// Size gives Out's columns and rows now (0, 0: unknown); nil: unknown.
	Size func() (cols, rows int)
}

// quietIf is o with its results going nowhere when quiet (for progress
// that --json leaves out); notes still go to Err.
func (o *Output) quietIf(quiet bool) *Output {
	if !quiet {
		return o
	}
	return &Output{Out: io.Discard, Err: o.Err}
}

// Printf prints to Out.
func (o *Output) Printf(format string, args ...any) {
	fmt.Fprintf(o.Out, format, args...)
}

// Notef prints a note for the operator (hints, empty lists) to Err, so that
// Out stays clean for scripts.
func (o *Output) Notef(format string, args ...any) {
	fmt.Fprintf(o.Err, format, args...)
}

// JSON prints v as indented JSON.
func (o *Output) JSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = fmt.Fprintf(o.Out, "%s\n", b)
	return err
}

// Table prints rows under an upper-case header, columns aligned.
func (o *Output) Table(header []string, rows [][]string) {
	printTable(o.Out, "", header, rows)
}

// printTable aligns columns two spaces apart, as text/tabwriter would, but
// measures cells by the columns they take on screen, so that a coloured
// cell (its escape sequences take none) or a wide character lines up too.
func printTable(w io.Writer, indent string, header []string, rows [][]string) {
	if header != nil {
		rows = append([][]string{header}, rows...)
	}
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i == len(r)-1 {
				break // the last cell of a row is not padded
			}
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], term.StringWidth(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(indent)
		for i, c := range r {
			if i < len(r)-1 {
				c = term.PadRight(c, widths[i]+2)
			}
			b.WriteString(c)
		}
		b.WriteByte('\n')
	}
	io.WriteString(w, b.String())
}

// stateColor is the colour of a service, step, node or member state:
// green when all is well, red when failed or down, yellow while work is
// under way, dim while waiting.
func stateColor(state string) string {
	word, _, _ := strings.Cut(state, " ")
	word = strings.TrimSuffix(word, ":")
	switch word {
	case plan.StateConverged, plan.StepOK, stepChanged, stepUnchanged, "drift", "up", "alive", "leader":
		return term.Green
	case plan.StateFailed, "down", "unreachable":
		return term.Red
	case plan.StateDeploying, plan.StateDeleting, plan.StepRunning:
		return term.Yellow
	case plan.StepPending, plan.StateStaged, "waiting", "left":
		return term.Dim
	}
	return ""
}

// paint colours a state when colour is on.
func (o *Output) paint(state string) string {
	return term.Paint(o.Color, stateColor(state), state)
}

// shortDigest is the first 12 hex digits of "sha256:<hex>".
func shortDigest(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if !ok {
		hex = d
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return hex
}

// fmtDuration prints milliseconds compactly: 12ms, 1.4s, 2m3s.
func fmtDuration(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return d.String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stepState is a step's state as seen for generation gen: a report from an
// older generation does not count, the step is still pending.
func stepState(s api.StepStatus, gen uint64) string {
	if s.State == "" || (s.Generation != 0 && s.Generation < gen) {
		return plan.StepPending
	}
	return s.State
}

// instance is a step's component instance name.
func instance(s api.StepStatus) string {
	if s.Instance == "" {
		return s.Component
	}
	return s.Instance
}

// stepLabel names a step as "templatenode/instance action".
func stepLabel(n api.NodeStatus, s api.StepStatus) string {
	return n.TemplateNode + "/" + instance(s) + " " + s.Action
}

func nodeLabel(n api.NodeStatus) string {
	if n.TemplateNode == "" || n.TemplateNode == n.Name {
		return n.Name
	}
	return n.Name + " (" + n.TemplateNode + ")"
}

// driftPrefix starts the lines of a repair's output that say what the
// step's check found (the agent writes them).
const driftPrefix = "dtk: drift: "

// What a step that ran without error did, as status shows it.
const (
	stepChanged       = "changed"
	stepUnchanged     = "unchanged"
	stepDriftRepaired = "drift repaired"
)

// okState is what a step whose last run succeeded did: repaired drift,
// changed something, or found nothing to change (Report.Changed); and why
// it ran, when it says (a refresh).
func okState(s api.StepStatus) string {
	shown := stepUnchanged
	switch {
	case s.Drift:
		shown = stepDriftRepaired
	case s.Changed:
		shown = stepChanged
	}
	if s.Reason != "" {
		shown += " (" + s.Reason + ")"
	}
	return shown
}

// stepTable prints NODE STEP ACTION STATE EXIT DURATION for every step, then
// what the check found of each step that repaired drift, and the error and
// output tail of each failed step.
func (o *Output) stepTable(st *api.ServiceStatus, gen uint64) {
	w := o.Out
	var rows [][]string
	type noted struct {
		where string
		s     api.StepStatus
	}
	var failed, drifted []noted
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			state := stepState(s, gen)
			exit, dur := "-", "-"
			if state == plan.StepOK || state == plan.StepFailed {
				exit = fmt.Sprint(s.ExitCode)
			}
			if state == plan.StepOK || state == plan.StepFailed || state == plan.StepSkipped && s.DurationMs > 0 {
				dur = fmtDuration(s.DurationMs)
			}
			inst := instance(s)
			step := n.TemplateNode + "/" + inst
			if s.Component != "" && s.Component != inst {
				step += " (" + s.Component + ")"
			}
			shown := state
			switch {
			case state == plan.StepOK:
				shown = okState(s)
			case state == plan.StepPending && len(s.Waiting) > 0:
				shown = "waiting: " + strings.Join(s.Waiting, "; ")
			}
			rows = append(rows, []string{n.Name, step, s.Action, o.paint(shown), exit, dur})
			if state == plan.StepFailed {
				failed = append(failed, noted{n.Name + " " + stepLabel(n, s), s})
			}
			if state == plan.StepOK && s.Drift {
				drifted = append(drifted, noted{n.Name + " " + stepLabel(n, s), s})
			}
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "no steps")
		return
	}
	printTable(w, "", []string{"NODE", "STEP", "ACTION", "STATE", "EXIT", "DURATION"}, rows)
	for _, d := range drifted {
		// What the check found, as the agent put it at the end of the
		// repair's output ("dtk: drift: " lines).
		var found []string
		for _, l := range strings.Split(d.s.Output, "\n") {
			if f, ok := strings.CutPrefix(l, driftPrefix); ok {
				found = append(found, f)
			}
		}
		if len(found) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s %s: the check found:\n", d.where, term.Paint(o.Color, term.Yellow, "drift repaired"))
		for _, f := range found {
			fmt.Fprintf(w, "    %s\n", f)
		}
	}
	for _, f := range failed {
		msg := f.s.Error
		if msg == "" {
			msg = fmt.Sprintf("exit code %d", f.s.ExitCode)
		}
		fmt.Fprintf(w, "\n%s %s: %s\n", f.where, term.Paint(o.Color, term.Red, "failed"), msg)
		if out := strings.TrimRight(f.s.Output, "\n"); out != "" {
			lines := strings.Split(out, "\n")
			const maxLines = 40
			if len(lines) > maxLines {
				fmt.Fprintf(w, "    ... (%d earlier lines not shown)\n", len(lines)-maxLines)
				lines = lines[len(lines)-maxLines:]
			}
			for _, l := range lines {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
}
