package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const recursiveModule = `module {
  name    = "recur"
  version = "1.0.0"
}

component "mark" {
  attribute "msg" {
    type     = string
    required = true
  }
  create {
    inline = "echo \"$DTK_STEP $msg\" >> \"$DTK_DATA_DIR/runs\""
  }
  delete {
    inline = "true"
  }
}

# The environment: both agents, and the zone it offers its children.
template "net" {
  input "zone" {
    type    = string
    default = "a"
  }
  node_group "all" {
    labels = { stack = "yes" }
    component "mark" "base" { msg = "zone ${input.zone}" }
  }
  export "zone" {
    value = input.zone
  }
}

# Reads the zone in one component, not in the other.
template "app" {
  input "zone" {
    type = string
  }
  node "front" {
    labels = { role = "web" }
    component "mark" "consumer" { msg = "serving ${input.zone}" }
    component "mark" "fixed" { msg = "fixed" }
  }
}

# Reads nothing of its environment.
template "other" {
  node "back" {
    labels = { role = "db" }
    component "mark" "store" { msg = "store" }
  }
}
`

// recursiveStatus is the part of `service status --json` this test reads.
type recursiveStatus struct {
	State      string   `json:"state"`
	Generation uint64   `json:"generation"`
	Stale      []string `json:"stale"`
	Nodes      []struct {
		Steps []struct {
			ID         string `json:"id"`
			State      string `json:"state"`
			Generation uint64 `json:"generation"`
			Changed    bool   `json:"changed"`
			StartedAt  int64  `json:"started_at_ms"`
		} `json:"steps"`
	} `json:"nodes"`
	Recursive *struct {
		Status   string `json:"status"`
		Services []struct {
			Name       string `json:"name"`
			Result     string `json:"result"`
			Generation uint64 `json:"generation"`
		} `json:"services"`
	} `json:"recursive_deploy"`
}

type stepReport struct {
	State      string
	Generation uint64
	Changed    bool
	StartedAt  int64
}

func recursiveStatusOf(t *testing.T, addr, name string) recursiveStatus {
	t.Helper()
	var st recursiveStatus
	if err := json.Unmarshal([]byte(mustCtl(t, addr, "service", "status", name, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (st recursiveStatus) step(id string) stepReport {
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			if s.ID == id {
				return stepReport{s.State, s.Generation, s.Changed, s.StartedAt}
			}
		}
	}
	return stepReport{}
}

// runsOfStep counts the runs of a step in an agent's runs file.
func runsOfStep(dataDir, id string) int {
	b, _ := os.ReadFile(filepath.Join(dataDir, "agent", "runs"))
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, id+" ") {
			n++
		}
	}
	return n
}

// An environment's export changes: the child that reads it is marked stale
// (the one that does not, is not), its plan shows the parent's pending
// change with provenance, and a recursive deploy from the environment
// re-runs exactly the child's step that reads it, on real agents; started
// without --wait, the coordinator carries it through on its own.
func TestE2E_Recursive_StaleChildAndRecursiveDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const coordIP = "127.0.0.236"
	addr := coordIP + ":7070"
	startAgent(t, "coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"), "--serf-addr", coordIP+":7946")
	dirs := map[string]string{"a1": filepath.Join(root, "a1"), "a2": filepath.Join(root, "a2")}
	startAgent(t, "a1", "--data-dir", dirs["a1"], "--serf-addr", "127.0.0.237:7946", "--join", coordIP+":7946", "--label", "stack=yes", "--label", "role=web")
	startAgent(t, "a2", "--data-dir", dirs["a2"], "--serf-addr", "127.0.0.238:7946", "--join", coordIP+":7946", "--label", "stack=yes", "--label", "role=db")
	waitLeader(t, addr)
	waitFor(t, 60*time.Second, "two nodes up", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return strings.Count(out, `"status": "up"`) == 2
	})
	mod := filepath.Join(root, "recur")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "main.hcl"), []byte(recursiveModule), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, addr, "module", "push", mod)
	mustCtl(t, addr, "service", "stage", "net", "--template", "recur/net")
	mustCtl(t, addr, "service", "deploy", "net", "--wait")
	mustCtl(t, addr, "service", "stage", "app", "--template", "recur/app", "--parent", "net")
	mustCtl(t, addr, "service", "deploy", "app", "--wait")
	mustCtl(t, addr, "service", "stage", "other", "--template", "recur/other", "--parent", "net")
	mustCtl(t, addr, "service", "deploy", "other", "--wait")
	const consumer, fixed, store = "app/front/consumer/create", "app/front/fixed/create", "other/back/store/create"
	before := recursiveStatusOf(t, addr, "app")
	if before.step(consumer).State != "ok" || before.step(fixed).State != "ok" || runsOfStep(dirs["a1"], consumer) != 1 {
		t.Fatalf("app after its first deploy: %+v", before)
	}

	// A staged change of net: app's plan shows what it will do to app.
	mustCtl(t, addr, "service", "set", "net", "zone=b")
	planOut := mustCtl(t, addr, "service", "plan", "app")
	for _, want := range []string{
		`zone = "b"  ← export of net (pending change)`,
		"~ consumer (mark) create", "= fixed    (mark) create",
		`← input zone (export of net, pending change)`,
		`"dtkctl service deploy net --recursive"`,
	} {
		if !strings.Contains(planOut, want) {
			t.Fatalf("plan of app lacks %q:\n%s", want, planOut)
		}
	}
	if alone := mustCtl(t, addr, "service", "plan", "app", "--without-pending"); !strings.Contains(alone, "0 to add, 0 to change, 0 to remove, 2 unchanged") {
		t.Fatalf("plan of app without pending changes:\n%s", alone)
	}

	// Deployed alone, net's new export makes app stale, not other.
	mustCtl(t, addr, "service", "deploy", "net", "--wait")
	if st := recursiveStatusOf(t, addr, "app"); strings.Join(st.Stale, ",") != "export zone of net" {
		t.Fatalf("app stale = %v", st.Stale)
	}
	if st := recursiveStatusOf(t, addr, "other"); len(st.Stale) != 0 {
		t.Fatalf("other stale = %v: it reads nothing of net", st.Stale)
	}
	list := mustCtl(t, addr, "service", "list")
	if !strings.Contains(list, "STALE") || !strings.Contains(list, "export zone of net") {
		t.Fatalf("service list:\n%s", list)
	}
	if ev := mustCtl(t, addr, "events", "--service", "app"); !strings.Contains(ev, "service-stale") {
		t.Fatalf("events of app:\n%s", ev)
	}

	// The recursive deploy: net again (nothing to run), then app, which
	// re-runs the step that reads the zone only; other is passed over.
	otherGen := recursiveStatusOf(t, addr, "other").Generation
	out := mustCtl(t, addr, "service", "deploy", "net", "--recursive", "--wait")
	for _, want := range []string{"  app: converged at generation 2", "  other: unchanged at generation 1", "net and the services below it converged"} {
		if !strings.Contains(out, want) {
			t.Fatalf("deploy --recursive output lacks %q:\n%s", want, out)
		}
	}
	after := recursiveStatusOf(t, addr, "app")
	c, f := after.step(consumer), after.step(fixed)
	if after.State != "converged" || after.Generation != 2 || len(after.Stale) != 0 {
		t.Fatalf("app after the recursive deploy: %s generation %d stale %v", after.State, after.Generation, after.Stale)
	}
	if c.State != "ok" || c.Generation != 2 || !c.Changed || c.StartedAt <= before.step(consumer).StartedAt {
		t.Fatalf("consumer step: %+v (before %+v): want a new run at generation 2", c, before.step(consumer))
	}
	if f.State != "skipped" || f.Changed {
		t.Fatalf("fixed step: %+v: want skipped (unchanged)", f)
	}
	if runsOfStep(dirs["a1"], consumer) != 2 || runsOfStep(dirs["a1"], fixed) != 1 || runsOfStep(dirs["a2"], store) != 1 {
		t.Fatalf("runs: consumer %d, fixed %d, store %d; want 2, 1, 1", runsOfStep(dirs["a1"], consumer),
			runsOfStep(dirs["a1"], fixed), runsOfStep(dirs["a2"], store))
	}
	if got := recursiveStatusOf(t, addr, "other").Generation; got != otherGen {
		t.Fatalf("other deployed (generation %d → %d) although its plan does not change", otherGen, got)
	}
	hist := mustCtl(t, addr, "service", "history", "net")
	if !strings.Contains(hist, "deploy-recursive") || !strings.Contains(hist, "unchanged: other") {
		t.Fatalf("history of net:\n%s", hist)
	}

	// Without --wait the command returns at once; the coordinator carries
	// the recursive deploy through.
	mustCtl(t, addr, "service", "set", "net", "zone=c")
	mustCtl(t, addr, "service", "deploy", "net", "--recursive")
	waitFor(t, 2*time.Minute, "the recursive deploy from net to finish", func() bool {
		st := recursiveStatusOf(t, addr, "net")
		return st.Recursive != nil && st.Recursive.Status != "running" && st.Recursive.Services[0].Generation == st.Generation
	})
	if st := recursiveStatusOf(t, addr, "net"); st.Recursive.Status != "converged" {
		t.Fatalf("recursive deploy: %+v", st.Recursive)
	}
	if runsOfStep(dirs["a1"], consumer) != 3 || runsOfStep(dirs["a1"], fixed) != 1 {
		t.Fatalf("after zone=c: consumer ran %d times, fixed %d", runsOfStep(dirs["a1"], consumer), runsOfStep(dirs["a1"], fixed))
	}
}
