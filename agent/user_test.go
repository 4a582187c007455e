package agent

import (
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// agentTestUser is added for the test and removed after it (a name of its
// own: the actions tests add theirs, maybe at the same time).
const agentTestUser = "dtk-test-agentstep"

func addTestUser(t *testing.T) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running steps as another user needs root: run the tests as root to cover it")
	}
	for _, tool := range []string{"useradd", "userdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (package passwd): cannot add a test user", tool)
		}
	}
	remove := func() { _ = exec.Command("userdel", agentTestUser).Run() } // absent is fine
	remove()
	t.Cleanup(remove)
	if out, err := exec.Command("useradd", "--user-group", "--no-create-home", "--home-dir", "/home/"+agentTestUser,
		"--shell", "/bin/sh", agentTestUser).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	u, err := user.Lookup(agentTestUser)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// The agent's step_user is the account of every step whose action names
// none; an action's own user wins; a user the node lacks fails that step
// (reported, the agent goes on).
func TestAgent_StepUser(t *testing.T) {
	u := addTestUser(t)
	mod := t.TempDir()
	os.WriteFile(filepath.Join(mod, "who.sh"), []byte(`echo "who=$(id -un)" >> "$DTK_OUTPUTS"; echo "home=$HOME" >> "$DTK_OUTPUTS"`), 0o755)
	f, srv := newFake(t, mod)
	// The test's temporary folders above the data folder let the user
	// through, as /var/lib does; the agent opens its own.
	data := t.TempDir()
	for p := filepath.Dir(data); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o711)
	}
	a, err := New(Config{Name: "n1", DataDir: data, Client: api.NewClient(srv.URL), PollWait: time.Second, StepUser: agentTestUser})
	if err != nil {
		t.Fatal(err)
	}
	a.Start(t.Context())
	defer a.Shutdown()

	step := func(service, instance, runAs string) *plan.Step {
		st := &plan.Step{
			ID: plan.StepID(service, "n", instance, "create"), Service: service, Node: "n", Instance: instance,
			Component: "c", Action: "create", Generation: 1, ModuleDigest: f.digest,
			Run: plan.Action{Kind: "bash", Script: "who.sh", User: runAs}, Outputs: []string{"who", "home"},
		}
		st.Digest = plan.StepDigest(st, nil)
		return st
	}
	byDefault, asRoot, missing := step("s", "dflt", ""), step("s", "root", "root"), step("t", "gone", "nosuch-dtk-user")
	f.publish(byDefault, asRoot, missing)
	for _, st := range []*plan.Step{byDefault, asRoot, missing} {
		waitFor(t, st.ID+" reported", func() bool { return len(f.final(st.ID)) == 1 })
	}
	output := func(st *plan.Step, name string) string {
		r := f.final(st.ID)[0]
		if r.State != plan.StepOK {
			t.Fatalf("%s: %+v", st.ID, r)
		}
		var s string
		json.Unmarshal(r.Outputs[name], &s)
		return s
	}
	if got := output(byDefault, "who"); got != agentTestUser {
		t.Errorf("step without user ran as %q, want the agent's step_user %q", got, agentTestUser)
	}
	if got := output(byDefault, "home"); got != u.HomeDir {
		t.Errorf("HOME = %q, want %q", got, u.HomeDir)
	}
	if got := output(asRoot, "who"); got != "root" {
		t.Errorf("step with user = \"root\" ran as %q", got)
	}
	r := f.final(missing.ID)[0]
	if want := `user "nosuch-dtk-user" does not exist on this node`; r.State != plan.StepFailed || !strings.Contains(r.Error, want) {
		t.Errorf("missing user: report %+v, want failed with %q", r, want)
	}
	// What the agent keeps is its own again after the runs, still private;
	// its folders let the user pass through but not list them.
	scratch := filepath.Join(data, "steps", scratchName(byDefault))
	if _, err := os.Stat(filepath.Join(scratch, "attributes.json")); !os.IsNotExist(err) {
		t.Errorf("attributes.json left after the run: %v", err)
	}
	for _, p := range []string{scratch, filepath.Join(scratch, "output.log")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 0 || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: uid %d mode %04o", p, uid, fi.Mode().Perm())
		}
	}
	for _, p := range []string{data, filepath.Join(data, "steps"), filepath.Join(data, "modules")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o711 {
			t.Errorf("%s: mode %04o, want 0711", p, fi.Mode().Perm())
		}
	}
}
