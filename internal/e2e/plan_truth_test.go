package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// planTruthModule: a db whose output changes with an input, an app on
// another node that reads it, both placed by labels chosen by an input.
const planTruthModule = `module {
  name    = "truth"
  version = "1.0.0"
}

component "pg" {
  attribute "version" { type = string }
  output "address" {}
  create {
    inline = "echo \"address=pg-$version\" >> \"$DTK_OUTPUTS\""
  }
}

component "app" {
  attribute "db" { type = string }
  create {
    inline = "echo \"$db\" >> \"$DTK_DATA_DIR/app-runs\""
  }
}

template "stack" {
  input "env" { type = string }
  input "version" { type = string }
  node "db" {
    labels = { role = "db", env = input.env }
    component "pg" "pg" { version = input.version }
  }
  node "web" {
    labels = { role = "web", env = input.env }
    component "app" "app" { db = node.db.output.pg.address }
  }
}
`

// Real processes: the env input picks the prod agents out of a pool with a
// dev one; when the db's output is going to change, the plan says the app
// that reads it runs (and why), the deploy runs it, and its progress never
// shows it skipped.
func TestE2E_PlanTruth_ReaderOfChangingOutputAndSelectorByInput(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const coordIP = "127.0.1.30"
	addr := coordIP + ":7070"
	join := "--join=" + coordIP + ":7946"
	startAgent(t, "coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"), "--serf-addr", coordIP+":7946")
	webDir := filepath.Join(root, "prod-web")
	startAgent(t, "prod-db", "--data-dir", filepath.Join(root, "prod-db"), "--serf-addr", "127.0.1.31:7946", join, "--label", "role=db", "--label", "env=prod")
	startAgent(t, "prod-web", "--data-dir", webDir, "--serf-addr", "127.0.1.32:7946", join, "--label", "role=web", "--label", "env=prod")
	startAgent(t, "dev-db", "--data-dir", filepath.Join(root, "dev-db"), "--serf-addr", "127.0.1.33:7946", join, "--label", "role=db", "--label", "env=dev")
	waitLeader(t, addr)
	waitFor(t, 60*time.Second, "three nodes up", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return strings.Count(out, `"status": "up"`) == 3
	})
	mod := filepath.Join(root, "truth")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "main.hcl"), []byte(planTruthModule), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, addr, "module", "push", mod)
	mustCtl(t, addr, "service", "stage", "s", "--template", "truth/stack", "--set", "env=prod", "--set", "version=1")
	first := mustCtl(t, addr, "service", "plan", "s")
	if !strings.Contains(first, "node db → prod-db") || !strings.Contains(first, `labels = {"env":"prod","role":"db"}  ← input env (operator)`) {
		t.Fatalf("first plan does not place db on prod-db by the env input:\n%s", first)
	}
	mustCtl(t, addr, "service", "deploy", "s", "--wait")

	mustCtl(t, addr, "service", "set", "s", "version=2")
	out := mustCtl(t, addr, "service", "plan", "s")
	for _, want := range []string{"~ pg", "↻ app", "[may run: reads output pg of node db, which runs in this deploy]", "0 to add, 1 to change, 1 may run, 0 to remove, 0 unchanged"} {
		if !strings.Contains(out, want) {
			t.Fatalf("plan lacks %q:\n%s", want, out)
		}
	}
	out = mustCtl(t, addr, "service", "deploy", "s", "--wait")
	if strings.Contains(out, "web/app create: skipped") || !strings.Contains(out, "web/app create: ok") {
		t.Fatalf("deploy progress:\n%s", out)
	}
	b, _ := os.ReadFile(filepath.Join(webDir, "agent", "app-runs"))
	if string(b) != "pg-1\npg-2\n" {
		t.Fatalf("app runs %q, want it run with pg-1 then pg-2", b)
	}
}
