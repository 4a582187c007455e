package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func readPid(t *testing.T, p string) int {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// One coordinator and one agent with a short reconcile interval: drift is
// detected by the check and repaired; a custom action runs with parameters;
// a dry run predicts without changing anything; logs show step output with
// the sensitive value redacted; cancel and timeouts kill whole process
// groups with clear messages.
func TestE2E_Operations_DriftExecDryRunLogsCancelTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const coordIP, agentIP = "127.0.0.40", "127.0.0.41"
	addr := coordIP + ":7070"
	startAgent(t, "coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"), "--serf-addr", coordIP+":7946")
	data := filepath.Join(root, "n1")
	agent := startAgent(t, "n1", "--data-dir", data, "--serf-addr", agentIP+":7946", "--join", coordIP+":7946", "--reconcile", "1s")
	waitLeader(t, addr)
	waitFor(t, 30*time.Second, "node registered", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return nodeStatus(out, "n1") == "up"
	})
	mustCtl(t, addr, "module", "push", "testdata/ops")
	mustCtl(t, addr, "service", "stage", "files", "--template", "ops/files")
	mustCtl(t, addr, "service", "deploy", "files", "--wait")
	file := filepath.Join(data, "agent", "files", "a.txt")
	if b, _ := os.ReadFile(file); string(b) != "v1" {
		t.Fatalf("file = %q", b)
	}

	// Drift: change the managed file by hand; the check catches it.
	os.WriteFile(file, []byte("tampered"), 0o644)
	waitFor(t, 30*time.Second, "drift repaired", func() bool {
		b, _ := os.ReadFile(file)
		out, _, _ := ctl(t, addr, "service", "status", "files")
		return string(b) == "v1" && strings.Contains(out, "drift repaired")
	})

	// A custom action with a parameter, with its output.
	out := mustCtl(t, addr, "service", "exec", "files", "show", "--param", "suffix=hello")
	if !strings.Contains(out, "a.txt: v1 (hello)") {
		t.Fatalf("exec output:\n%s", out)
	}

	// Dry run of a change: predicted through the component's check, and
	// nothing changes.
	mustCtl(t, addr, "service", "set", "files", "content=v2")
	out = mustCtl(t, addr, "service", "deploy", "files", "--dry-run")
	if !strings.Contains(out, "would change") {
		t.Fatalf("dry run output:\n%s", out)
	}
	if b, _ := os.ReadFile(file); string(b) != "v1" {
		t.Fatalf("a dry run changed the file to %q", b)
	}

	// Logs show the step's output; the sensitive value never appears in
	// logs, reports, the agent's own log or any process's command line.
	mustCtl(t, addr, "service", "deploy", "files", "--wait")
	logs := mustCtl(t, addr, "service", "logs", "files")
	if !strings.Contains(logs, "wrote a.txt (secret is (sensitive))") {
		t.Fatalf("logs:\n%s", logs)
	}
	status := mustCtl(t, addr, "service", "status", "files", "--json")
	plan := mustCtl(t, addr, "service", "plan", "files", "--json")
	for what, text := range map[string]string{"logs": logs, "status": status, "plan": plan, "agent log": agent.Output()} {
		if strings.Contains(text, "s3cr3t-value") {
			t.Fatalf("the sensitive value leaked into %s", what)
		}
	}
	stepLogs, _ := filepath.Glob(filepath.Join(data, "agent", "steps", "*", "output.log*"))
	for _, p := range stepLogs {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), "s3cr3t-value") {
			t.Fatalf("the sensitive value is in %s", p)
		}
	}

	// Cancel: a running step is stopped and its child process is killed.
	mustCtl(t, addr, "service", "stage", "slow", "--template", "ops/slow", "--set", "seconds=90")
	mustCtl(t, addr, "service", "deploy", "slow")
	scratch := filepath.Join(data, "agent", "steps", "slow_n_zz_create")
	waitFor(t, 30*time.Second, "sleeper running", func() bool { return alive(readPid(t, filepath.Join(scratch, "child"))) })
	child := readPid(t, filepath.Join(scratch, "child"))
	mustCtl(t, addr, "service", "cancel", "slow")
	waitFor(t, 30*time.Second, "cancelled step reported", func() bool {
		out, _, _ := ctl(t, addr, "service", "status", "slow")
		return strings.Contains(out, "failed")
	})
	waitFor(t, 10*time.Second, "child killed", func() bool { return !alive(child) })
	if out := mustCtl(t, addr, "service", "status", "slow"); !strings.Contains(out, "cancelled") {
		t.Fatalf("status does not say the step was cancelled:\n%s", out)
	}

	// Timeout: the step fails with a clear message and its child is gone.
	mustCtl(t, addr, "service", "stage", "hang", "--template", "ops/hang")
	_, _, code := ctl(t, addr, "service", "deploy", "hang", "--wait")
	if code != 1 {
		t.Fatalf("deploy of a hanging step: exit %d, want 1", code)
	}
	out = mustCtl(t, addr, "service", "status", "hang")
	if !strings.Contains(out, "timed out after 1s") {
		t.Fatalf("status lacks the timeout message:\n%s", out)
	}
	hangChild := readPid(t, filepath.Join(data, "agent", "steps", "hang_n_h_create", "child"))
	waitFor(t, 10*time.Second, "hung child killed", func() bool { return !alive(hangChild) })
	if out, _ := exec.Command("ps", "axww", "-o", "args").Output(); strings.Contains(string(out), "s3cr3t-value") {
		t.Fatal("the sensitive value is on a process's command line")
	}
}
