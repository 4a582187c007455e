package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtkhq/dtk/actions"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// stateRunner is a runner that predicts: a run writes "ok" into
// $DTK_DATA_DIR/state-INSTANCE (Changed if it was not), a dry run tells
// whether it would. It records every request.
type stateRunner struct {
	kind string
	mu   sync.Mutex
	reqs []actions.Request
}

func (r *stateRunner) Kind() string   { return r.kind }
func (r *stateRunner) Predicts() bool { return true }

func (r *stateRunner) Run(_ context.Context, req actions.Request) actions.Result {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	inst := strings.Split(req.StepID, "/")[2]
	file := filepath.Join(req.DataDir, "state-"+inst)
	if b, _ := os.ReadFile(file); string(b) == "ok" {
		return actions.Result{State: actions.OK, Output: inst + " is ok\n"}
	}
	if req.DryRun {
		return actions.Result{State: actions.Changed, Output: "would fix " + inst + "\n", Changes: []string{"would fix " + inst}}
	}
	if err := os.WriteFile(file, []byte("ok"), 0o600); err != nil {
		return actions.Result{State: actions.Failed, Err: err}
	}
	return actions.Result{State: actions.Changed, Output: "fixed " + inst + "\n"}
}

// requests are the runs so far: real ones and dry ones.
func (r *stateRunner) requests() (real, dry []actions.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range r.reqs {
		if q.DryRun {
			dry = append(dry, q)
		} else {
			real = append(real, q)
		}
	}
	return real, dry
}

// startCheckingAgent starts an agent that reconciles every 100 ms, with
// runners of its own for some kinds and the real ones for the others.
func startCheckingAgent(t *testing.T, srv string, dataDir string, fakes ...*stateRunner) *Agent {
	a, err := New(Config{Name: "n1", DataDir: dataDir, Client: api.NewClient(srv), PollWait: time.Second,
		ReconcileInterval: 100 * time.Millisecond,
		Runner: func(kind string) (actions.Runner, error) {
			for _, f := range fakes {
				if f.kind == kind {
					return f, nil
				}
			}
			return actions.Lookup(kind)
		}})
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	t.Cleanup(a.Shutdown)
	return a
}

func (f *fakeCoordinator) checkedStep(instance string, run plan.Action, check *plan.Action) *plan.Step {
	st := &plan.Step{
		ID: plan.StepID("s", "n", instance, "create"), Service: "s", Node: "n", Instance: instance,
		Component: "c", Action: "create", Generation: 1, ModuleDigest: f.digest, Run: run, Check: check,
	}
	st.Digest = plan.StepDigest(st, nil)
	return st
}

// drifts are the final reports of a step that repaired drift.
func (f *fakeCoordinator) drifts(id string) []plan.Report {
	var out []plan.Report
	for _, r := range f.final(id) {
		if r.Drift {
			out = append(out, r)
		}
	}
	return out
}

// Proves: a noop check (explicit, or a container's default) runs the
// create action as a dry run in the create's scratch folder, finds
// nothing while the state holds, and when the state is changed behind the
// agent's back the agent runs create again and reports drift repaired with
// what the check found.
func TestAgent_Check_NoopRepairsDriftAndSaysWhatItFound(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	conf, ctr := &stateRunner{kind: "conf"}, &stateRunner{kind: "container"}
	startCheckingAgent(t, srv.URL, data, conf, ctr)
	explicit := f.checkedStep("a", plan.Action{Kind: "conf"}, &plan.Action{Kind: plan.CheckNoop, TimeoutSeconds: 7})
	byDefault := f.checkedStep("b", plan.Action{Kind: "container"}, nil)
	f.publish(explicit, byDefault)
	waitFor(t, "both steps ran", func() bool { return len(f.final(explicit.ID)) == 1 && len(f.final(byDefault.ID)) == 1 })
	waitFor(t, "checks that find nothing", func() bool {
		_, dryA := conf.requests()
		_, dryB := ctr.requests()
		return len(dryA) >= 2 && len(dryB) >= 2
	})
	for _, r := range []*stateRunner{conf, ctr} {
		real, dry := r.requests()
		if len(real) != 1 {
			t.Errorf("%s: %d real runs while the state held, want 1", r.kind, len(real))
		}
		q := dry[0]
		want := filepath.Join(data, "steps", scratchName(explicit))
		if r == ctr {
			want = filepath.Join(data, "steps", scratchName(byDefault))
		}
		if q.Name() != "create" || q.ScratchDir != want {
			t.Errorf("%s: the check ran action %q in %s, want create in %s", r.kind, q.Name(), q.ScratchDir, want)
		}
		if r == conf && q.Action.TimeoutSeconds != 7 {
			t.Errorf("the noop check's timeout is %d, want its own 7", q.Action.TimeoutSeconds)
		}
	}
	if n := len(f.drifts(explicit.ID)) + len(f.drifts(byDefault.ID)); n != 0 {
		t.Fatalf("%d drift reports while the state held", n)
	}

	for _, st := range []*plan.Step{explicit, byDefault} {
		if err := os.Remove(filepath.Join(data, "state-"+st.Instance)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "drift repaired of "+st.Instance, func() bool { return len(f.drifts(st.ID)) > 0 })
		r := f.drifts(st.ID)[0]
		want := "fixed " + st.Instance + "\n" + driftPrefix + "would fix " + st.Instance + "\n"
		if r.State != plan.StepOK || !r.Changed || r.Output != want {
			t.Errorf("repair report: state %s, changed %v, output %q, want %q", r.State, r.Changed, r.Output, want)
		}
	}
}

// Proves: a check of a kind that predicts runs as a dry run, never for
// real (it must not converge), and a change it predicts is drift.
func TestAgent_Check_OfAPredictingKindDoesNotConverge(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	audit := &stateRunner{kind: "audit"}
	startCheckingAgent(t, srv.URL, data, audit)
	st := f.checkedStep("a", plan.Action{Kind: "bash", Inline: `echo repaired; printf ok > "$DTK_DATA_DIR/state-a"`},
		&plan.Action{Kind: "audit"})
	f.publish(st)
	waitFor(t, "the step ran", func() bool { return len(f.final(st.ID)) == 1 })
	if err := os.WriteFile(filepath.Join(data, "state-a"), []byte("tampered"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "drift repaired", func() bool { return len(f.drifts(st.ID)) > 0 })
	r := f.drifts(st.ID)[0]
	if r.Output != "repaired\n"+driftPrefix+"would fix a\n" {
		t.Errorf("repair output %q", r.Output)
	}
	real, dry := audit.requests()
	if len(real) != 0 || len(dry) == 0 || dry[0].Name() != "check" {
		t.Fatalf("the check ran %d times for real, %d as a dry run (action %q)", len(real), len(dry), dry[0].Name())
	}
}

// A bash check that fails is drift too; the repair says what it printed.
func TestAgent_Check_BashFailureIsDrift(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	startCheckingAgent(t, srv.URL, data)
	st := f.checkedStep("a", plan.Action{Kind: "bash", Inline: `touch "$DTK_DATA_DIR/f"; echo made`},
		&plan.Action{Kind: "bash", Inline: `[ -f "$DTK_DATA_DIR/f" ] || { echo "f is gone"; exit 1; }`})
	f.publish(st)
	waitFor(t, "the step ran", func() bool { return len(f.final(st.ID)) == 1 })
	os.Remove(filepath.Join(data, "f"))
	waitFor(t, "drift repaired", func() bool { return len(f.drifts(st.ID)) > 0 })
	if r := f.drifts(st.ID)[0]; r.Output != "made\n"+driftPrefix+"f is gone\n" || r.State != plan.StepOK {
		t.Errorf("repair report: %s %q", r.State, r.Output)
	}
}

func TestStepCheck_ContainersByDefault(t *testing.T) {
	own := &plan.Action{Kind: "bash", Inline: "true"}
	for _, c := range []struct {
		st   plan.Step
		want string
	}{
		{plan.Step{Run: plan.Action{Kind: "container"}}, plan.CheckNoop},
		{plan.Step{Run: plan.Action{Kind: "container"}, Check: own}, "bash"},
		{plan.Step{Run: plan.Action{Kind: "puppet"}}, ""},
		{plan.Step{Run: plan.Action{Kind: "bash"}}, ""},
	} {
		got := ""
		if chk := stepCheck(&c.st); chk != nil {
			got = chk.Kind
		}
		if got != c.want {
			t.Errorf("%s create with check %v: check %q, want %q", c.st.Run.Kind, c.st.Check, got, c.want)
		}
	}
}
