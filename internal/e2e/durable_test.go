package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDurablePair starts a coordinator and one agent "n" on coordIP and
// agentIP, pushes testdata/durable and stages service s, whose step keeps
// its records in work. It returns the coordinator's API address and the
// agent's arguments (to start it again).
func startDurablePair(t *testing.T, root, coordIP, agentIP, work string) (string, []string) {
	t.Helper()
	addr := coordIP + ":7070"
	startAgent(t, "c", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "c"), "--serf-addr", coordIP+":7946")
	args := []string{"--data-dir", filepath.Join(root, "n"), "--serf-addr", agentIP + ":7946", "--join", coordIP + ":7946", "--label", "zone=a"}
	waitLeader(t, addr)
	mustCtl(t, addr, "module", "push", "testdata/durable")
	mustCtl(t, addr, "service", "stage", "s", "--template", "durable/app", "--set", "dir="+work)
	return addr, args
}

func waitNodeUp(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, 60*time.Second, "the node registered", func() bool {
		out, _, _ := ctl(t, addr, "node", "list", "--json")
		return strings.Contains(out, `"status": "up"`)
	})
}

// nodeIncarnation reads node n's incarnation from the coordinator.
func nodeIncarnation(t *testing.T, addr string) string {
	out := mustCtl(t, addr, "node", "list", "--json")
	_, rest, ok := strings.Cut(out, `"incarnation": "`)
	if !ok {
		return ""
	}
	inc, _, _ := strings.Cut(rest, `"`)
	return inc
}

// An agent whose data dir is wiped comes back as a new incarnation that
// numbers its reports from 1 again: the coordinator applies them (before
// incarnations it discarded them as resends), so a redeploy converges.
func TestE2E_Durable_WipedDataDirReportsAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	work := filepath.Join(root, "work")
	os.MkdirAll(work, 0o755)
	os.WriteFile(filepath.Join(work, "go"), nil, 0o644) // no sleeping
	addr, args := startDurablePair(t, root, "127.0.0.180", "127.0.0.181", work)
	n := startAgent(t, "n", args...)
	waitNodeUp(t, addr)
	// A few rounds, so that the old incarnation's sequence is well above
	// what the new one sends.
	for _, round := range []string{"1", "2", "3"} {
		mustCtl(t, addr, "service", "set", "s", "round="+round)
		mustCtl(t, addr, "service", "deploy", "s", "--wait", "--timeout", "90s")
	}
	before := nodeIncarnation(t, addr)
	if before == "" {
		t.Fatal("the node registered no incarnation")
	}

	n.stop(syscall.SIGTERM)
	if err := os.RemoveAll(filepath.Join(root, "n")); err != nil {
		t.Fatal(err)
	}
	startAgent(t, "n", args...)
	waitFor(t, 60*time.Second, "the new incarnation registered", func() bool {
		inc := nodeIncarnation(t, addr)
		return inc != "" && inc != before
	})
	mustCtl(t, addr, "service", "set", "s", "round=4")
	mustCtl(t, addr, "service", "deploy", "s", "--wait", "--timeout", "90s")
	if runs, _ := os.ReadFile(filepath.Join(work, "runs")); !strings.Contains(string(runs), "end 4 ") {
		t.Fatalf("round 4 did not run:\n%s", runs)
	}
}

// An agent killed with SIGKILL while a step sleeps leaves the step's
// process group running; the restarted agent stops that group before it
// runs the step again, so the two runs never overlap (the step's flock
// would record it).
func TestE2E_Durable_KilledAgentLeftoverStoppedBeforeRerun(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	work := filepath.Join(root, "work")
	os.MkdirAll(work, 0o755)
	addr, args := startDurablePair(t, root, "127.0.0.182", "127.0.0.183", work)
	n := startAgent(t, "n", args...)
	waitNodeUp(t, addr)
	mustCtl(t, addr, "service", "deploy", "s")
	var sleepPID int
	waitFor(t, 60*time.Second, "the step sleeping", func() bool {
		b, err := os.ReadFile(filepath.Join(work, "sleep.pid"))
		sleepPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && sleepPID > 0
	})
	first := runLines(work)
	if len(first) != 1 {
		t.Fatalf("runs: %q", first)
	}

	n.cmd.Process.Kill() // SIGKILL: no chance to stop the step
	<-n.done
	if !procAlive(sleepPID) {
		t.Fatal("the step's process died with the agent: the test proves nothing")
	}
	// The next run does not sleep: it ends at once, unless it has to wait
	// for the lock the first run holds.
	os.WriteFile(filepath.Join(work, "go"), nil, 0o644)
	n2 := startAgent(t, "n", args...)
	waitFor(t, 90*time.Second, "the step run again to its end", func() bool {
		return strings.Contains(strings.Join(runLines(work), "\n"), "end 1 ")
	})
	if b, err := os.ReadFile(filepath.Join(work, "overlap")); err == nil {
		t.Fatalf("two runs of the step overlapped:\n%s\nruns:\n%s", b, strings.Join(runLines(work), "\n"))
	}
	if procAlive(sleepPID) {
		t.Fatalf("the first run's sleep (pid %d) is still alive", sleepPID)
	}
	if out := n2.Output(); !strings.Contains(out, "stopping its process group") || !strings.Contains(out, "stopped the previous agent's step process group") {
		t.Fatalf("the agent did not say it stopped the leftover process group:\n%s", out)
	}
	runs := runLines(work)
	if len(runs) != 3 || !strings.HasPrefix(runs[1], "start 1 ") {
		t.Fatalf("runs = %q, want the first start, then one whole run", runs)
	}
	waitFor(t, 60*time.Second, "the service converged", func() bool {
		out, _, _ := ctl(t, addr, "service", "status", "s", "--json")
		return strings.Contains(out, `"state": "converged"`)
	})
}

func runLines(work string) []string {
	b, _ := os.ReadFile(filepath.Join(work, "runs"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// procAlive: pid names a process that is not a zombie.
func procAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}
