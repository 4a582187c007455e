package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dtkhq/dtk/actions"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/plan"
)

// fakeCoordinator serves one node's slice, a module blob, and records
// reports. It is a unit-test fake of the coordinator's agent-facing API.
type fakeCoordinator struct {
	mu        sync.Mutex
	slice     *plan.Slice
	changed   chan struct{}
	reports   []plan.Report
	rejecting bool
	blob      []byte
	digest    string
	// registered is the last registration.
	registered *plan.Node
}

func newFake(t testing.TB, moduleDir string) (*fakeCoordinator, *httptest.Server) {
	blob, err := archive.Pack(moduleDir)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCoordinator{slice: &plan.Slice{Node: "n1", Index: 1}, changed: make(chan struct{}), blob: blob, digest: archive.Digest(blob)}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/nodes/n1", func(w http.ResponseWriter, r *http.Request) {
		var n plan.Node
		json.NewDecoder(r.Body).Decode(&n)
		f.mu.Lock()
		f.registered = &n
		f.mu.Unlock()
		w.Write([]byte("{}"))
	})
	mux.HandleFunc("GET /v1/nodes/n1/plan", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		sl, ch := f.slice, f.changed
		f.mu.Unlock()
		if r.URL.Query().Get("index") == jsonNum(sl.Index) {
			select {
			case <-ch:
			case <-r.Context().Done():
				return
			case <-time.After(2 * time.Second):
			}
			f.mu.Lock()
			sl = f.slice
			f.mu.Unlock()
		}
		json.NewEncoder(w).Encode(sl)
	})
	mux.HandleFunc("POST /v1/nodes/n1/reports", func(w http.ResponseWriter, r *http.Request) {
		var req api.ReportsRequest
		json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.rejecting {
			w.WriteHeader(503)
			w.Write([]byte(`{"code":503,"error":"no cluster leader"}`))
			return
		}
		f.reports = append(f.reports, req.Reports...)
		w.Write([]byte(`{"applied":1}`))
	})
	mux.HandleFunc("GET /v1/blobs/{digest}", func(w http.ResponseWriter, r *http.Request) { w.Write(f.blob) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func (f *fakeCoordinator) publish(steps ...*plan.Step) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slice = &plan.Slice{Node: "n1", Index: f.slice.Index + 1, Steps: steps}
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeCoordinator) final(stepID string) []plan.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []plan.Report
	for _, r := range f.reports {
		if r.StepID == stepID && r.State != plan.StepRunning {
			out = append(out, r)
		}
	}
	return out
}

// step builds a create step whose script appends a line to a file, so runs
// can be counted.
func (f *fakeCoordinator) step(instance, msg string, gen uint64) *plan.Step {
	st := &plan.Step{
		ID: plan.StepID("s", "n", instance, "create"), Service: "s", Node: "n", Instance: instance,
		Component: "c", Action: "create", Generation: gen, ModuleDigest: f.digest,
		Run:        plan.Action{Kind: "bash", Script: "run.sh"},
		Undo:       &plan.Action{Kind: "bash", Inline: `echo "undo $msg" >> "$DTK_DATA_DIR/runs"`},
		Attributes: map[string]json.RawMessage{"msg": json.RawMessage(`"` + msg + `"`)},
	}
	st.Digest = plan.StepDigest(st, nil)
	return st
}

func testModuleDir(t testing.TB) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte(`echo "run $msg" >> "$DTK_DATA_DIR/runs"; [[ "$msg" != fail ]]`), 0o755)
	return dir
}

func startAgent(t *testing.T, srv *httptest.Server, dataDir string) *Agent {
	a, err := New(Config{Name: "n1", DataDir: dataDir, Client: api.NewClient(srv.URL), PollWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	return a
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func runs(t *testing.T, dataDir string) []string {
	b, _ := os.ReadFile(filepath.Join(dataDir, "runs"))
	return strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
}

func TestAgent_Converge_SkipsUnchangedUndoesRemoved(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	a := startAgent(t, srv, data)
	defer a.Shutdown()

	f.publish(f.step("one", "a", 1), f.step("two", "b", 1))
	waitFor(t, "both steps reported ok", func() bool { return len(f.final("s/n/two/create")) == 1 })
	if got := strings.Join(runs(t, data), ","); got != "run_a,run_b" {
		t.Fatalf("runs = %s", got)
	}
	// Generation 2 changes one, keeps two: two is reported skipped, not run.
	f.publish(f.step("one", "c", 2), f.step("two", "b", 2))
	waitFor(t, "two reported for gen 2", func() bool { return len(f.final("s/n/two/create")) == 2 })
	if r := f.final("s/n/two/create")[1]; r.State != plan.StepSkipped || r.Generation != 2 {
		t.Fatalf("unchanged step report = %+v", r)
	}
	// Generation 3 drops one: its delete action runs.
	f.publish(f.step("two", "b", 3))
	waitFor(t, "undo of one", func() bool { return len(runs(t, data)) == 4 })
	if got := strings.Join(runs(t, data), ","); got != "run_a,run_b,run_c,undo_c" {
		t.Fatalf("runs = %s", got)
	}
}

// Every run is reported with its start and end, the running report with
// the same start as the final one; a skipped step did not run and has none.
func TestAgent_Reports_StartAndEndOfEveryRun(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	a := startAgent(t, srv, t.TempDir())
	defer a.Shutdown()
	before := time.Now().UnixMilli()
	f.publish(f.step("one", "a", 1), f.step("two", "fail", 1))
	waitFor(t, "both steps reported", func() bool { return len(f.final("s/n/two/create")) == 1 })
	f.mu.Lock()
	running := map[string]int64{}
	for _, r := range f.reports {
		if r.State == plan.StepRunning {
			running[r.StepID] = r.StartedAt
		}
	}
	f.mu.Unlock()
	for _, id := range []string{"s/n/one/create", "s/n/two/create"} {
		r := f.final(id)[0]
		if r.StartedAt < before || r.FinishedAt < r.StartedAt || running[id] != r.StartedAt {
			t.Errorf("%s: started %d finished %d, running report started %d (test began %d)", id, r.StartedAt, r.FinishedAt, running[id], before)
		}
	}
}

func TestAgent_FailedStep_StopsServiceAndReportsExitCode(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	a := startAgent(t, srv, data)
	defer a.Shutdown()
	f.publish(f.step("one", "fail", 1), f.step("two", "b", 1))
	waitFor(t, "failure report", func() bool { return len(f.final("s/n/one/create")) == 1 })
	r := f.final("s/n/one/create")[0]
	if r.State != plan.StepFailed || r.ExitCode != 1 {
		t.Fatalf("report = %+v", r)
	}
	a.Shutdown()
	if got := strings.Join(runs(t, data), ","); got != "run_fail" {
		t.Fatalf("a step after a failed one ran: %s", got)
	}
}

func TestAgent_Reports_KeptOnDiskUntilAcknowledged(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	f.rejecting = true
	data := t.TempDir()
	a := startAgent(t, srv, data)
	f.publish(f.step("one", "a", 1))
	waitFor(t, "step ran", func() bool { return len(runs(t, data)) == 1 })
	waitFor(t, "final report queued", func() bool {
		n, _ := a.store.queued()
		return n == 2 // running + ok
	})
	a.Shutdown()

	// A restarted agent sends the queued reports and does not re-run the step.
	f.mu.Lock()
	f.rejecting = false
	f.mu.Unlock()
	a2 := startAgent(t, srv, data)
	defer a2.Shutdown()
	waitFor(t, "queued report delivered", func() bool { return len(f.final("s/n/one/create")) == 1 })
	if r := f.final("s/n/one/create")[0]; r.State != plan.StepOK || !strings.HasPrefix(r.ID, "n1:") {
		t.Fatalf("delivered report = %+v", r)
	}
	waitFor(t, "restarted agent converged", func() bool { return a2.Converges() >= 1 })
	if n := len(runs(t, data)); n != 1 {
		t.Fatalf("step ran %d times, want once", n)
	}
}

func TestAgent_Retries_FailedRunTriedAgainUntilItSucceeds(t *testing.T) {
	dir := t.TempDir()
	// Fails twice, then succeeds: a counter file under the data dir.
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte(`n=$(cat "$DTK_DATA_DIR/count" 2>/dev/null || echo 0); echo $((n+1)) > "$DTK_DATA_DIR/count"; echo "run $msg" >> "$DTK_DATA_DIR/runs"; [ "$n" -ge 2 ]`), 0o755)
	f, srv := newFake(t, dir)
	data := t.TempDir()
	a := startAgent(t, srv, data)
	defer a.Shutdown()
	st := f.step("one", "a", 1)
	st.Run.Retries, st.Run.RetryDelaySeconds = 3, 1
	st.Digest = plan.StepDigest(st, nil)
	f.publish(st)
	waitFor(t, "final report", func() bool { return len(f.final("s/n/one/create")) == 1 })
	if r := f.final("s/n/one/create")[0]; r.State != plan.StepOK {
		t.Fatalf("report = %+v", r)
	}
	if n := len(runs(t, data)); n != 3 {
		t.Fatalf("ran %d times, want 3 (two failures, then success)", n)
	}
}

func TestAgent_Shutdown_InterruptedStepRunsAgainAfterRestart(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte(`echo "run $msg" >> "$DTK_DATA_DIR/runs"; [ -f "$DTK_DATA_DIR/go" ] || sleep 30`), 0o755)
	f, srv := newFake(t, dir)
	data := t.TempDir()
	a := startAgent(t, srv, data)
	f.publish(f.step("one", "a", 1))
	waitFor(t, "step started", func() bool { return len(runs(t, data)) == 1 })
	a.Shutdown() // kills the running step
	os.WriteFile(filepath.Join(data, "go"), nil, 0o644)
	a2 := startAgent(t, srv, data)
	defer a2.Shutdown()
	waitFor(t, "step done after restart", func() bool {
		for _, r := range f.final("s/n/one/create") {
			if r.State == plan.StepOK {
				return true
			}
		}
		return false
	})
	if n := len(runs(t, data)); n != 2 {
		t.Fatalf("ran %d times, want 2 (interrupted, then again after the restart)", n)
	}
}

// The agent keeps what it knows (its state file, every step's attributes,
// outputs and logs) to itself: files 0600, folders 0700, also where an
// older agent left them wider.
func TestAgent_DataDir_PrivateModes(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	st := f.step("one", "hunter2", 1)
	st.Sensitive = []string{"msg"}
	st.Digest = plan.StepDigest(st, nil)
	// What an older agent (or a careless umask) left behind.
	scratch := filepath.Join(data, "steps", scratchName(st))
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(data, "steps"), scratch} {
		os.Chmod(d, 0o755)
	}
	for _, name := range []string{"attributes.json", "outputs", "output.log"} {
		if err := os.WriteFile(filepath.Join(scratch, name), []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(data, "agent-state.json"), []byte(`{"steps":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}

	a := startAgent(t, srv, data)
	defer a.Shutdown()
	f.publish(st)
	waitFor(t, "the step reported ok", func() bool { return len(f.final(st.ID)) == 1 })
	waitFor(t, "the state saved", func() bool {
		st, err := loadState(filepath.Join(data, "agent-state.json"))
		return err == nil && st.Slice != nil && len(st.Slice.Steps) == 1
	})
	// Sealed at rest: the file alone does not show the secret.
	if b, _ := os.ReadFile(filepath.Join(data, "agent-state.json")); strings.Contains(string(b), "hunter2") {
		t.Fatal("the agent state file holds a sensitive value in clear")
	}
	if r := f.final(st.ID)[0]; r.State != plan.StepOK {
		t.Fatalf("report %+v", r)
	}
	// The attribute file existed only while the step ran.
	if _, err := os.Stat(filepath.Join(scratch, "attributes.json")); !os.IsNotExist(err) {
		t.Fatalf("attributes.json left after the step: %v", err)
	}
	checked := 0
	check := func(path string, want os.FileMode) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", strings.TrimPrefix(path, data), got, want)
		}
	}
	check(data, 0o700)
	check(filepath.Join(data, "agent-state.json"), 0o600)
	filepath.WalkDir(filepath.Join(data, "steps"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			check(p, 0o700)
		} else {
			check(p, 0o600)
		}
		return nil
	})
	if checked < 6 {
		t.Fatalf("checked only %d paths", checked)
	}
}

// Proves: a delete that ran removes the undone step's scratch folder (the
// delete's own keeps its log until it leaves the plan), an instance removed
// from the plan loses its folders once undone, and the removal follows no
// symbolic link out of the steps folder.
func TestAgent_Delete_RemovesScratchFolders(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	a := startAgent(t, srv, data)
	defer a.Shutdown()
	steps := filepath.Join(data, "steps")
	exists := func(name string) bool {
		_, err := os.Lstat(filepath.Join(steps, name))
		return err == nil
	}

	one, two := f.step("one", "a", 1), f.step("two", "b", 1)
	two.RefreshAction = "reload" // its refresh runs in a folder of its own
	f.publish(one, two)
	waitFor(t, "both steps reported ok", func() bool { return len(f.final("s/n/two/create")) == 1 })
	if !exists("s_n_one_create") || !exists("s_n_two_create") {
		t.Fatal("no scratch folders after the runs")
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(steps, "s_n_one_create", "link")); err != nil {
		t.Fatal(err)
	}

	// An explicit delete of one.
	f.publish(plan.UndoStep(one, 2), f.step("two", "b", 2))
	waitFor(t, "one's create folder removed", func() bool { return !exists("s_n_one_create") })
	if len(f.final("s/n/one/delete")) != 1 || !exists("s_n_one_delete") || !exists("s_n_two_create") {
		t.Errorf("delete reported %d times; delete folder %v, two's folder %v",
			len(f.final("s/n/one/delete")), exists("s_n_one_delete"), exists("s_n_two_create"))
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Fatalf("the removal followed a symbolic link: %v", err)
	}

	// two leaves the plan: undone, then its folders go, its refresh
	// action's too; one's delete leaves it too: its folder goes with its
	// record.
	if err := os.MkdirAll(filepath.Join(steps, "s_n_two_create_reload"), 0o700); err != nil {
		t.Fatal(err)
	}
	f.publish()
	waitFor(t, "every scratch folder removed", func() bool {
		entries, err := os.ReadDir(steps)
		return err == nil && len(entries) == 0
	})
	if got := strings.Join(runs(t, data), ","); got != "run_a,run_b,undo_a,undo_b" {
		t.Errorf("runs = %s", got)
	}
}

// recordingRunner answers every run OK and keeps the requests.
type recordingRunner struct {
	mu   sync.Mutex
	reqs []actions.Request
}

func (r *recordingRunner) Kind() string { return "bash" }

func (r *recordingRunner) Run(_ context.Context, req actions.Request) actions.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return actions.Result{State: actions.OK}
}

// Proves: a runner learns where the step's instance and attributes are
// written (a failed Puppet run names them).
func TestAgent_Run_PassesOrigins(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	rr := &recordingRunner{}
	a, err := New(Config{Name: "n1", DataDir: t.TempDir(), Client: api.NewClient(srv.URL), PollWait: time.Second,
		Runner: func(string) (actions.Runner, error) { return rr, nil }})
	if err != nil {
		t.Fatal(err)
	}
	a.Start(context.Background())
	defer a.Shutdown()
	st := f.step("one", "a", 1)
	st.Origin = `m/main.hcl:3:5 (component "c" "one")`
	st.Origins = map[string]string{"msg": `m/main.hcl:4:13 (component "c" "one", attribute "msg")`}
	f.publish(st)
	waitFor(t, "the step reported", func() bool { return len(f.final(st.ID)) == 1 })
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if len(rr.reqs) != 1 || rr.reqs[0].Origin != st.Origin || rr.reqs[0].Origins["msg"] != st.Origins["msg"] {
		t.Errorf("requests = %+v", rr.reqs)
	}
}
