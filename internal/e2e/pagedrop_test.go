package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const dropLine = "dropped the binary's resident pages"

// An agent that has dropped its binary's resident pages (drop_binary_pages,
// on by default; here after 300 ms of quiet instead of 30 s) keeps
// working: its code and tables fault back in from the page cache. It
// converges new plans, reports every step, stays up in the gossip pool,
// and drops again after each converge. With drop_binary_pages = false it
// never drops.
func TestE2E_PageDrop_AgentConvergesAndReportsAfterDroppingItsPages(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	work := filepath.Join(root, "work")
	os.MkdirAll(work, 0o755)
	os.WriteFile(filepath.Join(work, "go"), nil, 0o644) // no sleeping
	addr, args := startDurablePair(t, root, "127.0.0.230", "127.0.0.231", work)
	env := []string{"DTK_DROP_BINARY_PAGES_AFTER=300ms"}
	n := startBin(t, "n", bin.agent, env, append([]string{"run", "--name", "n", "--log-level", "debug"}, args...)...)
	waitNodeUp(t, addr)
	drops := func() int { return strings.Count(n.Output(), dropLine) }
	waitFor(t, 30*time.Second, "the first page drop (after the first poll)", func() bool { return drops() >= 1 })

	for round := 1; round <= 3; round++ {
		before := drops()
		// Let the agent sit dropped a moment, so that the deploy runs on
		// pages faulted back in.
		time.Sleep(400 * time.Millisecond)
		mustCtl(t, addr, "service", "set", "s", fmt.Sprintf("round=%d", round))
		mustCtl(t, addr, "service", "deploy", "s", "--wait", "--timeout", "90s")
		if runs := readFile(t, filepath.Join(work, "runs")); !strings.Contains(runs, fmt.Sprintf("end %d ", round)) {
			t.Fatalf("round %d did not run:\n%s", round, runs)
		}
		st := getStatus(t, addr, "s")
		if st.State != "converged" {
			t.Fatalf("round %d: service %s, want converged", round, st.State)
		}
		for id, s := range stepStates(st) {
			if s != "ok" {
				t.Fatalf("round %d: step %s reported %s", round, id, s)
			}
		}
		waitFor(t, 30*time.Second, "a page drop after the converge", func() bool { return drops() > before })
	}
	// Gossip still works: the node is up.
	waitNodeUp(t, addr)
	if out := mustCtl(t, addr, "node", "list"); !strings.Contains(out, "up") {
		t.Fatalf("node list after the drops:\n%s", out)
	}
	if strings.Contains(n.Output(), "not trying again") {
		t.Fatalf("a drop failed:\n%s", n.Output())
	}
	if b, err := os.ReadFile(filepath.Join(work, "overlap")); err == nil {
		t.Fatalf("overlapping runs: %s", b)
	}

	// Turned off: no drop, however long the agent is quiet.
	n.stop(syscall.SIGTERM)
	off := startBin(t, "n", bin.agent, env, append([]string{"run", "--name", "n", "--log-level", "debug", "--no-drop-binary-pages"}, args...)...)
	waitNodeUp(t, addr)
	mustCtl(t, addr, "service", "set", "s", "round=4")
	mustCtl(t, addr, "service", "deploy", "s", "--wait", "--timeout", "90s")
	time.Sleep(time.Second)
	if strings.Contains(off.Output(), dropLine) {
		t.Fatalf("drop_binary_pages = false, but the agent dropped its pages:\n%s", off.Output())
	}
}
