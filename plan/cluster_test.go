package plan_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/dsl"
	"github.com/dtkhq/dtk/plan"
)

// clusterModule's site is a web group (a page whose message names the
// node, with a sensitive token; a server on the node's address and a port
// its label may set) and a db group (a page naming the node and its
// address); templates web and db are each group alone.
const clusterModule = `
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
    default   = ""
    sensitive = true
  }
  create {
    inline = "echo page"
  }
  delete {
    inline = "echo rm"
  }
}

component "server" {
  attribute "address" {
    type     = string
    required = true
  }
  attribute "port" {
    type    = number
    default = 8080
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
  input "port" {
    type    = number
    default = 8080
  }
  node_group "web" {
    labels = { role = "web" }
    component "page" "index" {
      message = "${input.greeting} from ${self.name}"
      token   = input.token
    }
    component "server" "site" {
      address = self.address
      port    = lookup(self.labels, "port", input.port)
    }
  }
  node_group "db" {
    labels = { role = "db" }
    component "page" "status" {
      message = "db ${self.name} at ${self.address}"
    }
  }
}

template "web" {
  input "greeting" {
    type    = string
    default = "Hello"
  }
  input "token" {
    type      = string
    default   = "t0-s3cr3t"
    sensitive = true
  }
  input "port" {
    type    = number
    default = 8080
  }
  node_group "web" {
    labels = { role = "web" }
    component "page" "index" {
      message = "${input.greeting} from ${self.name}"
      token   = input.token
    }
    component "server" "site" {
      address = self.address
      port    = lookup(self.labels, "port", input.port)
    }
  }
}

template "db" {
  node_group "db" {
    labels = { role = "db" }
    component "page" "status" {
      message = "db ${self.name} at ${self.address}"
    }
  }
}
`

type clusterFixture struct {
	mod      *plan.Module
	template string
	nodes    []*plan.Node
}

func newClusterFixture(t testing.TB, template string) *clusterFixture {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(clusterModule), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := dsl.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Digest = "sha256:fake"
	return &clusterFixture{mod: m, template: template}
}

// node registers an agent: its role, its own address, and labels.
func (f *clusterFixture) node(name, role string, labels ...string) {
	l := map[string]string{"role": role}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	f.nodes = append(f.nodes, &plan.Node{Name: name, Labels: l, Status: plan.NodeUp,
		Facts: plan.Facts{Address: fmt.Sprintf("10.0.%d.%d", len(f.nodes)/200, len(f.nodes)%200+1)}})
}

func (f *clusterFixture) compile(t testing.TB, gen uint64, prev *plan.Plan, inputs map[string]string) *plan.Plan {
	t.Helper()
	svc := &plan.Service{Name: "site", Module: "fleet", Version: "1.0.0", Template: f.template, Inputs: inputs, State: plan.StateStaged}
	p, viol := plan.Compile(plan.CompileInput{Service: svc, Module: f.mod, Modules: map[string]*plan.Module{"fleet@1.0.0": f.mod},
		Nodes: f.nodes, Generation: gen, Previous: prev, Done: map[string]string{}})
	if viol != nil {
		t.Fatal(viol)
	}
	return p
}

// predictAll is every agent predicting pred for every step it runs (and
// "unchanged (not run)" for the steps whose digest it has converged at,
// those of old).
func predictAll(old, next *plan.Plan, pred string) map[string]map[string]string {
	done := map[string]string{}
	if old != nil {
		for _, np := range old.Nodes {
			for _, st := range np.Steps {
				done[st.ID] = st.Digest
			}
		}
	}
	out := map[string]map[string]string{}
	for _, np := range next.Nodes {
		m := map[string]string{}
		for _, st := range np.Steps {
			if st.Action == "create" && done[st.ID] == st.Digest {
				m[st.ID] = plan.PredictUnchangedPlan
			} else {
				m[st.ID] = pred
			}
		}
		out[np.Agent] = m
	}
	return out
}

func sizes(cs []plan.Cluster) []int {
	var out []int
	for _, c := range cs {
		out = append(out, len(c.Agents))
	}
	return out
}

// Three kinds of node: web nodes whose page message changes (its value
// names the node, which is no part of the change), web nodes whose port
// label differs so that their server changes too, and db nodes the change
// leaves alone.
func TestClusters_ThreeKinds(t *testing.T) {
	f := newClusterFixture(t, "site")
	for i := range 12 {
		f.node(fmt.Sprintf("web-%02d", i), "web")
	}
	for i := range 3 {
		f.node(fmt.Sprintf("odd-%d", i), "web", "port", "9090")
	}
	for i := range 2 {
		f.node(fmt.Sprintf("db-%d", i), "db")
	}
	old := f.compile(t, 1, nil, map[string]string{"port": "9090"})
	next := f.compile(t, 2, old, map[string]string{"greeting": "Hi"})

	cs := plan.Clusters(old, next, nil)
	if got := sizes(cs); !reflect.DeepEqual(got, []int{12, 3, 2}) {
		t.Fatalf("sizes %v: %+v", got, cs)
	}
	want := []struct {
		key     string
		summary []string
		first   string
	}{
		{"", []string{`web/index: message "Hello from {node}" → "Hi from {node}"`, "web/site: port 9090 → 8080"}, "web-00"},
		{"", []string{`web/index: message "Hello from {node}" → "Hi from {node}"`}, "odd-0"},
		{plan.ClusterUnchanged, []string{"no change"}, "db-0"},
	}
	for i, w := range want {
		c := cs[i]
		if w.key != "" && c.Key != w.key || w.key == "" && (len(c.Key) != 17 || c.Key[0] != 'c') {
			t.Errorf("cluster %d: key %q", i, c.Key)
		}
		if !reflect.DeepEqual(c.Summary, w.summary) {
			t.Errorf("cluster %d: summary %q, want %q", i, c.Summary, w.summary)
		}
		if c.Agents[0] != w.first || !slices.IsSorted(c.Agents) {
			t.Errorf("cluster %d: agents %v", i, c.Agents)
		}
		if c.Predictions != nil {
			t.Errorf("cluster %d: predictions without a dry run: %v", i, c.Predictions)
		}
	}
}

// The same change shows its values when every agent has the same, and
// only the edit when the values hold each node's own address.
func TestClusters_ValuesShownOnlyWhenShared(t *testing.T) {
	f := newClusterFixture(t, "web")
	for i := range 4 {
		f.node(fmt.Sprintf("web-%d", i), "web")
	}
	old := f.compile(t, 1, nil, nil)
	next := f.compile(t, 2, old, map[string]string{"port": "8081"})
	cs := plan.Clusters(old, next, nil)
	if len(cs) != 1 || !reflect.DeepEqual(cs[0].Summary, []string{"web/site: port 8080 → 8081"}) {
		t.Fatalf("%+v", cs)
	}

	// A db node's message holds its address: a change of the text
	// around it is one change, shown as the edit.
	f = newClusterFixture(t, "db")
	for i := range 4 {
		f.node(fmt.Sprintf("db-%d", i), "db")
	}
	old = f.compile(t, 1, nil, nil)
	next = clonePlan(t, old)
	for _, np := range next.Nodes {
		st := np.Steps[0]
		st.Attributes["message"] = json.RawMessage(strings.Replace(string(st.Attributes["message"]), "db ", "database ", 1))
		st.Digest += "-2"
	}
	cs = plan.Clusters(old, next, nil)
	if len(cs) != 1 || !reflect.DeepEqual(cs[0].Summary, []string{"db/status: message changes (db → database)"}) {
		t.Fatalf("%+v", cs)
	}
}

// A sensitive value's change is a change, but neither its value nor an
// edit of it appears in a summary, a key or a prediction; two different
// new secrets on two nodes are still one change.
func TestClusters_SensitiveValuesNeverShown(t *testing.T) {
	f := newClusterFixture(t, "web")
	for i := range 3 {
		f.node(fmt.Sprintf("web-%d", i), "web")
	}
	old := f.compile(t, 1, nil, nil)
	next := f.compile(t, 2, old, map[string]string{"token": "n3w-s3cr3t"})
	// One node gets another secret still (as a per-node secret would).
	for _, st := range next.Nodes[2].Steps {
		if st.Instance == "index" {
			st.Attributes["token"] = json.RawMessage(`"0th3r-s3cr3t"`)
		}
	}
	preds := predictAll(old, next, plan.PredictChange)
	for _, p := range []map[string]map[string]string{nil, preds} {
		cs := plan.Clusters(old, next, p)
		if len(cs) != 1 || len(cs[0].Agents) != 3 {
			t.Fatalf("%+v", cs)
		}
		b, _ := json.Marshal(cs)
		for _, secret := range []string{"s3cr3t", "t0-", "n3w", "0th3r"} {
			if strings.Contains(string(b), secret) {
				t.Fatalf("%q leaked: %s", secret, b)
			}
		}
		if !strings.Contains(cs[0].Summary[0], "token changes (sensitive)") {
			t.Fatalf("%q", cs[0].Summary)
		}
	}
}

// Predictions split what the plan alone cannot tell: a step that would
// fail on some nodes, a node that has not converged a step the plan
// leaves alone, and nodes that did not answer.
func TestClusters_Predictions(t *testing.T) {
	f := newClusterFixture(t, "web")
	for i := range 6 {
		f.node(fmt.Sprintf("web-%d", i), "web")
	}
	old := f.compile(t, 1, nil, nil)
	next := f.compile(t, 2, old, map[string]string{"greeting": "Hi"})
	preds := predictAll(old, next, plan.PredictCannot)
	idx := func(agent string) string { return "site/web[" + agent + "]/index/create" }
	site := func(agent string) string { return "site/web[" + agent + "]/site/create" }
	preds["web-1"][idx("web-1")] = "would fail"
	preds["web-2"][site("web-2")] = plan.PredictChange // not converged there
	delete(preds, "web-3")                             // no answer
	delete(preds["web-4"], site("web-4"))              // cut short

	cs := plan.Clusters(old, next, preds)
	got := map[string][]string{}
	for _, c := range cs {
		got[strings.Join(c.Summary, " | ")] = c.Agents
	}
	const msg = `web/index: message "Hello from {node}" → "Hi from {node}"`
	want := map[string][]string{
		msg + " — would run (cannot predict)": {"web-0", "web-5"},
		msg + " — would fail":                 {"web-1"},
		msg + " — would run (cannot predict) | web/site: unchanged in the plan, but not converged on the node: runs again — would change": {"web-2"},
		"cannot predict: no answer": {"web-3", "web-4"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if len(cs) != 4 || len(cs[0].Agents) != 2 || len(cs[1].Agents) != 2 || cs[0].Key >= cs[1].Key {
		t.Fatalf("order: %+v", cs)
	}
	for _, c := range cs {
		if c.Key == plan.ClusterCannotPredict {
			continue
		}
		if p := c.Predictions["web/index/create"]; p == "" || len(c.Predictions) != len(c.Summary) {
			t.Errorf("%s: predictions %v", c.Key, c.Predictions)
		}
	}
}

// Steps added and removed, a node leaving the group (its steps dropped:
// the server has no delete action) and one joining.
func TestClusters_AddedAndRemoved(t *testing.T) {
	f := newClusterFixture(t, "web")
	f.node("web-a", "web")
	f.node("web-b", "web")
	old := f.compile(t, 1, nil, nil)
	f.nodes[1].Labels["role"] = "gone"
	f.node("web-c", "web")
	next := f.compile(t, 2, old, nil)
	got := map[string][]string{}
	for _, c := range plan.Clusters(old, next, nil) {
		got[strings.Join(c.Summary, " | ")] = c.Agents
	}
	want := map[string][]string{
		"no change":                                          {"web-a"},
		"web/index: removed | web/site: removed":             {"web-b"},
		"web/index: added (page) | web/site: added (server)": {"web-c"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	// Before the first deploy everything is added.
	cs := plan.Clusters(nil, old, nil)
	if len(cs) != 1 || len(cs[0].Agents) != 2 || cs[0].Summary[0] != "web/index: added (page)" {
		t.Fatalf("%+v", cs)
	}
}

// The same plans give the same clusters whatever the order of the nodes
// in the plans and of the predictions' maps, and identical changes on
// 1,000 nodes are one cluster.
func TestClusters_Deterministic(t *testing.T) {
	f := newClusterFixture(t, "site")
	for i := range 900 {
		f.node(fmt.Sprintf("web-%04d", i), "web")
	}
	for i := range 60 {
		f.node(fmt.Sprintf("odd-%04d", i), "web", "port", "9090")
	}
	for i := range 40 {
		f.node(fmt.Sprintf("db-%04d", i), "db")
	}
	old := f.compile(t, 1, nil, nil)
	next := f.compile(t, 2, old, map[string]string{"greeting": "Hi", "port": "8081"})
	preds := predictAll(old, next, plan.PredictCannot)
	first := plan.Clusters(old, next, preds)
	if got := sizes(first); !reflect.DeepEqual(got, []int{900, 60, 40}) {
		t.Fatalf("sizes %v", got)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		o, n := clonePlan(t, old), clonePlan(t, next)
		rng.Shuffle(len(o.Nodes), func(i, j int) { o.Nodes[i], o.Nodes[j] = o.Nodes[j], o.Nodes[i] })
		rng.Shuffle(len(n.Nodes), func(i, j int) { n.Nodes[i], n.Nodes[j] = n.Nodes[j], n.Nodes[i] })
		if again := plan.Clusters(o, n, preds); !reflect.DeepEqual(again, first) {
			t.Fatalf("shuffled nodes give other clusters")
		}
	}
}

func TestClusters_Empty(t *testing.T) {
	if cs := plan.Clusters(nil, nil, nil); len(cs) != 0 {
		t.Fatalf("%+v", cs)
	}
}

func clonePlan(t testing.TB, p *plan.Plan) *plan.Plan {
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var cp plan.Plan
	if err := json.Unmarshal(b, &cp); err != nil {
		t.Fatal(err)
	}
	return &cp
}

// BenchmarkClusters_1000Nodes_ThreeKinds is the coordinator's part of a
// dry run's answer on 1,000 nodes.
func BenchmarkClusters_1000Nodes_ThreeKinds(b *testing.B) {
	f := newClusterFixture(b, "site")
	for i := range 900 {
		f.node(fmt.Sprintf("web-%04d", i), "web")
	}
	for i := range 60 {
		f.node(fmt.Sprintf("odd-%04d", i), "web", "port", "9090")
	}
	for i := range 40 {
		f.node(fmt.Sprintf("db-%04d", i), "db")
	}
	old := f.compile(b, 1, nil, nil)
	next := f.compile(b, 2, old, map[string]string{"greeting": "Hi", "port": "8081"})
	preds := predictAll(old, next, plan.PredictCannot)
	for b.Loop() {
		plan.Clusters(old, next, preds)
	}
}

// Among clusters of one size, changes come first, then the nodes that
// cannot predict, then the unchanged ones, whatever their keys' digests.
func TestSortClusters_ChangesBeforeCannotPredictBeforeUnchanged(t *testing.T) {
	cs := []plan.Cluster{
		{Key: plan.ClusterUnchanged, Agents: []string{"u"}},
		{Key: plan.ClusterCannotPredict, Agents: []string{"p"}},
		{Key: "cffff000000000000", Agents: []string{"x"}},
		{Key: "c0000000000000000", Agents: []string{"y"}},
		{Key: plan.ClusterUnchanged, Agents: []string{"a", "b"}},
	}
	plan.SortClusters(cs)
	var got []string
	for _, c := range cs {
		got = append(got, c.Key)
	}
	want := []string{plan.ClusterUnchanged, "c0000000000000000", "cffff000000000000", plan.ClusterCannotPredict, plan.ClusterUnchanged}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}
