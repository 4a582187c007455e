package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// planned is what `service plan --json` says the next deploy does to each
// create step: add, change, run (it may run: it reads a changing output or
// subscribes to a step that runs) or unchanged.
func planned(t *testing.T, addr, svc string) map[string]plan.StepDiff {
	t.Helper()
	var p api.PlanPreview
	if err := json.Unmarshal([]byte(mustCtl(t, addr, "service", "plan", svc, "--json")), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Violations) > 0 {
		t.Fatalf("plan of %s has violations: %+v", svc, p.Violations)
	}
	out := map[string]plan.StepDiff{}
	for _, n := range p.Nodes {
		for _, d := range n.Steps {
			if d.Action == "create" {
				out[d.ID] = d
			}
		}
	}
	return out
}

// serviceStatus is `service status --json`.
func serviceStatus(t *testing.T, addr, svc string) api.ServiceStatus {
	t.Helper()
	var st api.ServiceStatus
	if err := json.Unmarshal([]byte(mustCtl(t, addr, "service", "status", svc, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// stepOf finds the create step of instance in st.
func stepOf(t *testing.T, st api.ServiceStatus, instance string) api.StepStatus {
	t.Helper()
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			if s.Instance == instance && s.Action == "create" {
				return s
			}
		}
	}
	t.Fatalf("no create step of %s in the status of %s", instance, st.Name)
	return api.StepStatus{}
}

// deployAsPlanned plans, deploys and compares: every create step the
// deploy ran (reported in the new generation, not skipped) is one the plan
// said would be added, changed or may run, and every step it said would be
// added or changed ran. It returns the plan and the instances that ran.
func deployAsPlanned(t *testing.T, addr, svc string) (map[string]plan.StepDiff, []string) {
	t.Helper()
	p := planned(t, addr, svc)
	mustCtl(t, addr, "service", "deploy", svc, "--wait")
	st := serviceStatus(t, addr, svc)
	var ran []string
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			if s.Action != "create" {
				continue
			}
			d, ok := p[s.ID]
			switch {
			case !ok:
				t.Errorf("step %s ran but is not in the plan", s.ID)
			case s.Generation == st.Generation && s.State != plan.StepSkipped:
				ran = append(ran, s.Instance)
				if d.Change == plan.ChangeUnchanged {
					t.Errorf("step %s ran (%s), but the plan said unchanged", s.ID, s.State)
				}
			case d.Change == plan.ChangeAdd || d.Change == plan.ChangeChange:
				t.Errorf("the plan said %s would %s, but it did not run (state %s, generation %d of %d)",
					s.ID, d.Change, s.State, s.Generation, st.Generation)
			}
		}
	}
	sort.Strings(ran)
	return p, ran
}

// Published assets wrapped unchanged, on three agents: puppetlabs-ntp with
// stdlib as Debian packages them (applied from /usr/share/puppet/modules,
// through params, with a noop check), an Ansible role in the standard
// layout using community.general (through params, with a noop check), a
// bash application subscribed to the role's configuration, a container
// and a client reading the application's url from another node. It shows:
// role and class defaults kept for unset attributes; a plan that predicts
// every step each deploy runs; a configuration change that reloads the
// application through subscribe; hand edits found by the noop checks and
// repaired, and a stopped container run again, each reported as drift
// repaired; a partial delete taken back by restore.
func TestE2E_Assets_PublishedAssetsUnchanged(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	needTool(t, "puppet", "puppet")
	needTool(t, "ansible-playbook", "ansible-core")
	needTool(t, "podman", "podman runc")
	needTool(t, "runc", "runc")
	needTool(t, "busybox", "busybox-static")
	for path, pkg := range map[string]string{
		"/usr/share/puppet/modules/ntp/manifests/init.pp":                                 "puppet-module-puppetlabs-ntp",
		"/usr/share/puppet/modules/stdlib/metadata.json":                                  "puppet-module-puppetlabs-stdlib",
		"/usr/lib/python3/dist-packages/ansible_collections/community/general/FILES.json": "ansible",
	} {
		if _, err := os.Stat(path); err != nil {
			needTool(t, path, pkg)
		}
	}
	const service = "shop"
	root, pm, moduleDir, ref := assetsSetup(t, service)
	data := filepath.Join(root, "data")
	for _, d := range []string{"time", "app", "edge"} {
		if err := os.MkdirAll(filepath.Join(data, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	read := func(rel string) string {
		b, _ := os.ReadFile(filepath.Join(data, rel))
		return string(b)
	}

	const coordIP = "127.0.1.60"
	addr := coordIP + ":7070"
	startAgent(t, "coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"), "--serf-addr", coordIP+":7946")
	for i, n := range []string{"time", "app", "edge"} {
		startAgent(t, n, "--data-dir", filepath.Join(root, n), "--serf-addr", fmt.Sprintf("127.0.1.%d:7946", 61+i),
			"--join", coordIP+":7946", "--label", "shop="+n, "--reconcile", "3s")
	}
	waitLeader(t, addr)
	waitFor(t, 60*time.Second, "three nodes up", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return strings.Count(out, `"status": "up"`) == 3
	})
	mustCtl(t, addr, "module", "push", moduleDir)
	mustCtl(t, addr, "service", "stage", service, "--template", "assets/shop", "--set", "dir="+data, "--set", "image="+ref)

	// First deploy: everything is added, as planned. Unset attributes
	// reach neither the class nor the role: their defaults apply.
	_, ran := deployAsPlanned(t, addr, service)
	if want := []string{"box", "client", "conf", "ntp", "web"}; !slices.Equal(ran, want) {
		t.Fatalf("first deploy ran %v, want %v", ran, want)
	}
	conf := read("app/app.conf")
	if !strings.Contains(conf, "port = 8080\n") || !strings.Contains(conf, "greeting = hello from the role's defaults\n") {
		t.Fatalf("app.conf does not have the role's defaults:\n%s", conf)
	}
	if got := read("app/workers.ini"); !strings.Contains(got, "count = 2") {
		t.Fatalf("workers.ini (community.general.ini_file, default 2):\n%s", got)
	}
	ntpConf := read("time/ntp.conf")
	if !strings.Contains(ntpConf, "Managed by puppet") || !strings.Contains(ntpConf, "\nserver ") {
		t.Fatalf("ntp.conf lacks the class's default servers:\n%s", ntpConf)
	}
	if got := read("app/app.log"); got != "started 8080\n" {
		t.Fatalf("app.log %q", got)
	}
	if got := read("edge/client.log"); got != "http://app/app\n" {
		t.Fatalf("client.log %q", got)
	}

	// A deploy with nothing changed: the plan says so and nothing runs.
	if p, ran := deployAsPlanned(t, addr, service); len(ran) != 0 {
		t.Fatalf("an unchanged deploy ran %v (plan %+v)", ran, p)
	}

	// The port changes: the role's configuration changes, the application
	// subscribed to it reloads (and is not started again); the plan said
	// so, and that the client may run (it reads the application's url).
	mustCtl(t, addr, "service", "set", service, "port=9090")
	t.Logf("service plan:\n%s", mustCtl(t, addr, "service", "plan", service))
	p, ran := deployAsPlanned(t, addr, service)
	byInst := map[string]plan.StepDiff{}
	for _, d := range p {
		byInst[d.Instance] = d
	}
	if d := byInst["conf"]; d.Change != plan.ChangeChange || !slices.Contains(d.Changed, "port") {
		t.Fatalf("plan for conf: %+v", d)
	}
	if d := byInst["web"]; d.Change != plan.ChangeRun || !strings.Contains(d.Reason, "subscribes to conf") {
		t.Fatalf("plan for web: %+v", d)
	}
	if !slices.Equal(ran, []string{"conf", "web"}) {
		t.Fatalf("the port change ran %v, want conf and web", ran)
	}
	if got := read("app/app.log"); got != "started 8080\nreloaded 9090\n" {
		t.Fatalf("app.log %q: want a reload with the new port", got)
	}
	if got := read("app/handler.log"); !strings.Contains(got, "reloaded 9090") {
		t.Fatalf("the role's handler did not run:\n%s", got)
	}
	if r := stepOf(t, serviceStatus(t, addr, service), "web").Reason; r != "refreshed: component.conf changed (ran reload)" {
		t.Fatalf("web's reason %q", r)
	}

	// Hand edits behind the agents' backs: Puppet's and Ansible's noop
	// checks find them, the agents repair them, status says so.
	ntpConf = read("time/ntp.conf")
	conf = read("app/app.conf")
	if err := os.WriteFile(filepath.Join(data, "time/ntp.conf"), []byte(ntpConf+"server 203.0.113.1 # by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "app/app.conf"), []byte(strings.ReplaceAll(conf, "9090", "1")), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Minute, "both hand edits repaired and reported", func() bool {
		st := serviceStatus(t, addr, service)
		ntp, cf := stepOf(t, st, "ntp"), stepOf(t, st, "conf")
		return read("time/ntp.conf") == ntpConf && read("app/app.conf") == conf &&
			ntp.Drift && strings.Contains(ntp.Output, "(noop)") && cf.Drift && strings.Contains(cf.Output, "changed")
	})
	text := mustCtl(t, addr, "service", "status", service)
	if strings.Count(text, "drift repaired") < 2 {
		t.Fatalf("status text does not show both repairs:\n%s", text)
	}
	t.Logf("service status:\n%s", text)

	// The container stopped behind the agent's back is run again.
	var box string
	for name := range pm.dtkContainers(service) {
		box = name
	}
	if box == "" {
		t.Fatal("no container of the service")
	}
	pm.must("stop", "-t", "0", box)
	waitFor(t, 4*time.Minute, "the container running again and reported", func() bool {
		c, ok := pm.dtkContainers(service)[box]
		s := stepOf(t, serviceStatus(t, addr, service), "box")
		return ok && c.State == "running" && s.Drift && strings.Contains(s.Output, "it is not running")
	})

	// A partial delete, then restore: the client is deleted, and created
	// again.
	mustCtl(t, addr, "service", "delete", service, "--component", "client", "--wait")
	if got := read("edge/client.log"); !strings.HasSuffix(got, "deleted\n") {
		t.Fatalf("client.log after the partial delete %q", got)
	}
	mustCtl(t, addr, "service", "restore", service, "--component", "client", "--wait")
	if got := read("edge/client.log"); !strings.HasSuffix(got, "deleted\nhttp://app/app\n") {
		t.Fatalf("client.log after the restore %q", got)
	}
	if s := stepOf(t, serviceStatus(t, addr, service), "client"); s.State != plan.StepOK {
		t.Fatalf("client after the restore: %+v", s)
	}
}
