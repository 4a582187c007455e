package coordinator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// rolloutModule has one node_group template: every agent labelled web runs
// component c with the greeting.
func rolloutModule(rollout *plan.Rollout) plan.Module {
	return plan.Module{
		Name: "g", Version: "1.0.0", Digest: "sha256:" + string(bytes.Repeat([]byte("b"), 64)),
		Files: map[string]string{"run.sh": "sha256:1"},
		Components: map[string]*plan.Component{
			"c": {Name: "c",
				Attributes: []*plan.Attribute{{Name: "msg", Type: "string", Required: true}},
				Actions: map[string]*plan.Action{
					"create": {Kind: "bash", Script: "run.sh"},
					"delete": {Kind: "bash", Inline: "true"},
				}},
		},
		Templates: map[string]*plan.Template{
			"t": {Name: "t", Rollout: rollout,
				Inputs: []*plan.Attribute{{Name: "greeting", Type: "string", Default: json.RawMessage(`"hi"`)}},
				Nodes: []*plan.TemplateNode{
					{Name: "web", Group: true, Labels: map[string]string{"role": "web"}, Components: []*plan.Instance{
						{Name: "page", Component: "c", Attributes: map[string]plan.Expr{"msg": {Source: `input.greeting`}}},
					}},
				}},
		},
	}
}

// rolloutHarness registers n web agents (w1..wn), stages s from
// rolloutModule and deploys generation 1 to convergence.
func rolloutHarness(t *testing.T, n int, r *plan.Rollout) *fsmHarness {
	h := newHarness(t)
	for i := 1; i <= n; i++ {
		h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: fmt.Sprintf("w%d", i), Status: plan.NodeUp,
			Labels: map[string]string{"role": "web"}}, Time: 1})
	}
	h.mustApply(PutModuleType, PutModuleCmd{Module: rolloutModule(r)})
	h.mustApply(StageServiceType, StageServiceCmd{Name: "s", Module: "g", Version: "1.0.0", Template: "t", Time: 2})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Time: 3, Rollout: &plan.RolloutOverride{AllAtOnce: true}})
	for i := 1; i <= n; i++ {
		h.reportSlice(fmt.Sprintf("w%d", i), plan.StepOK, 4)
	}
	if st := h.fsm.State().Service("s").State; st != plan.StateConverged {
		t.Fatalf("generation 1: %s", st)
	}
	return h
}

// reportSlice reports every step of s in agent's slice with state, at time
// now (ms).
func (h *fsmHarness) reportSlice(agent, state string, now int64) {
	h.t.Helper()
	var reps []plan.Report
	for _, st := range h.fsm.State().Slice(agent).Steps {
		if st.Service != "s" {
			continue
		}
		h.seq++
		reps = append(reps, plan.Report{ID: fmt.Sprintf("%s:%d", agent, h.seq), Node: agent, Service: "s", StepID: st.ID,
			Action: st.Action, Generation: st.Generation, Digest: st.Digest, State: state})
	}
	h.mustApply(ReportsType, ReportsCmd{Reports: reps, Time: now})
}

// sliceMsg is the greeting agent's slice holds.
func (h *fsmHarness) sliceMsg(agent string) string {
	for _, st := range h.fsm.State().Slice(agent).Steps {
		if st.Service == "s" && st.Action == "create" {
			return strings.Trim(string(st.Attributes["msg"]), `"`)
		}
	}
	return ""
}

func (h *fsmHarness) rollout() *plan.RolloutState { return h.fsm.State().Service("s").Rollout }

func (h *fsmHarness) redeploy(greeting string, o *plan.RolloutOverride, now int64) {
	h.t.Helper()
	h.mustApply(SetInputsType, SetInputsCmd{Name: "s", Inputs: map[string]string{"greeting": greeting}, Time: now})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Rollout: o, Time: now})
}

func TestRollout_CanaryThenOneAtATime(t *testing.T) {
	h := rolloutHarness(t, 5, &plan.Rollout{MaxParallel: "1", Canary: "1"})
	h.redeploy("new", nil, 10)
	r := h.rollout()
	if r == nil || r.Status != plan.RolloutRunning || r.Admitted != 1 || len(r.Order) != 5 || r.Canaries != 1 {
		t.Fatalf("rollout after deploy: %+v", r)
	}
	canary := r.Order[0]
	for _, a := range r.Order {
		want := "hi"
		if a == canary {
			want = "new"
		}
		if got := h.sliceMsg(a); got != want {
			t.Fatalf("%s's slice says %q, want %q (only the canary changes)", a, got, want)
		}
	}
	// Nodes get the new plan one by one, each after the one before it
	// is healthy.
	for i, a := range r.Order {
		if got := h.sliceMsg(a); got != "new" {
			t.Fatalf("node %d (%s) not admitted in turn", i, a)
		}
		if i+1 < len(r.Order) && h.sliceMsg(r.Order[i+1]) != "hi" {
			t.Fatalf("node %d (%s) admitted before %s is healthy", i+1, r.Order[i+1], a)
		}
		if st := h.fsm.State().Service("s").State; st != plan.StateDeploying {
			t.Fatalf("state mid-rollout = %s", st)
		}
		h.reportSlice(a, plan.StepOK, int64(20+i))
	}
	if r := h.rollout(); r.Status != plan.RolloutDone || !r.Promoted {
		t.Fatalf("rollout at the end: %s promoted=%v", r.Status, r.Promoted)
	}
	if st := h.fsm.State().Status("s"); st.State != plan.StateConverged || st.Rollout.Status != plan.RolloutDone {
		t.Fatalf("status: %s, rollout %+v", st.State, st.Rollout)
	}
	if g := h.fsm.State().Generations("s"); len(g) != 2 || !g[1].Converged {
		t.Fatalf("generations: %+v", g)
	}
}

func TestRollout_FailingCanaryRevertsTheCanaryOnly(t *testing.T) {
	h := rolloutHarness(t, 5, nil)
	h.redeploy("bad", &plan.RolloutOverride{MaxParallel: "2", Canary: "1", AutoRevert: ptr(true)}, 10)
	r := h.rollout()
	canary := r.Order[0]
	h.reportSlice(canary, plan.StepFailed, 11)
	svc := h.fsm.State().Service("s")
	r = svc.Rollout
	if r.Status != plan.RolloutReverted || r.Generation != 2 || !slices.Equal(r.Failed, []string{canary}) {
		t.Fatalf("rollout after the canary failed: %+v", r)
	}
	if svc.Generation != 3 || svc.Inputs["greeting"] != "" || svc.State != plan.StateDeploying {
		t.Fatalf("service after auto-revert: gen %d inputs %v state %s", svc.Generation, svc.Inputs, svc.State)
	}
	// Every agent's slice holds generation 1's plan again (at generation
	// 3): the others never changed, so their digests are the same.
	gen1 := h.fsm.State().generation("s", 1).Plan
	for _, np := range svc.Plan.Nodes {
		if got := h.sliceMsg(np.Agent); got != "hi" {
			t.Fatalf("%s after revert: %q", np.Agent, got)
		}
		for _, old := range gen1.Nodes {
			if old.Agent == np.Agent && old.Steps[0].Digest != np.Steps[0].Digest {
				t.Fatalf("%s: revert digest differs from generation 1's", np.Agent)
			}
		}
	}
	for _, a := range r.Order {
		h.reportSlice(a, plan.StepOK, 12)
	}
	if st := h.fsm.State().Service("s").State; st != plan.StateConverged {
		t.Fatalf("after the revert ran: %s", st)
	}
	hist, _ := h.fsm.State().History("s")
	if last := hist[0]; !strings.Contains(last.Message, "auto-revert to generation 1") {
		t.Fatalf("history: %+v", last)
	}
}

func TestRollout_FailureWithoutAutoRevertStopsAndFails(t *testing.T) {
	h := rolloutHarness(t, 4, nil)
	h.redeploy("bad", &plan.RolloutOverride{MaxParallel: "1"}, 10)
	first := h.rollout().Order[0]
	h.reportSlice(first, plan.StepFailed, 11)
	r := h.rollout()
	if r.Status != plan.RolloutFailed || r.Admitted != 1 {
		t.Fatalf("rollout: %+v", r)
	}
	if st := h.fsm.State().Service("s").State; st != plan.StateFailed {
		t.Fatalf("state = %s", st)
	}
	for _, a := range r.Order[1:] {
		if got := h.sliceMsg(a); got != "hi" {
			t.Fatalf("%s got the new plan after the rollout stopped", a)
		}
	}
	// max_failures tolerates failures.
	h.redeploy("bad2", &plan.RolloutOverride{MaxParallel: "1", MaxFailures: "50%"}, 20)
	r = h.rollout()
	h.reportSlice(r.Order[0], plan.StepFailed, 21)
	if r = h.rollout(); r.Status != plan.RolloutRunning || r.Admitted != 2 {
		t.Fatalf("one failure of 4 with max_failures 50%%: %+v", r)
	}
}

func TestRollout_MinHealthyTimeWaitsForTicks(t *testing.T) {
	h := rolloutHarness(t, 3, &plan.Rollout{MaxParallel: "1", MinHealthySeconds: 30})
	h.redeploy("new", nil, 10_000)
	r := h.rollout()
	h.reportSlice(r.Order[0], plan.StepOK, 11_000)
	st := h.fsm.State()
	if h.rollout().Admitted != 1 || st.RolloutDue(40_000) {
		t.Fatal("a node healthy for 29 s counted as done")
	}
	if !st.RolloutDue(41_000) {
		t.Fatal("no tick due after min_healthy_time")
	}
	h.mustApply(RolloutTickType, RolloutTickCmd{Time: 41_000})
	if r := h.rollout(); r.Admitted != 2 || st.RolloutDue(41_000) {
		t.Fatalf("after the tick: admitted %d, due %v", r.Admitted, st.RolloutDue(41_000))
	}
}

func TestRollout_ManualPromotePauseResumeAbort(t *testing.T) {
	h := rolloutHarness(t, 4, &plan.Rollout{MaxParallel: "2", Canary: "1", ManualPromote: true})
	h.redeploy("new", nil, 10)
	if err, _ := h.apply(RolloutType, RolloutCmd{Name: "s", Action: RolloutPromote}).(error); !errors.Is(err, ErrConflict) {
		t.Fatalf("promote before the canary is healthy: %v", err)
	}
	h.reportSlice(h.rollout().Order[0], plan.StepOK, 11)
	if r := h.rollout(); r.Status != plan.RolloutPromote || r.Admitted != 1 {
		t.Fatalf("healthy canary with manual promotion: %+v", r)
	}
	h.mustApply(RolloutType, RolloutCmd{Name: "s", Action: RolloutPause, Time: 12})
	h.mustApply(RolloutType, RolloutCmd{Name: "s", Action: RolloutPromote, Time: 13})
	if r := h.rollout(); !r.Promoted || r.Admitted != 1 || !r.Paused {
		t.Fatalf("promoted while paused admits nothing: %+v", r)
	}
	h.mustApply(RolloutType, RolloutCmd{Name: "s", Action: RolloutResume, Time: 14})
	if r := h.rollout(); r.Admitted != 3 {
		t.Fatalf("after resume: admitted %d, want 3 (canary + max_parallel 2)", r.Admitted)
	}
	h.mustApply(RolloutType, RolloutCmd{Name: "s", Action: RolloutAbort, Time: 15, Caller: Caller{By: "alice"}})
	r := h.rollout()
	if r.Status != plan.RolloutAborted || !strings.Contains(r.Reason, "alice") {
		t.Fatalf("after abort: %+v", r)
	}
	if got := h.sliceMsg(r.Order[3]); got != "hi" {
		t.Fatalf("the node not reached keeps the old plan after abort: %q", got)
	}
	if err, _ := h.apply(RolloutType, RolloutCmd{Name: "s", Action: RolloutResume}).(error); !errors.Is(err, ErrConflict) {
		t.Fatalf("resume after abort: %v", err)
	}
}

func TestRollout_RevertToAKeptGeneration(t *testing.T) {
	h := rolloutHarness(t, 2, nil)
	h.redeploy("two", nil, 10)
	for _, a := range []string{"w1", "w2"} {
		h.reportSlice(a, plan.StepOK, 11)
	}
	if err, _ := h.apply(RevertServiceType, RevertServiceCmd{Name: "s", To: 9}).(error); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "kept: 1 (converged), 2 (converged)") {
		t.Fatalf("revert to an unknown generation: %v", err)
	}
	h.mustApply(RevertServiceType, RevertServiceCmd{Name: "s", Time: 12})
	svc := h.fsm.State().Service("s")
	if svc.Generation != 3 || svc.Inputs["greeting"] != "" || h.sliceMsg("w1") != "hi" {
		t.Fatalf("revert: gen %d inputs %v msg %q", svc.Generation, svc.Inputs, h.sliceMsg("w1"))
	}
	hist, _ := h.fsm.State().History("s")
	if last := hist[0]; last.Message != "revert to generation 1" {
		t.Fatalf("history message %q", last.Message)
	}
}

func TestRollout_ContinuesAfterSnapshotRestore(t *testing.T) {
	h := rolloutHarness(t, 4, &plan.Rollout{MaxParallel: "1"})
	h.redeploy("new", nil, 10)
	h.reportSlice(h.rollout().Order[0], plan.StepOK, 11)
	before := h.rollout()
	snap, err := h.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t)
	h2.index, h2.seq = h.index, h.seq
	if err := h2.fsm.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	r := h2.rollout()
	if r.Admitted != before.Admitted || !slices.Equal(r.Order, before.Order) {
		t.Fatalf("restored rollout: %+v, want %+v", r, before)
	}
	// The restored state moves on from where it was: no batch again, none
	// skipped.
	h2.reportSlice(r.Order[1], plan.StepOK, 12)
	if got := h2.rollout().Admitted; got != 3 {
		t.Fatalf("admitted after the restore and one report: %d", got)
	}
	if h2.sliceMsg(r.Order[3]) != "hi" {
		t.Fatal("a node beyond the window got the new plan")
	}
}

func ptr[T any](v T) *T { return &v }

func TestRollout_AnswersCarryNoPlanValuesOfTheRollout(t *testing.T) {
	h := rolloutHarness(t, 2, nil)
	h.redeploy("secret-looking", &plan.RolloutOverride{MaxParallel: "1", AutoRevert: ptr(true)}, 10)
	st := h.fsm.State()
	svc := st.Service("s")
	if svc.Rollout.From == nil || svc.Rollout.RevertTo == nil {
		t.Fatal("the rollout keeps no plans")
	}
	b, _ := json.Marshal(st.Redact(svc))
	if strings.Contains(string(b), `"from"`) || strings.Contains(string(b), `"revert_to"`) {
		t.Fatalf("answer carries the rollout's plans: %s", b)
	}
}

// A node the rollout admits that waits for a step on a node it has not
// reached pulls that node in, so the rollout never waits on itself.
func TestRollout_PullsInTheNodeAnAdmittedNodeWaitsFor(t *testing.T) {
	m := rolloutModule(nil)
	m.Templates["t"].Nodes = []*plan.TemplateNode{
		{Name: "app", Group: true, Labels: map[string]string{"role": "web"}, Components: []*plan.Instance{
			{Name: "page", Component: "c", DependsOn: []string{"db/data"}, Attributes: map[string]plan.Expr{"msg": {Source: `input.greeting`}}},
		}},
		{Name: "db", Labels: map[string]string{"role": "db"}, Components: []*plan.Instance{
			{Name: "data", Component: "c", Attributes: map[string]plan.Expr{"msg": {Source: `input.greeting`}}},
		}},
	}
	h := newHarness(t)
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "w1", Labels: map[string]string{"role": "web"}}, Time: 1})
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "w2", Labels: map[string]string{"role": "db"}}, Time: 1})
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "w3", Labels: map[string]string{"role": "web"}}, Time: 1})
	h.mustApply(PutModuleType, PutModuleCmd{Module: m})
	h.mustApply(StageServiceType, StageServiceCmd{Name: "s", Module: "g", Version: "1.0.0", Template: "t", Time: 2})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "s", Time: 3, Rollout: &plan.RolloutOverride{AllAtOnce: true}})
	h.reportSlice("w2", plan.StepOK, 4)
	h.reportSlice("w1", plan.StepOK, 4)
	h.reportSlice("w3", plan.StepOK, 4)
	h.redeploy("new", &plan.RolloutOverride{MaxParallel: "1", Canary: "1"}, 10)
	r := h.rollout()
	// The canary comes from the larger group of changes (the two web
	// members): it waits for the db node's step.
	if r.Order[0] != "w1" {
		t.Fatalf("rollout order %v, want the web member w1 first", r.Order)
	}
	if r.Admitted != 2 || r.Order[1] != "w2" || h.sliceMsg("w2") != "new" || h.sliceMsg("w3") != "hi" {
		t.Fatalf("w1 waits for w2's step, but w2 was not pulled in: %+v", r)
	}
}
