package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Upgrading a service to a module version whose template drops a component
// and changes another: the plan says so, the deploy runs the dropped
// component's delete action, re-runs the changed one and leaves the rest.
func TestE2E_Upgrade_DroppedComponentIsDeletedChangedOneReruns(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const coordIP, agentIP = "127.0.0.80", "127.0.0.81"
	addr := coordIP + ":7070"
	startAgent(t, "coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"), "--serf-addr", coordIP+":7946")
	data := filepath.Join(root, "n1")
	startAgent(t, "n1", "--data-dir", data, "--serf-addr", agentIP+":7946", "--join", coordIP+":7946")
	waitLeader(t, addr)
	waitFor(t, 60*time.Second, "node registered", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return nodeStatus(out, "n1") == "up"
	})
	file := func(name string) string { return fileText(filepath.Join(data, "agent", "upg", name)) }

	mustCtl(t, addr, "module", "push", "testdata/upgrade/v1")
	mustCtl(t, addr, "service", "stage", "u", "--template", "upg/t")
	mustCtl(t, addr, "service", "deploy", "u", "--wait")
	if file("a") != "one" || file("b") != "one" || file("c") != "one" {
		t.Fatal("first deploy did not write a, b and c")
	}

	mustCtl(t, addr, "module", "push", "testdata/upgrade/v2")
	out := mustCtl(t, addr, "service", "upgrade", "u", "--version", "1.1.0")
	if !strings.Contains(out, "upg@1.1.0/t") {
		t.Fatalf("upgrade output: %s", out)
	}
	plan := mustCtl(t, addr, "service", "plan", "u")
	for _, want := range []string{"= a (file) create", "- b (file) delete", "~ c (file) create", "0 to add, 1 to change, 1 to remove, 1 unchanged"} {
		if !strings.Contains(plan, want) {
			t.Fatalf("plan lacks %q:\n%s", want, plan)
		}
	}
	mustCtl(t, addr, "service", "deploy", "u", "--wait")
	if file("b") != "" || file("c") != "two" || file("a") != "one" {
		t.Fatalf("after the upgrade: a=%q b=%q c=%q", file("a"), file("b"), file("c"))
	}
	st := getStatus(t, addr, "u")
	got := stepStates(st)
	if got["a/create"] != "skipped" || got["c/create"] != "ok" || len(got) != 2 {
		t.Fatalf("after the upgrade the status shows %v", got)
	}
}
