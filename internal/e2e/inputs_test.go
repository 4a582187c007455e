package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A public-style Puppet class and Ansible role wrapped unchanged: params
// pass only what they map (a helper attribute stays out, a null one keeps
// the class's or role's default); a failed Puppet run's report names the
// HCL that set the parameter Puppet complains about; deleting the service
// removes the steps' scratch folders on the agent.
func TestE2E_Inputs_WrappedClassAndRole(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	needTool(t, "puppet", "puppet")
	needTool(t, "ansible-playbook", "ansible-core")
	root := t.TempDir()
	work := filepath.Join(root, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	addr := startCoordAndNode(t, root, "127.0.1.10", "127.0.1.11", "inputs")
	mustCtl(t, addr, "module", "push", "testdata/inputs")
	mustCtl(t, addr, "service", "stage", "s", "--template", "inputs/app", "--set", "dir="+work)
	mustCtl(t, addr, "service", "deploy", "s", "--wait", "--timeout", "5m")

	conf := filepath.Join(work, "conf.txt")
	if got := readFile(t, conf); got != "servers=a.example,b.example" {
		t.Errorf("conf.txt = %q", got)
	}
	if info, err := os.Stat(conf); err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("conf.txt mode: %v, %v (want the class default 0640)", info, err)
	}
	if got := readFile(t, filepath.Join(work, "motd")); got != "text of the role default" {
		t.Errorf("motd = %q (want the role default)", got)
	}
	steps, _ := filepath.Glob(filepath.Join(root, "inputs", "*", "steps", "s_n_main_create"))
	if len(steps) == 0 {
		steps, _ = filepath.Glob(filepath.Join(root, "inputs", "steps", "s_n_main_create"))
	}
	if len(steps) != 1 {
		t.Fatalf("no scratch folder of s/n/main/create under %s", root)
	}

	// A mode the class refuses: the report says where it was set.
	mustCtl(t, addr, "service", "set", "s", "mode=abc")
	ctl(t, addr, "service", "deploy", "s", "--wait", "--timeout", "5m")
	waitFor(t, 2*time.Minute, "the conf step failed", func() bool {
		return stepStates(getStatus(t, addr, "s"))["main/create"] == "failed"
	})
	const setAt = `dtk: set at inputs/main.hcl:58:14 (component "conf" "main", attribute "mode")`
	if tail := mustCtl(t, addr, "service", "logs", "s", "--tail"); !strings.Contains(tail, "parameter 'mode' expects") ||
		!strings.Contains(tail, setAt) {
		t.Fatalf("the failed run's tail does not say where mode was set:\n%s", tail)
	}

	mustCtl(t, addr, "service", "delete", "s", "--wait", "--timeout", "2m")
	waitFor(t, time.Minute, "the scratch folders removed", func() bool {
		entries, err := os.ReadDir(filepath.Dir(steps[0]))
		return err == nil && len(entries) == 0
	})
}
