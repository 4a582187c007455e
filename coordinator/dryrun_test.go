package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// dryRunModule is a web group: a page naming its node (with a sensitive
// token) and a server whose port a node's label may set.
const dryRunModule = `
module {
  name    = "fleet"
  version = "1.0.0"
}

component "page" {
  attribute "message" {
    type     = string
    required = true
  }
  attribute "token" {
    type      = string
    sensitive = true
  }
  create {
    inline = "echo page"
  }
}

component "server" {
  attribute "port" {
    type = number
  }
  create {
    inline = "echo serve"
  }
}

template "site" {
  input "greeting" {
    type    = string
    default = "Hello"
  }
  input "token" {
    type      = string
    default   = "t0-s3cr3t"
    sensitive = true
  }
  node_group "web" {
    labels = { role = "web" }
    component "page" "index" {
      message = "${input.greeting} from ${self.name}"
      token   = input.token
    }
    component "server" "site" {
      port = lookup(self.labels, "port", 8080)
    }
  }
}
`

func pushDryRunModule(t *testing.T, s *Server) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(dryRunModule), 0o644); err != nil {
		t.Fatal(err)
	}
	push(t, s, dir)
}

// A dry run's answer groups its agents: none has answered at first; then
// the agents whose page message changes, the one whose port label also
// changes its server, and the one that was down. No answer carries the
// sensitive token, old or new.
func TestHTTP_DryRun_Clusters(t *testing.T) {
	s := startServer(t)
	c := api.NewClient(s.HTTPAddr())
	ctx := context.Background()
	pushDryRunModule(t, s)
	for _, n := range []string{"w1", "w2", "w3", "w4"} {
		if err := c.RegisterNode(ctx, nodeWith(n, "web")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Stage(ctx, api.StageRequest{Name: "site", Template: "fleet/site"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deploy(ctx, "site"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetInputs(ctx, "site", map[string]string{"greeting": "Hi", "token": "n3w-s3cr3t"}); err != nil {
		t.Fatal(err)
	}
	w3 := nodeWith("w3", "web")
	w3.Labels["port"] = "9090"
	if err := c.RegisterNode(ctx, w3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.apply(NodeStatusType, NodeStatusCmd{Updates: []NodeStatusUpdate{{Name: "w4", Status: plan.NodeDown}}}); err != nil {
		t.Fatal(err)
	}

	op, err := c.StartOp(ctx, "site", plan.OpDryRun, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.OpStatus(ctx, op.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Clusters) != 1 || st.Clusters[0].Key != plan.ClusterCannotPredict || !reflect.DeepEqual(st.Clusters[0].Agents, []string{"w1", "w2", "w3", "w4"}) ||
		st.BaseGeneration != 1 {
		t.Fatalf("before any answer: %+v", st)
	}

	// The agents answer: the steps they have converged are not run,
	// every other would run (bash cannot predict).
	done := map[string]string{}
	for _, np := range s.State().Service("site").Plan.Nodes {
		for _, step := range np.Steps {
			done[step.ID] = step.Digest
		}
	}
	for agent, steps := range op.Steps {
		var reps []plan.Report
		for _, step := range steps {
			pred := plan.PredictCannot
			if done[step.ID] == step.Digest {
				pred = plan.PredictUnchangedPlan
			}
			reps = append(reps, plan.Report{Node: agent, Service: "site", StepID: step.ID, Action: step.Action, State: plan.StepOK, Prediction: pred})
		}
		if err := c.OpResults(ctx, agent, op.ID, reps, true); err != nil {
			t.Fatal(err)
		}
	}
	raw := mustGet(t, "http://"+s.HTTPAddr()+"/v1/ops/"+op.ID)
	for _, secret := range []string{"t0-s3cr3t", "n3w-s3cr3t"} {
		if strings.Contains(raw, secret) {
			t.Fatalf("the sensitive token %q is in the answer", secret)
		}
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatal(err)
	}
	if st.ID != op.ID || len(st.Done) != 3 {
		t.Fatalf("the op's own fields: %+v", st.Op)
	}
	got := map[string][]string{}
	for _, cl := range st.Clusters {
		got[strings.Join(cl.Summary, " | ")] = cl.Agents
	}
	const msg = `web/index: message "Hello from {node}" → "Hi from {node}", token changes (sensitive) — would run (cannot predict)`
	want := map[string][]string{
		msg: {"w1", "w2"},
		msg + " | web/site: port 8080 → 9090 — would run (cannot predict)": {"w3"},
		"cannot predict: 1 node down when the dry run started":             {"w4"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("clusters:\n%q", got)
	}
	if st.Clusters[0].Agents[0] != "w1" || st.Clusters[0].Predictions["web/index/create"] != plan.PredictCannot {
		t.Fatalf("largest first, with predictions: %+v", st.Clusters[0])
	}

	// The clusters alone, as of the op's index; an op other than a dry
	// run has none.
	dc, err := c.DryRunClusters(ctx, op.ID, st.Index)
	if err != nil || !reflect.DeepEqual(dc.Clusters, st.Clusters) || dc.Index != st.Index || dc.BaseGeneration != 1 || dc.Service != "site" {
		t.Fatalf("clusters alone: %+v %v", dc, err)
	}
	cancel, err := c.StartOp(ctx, "site", plan.OpCancel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DryRunClusters(ctx, cancel.ID, 0); code(err) != 409 || !strings.Contains(err.Error(), "a cancel, not a dry run") {
		t.Fatalf("clusters of a cancel: %v", err)
	}

	// A brief answer, to follow the op: every agent named, no steps, no
	// clusters; the results are there.
	brief := mustGet(t, "http://"+s.HTTPAddr()+"/v1/ops/"+op.ID+"?brief=1")
	var b api.OpStatus
	if err := json.Unmarshal([]byte(brief), &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Steps) != 3 || b.Steps["w1"] != nil || len(b.Results) != len(st.Results) || b.Clusters != nil || strings.Contains(brief, `"attributes"`) {
		t.Fatalf("brief answer: %s", brief)
	}
}

func mustGet(t *testing.T, url string) string {
	t.Helper()
	a := call(t, http.DefaultClient, "GET", url, "")
	if a.code != 200 {
		t.Fatalf("GET %s: %d %s", url, a.code, a.body)
	}
	return a.body
}

// dryRunHarness is a state with 1,000 workers of groupModule deployed, and
// a dry run of its next generation created.
func dryRunHarness(tb testing.TB) (*fsmHarness, *plan.Op) {
	h := newHarness(tb)
	h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "db1", Labels: map[string]string{"role": "db"}}, Time: 1})
	for i := range 1000 {
		h.mustApply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: fmt.Sprintf("w%04d", i), Labels: map[string]string{"role": "w"}}, Time: 1})
	}
	h.mustApply(PutModuleType, PutModuleCmd{Module: groupModule()})
	h.mustApply(StageServiceType, StageServiceCmd{Name: "g", Module: "g", Version: "1.0.0", Template: "t", Time: 2})
	h.mustApply(DeployServiceType, DeployServiceCmd{Name: "g"})
	steps, err := h.fsm.State().opSteps("g", &api.OpRequest{}, plan.OpDryRun)
	if err != nil {
		tb.Fatal(err)
	}
	op := h.mustApply(CreateOpType, CreateOpCmd{Op: plan.Op{ID: "op1", Kind: plan.OpDryRun, Service: "g", Created: 3, Steps: steps}}).(*plan.Op)
	return h, op
}

// BenchmarkFSM_DryRunResults_1000Agents times the Apply of every agent's
// answer to a dry run of 1,000 agents (one message per agent, its
// predictions and final together), in entries of opBatchMax answers as
// the leader's batcher makes them at most: what each replica pays.
func BenchmarkFSM_DryRunResults_1000Agents(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		h, op := dryRunHarness(b)
		b.StartTimer()
		var batch []OpResultsCmd
		for _, agent := range slices.Sorted(maps.Keys(op.Steps)) {
			var reps []plan.Report
			for _, st := range op.Steps[agent] {
				reps = append(reps, plan.Report{Node: agent, Service: "g", StepID: st.ID, Action: st.Action, State: plan.StepOK, Prediction: plan.PredictCannot})
			}
			batch = append(batch, OpResultsCmd{ID: op.ID, Node: agent, Reports: reps, Final: true, Time: 4})
			if len(batch) == opBatchMax {
				h.mustApply(OpResultsBatchType, OpResultsBatchCmd{Results: batch})
				batch = nil
			}
		}
		h.mustApply(OpResultsBatchType, OpResultsBatchCmd{Results: batch})
	}
}

// A blocking read of an op this coordinator has not applied yet (a
// follower that forwarded its creation) waits for it rather than saying
// it does not exist.
func TestState_WaitOpKnown_WaitsForACreatedOp(t *testing.T) {
	h, _ := dryRunHarness(t)
	got := make(chan bool, 1)
	go func() { got <- h.fsm.State().waitOpKnown(make(chan struct{}), "op2") }()
	h.mustApply(CreateOpType, CreateOpCmd{Op: plan.Op{ID: "op2", Kind: plan.OpCancel, Service: "g", Created: 4, Steps: map[string][]*plan.Step{"w0001": {}}}})
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("the op is not known after its creation")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the op was created")
	}
	done := make(chan struct{})
	close(done)
	if h.fsm.State().waitOpKnown(done, "never") {
		t.Fatal("an op that was never created is known")
	}
}
