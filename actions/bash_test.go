package actions

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtkhq/dtk/plan"
)

func TestBash_Run_ChangedWithOutputs(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"scripts/create.sh": `
printf 'hello %s\n' "$greeting" > "$DTK_SCRATCH/page.txt"
echo "url=http://$DTK_NODE/$greeting" >> "$DTK_OUTPUTS"
echo "# a comment" >> "$DTK_OUTPUTS"
echo "count=$count" >> "$DTK_OUTPUTS"
echo "created"
`})
	req := request(t, dir, plan.Action{Kind: "bash", Script: "scripts/create.sh"}, map[string]any{"greeting": "hi", "count": 3})
	res := run(t, req)
	wantState(t, res, Changed)
	if got := readFile(t, filepath.Join(req.ScratchDir, "page.txt")); got != "hello hi\n" {
		t.Errorf("page = %q", got)
	}
	if res.Outputs["url"] != "http://web/hi" || res.Outputs["count"] != "3" || len(res.Outputs) != 2 {
		t.Errorf("outputs = %v", res.Outputs)
	}
	if !strings.Contains(res.Output, "created") {
		t.Errorf("output = %q", res.Output)
	}
	if got := readFile(t, filepath.Join(req.ScratchDir, LogFile)); got != res.Output {
		t.Errorf("log = %q, want %q", got, res.Output)
	}

	// The outputs file is emptied before each run.
	req.Action = plan.Action{Kind: "bash", Inline: "true"}
	res = run(t, req)
	wantState(t, res, Changed)
	if res.Outputs != nil {
		t.Errorf("stale outputs: %v", res.Outputs)
	}
}

func TestBash_Run_UnchangedByConvention(t *testing.T) {
	for name, script := range map[string]string{
		"lines": `echo _changed=false >> "$DTK_OUTPUTS"; echo port=80 >> "$DTK_OUTPUTS"`,
		"json":  `echo '{"_changed": false, "port": 80, "tags": ["a"]}' > "$DTK_OUTPUTS"`,
	} {
		t.Run(name, func(t *testing.T) {
			res := run(t, request(t, t.TempDir(), plan.Action{Kind: "bash", Inline: script}, nil))
			wantState(t, res, OK)
			if res.Outputs["port"] != "80" {
				t.Errorf("outputs = %v", res.Outputs)
			}
			if name == "json" && res.Outputs["tags"] != `["a"]` {
				t.Errorf("outputs = %v", res.Outputs)
			}
		})
	}
}

func TestBash_Run_Failures(t *testing.T) {
	for name, tc := range map[string]struct {
		inline string
		exit   int
		err    string
	}{
		"exit":         {inline: "echo boom; exit 3", exit: 3},
		"unset":        {inline: `echo "$nope"`, exit: 1},
		"pipefail":     {inline: "false | true", exit: 1},
		"bad outputs":  {inline: `echo "no equals sign" > "$DTK_OUTPUTS"`, exit: -1, err: "want key=value"},
		"bad reserved": {inline: `echo "_other=1" > "$DTK_OUTPUTS"`, exit: -1, err: "reserved"},
		"bad changed":  {inline: `echo "_changed=maybe" > "$DTK_OUTPUTS"`, exit: -1, err: "true or false"},
	} {
		t.Run(name, func(t *testing.T) {
			res := run(t, request(t, t.TempDir(), plan.Action{Kind: "bash", Inline: tc.inline}, nil))
			wantState(t, res, Failed)
			if res.ExitCode != tc.exit {
				t.Errorf("exit = %d, want %d", res.ExitCode, tc.exit)
			}
			if tc.err != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tc.err)) {
				t.Errorf("err = %v, want it to mention %q", res.Err, tc.err)
			}
		})
	}
}

func TestBash_Run_MissingScript(t *testing.T) {
	for _, script := range []string{"scripts/nope.sh", "../escape.sh"} {
		res := run(t, request(t, t.TempDir(), plan.Action{Kind: "bash", Script: script}, nil))
		wantState(t, res, Failed)
		if res.Err == nil {
			t.Errorf("%s: no error", script)
		}
	}
}

func TestBash_Run_DryRun(t *testing.T) {
	req := request(t, t.TempDir(), plan.Action{Kind: "bash", Inline: `touch "$DTK_SCRATCH/ran"`}, nil)
	req.DryRun = true
	res := run(t, req)
	wantState(t, res, Changed)
	if !res.CannotPredict || !strings.HasPrefix(res.Output, "would run: ") {
		t.Errorf("CannotPredict = %v, output %q", res.CannotPredict, res.Output)
	}
	if _, err := os.Stat(filepath.Join(req.ScratchDir, "ran")); err == nil {
		t.Errorf("a dry run ran the script")
	}
	if _, err := os.Stat(filepath.Join(req.ScratchDir, LogFile)); err == nil {
		t.Errorf("a dry run wrote %s", LogFile)
	}
}

func TestBash_Run_SensitiveRedacted(t *testing.T) {
	const secret = "hunter2-Sx9q"
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"scan.sh": scanScript})
	req := request(t, dir, plan.Action{Kind: "bash", Inline: `
echo "password is $password"
echo "json: $(cat "$DTK_ATTRIBUTES")" >&2
printf 'split: %s' "${password:0:4}"; printf '%s\n' "${password:4}"
echo "token is $token"
S=$password bash scan.sh "$DTK_SCRATCH/scan-password"
S=$token bash scan.sh "$DTK_SCRATCH/scan-token"
echo "password=$password" >> "$DTK_OUTPUTS"
false "$password"
`}, map[string]any{"password": secret, "token": map[string]string{"key": "s3cr3t-tok"}, "user": "bob"})
	req.Sensitive = []string{"password", "token"}
	res := run(t, req)
	wantState(t, res, Failed)
	log := readFile(t, filepath.Join(req.ScratchDir, LogFile))
	for what, text := range map[string]string{"output": res.Output, "log": log} {
		if strings.Contains(text, secret) || strings.Contains(text, "s3cr3t-tok") {
			t.Errorf("%s shows a sensitive value:\n%s", what, text)
		}
		for _, want := range []string{"password is (sensitive)", "split: (sensitive)", "token is (sensitive)", `"user": "bob"`} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q:\n%s", what, want, text)
			}
		}
	}
	for _, f := range []string{"scan-password", "scan-token"} {
		if got := strings.TrimSpace(readFile(t, filepath.Join(req.ScratchDir, f))); got != "clean" {
			t.Errorf("%s: %s", f, got)
		}
	}
}

func TestBash_Run_TimeoutKillsProcessGroup(t *testing.T) {
	req := request(t, t.TempDir(), plan.Action{Kind: "bash", Inline: `
sleep 300 &
echo $! > "$DTK_SCRATCH/child.pid"
echo started
wait
`}, nil)
	req.DefaultTimeout = 500 * time.Millisecond
	res := run(t, req)
	wantState(t, res, Failed)
	if !errors.Is(res.Err, ErrTimeout) || !strings.Contains(res.Err.Error(), "timed out after 500ms") {
		t.Errorf("err = %v, want a timeout", res.Err)
	}
	if res.Duration > 5*time.Second {
		t.Errorf("took %s", res.Duration)
	}
	assertGone(t, filepath.Join(req.ScratchDir, "child.pid"))
}

func TestBash_Run_CancelKillsProcessGroup(t *testing.T) {
	req := request(t, t.TempDir(), plan.Action{Kind: "bash", Inline: `
sleep 300 &
echo $! > "$DTK_SCRATCH/child.pid"
wait
`}, nil)
	pidFile := filepath.Join(req.ScratchDir, "child.pid")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() { done <- Bash{}.Run(ctx, req) }()
	waitFor(t, 10*time.Second, "the script started its child", func() bool { return readFile(t, pidFile) != "" })
	cancel()
	res := <-done
	wantState(t, res, Failed)
	if !errors.Is(res.Err, ErrCancelled) {
		t.Errorf("err = %v, want cancelled", res.Err)
	}
	assertGone(t, pidFile)
}

// assertGone waits for the process whose pid is in pidFile to be gone (a
// zombie counts as gone).
func assertGone(t *testing.T, pidFile string) {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidFile)))
	if err != nil {
		t.Fatalf("child pid: %v", err)
	}
	waitFor(t, 5*time.Second, "child "+strconv.Itoa(pid)+" still runs", func() bool {
		if syscall.Kill(pid, 0) != nil {
			return true
		}
		stat := readFile(t, filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if i := strings.LastIndex(stat, ") "); i >= 0 && i+2 < len(stat) {
			return stat[i+2] == 'Z' || stat[i+2] == 'X'
		}
		return stat == ""
	})
}

func TestExec_Run(t *testing.T) {
	needTool(t, "python3", "python3")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"bin/tool": "#!/bin/sh\necho \"tool $1 $2 port=$port\"\necho \"port=$port\" >> \"$DTK_OUTPUTS\"\n",
		"tool.py": `import json, os, sys
attrs = json.load(open(os.environ["DTK_ATTRIBUTES"]))
print("py", sys.argv[1:], attrs["port"])
with open(os.environ["DTK_OUTPUTS"], "w") as f:
    json.dump({"_changed": False, "double": attrs["port"] * 2}, f)
`,
		"plain.txt": "not a program\n",
	})
	kv := map[string]any{"port": 8080}

	res := run(t, request(t, dir, plan.Action{Kind: "exec", Program: "bin/tool", Args: []string{"--x", "y z"}}, kv))
	wantState(t, res, Changed)
	if !strings.Contains(res.Output, "tool --x y z port=8080") || res.Outputs["port"] != "8080" {
		t.Errorf("output %q, outputs %v", res.Output, res.Outputs)
	}

	res = run(t, request(t, dir, plan.Action{Kind: "exec", Program: "python3", Args: []string{"tool.py", "a"}}, kv))
	wantState(t, res, OK)
	if !strings.Contains(res.Output, "py ['a'] 8080") || res.Outputs["double"] != "16160" {
		t.Errorf("output %q, outputs %v", res.Output, res.Outputs)
	}

	res = run(t, request(t, dir, plan.Action{Kind: "exec", Program: "/bin/sh", Args: []string{"-c", "exit 4"}}, kv))
	wantState(t, res, Failed)
	if res.ExitCode != 4 {
		t.Errorf("exit = %d", res.ExitCode)
	}

	for prog, want := range map[string]string{
		"./plain.txt":  "not executable",
		"bin/missing":  "no such file",
		"no-such-tool": "executable file not found",
	} {
		res = run(t, request(t, dir, plan.Action{Kind: "exec", Program: prog}, kv))
		wantState(t, res, Failed)
		if res.Err == nil || !strings.Contains(res.Err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", prog, res.Err, want)
		}
	}

	req := request(t, dir, plan.Action{Kind: "exec", Program: "bin/tool", Args: []string{"--x"}}, kv)
	req.DryRun = true
	res = run(t, req)
	wantState(t, res, Changed)
	if !res.CannotPredict || strings.TrimSpace(res.Output) != "would run: bin/tool --x" {
		t.Errorf("dry run: CannotPredict %v, output %q", res.CannotPredict, res.Output)
	}
}

func TestExec_Run_SensitiveNotInArgv(t *testing.T) {
	const secret = "exec-secret-7Qw"
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"scan.sh": scanScript})
	req := request(t, dir, plan.Action{Kind: "exec", Program: "/bin/bash", Args: []string{"-c", `S=$key bash scan.sh "$DTK_SCRATCH/scan"; echo "key=$key"`}},
		map[string]any{"key": secret})
	req.Sensitive = []string{"key"}
	res := run(t, req)
	wantState(t, res, Changed)
	if strings.Contains(res.Output, secret) || !strings.Contains(res.Output, "key=(sensitive)") {
		t.Errorf("output = %q", res.Output)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(req.ScratchDir, "scan"))); got != "clean" {
		t.Errorf("scan: %s", got)
	}
}

// Proves: a null attribute is an unset variable (not an empty one), also
// over a variable of that name in the agent's own environment; the
// attributes file still has it as null.
func TestBash_Run_NullIsUnset(t *testing.T) {
	t.Setenv("mode", "from-the-agent")
	script := `echo "mode=${mode-UNSET} name=${name-UNSET}" > "$DTK_SCRATCH/seen"; grep -q '"mode": null' "$DTK_ATTRIBUTES"`
	req := request(t, t.TempDir(), plan.Action{Kind: "bash", Inline: script}, map[string]any{"mode": nil, "name": ""})
	wantState(t, run(t, req), Changed)
	if got := readFile(t, filepath.Join(req.ScratchDir, "seen")); got != "mode=UNSET name=\n" {
		t.Errorf("seen %q, want mode unset and name empty", got)
	}
}
