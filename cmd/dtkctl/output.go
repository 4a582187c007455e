package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// Output is where commands print: results to Out, notes to Err. TTY says
// Out is a terminal that understands ANSI cursor movement.
type Output struct {
	Out io.Writer
	Err io.Writer
	TTY bool
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
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

func printTable(w io.Writer, indent string, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header != nil {
		fmt.Fprintln(tw, indent+strings.Join(header, "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, indent+strings.Join(r, "\t"))
	}
	tw.Flush()
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

// stepTable prints NODE STEP ACTION STATE EXIT DURATION for every step, then
// the error and output tail of each failed step.
func stepTable(w io.Writer, st *api.ServiceStatus, gen uint64) {
	var rows [][]string
	type failure struct {
		where string
		s     api.StepStatus
	}
	var failed []failure
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
			case state == plan.StepOK && s.Drift:
				shown = "ok (drift repaired)"
			case state == plan.StepPending && len(s.Waiting) > 0:
				shown = "waiting: " + strings.Join(s.Waiting, "; ")
			}
			rows = append(rows, []string{n.Name, step, s.Action, shown, exit, dur})
			if state == plan.StepFailed {
				failed = append(failed, failure{n.Name + " " + stepLabel(n, s), s})
			}
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "no steps")
		return
	}
	printTable(w, "", []string{"NODE", "STEP", "ACTION", "STATE", "EXIT", "DURATION"}, rows)
	for _, f := range failed {
		msg := f.s.Error
		if msg == "" {
			msg = fmt.Sprintf("exit code %d", f.s.ExitCode)
		}
		fmt.Fprintf(w, "\n%s failed: %s\n", f.where, msg)
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

// progress shows a watched service's steps as they change: on a terminal a
// block of one line per node redrawn in place, elsewhere one line per step
// state change.
type progress struct {
	w     io.Writer
	tty   bool
	gen   uint64
	seen  map[string]string // node + step ID → last state printed
	lines int               // lines of the block drawn last (TTY)
}

func (o *Output) progress(gen uint64) *progress {
	return &progress{w: o.Out, tty: o.TTY, gen: gen, seen: map[string]string{}}
}

// update shows st.
func (p *progress) update(st *api.ServiceStatus) {
	if p.tty {
		p.redraw(st)
		return
	}
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			key := n.Name + "\x00" + s.ID
			state := stepState(s, p.gen)
			prev, ok := p.seen[key]
			if !ok {
				prev = plan.StepPending
			}
			if state == prev {
				continue
			}
			p.seen[key] = state
			fmt.Fprintf(p.w, "%s %s: %s\n", n.Name, stepLabel(n, s), stateDetail(s, state))
		}
	}
}

func stateDetail(s api.StepStatus, state string) string {
	switch state {
	case plan.StepSkipped:
		if s.DurationMs == 0 {
			return state
		}
		return fmt.Sprintf("%s (%s)", state, fmtDuration(s.DurationMs))
	case plan.StepOK:
		return fmt.Sprintf("%s (%s)", state, fmtDuration(s.DurationMs))
	case plan.StepFailed:
		return fmt.Sprintf("failed (exit %d, %s)", s.ExitCode, fmtDuration(s.DurationMs))
	default:
		return state
	}
}

// ANSI sequences for the TTY block.
const (
	ansiUp        = "\x1b[%dA" // cursor up N lines
	ansiClearDown = "\x1b[J"   // clear from the cursor to the end of the screen
)

func (p *progress) redraw(st *api.ServiceStatus) {
	if p.lines > 0 {
		fmt.Fprintf(p.w, "\r"+ansiUp+ansiClearDown, p.lines)
	}
	lines := []string{fmt.Sprintf("%s: %s (generation %d)", st.Name, st.State, p.gen)}
	for _, n := range st.Nodes {
		lines = append(lines, "  "+nodeSummary(n, p.gen))
	}
	for _, l := range lines {
		fmt.Fprintln(p.w, l)
	}
	p.lines = len(lines)
}

// nodeSummary is one node's compact line:
// "agent-1 (web)  ✓ 2 ok  ↷ 1 skipped  ● running: index create  ✗ failed: db create  · 3 pending".
func nodeSummary(n api.NodeStatus, gen uint64) string {
	var ok, skipped, pending int
	var running, failed []string
	for _, s := range n.Steps {
		inst := instance(s)
		switch stepState(s, gen) {
		case plan.StepOK:
			ok++
		case plan.StepSkipped:
			skipped++
		case plan.StepRunning:
			running = append(running, inst+" "+s.Action)
		case plan.StepFailed:
			failed = append(failed, inst+" "+s.Action)
		default:
			pending++
		}
	}
	parts := []string{nodeLabel(n)}
	if len(n.Steps) == 0 {
		parts = append(parts, "no steps")
	}
	if ok > 0 {
		parts = append(parts, fmt.Sprintf("✓ %d ok", ok))
	}
	if skipped > 0 {
		parts = append(parts, fmt.Sprintf("↷ %d skipped", skipped))
	}
	if len(running) > 0 {
		parts = append(parts, "● running: "+firstAndMore(running))
	}
	if len(failed) > 0 {
		parts = append(parts, "✗ failed: "+firstAndMore(failed))
	}
	if pending > 0 {
		parts = append(parts, fmt.Sprintf("· %d pending", pending))
	}
	if n.Status != "" && n.Status != "up" {
		parts = append(parts, "(node "+n.Status+")")
	}
	return strings.Join(parts, "  ")
}

// firstAndMore keeps a TTY line short so that it does not wrap and break
// the redraw.
func firstAndMore(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return fmt.Sprintf("%s (+%d more)", names[0], len(names)-1)
}
