package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// podman runs podman with the flags and environment the runner uses and
// returns its stdout.
func podman(t *testing.T, eng *engine, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(eng.path, append(append([]string{}, eng.global...), args...)...)
	cmd.Env = eng.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// testImage builds a tiny image from busybox-static, saves it into dir as
// image.tar and removes it from the local store, as an air-gapped site
// receives it. It returns the image reference.
func testImage(t *testing.T, eng *engine, dir string) string {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sh", "sleep", "env", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", name)); err != nil {
			t.Fatal(err)
		}
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
	if out, err := exec.Command("tar", "-C", root, "-cf", rootfs, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	ref := fmt.Sprintf("localhost/dtk-test-%08x:1", rand.Uint32())
	if _, err := podman(t, eng, "import", rootfs, ref); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { podman(t, eng, "rmi", "-f", ref) })
	if _, err := podman(t, eng, "save", "-o", filepath.Join(dir, "image.tar"), ref); err != nil {
		t.Fatal(err)
	}
	if _, err := podman(t, eng, "rmi", ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

// containerInfo is what the test checks of a container.
type containerInfo struct {
	ID     string `json:"Id"`
	State  struct{ Running bool }
	Config struct {
		Env           []string
		Labels        map[string]string
		CreateCommand []string
	}
}

func inspectContainer(t *testing.T, eng *engine, name string) *containerInfo {
	t.Helper()
	out, err := podman(t, eng, "container", "inspect", name)
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "no such") {
			return nil
		}
		t.Fatal(err)
	}
	var got []containerInfo
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect %s: %v: %s", name, err, out)
	}
	return &got[0]
}

// Proves: a container from an image tarball shipped in the module is
// created, left alone while its configuration holds, predicted and then
// replaced when an attribute changes, recreated when stopped by hand
// (drift), kept off the command line where sensitive, and removed by
// delete.
func TestContainer_Run(t *testing.T) {
	needTool(t, "podman", "podman runc")
	needTool(t, "runc", "runc")
	needTool(t, "busybox", "busybox-static")
	t.Parallel()
	dir := t.TempDir()
	base := request(t, dir, plan.Action{Kind: "container"}, nil)
	eng, err := newEngine(base)
	if err != nil {
		t.Fatal(err)
	}
	if eng.name != "podman" {
		t.Fatalf("engine = %s, want podman", eng.name)
	}
	ref := testImage(t, eng, dir)
	name := fmt.Sprintf("dtk-test-%08x", rand.Uint32())
	t.Cleanup(func() { podman(t, eng, "rm", "-f", "-t", "0", name) })
	const secret = "container-Secret-4Hd"
	kv := map[string]any{
		"image": ref, "image_archive": "image.tar", "name": name, "network": "none",
		"command":      []string{"sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"},
		"env":          map[string]any{"GREETING": "hi", "PASSWORD": secret, "PORT": 8080, "UNSET": nil},
		"stop_timeout": 5, "volumes": []string{t.TempDir() + ":/data"}, "unused": "x",
	}
	create := func(kv map[string]any, dry bool) Request {
		req := request(t, dir, plan.Action{Kind: "container"}, kv)
		req.StepID, req.ScratchDir, req.DataDir = base.StepID, base.ScratchDir, base.DataDir
		req.Sensitive = []string{"env"}
		req.DryRun = dry
		return req
	}

	res := run(t, create(kv, false))
	wantState(t, res, Changed)
	c := inspectContainer(t, eng, name)
	if c == nil || !c.State.Running || c.Config.Labels[LabelConfig] == "" || res.Outputs["id"] != c.ID {
		t.Fatalf("container = %+v, outputs %v", c, res.Outputs)
	}
	if !contains(c.Config.Env, "GREETING=hi") || !contains(c.Config.Env, "PASSWORD="+secret) ||
		slices.ContainsFunc(c.Config.Env, func(e string) bool { return strings.HasPrefix(e, "UNSET=") }) {
		t.Errorf("env = %v (a null value is left out)", c.Config.Env)
	}
	if cmdline := strings.Join(c.Config.CreateCommand, " "); strings.Contains(cmdline, secret) || strings.Contains(cmdline, "GREETING") {
		t.Errorf("env values on the command line: %s", cmdline)
	}
	if strings.Contains(res.Output, secret) || !strings.Contains(res.Output, `"unused" is not a container setting`) {
		t.Errorf("output = %q", res.Output)
	}
	firstID := c.ID

	res = run(t, create(kv, false))
	wantState(t, res, OK)
	if res.Outputs["id"] != firstID {
		t.Errorf("outputs = %v", res.Outputs)
	}

	kv["env"] = map[string]any{"GREETING": "bonjour", "PASSWORD": secret, "PORT": 8080}
	res = run(t, create(kv, true))
	wantState(t, res, Changed)
	if !strings.Contains(res.Output, "would replace") {
		t.Errorf("dry run output = %q", res.Output)
	}
	if c := inspectContainer(t, eng, name); c == nil || c.ID != firstID {
		t.Fatalf("the dry run replaced the container")
	}

	res = run(t, create(kv, false))
	wantState(t, res, Changed)
	c = inspectContainer(t, eng, name)
	if c == nil || c.ID == firstID || !c.State.Running || !contains(c.Config.Env, "GREETING=bonjour") {
		t.Fatalf("not replaced: %+v", c)
	}
	wantState(t, run(t, create(kv, true)), OK)

	if _, err := podman(t, eng, "stop", "-t", "5", name); err != nil {
		t.Fatal(err)
	}
	res = run(t, create(kv, true))
	wantState(t, res, Changed)
	if want := "would replace container " + name + ": it is not running"; len(res.Changes) != 1 || res.Changes[0] != want {
		t.Errorf("dry run of a stopped container: changes %q, want %q", res.Changes, want)
	}
	wantState(t, run(t, create(kv, false)), Changed)
	if c := inspectContainer(t, eng, name); c == nil || !c.State.Running {
		t.Fatalf("drift not repaired: %+v", c)
	}

	del := create(kv, true)
	del.StepID = strings.TrimSuffix(del.StepID, "/create") + "/delete"
	wantState(t, run(t, del), Changed)
	if inspectContainer(t, eng, name) == nil {
		t.Fatal("the dry run removed the container")
	}
	del.DryRun = false
	wantState(t, run(t, del), Changed)
	if c := inspectContainer(t, eng, name); c != nil {
		t.Fatalf("not removed: %+v", c)
	}
	wantState(t, run(t, del), OK)
}

// Proves: a container dtk did not create is left alone; bad settings fail
// with a message.
func TestContainer_Run_Refusals(t *testing.T) {
	needTool(t, "podman", "podman runc")
	t.Parallel()
	dir := t.TempDir()
	base := request(t, dir, plan.Action{Kind: "container"}, nil)
	eng, err := newEngine(base)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("dtk-foreign-%08x", rand.Uint32())
	// No image is needed to find the name taken: create a container from
	// an image-less rootfs.
	rootfs := t.TempDir()
	if _, err := podman(t, eng, "create", "--name", name, "--rootfs", rootfs, "/bin/true"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { podman(t, eng, "rm", "-f", name) })
	for _, tc := range []struct {
		kv        map[string]any
		sensitive []string
		want      string
	}{
		{map[string]any{"image": "localhost/x:1", "name": name}, nil, "dtk did not create"},
		{map[string]any{"name": "x"}, nil, "image is required"},
		{map[string]any{"image": "--privileged"}, nil, "invalid reference"},
		{map[string]any{"image": "x", "name": "bad name"}, nil, "invalid container name"},
		{map[string]any{"image": "x", "command": "not a list"}, nil, "command"},
		{map[string]any{"image": "x", "env": map[string]string{"A": "two\nlines"}}, nil, "line break"},
		{map[string]any{"image": "x", "command": []string{"s3cret"}}, []string{"command"}, "cannot be sensitive"},
		{map[string]any{"image": "x", "image_archive": "../x.tar"}, nil, "outside the module"},
	} {
		req := request(t, dir, plan.Action{Kind: "container"}, tc.kv)
		req.Sensitive = tc.sensitive
		res := run(t, req)
		wantState(t, res, Failed)
		if res.Err == nil || !strings.Contains(res.Err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.kv, res.Err, tc.want)
		}
	}
	req := request(t, dir, plan.Action{Kind: "container", Engine: "rkt"}, map[string]any{"image": "x"})
	if res := (Container{}).Run(context.Background(), req); res.Err == nil || !strings.Contains(res.Err.Error(), "unknown container engine") {
		t.Errorf("engine rkt: %v", res.Err)
	}
}

func TestNormalizeRef(t *testing.T) {
	for _, pair := range [][2]string{
		{"busybox", "docker.io/library/busybox:latest"},
		{"localhost/app:1", "app:1"},
		{"registry:5000/app", "registry:5000/app:latest"},
	} {
		if normalizeRef(pair[0]) != normalizeRef(pair[1]) {
			t.Errorf("%s and %s differ: %s, %s", pair[0], pair[1], normalizeRef(pair[0]), normalizeRef(pair[1]))
		}
	}
	if normalizeRef("app:1") == normalizeRef("app:2") {
		t.Error("app:1 equals app:2")
	}
	if got := defaultContainerName("svc/web node/cache/create"); got != "dtk-svc-web-node-cache" {
		t.Errorf("default name = %s", got)
	}
}
