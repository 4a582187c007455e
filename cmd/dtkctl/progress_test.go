package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/term"
)

// wideStatus is a deploy whose lines are far wider than 40 columns: long
// node and instance names, several running and failed steps, wide runes.
func wideStatus(gen uint64) *api.ServiceStatus {
	st := testStatus(gen, "deploying",
		step("frontend-web-server-with-a-long-name", "running", 0, 0, gen),
		step("データベース-primary-replica-set", "failed", 1, 30, gen),
		step("index", "pending", 0, 0, 0))
	st.Name = "payments-production-eu-west-1-service"
	for i := range st.Nodes {
		st.Nodes[i].Name = "agent-" + strings.Repeat("x", 30)
		st.Nodes[i].Steps = append(st.Nodes[i].Steps, st.Nodes[i].Steps[0], st.Nodes[i].Steps[0])
	}
	return st
}

// In a 40-column terminal no line of the block is wider than the terminal
// (so none wraps), coloured or not, and the header shows the time elapsed.
func TestProgressLines_NarrowTerminal_NoLineWraps(t *testing.T) {
	for _, color := range []bool{false, true} {
		lines := progressLines(wideStatus(3), 3, 83*time.Second, 40, 0, color)
		if len(lines) != 4 {
			t.Fatalf("color=%v: %d lines, want a header and 3 nodes:\n%s", color, len(lines), strings.Join(lines, "\n"))
		}
		for _, l := range lines {
			if w := term.StringWidth(l); w > 40 {
				t.Errorf("color=%v: line is %d columns wide: %q", color, w, l)
			}
			if !strings.HasSuffix(term.Strip(l), "…") {
				t.Errorf("color=%v: a cut line does not end in an ellipsis: %q", color, l)
			}
			if strings.Contains(l, "\n") {
				t.Errorf("line holds a newline: %q", l)
			}
		}
	}
	header := progressLines(testStatus(3, "deploying"), 3, 83*time.Second, 40, 0, false)[0]
	if header != "web: deploying (generation 3)  1m23s" {
		t.Errorf("header %q", header)
	}
}

// A block taller than the screen could not be erased (the cursor does not
// go above the top): it is cut to the rows there are.
func TestProgressLines_ShortTerminal_FitsTheScreen(t *testing.T) {
	var steps []api.StepStatus
	for i := 0; i < 20; i++ {
		steps = append(steps, step("i", "running", 0, 0, 1))
	}
	lines := progressLines(testStatus(1, "deploying", steps...), 1, 0, 80, 8, false)
	if len(lines) != 7 || lines[6] != "  … and 15 more nodes" {
		t.Errorf("%d lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}
}

// Each redraw erases exactly the lines drawn the time before (up one line
// and clear it, that many times) and nothing above them, whether the block
// grows or shrinks; every line stays within the width.
func TestProgress_NarrowRedrawClearsExactlyTheLinesDrawnBefore(t *testing.T) {
	var buf bytes.Buffer
	out := &Output{Out: &buf, TTY: true, Color: true, Size: func() (int, int) { return 40, 50 }}
	p := out.progress(3)
	defer p.close()
	draws := []*api.ServiceStatus{
		wideStatus(3), // header + 3 nodes
		testStatus(3, "deploying", step("index", "running", 0, 0, 3)),                                                 // 2 lines
		testStatus(3, "deploying", step("a", "ok", 0, 1, 3), step("b", "ok", 0, 1, 3), step("c", "running", 0, 0, 3)), // 4
	}
	prev := 0
	for i, st := range draws {
		buf.Reset()
		p.update(st)
		got := buf.String()
		if n := strings.Count(got, ansiUp); n != prev {
			t.Errorf("draw %d moves up %d lines, want the %d drawn before: %q", i, n, prev, got)
		}
		if n := strings.Count(got, ansiClearLine); n != prev {
			t.Errorf("draw %d clears %d lines, want %d: %q", i, n, prev, got)
		}
		if strings.Contains(got, "\x1b[J") {
			t.Errorf("draw %d clears to the end of the screen: %q", i, got)
		}
		body := strings.TrimPrefix(got, clearLines(prev))
		if strings.Contains(term.Strip(body), "\x1b") || body == got && prev > 0 {
			t.Errorf("draw %d does not start by erasing the block: %q", i, got)
		}
		drawn := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		for _, l := range drawn {
			if w := term.StringWidth(l); w > 40 {
				t.Errorf("draw %d: line %d columns wide: %q", i, w, l)
			}
		}
		prev = len(drawn)
	}
}

// Without a terminal, progress is append-only plain lines: no cursor
// movement, no colour, even if asked for colour.
func TestProgress_NotATerminal_PlainLines(t *testing.T) {
	var buf bytes.Buffer
	p := (&Output{Out: &buf, Color: true, Size: func() (int, int) { return 20, 5 }}).progress(3)
	p.update(wideStatus(3))
	p.update(testStatus(3, "converged", step("index", "ok", 0, 12, 3)))
	p.close()
	if strings.Contains(buf.String(), "\x1b") {
		t.Errorf("escape sequences without a terminal: %q", buf.String())
	}
	if !strings.HasSuffix(buf.String(), "agent-1 index/index create: ok (12ms)\n") {
		t.Errorf("output:\n%s", buf.String())
	}
}

// The elapsed time ticks while the status does not change.
func TestProgress_ElapsedTicks(t *testing.T) {
	var mu bytes.Buffer
	w := &lockedBuffer{b: &mu}
	p := (&Output{Out: w, TTY: true}).progress(3)
	start := time.Now()
	p.mu.Lock()
	p.now = func() time.Time { return start.Add(42 * time.Second) }
	p.mu.Unlock()
	p.update(testStatus(3, "deploying", step("index", "running", 0, 0, 3)))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(w.String(), "\x1b[1A") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	p.close()
	if !strings.Contains(w.String(), "\x1b[1A") || !strings.Contains(w.String(), "(generation 3)  42s") {
		t.Errorf("no redraw with the elapsed time: %q", w.String())
	}
}

func TestFmtElapsed(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 1400 * time.Millisecond: "1s", 59 * time.Second: "59s", 64 * time.Second: "1m04s",
		3723 * time.Second: "1h02m03s",
	} {
		if got := fmtElapsed(d); got != want {
			t.Errorf("fmtElapsed(%s) = %q, want %q", d, got, want)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A step skipped while the step whose output it reads runs is not shown
// skipped while the deploy goes on: it runs once that step reports its new
// output, and the lines say running → ok, never skipped then running. One
// that stays skipped shows so when the deploy ends.
func TestProgress_SkippedReaderOfRunningStep_NotShownSkipped(t *testing.T) {
	reader := func(state, db, app string) *api.ServiceStatus {
		st := testStatus(3, state, step("db", db, 0, 0, 3), step("app", app, 0, 5, 3))
		st.Nodes[1].Steps[0].DependsOn = []string{st.Nodes[0].Steps[0].ID}
		return st
	}
	var buf bytes.Buffer
	p := (&Output{Out: &buf}).progress(3)
	p.update(reader("deploying", "running", "skipped"))
	if s := nodeSummary(reader("deploying", "running", "skipped").Nodes[1], progressStates(reader("deploying", "running", "skipped"), 3), false); s != "agent-2 (app)  · 1 pending" {
		t.Errorf("summary %q", s)
	}
	p.update(reader("deploying", "ok", "skipped")) // the recompile is yet to come
	p.update(reader("deploying", "ok", "running"))
	p.update(reader("converged", "ok", "ok"))
	want := "agent-1 db/db create: running\nagent-1 db/db create: ok (0s)\nagent-2 app/app create: running\nagent-2 app/app create: ok (5ms)\n"
	if buf.String() != want {
		t.Errorf("lines:\n%s\nwant:\n%s", buf.String(), want)
	}
	var end bytes.Buffer
	p = (&Output{Out: &end}).progress(3)
	p.update(reader("deploying", "ok", "skipped"))
	p.update(reader("converged", "ok", "skipped"))
	if want := "agent-1 db/db create: ok (0s)\nagent-2 app/app create: skipped (5ms)\n"; end.String() != want {
		t.Errorf("lines:\n%s\nwant:\n%s", end.String(), want)
	}
}
