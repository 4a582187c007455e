package actions

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtkhq/dtk/plan"
)

// Accounts the tests add to the machine (and remove), named so that they
// collide with nothing real.
const (
	testUser  = "dtk-test-step"
	testGroup = "dtk-test-stepgrp"
)

// needRoot skips a test that switches users when the tests do not run as
// root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running steps as another user needs root: run the tests as root to cover it")
	}
}

// testAccount adds testUser (with testGroup as a supplementary group) for
// the test and removes both when it ends.
func testAccount(t *testing.T) *user.User {
	t.Helper()
	needRoot(t)
	for _, tool := range []string{"useradd", "groupadd", "userdel", "groupdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (package passwd): cannot add a test user", tool)
		}
	}
	cleanup := func() {
		// A leftover of an interrupted run goes too; errors mean absent.
		_ = exec.Command("userdel", testUser).Run()
		_ = exec.Command("groupdel", testGroup).Run()
	}
	cleanup()
	t.Cleanup(cleanup)
	for _, args := range [][]string{
		{"groupadd", testGroup},
		{"useradd", "--user-group", "--no-create-home", "--home-dir", "/home/" + testUser,
			"--shell", "/bin/sh", "--groups", testGroup, testUser},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	u, err := user.Lookup(testUser)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// userRequest is a request laid out as the agent lays it out: the scratch
// folder and the module under the data folder, all 0700 and the agent's.
// The test's own temporary folders above the data folder are opened for
// passing through (0711), as /var/lib is.
func userRequest(t *testing.T, act plan.Action) Request {
	t.Helper()
	root := t.TempDir()
	for p := root; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(root, "data")
	mod := filepath.Join(data, "modules", "m")
	if err := os.MkdirAll(mod, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{data, filepath.Join(data, "modules"), mod} {
		os.Chmod(d, 0o700)
	}
	writeFiles(t, mod, map[string]string{"run.sh": "id -un\n"})
	return Request{
		Action: act, ModuleDir: mod, Attributes: attrs(t, map[string]any{"secret": "s3cret"}),
		Service: "svc", Node: "web", StepID: "svc/web/app/create",
		DataDir: data, ScratchDir: filepath.Join(data, "steps", "svc_web_app_create"),
		DefaultTimeout: time.Minute, Sensitive: []string{"secret"},
	}
}

// ownerMode is "UID MODE" of a path, as the agent sees it after a run.
func ownerMode(t *testing.T, p string) (uint32, os.FileMode) {
	t.Helper()
	info, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Uid, info.Mode().Perm()
}

// whoScript records, as outputs, who the step runs as and what it sees.
const whoScript = `
echo "uid=$(id -u)" >> "$DTK_OUTPUTS"
echo "gid=$(id -g)" >> "$DTK_OUTPUTS"
echo "groups=$(id -G)" >> "$DTK_OUTPUTS"
echo "home=$HOME" >> "$DTK_OUTPUTS"
echo "user=${USER:-}" >> "$DTK_OUTPUTS"
echo "logname=${LOGNAME:-}" >> "$DTK_OUTPUTS"
echo "umask=$(umask)" >> "$DTK_OUTPUTS"
echo "attrs=$(grep -c s3cret "$DTK_ATTRIBUTES")" >> "$DTK_OUTPUTS"
touch "$DTK_SCRATCH/made"; mkdir -p "$DTK_SCRATCH/dir"
echo "made=$(stat -c %a "$DTK_SCRATCH/made") dir=$(stat -c %a "$DTK_SCRATCH/dir")" >> "$DTK_OUTPUTS"
echo "scratch=$(stat -c '%U %a' "$DTK_SCRATCH") attrfile=$(stat -c '%U %a' "$DTK_ATTRIBUTES")" >> "$DTK_OUTPUTS"
echo "module=$(head -c 5 "$DTK_MODULE_DIR/run.sh")" >> "$DTK_OUTPUTS"
`

func TestRunAs_BashAsUser(t *testing.T) {
	u := testAccount(t)
	grp, err := user.LookupGroup(testGroup)
	if err != nil {
		t.Fatal(err)
	}
	req := userRequest(t, plan.Action{Kind: "bash", Inline: whoScript, User: testUser})
	res := run(t, req)
	wantState(t, res, Changed)
	want := map[string]string{
		"uid": u.Uid, "gid": u.Gid, "home": u.HomeDir, "user": testUser, "logname": testUser,
		"umask": "0077", "attrs": "1", "made": "600 dir=700",
		"scratch": testUser + " 700 attrfile=" + testUser + " 600", "module": "id -u",
	}
	for k, v := range want {
		if res.Outputs[k] != v {
			t.Errorf("%s = %q, want %q", k, res.Outputs[k], v)
		}
	}
	if gs := strings.Fields(res.Outputs["groups"]); !contains(gs, grp.Gid) || !contains(gs, u.Gid) {
		t.Errorf("groups = %v, want the user's group %s and supplementary %s", gs, u.Gid, grp.Gid)
	}
	if strings.Contains(res.Output, "s3cret") {
		t.Errorf("output shows the secret: %s", res.Output)
	}

	// After the run the agent has the scratch folder back, still private.
	for _, p := range []string{req.ScratchDir, filepath.Join(req.ScratchDir, AttributesFile), filepath.Join(req.ScratchDir, LogFile), filepath.Join(req.ScratchDir, "made")} {
		uid, mode := ownerMode(t, p)
		if uid != 0 || mode&0o077 != 0 {
			t.Errorf("%s: uid %d mode %04o, want the agent's and not readable by others", p, uid, mode)
		}
	}
	// The data folder lets the user through but not list; the module is
	// readable.
	for p, want := range map[string]os.FileMode{req.DataDir: 0o711, filepath.Join(req.DataDir, "steps"): 0o711, filepath.Join(req.DataDir, "modules"): 0o711, req.ModuleDir: 0o755} {
		if _, mode := ownerMode(t, p); mode != want {
			t.Errorf("%s: mode %04o, want %04o", p, mode, want)
		}
	}

	// A run as root afterwards finds everything it writes its own.
	req.Action.User = ""
	res = run(t, req)
	wantState(t, res, Changed)
	if umask := strings.TrimSpace(shOut(t, "umask")); res.Outputs["uid"] != "0" || res.Outputs["umask"] != umask {
		t.Errorf("default run: uid %q umask %q, want root with the agent's umask %s", res.Outputs["uid"], res.Outputs["umask"], umask)
	}
}

func TestRunAs_Group(t *testing.T) {
	u := testAccount(t)
	grp, err := user.LookupGroup(testGroup)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		act       plan.Action
		user, gid string
		stepUser  string
		stepGroup string
	}{
		"user and group":     {act: plan.Action{User: testUser, Group: testGroup}, user: u.Uid, gid: grp.Gid},
		"group alone":        {act: plan.Action{Group: testGroup}, user: "0", gid: grp.Gid},
		"agent default":      {stepUser: testUser, stepGroup: testGroup, user: u.Uid, gid: grp.Gid},
		"action user wins":   {act: plan.Action{User: "root"}, stepUser: testUser, stepGroup: testGroup, user: "0", gid: "0"},
		"action group joins": {act: plan.Action{Group: "root"}, stepUser: testUser, stepGroup: testGroup, user: u.Uid, gid: "0"},
	} {
		t.Run(name, func(t *testing.T) {
			act := tc.act
			act.Kind, act.Inline = "bash", whoScript
			req := userRequest(t, act)
			req.StepUser, req.StepGroup = tc.stepUser, tc.stepGroup
			res := run(t, req)
			wantState(t, res, Changed)
			if res.Outputs["uid"] != tc.user || res.Outputs["gid"] != tc.gid || res.Outputs["umask"] != "0077" {
				t.Errorf("uid %q gid %q umask %q, want uid %s gid %s umask 0077", res.Outputs["uid"], res.Outputs["gid"], res.Outputs["umask"], tc.user, tc.gid)
			}
		})
	}
}

func TestRunAs_DefaultIsTheAgent(t *testing.T) {
	req := request(t, t.TempDir(), plan.Action{Kind: "bash", Inline: whoScript}, map[string]any{"secret": "s3cret"})
	res := run(t, req)
	wantState(t, res, Changed)
	if got, want := res.Outputs["uid"], strings.TrimSpace(shOut(t, "id -u")); got != want {
		t.Errorf("uid = %q, want the agent's %q", got, want)
	}
	if got, want := res.Outputs["umask"], strings.TrimSpace(shOut(t, "umask")); got != want {
		t.Errorf("umask = %q, want the agent's %q", got, want)
	}
	if got := res.Outputs["home"]; got != os.Getenv("HOME") {
		t.Errorf("HOME = %q, want the agent's %q", got, os.Getenv("HOME"))
	}
}

func shOut(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestRunAs_MissingAccount(t *testing.T) {
	for name, tc := range map[string]struct {
		req  func(*Request)
		want string
	}{
		"user":         {func(r *Request) { r.Action.User = "nosuch" }, `user "nosuch" does not exist on this node`},
		"group":        {func(r *Request) { r.Action.Group = "nosuchgrp" }, `group "nosuchgrp" does not exist on this node`},
		"default user": {func(r *Request) { r.StepUser = "nosuch" }, `user "nosuch" does not exist on this node`},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			marker := filepath.Join(dir, "ran")
			req := request(t, dir, plan.Action{Kind: "bash", Inline: "touch " + marker}, nil)
			tc.req(&req)
			res := run(t, req)
			wantState(t, res, Failed)
			if res.Err == nil || !strings.Contains(res.Err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", res.Err, tc.want)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the script ran")
			}
		})
	}
}

// An agent that is not root cannot become anyone else: the step fails
// saying so (the uid is pretended; root exists everywhere).
func TestRunAs_AgentNotRoot(t *testing.T) {
	saved := agentIDs
	t.Cleanup(func() { agentIDs = saved })
	agentIDs = func() (int, int) { return 4242, 4242 }
	req := request(t, t.TempDir(), plan.Action{Kind: "bash", Inline: "true", User: "root"}, nil)
	res := run(t, req)
	wantState(t, res, Failed)
	if want := `the agent runs as uid 4242, not root: it cannot run steps as user "root"`; res.Err == nil || !strings.Contains(res.Err.Error(), want) {
		t.Errorf("err = %v, want %q", res.Err, want)
	}
}

// A step cannot make the agent follow a link out of its scratch folder:
// links it leaves there are gone before the agent reads its outputs.
func TestRunAs_LinksInScratchAreNotFollowed(t *testing.T) {
	testAccount(t)
	secretFile := filepath.Join(t.TempDir(), "root-only")
	if err := os.WriteFile(secretFile, []byte("stolen=root-only-data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	req := userRequest(t, plan.Action{Kind: "bash", User: testUser,
		Inline: `ln -sf ` + secretFile + ` "$DTK_OUTPUTS"; ln -s ` + secretFile + ` "$DTK_SCRATCH/attributes.json.new"; mkdir -p "$DTK_SCRATCH/sub"; ln -s / "$DTK_SCRATCH/sub/root"`})
	res := run(t, req)
	wantState(t, res, Changed)
	if res.Outputs["stolen"] != "" {
		t.Fatalf("the agent read a root-only file through a link: outputs %v", res.Outputs)
	}
	for _, p := range []string{OutputsFile, "attributes.json.new", "sub/root"} {
		if _, err := os.Lstat(filepath.Join(req.ScratchDir, p)); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	// The next run writes its files afresh, not through anything left.
	req.Action.Inline = `echo "ok=$(id -un)" >> "$DTK_OUTPUTS"`
	res = run(t, req)
	wantState(t, res, Changed)
	if res.Outputs["ok"] != testUser {
		t.Errorf("outputs = %v", res.Outputs)
	}
	if b, _ := os.ReadFile(secretFile); string(b) != "stolen=root-only-data\n" {
		t.Errorf("the root-only file changed: %q", b)
	}
}

// A folder on the way that the user cannot pass, outside the agent's
// data folder, fails the step with what to change.
func TestRunAs_UnreachableFolder(t *testing.T) {
	testAccount(t)
	req := userRequest(t, plan.Action{Kind: "bash", Inline: "true", User: testUser})
	closed := filepath.Dir(req.DataDir)
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	res := run(t, req)
	wantState(t, res, Failed)
	want := `user "` + testUser + `" cannot reach ` + closed + ` (mode 0700): allow it (chmod o+x ` + closed + `)`
	if res.Err == nil || !strings.Contains(res.Err.Error(), want) {
		t.Errorf("err = %v, want %q", res.Err, want)
	}
}

func TestRunAs_ExecAndTimeout(t *testing.T) {
	u := testAccount(t)
	req := userRequest(t, plan.Action{Kind: "exec", Program: "/bin/sh", Args: []string{"-c", `echo "uid=$(id -u) umask=$(umask)" >> "$DTK_OUTPUTS"`}, User: testUser})
	res := run(t, req)
	wantState(t, res, Changed)
	if res.Outputs["uid"] != u.Uid+" umask=0077" {
		t.Errorf("outputs = %v", res.Outputs)
	}
	// The agent still kills the user's whole process group on timeout.
	req.Action = plan.Action{Kind: "bash", Inline: `sleep 30 & echo "$!" > "$DTK_SCRATCH/child"; wait`, User: testUser, TimeoutSeconds: 1}
	res = run(t, req)
	wantState(t, res, Failed)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "timed out") {
		t.Fatalf("err = %v", res.Err)
	}
	pid := strings.TrimSpace(readFile(t, filepath.Join(req.ScratchDir, "child")))
	waitFor(t, 5*time.Second, "the child sleep "+pid+" to die", func() bool {
		_, err := os.Stat("/proc/" + pid)
		return err != nil
	})
}

func TestRunAs_PuppetAndAnsible(t *testing.T) {
	u := testAccount(t)
	t.Run("puppet", func(t *testing.T) {
		needTool(t, "puppet", "puppet")
		req := userRequest(t, plan.Action{Kind: "puppet", Manifest: "site.pp", User: testUser})
		writeFiles(t, req.ModuleDir, map[string]string{"site.pp": `
file { "${facts['dtk_scratch']}/made": content => "x" }
exec { 'whoami': command => "/bin/sh -c 'echo uid=$(id -u) >> ${facts['dtk_outputs']}'", logoutput => true }
`})
		res := run(t, req)
		wantState(t, res, Changed)
		if res.Outputs["uid"] != u.Uid {
			t.Errorf("outputs = %v, want uid=%s", res.Outputs, u.Uid)
		}
	})
	t.Run("ansible", func(t *testing.T) {
		needTool(t, "ansible-playbook", "ansible")
		req := userRequest(t, plan.Action{Kind: "ansible", Playbook: "site.yml", User: testUser})
		writeFiles(t, req.ModuleDir, map[string]string{"site.yml": `
- hosts: all
  gather_facts: false
  tasks:
    - shell: echo "uid=$(id -u) umask=$(umask)" >> "{{ dtk_outputs }}"
`})
		res := run(t, req)
		wantState(t, res, Changed)
		if res.Outputs["uid"] != u.Uid+" umask=0077" {
			t.Errorf("outputs = %v, want uid=%s umask=0077", res.Outputs, u.Uid)
		}
	})
}

func TestRunAs_ContainerRefuses(t *testing.T) {
	req := request(t, t.TempDir(), plan.Action{Kind: "container", User: "app"}, map[string]any{"image": "x"})
	r, err := Lookup("container")
	if err != nil {
		t.Fatal(err)
	}
	res := r.Run(context.Background(), req)
	wantState(t, res, Failed)
	if res.Err == nil || !strings.Contains(res.Err.Error(), "takes no user or group") {
		t.Errorf("err = %v", res.Err)
	}
}
