package actions

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/plan"
)

// needTool skips a test when a tool is missing, or fails it when
// DTK_REQUIRE_TOOLS is set (as CI does), naming the Debian package.
func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	if os.Getenv("DTK_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s is not installed: apt-get install %s (DTK_REQUIRE_TOOLS is set, so this test may not skip)", tool, pkg)
	}
	t.Skipf("%s is not installed: apt-get install %s (set DTK_REQUIRE_TOOLS=1 to fail instead)", tool, pkg)
}

// writeFiles writes name → content under dir; names ending in .sh or
// starting with bin/ are executable.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") || strings.HasPrefix(name, "bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// attrs encodes attribute values as JSON.
func attrs(t *testing.T, kv map[string]any) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for k, v := range kv {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	return out
}

// request is a request for act in module folder dir with a scratch and
// data folder of the test's own.
func request(t *testing.T, dir string, act plan.Action, kv map[string]any) Request {
	t.Helper()
	root := t.TempDir()
	return Request{
		Action: act, ModuleDir: dir, Attributes: attrs(t, kv),
		Service: "svc", Node: "web", StepID: "svc/web/" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-") + "/create",
		DataDir: filepath.Join(root, "data"), ScratchDir: filepath.Join(root, "scratch"),
		DefaultTimeout: time.Minute,
	}
}

// run runs req with its kind's runner and logs what happened.
func run(t *testing.T, req Request) Result {
	t.Helper()
	r, err := Lookup(req.Action.Kind)
	if err != nil {
		t.Fatal(err)
	}
	res := r.Run(context.Background(), req)
	t.Logf("%s run (dry=%v): state=%s exit=%d err=%v took=%s outputs=%v\n%s",
		req.Action.Kind, req.DryRun, res.State, res.ExitCode, res.Err, res.Duration.Round(time.Millisecond), res.Outputs, res.Output)
	return res
}

// wantState fails the test unless res is in state want.
func wantState(t *testing.T, res Result, want string) {
	t.Helper()
	if res.State != want {
		t.Fatalf("state = %s, want %s (exit %d, err %v)\n%s", res.State, want, res.ExitCode, res.Err, res.Output)
	}
}

// readFile returns a file's content, or "" if it does not exist.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scanScript checks, with bash builtins only (no process whose command
// line would show the value), that no process's command line holds $S.
// It writes "clean" or "LEAK in PID: ..." to the file $1.
const scanScript = `#!/bin/bash
set -u
result=clean
for f in /proc/[0-9]*/cmdline; do
  [[ $f == /proc/$$/cmdline ]] && continue
  args=()
  while IFS= read -r -d '' a; do args+=("$a"); done < "$f" 2>/dev/null || true
  for a in "${args[@]}"; do
    if [[ $a == *"$S"* ]]; then result="LEAK in $f: ${args[*]}"; fi
  done
done
echo "$result" > "$1"
`
