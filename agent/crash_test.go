package agent

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/secret"
	"github.com/dtkhq/dtk/plan"
)

// TestAgent_CrashHelper is not a test: it is the agent process that
// TestAgent_Crash_KilledMidPass kills with SIGKILL.
func TestAgent_CrashHelper(t *testing.T) {
	data, url := os.Getenv("DTK_TEST_CRASH_DATA"), os.Getenv("DTK_TEST_CRASH_URL")
	if data == "" || url == "" {
		t.Skip("the agent process of TestAgent_Crash_KilledMidPass")
	}
	a, err := New(Config{Name: "n1", DataDir: data, Client: api.NewClient(url), PollWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	select {} // until killed
}

// An agent killed with SIGKILL in the middle of a pass, while no
// coordinator accepts reports: after a restart on its data dir, the steps
// it finished are not run again and their reports (queued before the
// crash) are delivered; only the step that was running runs again, after
// the successor has stopped its leftover process group.
func TestAgent_Crash_KilledMidPass(t *testing.T) {
	dir := t.TempDir()
	// Step c blocks until the file go exists.
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte(`echo "run $msg" >> "$DTK_DATA_DIR/runs"
if [ "$msg" = c ] && [ ! -f "$DTK_DATA_DIR/go" ]; then sleep 300; fi`), 0o755)
	f, srv := newFake(t, dir)
	f.rejecting = true
	data := t.TempDir()
	var steps []*plan.Step
	for _, m := range []string{"a", "b", "c", "d", "e"} {
		steps = append(steps, f.step(m, m, 1))
	}
	f.publish(steps...)

	cmd := exec.Command(os.Args[0], "-test.run=^TestAgent_CrashHelper$")
	cmd.Env = append(os.Environ(), "DTK_TEST_CRASH_DATA="+data, "DTK_TEST_CRASH_URL="+srv.URL)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "step c running", func() bool { return len(runs(t, data)) == 3 })
	// Its process group is on record (the successor stops it).
	var leftover int
	waitFor(t, "c's process group on record", func() bool {
		live, _, _ := readProcLog(filepath.Join(data, procLogFile))
		for pgid, rec := range live {
			if rec.Step == steps[2].ID {
				leftover = pgid
			}
		}
		return leftover != 0
	})
	killed := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if !groupAlive(leftover) {
		t.Fatal("step c's process group died with the agent: the test proves nothing")
	}

	f.mu.Lock()
	f.rejecting = false
	f.mu.Unlock()
	os.WriteFile(filepath.Join(data, "go"), nil, 0o644)
	a := startAgent(t, srv, data)
	defer a.Shutdown()
	waitFor(t, "every step reported ok", func() bool {
		for _, st := range steps {
			if len(f.final(st.ID)) == 0 {
				return false
			}
		}
		return true
	})
	if got := strings.Join(runs(t, data), ","); got != "run_a,run_b,run_c,run_c,run_d,run_e" {
		t.Fatalf("runs = %s, want a and b once, c again (it was running), then d and e", got)
	}
	if groupAlive(leftover) {
		t.Fatal("the killed agent's step process group is still alive")
	}
	// The reports of a and b were queued before the crash, and only those.
	for _, st := range steps[:2] {
		got := f.final(st.ID)
		if len(got) != 1 || got[0].State != plan.StepOK || got[0].FinishedAt > killed.UnixMilli() {
			t.Fatalf("%s: reports %+v, want the one ok report of the run before the crash", st.ID, got)
		}
	}
	// No sequence of a report sent before the crash was used again.
	seen := map[string]bool{}
	f.mu.Lock()
	for _, r := range f.reports {
		if seen[r.ID] {
			t.Errorf("report ID %s used twice", r.ID)
		}
		seen[r.ID] = true
	}
	f.mu.Unlock()
}

// saveLegacyState writes a state file as agents before the step records
// moved into agent.db did: everything in it, sealed.
func saveLegacyState(t *testing.T, data string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	key, err := stateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := secret.Seal(key, b, stateLabel)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "agent-state.json"), []byte(sealed), 0o600); err != nil {
		t.Fatal(err)
	}
}

// An older agent's state file (records, failed runs, the cached slice)
// moves into the database once: recorded steps are not run again, a failed
// one is not retried, a recorded step gone from the slice is undone from
// its record, and the state file keeps only the slice.
func TestAgent_New_MigratesStateFileRecords(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	one, two, old := f.step("one", "a", 1), f.step("two", "fail", 1), f.step("old", "x", 1)
	rec := func(st *plan.Step, order uint64) *stepRecord {
		return &stepRecord{Digest: st.Digest, ReportedGeneration: st.Generation, Service: st.Service, Node: st.Node,
			Instance: st.Instance, Action: st.Action, ModuleDigest: st.ModuleDigest, Undo: st.Undo,
			Attributes: st.Attributes, Order: order}
	}
	slice := &plan.Slice{Node: "n1", Index: 5, Steps: []*plan.Step{one, two}}
	legacy := map[string]any{
		"slice":  slice,
		"steps":  map[string]*stepRecord{one.ID: rec(one, 1), old.ID: rec(old, 2)},
		"seq":    9,
		"failed": map[string]string{two.ID: failKey(two)},
	}
	saveLegacyState(t, data, legacy)
	f.mu.Lock()
	f.slice = slice // the coordinators have nothing newer
	f.mu.Unlock()

	a := startAgent(t, srv, data)
	waitFor(t, "the cached slice converged", func() bool { return a.Converges() >= 1 })
	if got := strings.Join(runs(t, data), ","); got != "undo_x" {
		t.Fatalf("runs = %s, want only the undo of the removed step", got)
	}
	a.Shutdown()
	st, err := loadState(filepath.Join(data, "agent-state.json"))
	if err != nil || len(st.Steps) != 0 || len(st.Failed) != 0 || st.Slice == nil || st.Slice.Index != 5 {
		t.Fatalf("state file after the move: %+v (%v), want the slice alone", st, err)
	}

	// The old file back, as a crash between the move and the rewrite would
	// leave it: nothing is moved twice (old, undone since, stays gone).
	saveLegacyState(t, data, legacy)
	a = startAgent(t, srv, data)
	defer a.Shutdown()
	waitFor(t, "the cached slice converged", func() bool { return a.Converges() >= 1 })
	steps, failed, seq, err := a.store.records()
	if err != nil || len(steps) != 1 || steps[one.ID] == nil || steps[one.ID].Attributes["msg"] == nil ||
		failed[two.ID] != failKey(two) || seq != 9 {
		t.Fatalf("records %v, failed %v, seq %d (%v)", steps, failed, seq, err)
	}
	if got := strings.Join(runs(t, data), ","); got != "undo_x" {
		t.Fatalf("runs = %s after a restart", got)
	}
	// Sealed at rest: the database does not show an attribute in clear.
	if b, _ := os.ReadFile(filepath.Join(data, storeFile)); strings.Contains(string(b), `"msg"`) {
		t.Fatal("agent.db holds a step record in clear")
	}
}
