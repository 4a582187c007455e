package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/plan"
)

// healthStep is a create step whose run is create (bash) and whose check
// passes while $DTK_DATA_DIR/f exists, counting its runs in checks.
func (f *fakeCoordinator) healthStep(create string, seconds int, gen uint64) *plan.Step {
	st := &plan.Step{
		ID: plan.StepID("s", "n", "web", "create"), Service: "s", Node: "n", Instance: "web",
		Component: "c", Action: "create", Generation: gen, ModuleDigest: f.digest,
		Run: plan.Action{Kind: "bash", Inline: `echo run >> "$DTK_DATA_DIR/runs"; ` + create},
		Check: &plan.Action{Kind: "bash", Inline: `echo check >> "$DTK_DATA_DIR/checks"
[ -f "$DTK_DATA_DIR/f" ] || { echo "f is gone"; exit 1; }`},
		HealthSeconds: seconds,
	}
	st.Digest = plan.StepDigest(st, nil)
	return st
}

// reported says whether a running report of id carries want in its output.
func (f *fakeCoordinator) reported(id, want string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.reports {
		if r.StepID == id && r.State == plan.StepRunning && strings.Contains(r.Output, want) {
			return true
		}
	}
	return false
}

// countLines counts the lines of a file under the data dir (0 when absent).
func countLines(t *testing.T, dataDir, name string) int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dataDir, name))
	return strings.Count(string(b), "\n")
}

func TestAgent_Health_CheckKeepsPassing(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	a := startAgent(t, srv, data)
	defer a.Shutdown()
	st := f.healthStep(`touch "$DTK_DATA_DIR/f"`, 2, 1)
	f.publish(st)
	waitFor(t, "the final report", func() bool { return len(f.final(st.ID)) == 1 })
	r := f.final(st.ID)[0]
	if r.State != plan.StepOK || r.Error != "" {
		t.Fatalf("report %+v", r)
	}
	// It stayed running for the verification, and said so.
	if d := r.FinishedAt - r.StartedAt; d < 2000 {
		t.Errorf("the step finished %d ms after it started, want at least the 2 s of verification", d)
	}
	if !f.reported(st.ID, "verifying health: 0s of 2s") {
		t.Error("no running report says the health is being verified")
	}
	// 1 s apart for 2 s: at 1 s and 2 s.
	if n := countLines(t, data, "checks"); n != 2 {
		t.Errorf("the check ran %d times, want 2", n)
	}

	// Unchanged in the next generation: skipped, not verified again.
	f.publish(f.healthStep(`touch "$DTK_DATA_DIR/f"`, 2, 2))
	waitFor(t, "the skipped report", func() bool { return len(f.final(st.ID)) == 2 })
	if r := f.final(st.ID)[1]; r.State != plan.StepSkipped {
		t.Fatalf("report %+v", r)
	}
	if n := countLines(t, data, "checks"); n != 2 {
		t.Errorf("the check ran %d times, want still 2", n)
	}
}

// The run succeeds, then what it made goes away: the step fails with the
// check's output, and is not run again until the plan changes.
func TestAgent_Health_CheckFailsAfterTheRun(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	a := startAgent(t, srv, data)
	defer a.Shutdown()
	st := f.healthStep(`touch "$DTK_DATA_DIR/f"; (sleep 1; rm -f "$DTK_DATA_DIR/f") >/dev/null 2>&1 &`, 3, 1)
	f.publish(st)
	waitFor(t, "the final report", func() bool { return len(f.final(st.ID)) == 1 })
	r := f.final(st.ID)[0]
	if r.State != plan.StepFailed || !strings.HasPrefix(r.Error, "health check failed ") || !strings.HasSuffix(r.Error, "s after the run: f is gone") {
		t.Fatalf("report %+v", r)
	}
	a.mu.Lock()
	failed, rec := a.state.Failed[st.ID], a.state.Steps[st.ID]
	a.mu.Unlock()
	if failed != failKey(st) || rec != nil {
		t.Fatalf("recorded as failed %q, success record %+v", failed, rec)
	}

	// The same plan again: not retried.
	converges := a.Converges()
	f.publish(st)
	waitFor(t, "another converge", func() bool { return a.Converges() > converges })
	if n := countLines(t, data, "runs"); n != 1 {
		t.Errorf("the step ran %d times, want once", n)
	}
}

// A cancel ends the verification at once, as a failure.
func TestAgent_Health_CancelEndsVerification(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	a := startAgent(t, srv, t.TempDir())
	defer a.Shutdown()
	st := f.healthStep(`touch "$DTK_DATA_DIR/f"`, 60, 1)
	f.publish(st)
	waitFor(t, "the verification", func() bool { return f.reported(st.ID, "verifying health") })
	cancelled := time.Now()
	a.running.stop("s")
	waitFor(t, "the final report", func() bool { return len(f.final(st.ID)) == 1 })
	if d := time.Since(cancelled); d > 3*time.Second {
		t.Errorf("the verification ended %s after the cancel", d)
	}
	if r := f.final(st.ID)[0]; r.State != plan.StepFailed || !strings.HasPrefix(r.Error, "cancelled while verifying health") {
		t.Fatalf("report %+v", r)
	}
}

func TestHealthInterval(t *testing.T) {
	for total, want := range map[time.Duration]time.Duration{
		2 * time.Second: time.Second, 10 * time.Second: 2 * time.Second, 30 * time.Second: 5 * time.Second,
		10 * time.Minute: 5 * time.Second,
	} {
		if got := healthInterval(total); got != want {
			t.Errorf("healthInterval(%s) = %s, want %s", total, got, want)
		}
	}
}

// A health verification registers itself, then each check it runs: a
// cancel reaches the check while it runs, the verification between checks.
func TestRunning_Start_Nests(t *testing.T) {
	var r running
	outer, doneOuter := r.start(context.Background(), "s")
	inner, doneInner := r.start(outer, "s")
	r.stop("s")
	if inner.Err() == nil || outer.Err() != nil {
		t.Fatalf("after a cancel during the check: check %v, verification %v", inner.Err(), outer.Err())
	}
	doneInner()
	r.stop("s")
	if outer.Err() == nil {
		t.Fatal("a cancel between checks did not reach the verification")
	}
	doneOuter()
	if r.stop("s") {
		t.Fatal("something is still registered")
	}
}
