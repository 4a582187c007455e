package agent

import (
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// A subscriber runs its refresh action when a step it subscribes to
// changed something in the same converge, and only then; its report says
// why. A step whose digest changed runs create as usual.
func TestAgent_Subscribe_RefreshesAfterAChange(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	a := startAgent(t, srv, data)
	defer a.Shutdown()

	svc := func(gen uint64) *plan.Step {
		st := f.step("svc", "s", gen)
		st.Subscribe = []string{"s/n/conf/create"}
		st.RefreshAction = "reload"
		st.RefreshRun = &plan.Action{Kind: "bash", Inline: `echo "reload $msg" >> "$DTK_DATA_DIR/runs"`}
		return st
	}
	f.publish(f.step("conf", "a", 1), svc(1))
	waitFor(t, "svc ran", func() bool { return len(f.final("s/n/svc/create")) == 1 })
	if r := f.final("s/n/svc/create")[0]; r.Reason != "" {
		t.Errorf("a first run has reason %q", r.Reason)
	}
	// The config changes: svc's own digest does not, its refresh runs.
	f.publish(f.step("conf", "b", 2), svc(2))
	waitFor(t, "svc reported for gen 2", func() bool { return len(f.final("s/n/svc/create")) == 2 })
	r := f.final("s/n/svc/create")[1]
	if r.State != plan.StepOK || r.Reason != "refreshed: component.conf changed (ran reload)" {
		t.Errorf("refresh report = %+v", r)
	}
	// Nothing changes: svc is skipped.
	f.publish(f.step("conf", "b", 3), svc(3))
	waitFor(t, "svc reported for gen 3", func() bool { return len(f.final("s/n/svc/create")) == 3 })
	if r := f.final("s/n/svc/create")[2]; r.State != plan.StepSkipped {
		t.Errorf("unchanged subscriber report = %+v", r)
	}
	if got := strings.Join(runs(t, data), ","); got != "run_a,run_s,run_b,reload_s" {
		t.Fatalf("runs = %s", got)
	}
}

// A force request runs an unchanged step once: not again on the next
// pull, nor after a restart of the agent.
func TestAgent_Force_RunsOnceAcrossRestarts(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	a := startAgent(t, srv, data)

	f.publish(f.step("one", "a", 1))
	waitFor(t, "one ran", func() bool { return len(f.final("s/n/one/create")) == 1 })
	forced := f.step("one", "a", 2)
	forced.Force = 7
	f.publish(forced)
	waitFor(t, "one forced", func() bool { return len(f.final("s/n/one/create")) == 2 })
	if r := f.final("s/n/one/create")[1]; r.State != plan.StepOK || r.Reason != "forced" {
		t.Errorf("forced report = %+v", r)
	}
	a.Shutdown()

	a = startAgent(t, srv, data)
	defer a.Shutdown()
	again := f.step("one", "a", 3)
	again.Force = 7
	f.publish(again)
	// (A restarted agent may send a report again whose acknowledgement
	// it had not stored: the coordinators apply it once.)
	waitFor(t, "one reported for gen 3", func() bool { return reportOf(f, "s/n/one/create", 3) != nil })
	if r := reportOf(f, "s/n/one/create", 3); r.State != plan.StepSkipped {
		t.Errorf("after the force, report = %+v", r)
	}
	if got := strings.Join(runs(t, data), ","); got != "run_a,run_a" {
		t.Fatalf("runs = %s", got)
	}
}

// A refresh survives a restart of the agent between the change and the
// subscriber's run: the mark is written with the changed step's record.
func TestAgent_Subscribe_RefreshKeptUntilTheSubscriberRuns(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	a := startAgent(t, srv, data)
	defer func() { a.Shutdown() }()

	svc := func(gen uint64) *plan.Step {
		st := f.step("svc", "s", gen)
		st.Subscribe = []string{"s/n/conf/create"}
		return st
	}
	f.publish(f.step("conf", "a", 1), svc(1))
	waitFor(t, "svc ran", func() bool { return len(f.final("s/n/svc/create")) == 1 })
	// The config changes while svc waits for another node: the refresh
	// is kept, through a restart, until svc can run.
	waiting := svc(2)
	waiting.Waiting = []string{"db/pg to converge"}
	f.publish(f.step("conf", "b", 2), waiting)
	waitFor(t, "conf ran", func() bool { return len(f.final("s/n/conf/create")) == 2 })
	a.Shutdown()
	a = startAgent(t, srv, data)
	f.publish(f.step("conf", "b", 3), svc(3))
	waitFor(t, "svc reported for gen 3", func() bool { return reportOf(f, "s/n/svc/create", 3) != nil })
	if r := reportOf(f, "s/n/svc/create", 3); r.State != plan.StepOK || r.Reason != "refreshed: component.conf changed" {
		t.Errorf("refresh report = %+v", r)
	}
	f.publish(f.step("conf", "b", 4), svc(4))
	waitFor(t, "svc reported for gen 4", func() bool { return reportOf(f, "s/n/svc/create", 4) != nil })
	if got := strings.Join(runs(t, data), ","); got != "run_a,run_s,run_b,run_s" {
		t.Fatalf("runs = %s", got)
	}
}

// reportOf is the last final report of a step for generation gen, or nil.
func reportOf(f *fakeCoordinator, stepID string, gen uint64) *plan.Report {
	var out *plan.Report
	for _, r := range f.final(stepID) {
		if r.Generation == gen {
			out = &r
		}
	}
	return out
}
