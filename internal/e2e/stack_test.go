package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fileText(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// A three-level stack (environment → backend → frontend) on three agents,
// one of them outside the environment: the environment's injected
// monitoring reaches every node below it; unset inputs are filled from the
// nearest ancestor's exports; an output crosses nodes; a modification
// re-runs only what changed; a partial delete removes only its part; a
// recursive delete removes everything, leaves first.
func TestE2E_Stack_EnvironmentsInjectionOutputsPartialDelete(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const coordIP = "127.0.0.60"
	addr := coordIP + ":7070"
	startAgent(t, "coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"), "--serf-addr", coordIP+":7946")
	dirs := map[string]string{}
	for name, spec := range map[string]struct{ ip, role, stack string }{
		"a1": {"127.0.0.61", "web", "yes"}, "a2": {"127.0.0.62", "db", "yes"}, "a3": {"127.0.0.63", "web", "no"},
	} {
		dirs[name] = filepath.Join(root, name)
		startAgent(t, name, "--data-dir", dirs[name], "--serf-addr", spec.ip+":7946", "--join", coordIP+":7946",
			"--label", "role="+spec.role, "--label", "stack="+spec.stack)
	}
	waitLeader(t, addr)
	waitFor(t, 60*time.Second, "three nodes", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return strings.Count(out, `"status": "up"`) == 3
	})
	data := func(agent, rel string) string { return filepath.Join(dirs[agent], "agent", rel) }

	mustCtl(t, addr, "module", "push", "../../examples/stack")
	mustCtl(t, addr, "service", "stage", "env", "--template", "stack/env")
	mustCtl(t, addr, "service", "deploy", "env", "--wait")
	if fileText(data("a1", "stack/environment")) != "dev.example" || fileText(data("a2", "stack/environment")) != "dev.example" {
		t.Fatal("environment markers missing")
	}
	if fileText(data("a3", "stack/environment")) != "" {
		t.Fatal("a3 carries stack=no but was taken into the environment")
	}

	// Level 2: domain comes from env's export; the api page waits for the
	// db node's output; monitoring is injected on both nodes.
	mustCtl(t, addr, "service", "stage", "backend", "--template", "stack/backend", "--parent", "env")
	mustCtl(t, addr, "service", "deploy", "backend", "--wait")
	page := fileText(data("a1", "pages/api.txt"))
	if !strings.HasPrefix(page, "api.dev.example reads a2:") || !strings.HasSuffix(page, "/store/greeting") {
		t.Fatalf("api page = %q: want the domain from env and the location output of the db node", page)
	}
	if fileText(data("a3", "pages/api.txt")) != "" {
		t.Fatal("backend placed work on a3, outside its environment")
	}
	for _, a := range []string{"a1", "a2"} {
		if got := fileText(data(a, "monitor/backend.conf")); got != "endpoint=https://metrics.dev.example/ingest" {
			t.Fatalf("%s monitor/backend.conf = %q: injection from env missing", a, got)
		}
	}

	// Level 3: api_address from backend, domain from env (the grandparent).
	mustCtl(t, addr, "service", "stage", "frontend", "--template", "stack/frontend", "--parent", "backend")
	var pv struct {
		Inputs []struct {
			Name   string `json:"name"`
			Source string `json:"source"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal([]byte(mustCtl(t, addr, "service", "plan", "frontend", "--json")), &pv); err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{}
	for _, in := range pv.Inputs {
		sources[in.Name] = in.Source
	}
	if sources["api_address"] != "export of backend" || sources["domain"] != "export of env" {
		t.Fatalf("input provenance = %v", sources)
	}
	mustCtl(t, addr, "service", "deploy", "frontend", "--wait")
	if got := fileText(data("a1", "pages/home.txt")); got != "www.dev.example talks to 127.0.0.61" {
		t.Fatalf("home page = %q", got)
	}
	if fileText(data("a1", "monitor/frontend.conf")) == "" {
		t.Fatal("monitoring not injected into the grandchild")
	}

	// A modification re-runs only what changed.
	mustCtl(t, addr, "service", "set", "backend", "greeting=bonjour")
	planOut := mustCtl(t, addr, "service", "plan", "backend")
	// status reads data's output: it may run (if the value it reads is
	// new, which only data's run tells); the location it reads is not.
	if !strings.Contains(planOut, "~ data           (store)   create") ||
		!strings.Contains(planOut, "↻ status         (page)    create  [may run: reads output data of node db, which runs in this deploy]") {
		t.Fatalf("plan:\n%s", planOut)
	}
	mustCtl(t, addr, "service", "deploy", "backend", "--wait")
	st := getStatus(t, addr, "backend")
	got := stepStates(st)
	if got["data/create"] != "ok" || got["status/create"] != "skipped" || got["env.monitoring/create"] != "skipped" {
		t.Fatalf("after changing greeting: %v", got)
	}
	if fileText(data("a2", "store/greeting")) != "bonjour" {
		t.Fatal("store not updated")
	}

	// Partial delete: only the api page goes.
	mustCtl(t, addr, "service", "delete", "backend", "--component", "status", "--wait")
	if fileText(data("a1", "pages/api.txt")) != "" || fileText(data("a2", "store/greeting")) != "bonjour" {
		t.Fatal("partial delete removed the wrong things")
	}
	if st := getStatus(t, addr, "backend"); st.State != "converged" || stepStates(st)["status/create"] != "" {
		t.Fatalf("after partial delete: %s %v", st.State, stepStates(st))
	}

	// A parent with children cannot go alone; --recursive deletes leaves first.
	if _, errOut, code := ctl(t, addr, "service", "delete", "env"); code != 2 || !strings.Contains(errOut, "child services") {
		t.Fatalf("deleting a parent: exit %d %s", code, errOut)
	}
	mustCtl(t, addr, "service", "delete", "env", "--recursive", "--wait")
	waitFor(t, 60*time.Second, "every service gone", func() bool {
		out, _, _ := ctl(t, addr, "service", "list", "--json")
		return strings.TrimSpace(out) == "[]"
	})
	for _, p := range []string{data("a1", "pages/home.txt"), data("a1", "monitor/frontend.conf"), data("a2", "monitor/backend.conf"),
		data("a2", "store/greeting"), data("a1", "stack/environment"), data("a2", "stack/environment")} {
		if fileText(p) != "" {
			t.Fatalf("%s still there after the recursive delete", p)
		}
	}
}
