package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/term"
	"github.com/dtkhq/dtk/plan"
)

// progress shows a watched service's steps as they change. On a terminal
// it is a block of one line per node, redrawn in place: every line cut to
// the terminal's width so that none wraps, the header showing the time
// elapsed (ticking while nothing else changes). Elsewhere (a pipe, a file,
// TERM=dumb) it prints one plain line per step state change, append-only,
// with no escape sequence.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	color bool
	size  func() (cols, rows int)
	gen   uint64
	start time.Time
	now   func() time.Time
	seen  map[string]string // node + step ID → last state printed
	// rollout is the rollout line printed last (not a TTY).
	rollout string
	last    *api.ServiceStatus
	lines   int // lines of the block drawn last (TTY)
	stop    chan struct{}
	done    chan struct{}
}

// progressTick is how often the elapsed time is redrawn while the status
// does not change.
const progressTick = time.Second

func (o *Output) progress(gen uint64) *progress {
	size := o.Size
	if size == nil {
		size = func() (int, int) { return 0, 0 }
	}
	return &progress{w: o.Out, tty: o.TTY, color: o.Color, size: size, gen: gen,
		start: time.Now(), now: time.Now, seen: map[string]string{}}
}

// update shows st.
func (p *progress) update(st *api.ServiceStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st.Generation > p.gen { // an auto-revert's generation
		p.gen = st.Generation
	}
	if p.tty {
		p.last = st
		p.redraw()
		if p.stop == nil {
			p.stop, p.done = make(chan struct{}), make(chan struct{})
			go p.tick(p.stop, p.done)
		}
		return
	}
	if l := rolloutLine(st, p.gen); l != "" && l != p.rollout {
		p.rollout = l
		fmt.Fprintln(p.w, l)
	}
	shown := progressStates(st, p.gen)
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			key := n.Name + "\x00" + s.ID
			state := shown[s.ID]
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

// progressStates is each step's state as progress shows it (by step ID):
// its state in generation gen, except that while the service deploys, a
// step skipped although a step it depends on runs in this generation stays
// pending. Its agent skipped it as the plan stood; when what it depends on
// reports a new output, the step may run after all, and "skipped" then
// "running" would be untrue. Once the deploy ends, it shows as it is.
func progressStates(st *api.ServiceStatus, gen uint64) map[string]string {
	out := map[string]string{}
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			out[s.ID] = stepState(s, gen)
		}
	}
	if st.State != plan.StateDeploying {
		return out
	}
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			if out[s.ID] != plan.StepSkipped {
				continue
			}
			for _, d := range s.DependsOn {
				if ds, ok := out[d]; ok && ds != plan.StepSkipped {
					out[s.ID] = plan.StepPending
					break
				}
			}
		}
	}
	return out
}

// tick redraws the block every progressTick until stop is closed.
func (p *progress) tick(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(progressTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.redraw()
			p.mu.Unlock()
		}
	}
}

// close stops the ticking; the block drawn last stays on the screen.
func (p *progress) close() {
	p.mu.Lock()
	stop, done := p.stop, p.done
	p.stop = nil
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
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
	ansiUp        = "\x1b[1A" // cursor up one line
	ansiClearLine = "\x1b[2K" // clear the whole line the cursor is on
)

// clearLines is what erases the n lines drawn last, the cursor being at the
// start of the line below them: up one line and clear it, n times. Only
// those lines are touched, nothing the command printed before them.
func clearLines(n int) string {
	if n <= 0 {
		return ""
	}
	return "\r" + strings.Repeat(ansiUp+ansiClearLine, n)
}

// defaultCols is the width assumed for a terminal whose size cannot be read.
const defaultCols = 80

// redraw erases the block drawn last and draws the last status seen.
// Called with p.mu held.
func (p *progress) redraw() {
	if p.last == nil {
		return
	}
	cols, rows := p.size()
	if cols <= 0 {
		cols = defaultCols
	}
	lines := progressLines(p.last, p.gen, p.now().Sub(p.start), cols, rows, p.color)
	var b strings.Builder
	b.WriteString(clearLines(p.lines))
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	io.WriteString(p.w, b.String())
	p.lines = len(lines)
}

// progressLines is the TTY block for st: a header with the time elapsed,
// then one line per node; at most rows-1 lines (a block taller than the
// screen could not be erased), each at most cols-1 columns wide (a line
// that fills the last column makes some terminals wrap at once, and the
// erasing would then miss a line). rows <= 0 means no bound on lines.
func progressLines(st *api.ServiceStatus, gen uint64, elapsed time.Duration, cols, rows int, color bool) []string {
	header := fmt.Sprintf("%s: %s (generation %d)  %s", st.Name,
		term.Paint(color, stateColor(st.State), st.State), gen, fmtElapsed(elapsed))
	lines := []string{header}
	if l := rolloutLine(st, gen); l != "" {
		lines = append(lines, "  "+l)
	}
	shown := progressStates(st, gen)
	for _, n := range st.Nodes {
		lines = append(lines, "  "+nodeSummary(n, shown, color))
	}
	if rows > 2 && len(lines) > rows-1 {
		keep := rows - 2
		lines = append(lines[:keep], "  … and "+plural(len(lines)-keep, "more node"))
	}
	width := max(cols-1, 1)
	for i, l := range lines {
		lines[i] = term.Truncate(l, width)
	}
	return lines
}

// fmtElapsed prints a running time: 0s, 12s, 3m04s, 1h02m03s.
func fmtElapsed(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm%02ds", s/3600, s/60%60, s%60)
	}
}

// nodeSummary is one node's compact line:
// "agent-1 (web)  ✓ 2 ok  ↷ 1 skipped  ● running: index create  ✗ failed: db create  · 3 pending".
func nodeSummary(n api.NodeStatus, shown map[string]string, color bool) string {
	var ok, skipped, pending int
	var running, failed []string
	for _, s := range n.Steps {
		inst := instance(s)
		switch shown[s.ID] {
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
	paint := func(sgr, s string) string { return term.Paint(color, sgr, s) }
	parts := []string{nodeLabel(n)}
	if len(n.Steps) == 0 {
		parts = append(parts, "no steps")
	}
	if ok > 0 {
		parts = append(parts, paint(term.Green, fmt.Sprintf("✓ %d ok", ok)))
	}
	if skipped > 0 {
		parts = append(parts, fmt.Sprintf("↷ %d skipped", skipped))
	}
	if len(running) > 0 {
		parts = append(parts, paint(term.Yellow, "● running: "+firstAndMore(running)))
	}
	if len(failed) > 0 {
		parts = append(parts, paint(term.Red, "✗ failed: "+firstAndMore(failed)))
	}
	if pending > 0 {
		parts = append(parts, paint(term.Dim, fmt.Sprintf("· %d pending", pending)))
	}
	if n.Status != "" && n.Status != "up" {
		parts = append(parts, paint(term.Red, "(node "+n.Status+")"))
	}
	if n.Rollout != "" {
		parts = append(parts, "["+n.Rollout+"]")
	}
	return strings.Join(parts, "  ")
}

// firstAndMore names the first of names and counts the others, keeping a
// line short.
func firstAndMore(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	return fmt.Sprintf("%s (+%d more)", names[0], len(names)-1)
}
