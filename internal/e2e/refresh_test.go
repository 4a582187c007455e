package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pushModule writes main.hcl of module name in a folder under root and
// pushes it.
func pushModule(t *testing.T, addr, root, name, hcl string) {
	t.Helper()
	mod := filepath.Join(root, name+"-mod")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "main.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, addr, "module", "push", mod)
}

// readRuns reads the lines a test's steps appended to root/runs.
func readRuns(t *testing.T, root string) string {
	b, _ := os.ReadFile(filepath.Join(root, "runs"))
	return strings.Join(strings.Fields(string(b)), ",")
}

// stepReason is the reason status gives for the last run of a step.
func stepReason(t *testing.T, addr, svc, instance string) string {
	t.Helper()
	var st struct {
		Nodes []struct {
			Steps []struct {
				Instance string `json:"instance"`
				Reason   string `json:"reason"`
			} `json:"steps"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(mustCtl(t, addr, "service", "status", svc, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			if s.Instance == instance {
				return s.Reason
			}
		}
	}
	t.Fatalf("no step %s in the status of %s", instance, svc)
	return ""
}

const refreshModule = `module {
  name    = "refresh"
  version = "1.0.0"
}

component "config" {
  attribute "path" { type = string }
  attribute "text" { type = string }
  create { inline = "echo \"writing $text\"; echo \"$text\" > \"$path\"" }
  delete { inline = "rm -f \"$path\"" }
}

component "daemon" {
  attribute "log" { type = string }
  create { inline = "echo \"started $(cat \"$log.conf\")\"; echo start >> \"$log\"" }
  action "reload" { inline = "echo \"reloaded $(cat \"$log.conf\")\"; echo reload >> \"$log\"" }
  delete { inline = "true" }
}

template "t" {
  input "text" {
    type    = string
    default = "a"
  }
  node "n" {
    labels = { role = "refresh" }
    component "daemon" "daemon" {
      log       = "ROOT/runs"
      subscribe = [component.config]
      refresh   = "reload"
    }
    component "config" "config" {
      path = "ROOT/runs.conf"
      text = input.text
    }
  }
}
`

// A subscriber runs its refresh action when what it subscribes to changed,
// and says so; a deploy that changes nothing keeps the last run's output in
// the logs; --force runs a step again once.
func TestE2E_Subscribe_RefreshForceAndLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	addr := startCoordAndNode(t, root, "127.0.1.40", "127.0.1.41", "refresh")
	pushModule(t, addr, root, "refresh", strings.ReplaceAll(refreshModule, "ROOT", root))
	mustCtl(t, addr, "service", "stage", "web", "--template", "refresh/t")

	mustCtl(t, addr, "service", "deploy", "web", "--wait")
	if got := readRuns(t, root); got != "start" {
		t.Fatalf("first deploy: runs %s, want the daemon's create after the config", got)
	}
	// The configuration changes, the daemon's own attributes do not: it
	// is reloaded, not started again.
	mustCtl(t, addr, "service", "set", "web", "text=b")
	mustCtl(t, addr, "service", "deploy", "web", "--wait")
	if got := readRuns(t, root); got != "start,reload" {
		t.Fatalf("after a config change: runs %s, want start,reload", got)
	}
	if got, want := stepReason(t, addr, "web", "daemon"), "refreshed: component.config changed (ran reload)"; got != want {
		t.Fatalf("daemon's reason %q, want %q", got, want)
	}
	// Nothing changes: nothing runs, and the logs keep the last run.
	mustCtl(t, addr, "service", "deploy", "web", "--wait")
	if got := readRuns(t, root); got != "start,reload" {
		t.Fatalf("after an unchanged deploy: runs %s", got)
	}
	for _, args := range [][]string{{"--tail"}, {}} {
		out := mustCtl(t, addr, append([]string{"service", "logs", "web"}, args...)...)
		if !strings.Contains(out, "reloaded b") || !strings.Contains(out, "writing b") {
			t.Fatalf("logs %v after an unchanged deploy lost the last runs:\n%s", args, out)
		}
	}
	// --force runs the daemon's create again, once: not on the next deploy.
	mustCtl(t, addr, "service", "deploy", "web", "--force", "--step", "daemon", "--wait")
	if got := readRuns(t, root); got != "start,reload,start" {
		t.Fatalf("after --force: runs %s, want start,reload,start", got)
	}
	if got := stepReason(t, addr, "web", "daemon"); got != "forced" {
		t.Fatalf("daemon's reason after --force %q", got)
	}
	mustCtl(t, addr, "service", "deploy", "web", "--wait")
	if got := readRuns(t, root); got != "start,reload,start" {
		t.Fatalf("a deploy after the forced one: runs %s", got)
	}
	if _, errOut, code := ctl(t, addr, "service", "deploy", "web", "--force", "--step", "nope"); code != 2 || !strings.Contains(errOut, "nope") {
		t.Fatalf("--force --step nope: exit %d, %s", code, errOut)
	}
}

// A component removed by a partial delete stays out of later deploys until
// `dtkctl service restore` brings it back.
func TestE2E_Restore_BringsBackADeletedComponent(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	addr := startCoordAndNode(t, root, "127.0.1.42", "127.0.1.43", "restore")
	pushModule(t, addr, root, "restore", strings.ReplaceAll(`module {
  name    = "restore"
  version = "1.0.0"
}

component "file" {
  attribute "path" { type = string }
  create { inline = "echo made > \"$path\"" }
  delete { inline = "rm -f \"$path\"" }
}

template "t" {
  node "n" {
    labels = { role = "restore" }
    component "file" "a" { path = "ROOT/a" }
    component "file" "b" { path = "ROOT/b" }
  }
}
`, "ROOT", root))
	mustCtl(t, addr, "service", "stage", "files", "--template", "restore/t")
	mustCtl(t, addr, "service", "deploy", "files", "--wait")
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(root, name)); return err == nil }
	if !exists("a") || !exists("b") {
		t.Fatal("the deploy did not create a and b")
	}
	mustCtl(t, addr, "service", "delete", "files", "--component", "b", "--wait")
	mustCtl(t, addr, "service", "deploy", "files", "--wait")
	if exists("b") || !exists("a") {
		t.Fatalf("after the partial delete and a deploy: a %v, b %v", exists("a"), exists("b"))
	}
	if _, errOut, code := ctl(t, addr, "service", "restore", "files", "--component", "a"); code != 2 || !strings.Contains(errOut, "removed: n/b") {
		t.Fatalf("restore of what was not removed: exit %d, %s", code, errOut)
	}
	out := mustCtl(t, addr, "service", "restore", "files", "--component", "b", "--wait")
	if !exists("b") {
		t.Fatalf("restore did not create b again:\n%s", out)
	}
	if out := mustCtl(t, addr, "service", "plan", "files"); !strings.Contains(out, "= b (file) create") {
		t.Fatalf("b is not part of the plan after the restore:\n%s", out)
	}
}
