package e2e

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A dry run on four real agents groups them by the change the deploy
// would make: two whose page message changes (each its own message, one
// change), one whose operator-set port label also changes its server, and
// one that is down and cannot predict. It changes nothing, and the new
// sensitive token shows nowhere. Addresses 127.0.0.162–.164 and .167–.168
// (.160, .161, .165 and .166 are the security tests').
func TestE2E_DryRun_ClustersNodesByChange(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const coordIP = "127.0.0.162"
	addr := coordIP + ":7070"
	startAgent(t, "coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"), "--serf-addr", coordIP+":7946")
	ips := map[string]string{"a1": "127.0.0.163", "a2": "127.0.0.164", "a3": "127.0.0.167", "a4": "127.0.0.168"}
	agents := map[string]*proc{}
	for _, name := range []string{"a1", "a2", "a3", "a4"} {
		agents[name] = startAgent(t, name, "--data-dir", filepath.Join(root, name), "--serf-addr", ips[name]+":7946", "--join", coordIP+":7946", "--label", "role=web")
	}
	waitLeader(t, addr)
	waitFor(t, 60*time.Second, "four nodes up", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return strings.Count(out, `"status": "up"`) == 4
	})
	mustCtl(t, addr, "module", "push", "testdata/dryrun")
	mustCtl(t, addr, "service", "stage", "site", "--template", "dryrun/site")
	mustCtl(t, addr, "service", "deploy", "site", "--wait")
	page := func(agent string) string { return fileText(filepath.Join(root, agent, "agent", "pages", "index.txt")) }
	port := func(agent string) string { return fileText(filepath.Join(root, agent, "agent", "port")) }
	if page("a3") != "Hello from a3" || port("a3") != "8080" {
		t.Fatalf("a3 after the deploy: page %q, port %q", page("a3"), port("a3"))
	}

	// The change: a new greeting and token for all; a3 gets a port of its
	// own; a4 goes down.
	mustCtl(t, addr, "service", "set", "site", "greeting=Hi", "token=second-t0ken-value")
	mustCtl(t, addr, "node", "label", "a3", "port=9090")
	agents["a4"].stop(syscall.SIGKILL)
	waitFor(t, 60*time.Second, "a4 down", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return nodeStatus(out, "a4") == "down"
	})

	out := mustCtl(t, addr, "service", "deploy", "site", "--dry-run")
	want := `dry run of site on 3 nodes (nothing changes)
2 nodes: web/index: message "Hello from {node}" → "Hi from {node}", token changes (sensitive) — would change
  on a1, a2
1 node: also web/site: port 8080 → 9090 — would run (cannot predict)
  on a3
1 node: cannot predict: 1 node down when the dry run started
  on a4
`
	if !strings.HasPrefix(out, want) {
		t.Fatalf("dry run output:\n%s\nwant it to start with:\n%s", out, want)
	}

	// --json: the clusters with their nodes; -v: every prediction.
	var res struct {
		Clusters []struct {
			Key     string   `json:"key"`
			Summary []string `json:"summary"`
			Agents  []string `json:"agents"`
		} `json:"clusters"`
		BaseGeneration uint64 `json:"base_generation"`
	}
	js := mustCtl(t, addr, "service", "deploy", "site", "--dry-run", "--json")
	if err := json.Unmarshal([]byte(js), &res); err != nil {
		t.Fatalf("%v:\n%s", err, js)
	}
	var groups [][]string
	for _, c := range res.Clusters {
		groups = append(groups, c.Agents)
	}
	if !reflect.DeepEqual(groups, [][]string{{"a1", "a2"}, {"a3"}, {"a4"}}) || res.Clusters[2].Key != "cannot-predict" || res.BaseGeneration != 1 {
		t.Fatalf("json clusters %+v", res)
	}
	verbose := mustCtl(t, addr, "service", "deploy", "site", "--dry-run", "-v")
	if !strings.Contains(verbose, "a3    web[a3]/site   create  cannot predict (would run)") {
		t.Fatalf("verbose output:\n%s", verbose)
	}

	// Nothing changed on the nodes, and the secrets showed nowhere.
	if page("a1") != "Hello from a1" || page("a3") != "Hello from a3" || port("a3") != "8080" {
		t.Fatalf("a dry run changed the nodes: a1 %q, a3 %q port %q", page("a1"), page("a3"), port("a3"))
	}
	for what, text := range map[string]string{"output": out, "json": js, "verbose": verbose} {
		for _, secret := range []string{"first-t0ken-value", "second-t0ken-value"} {
			if strings.Contains(text, secret) {
				t.Fatalf("%s shows the sensitive token %q", what, secret)
			}
		}
	}
}
