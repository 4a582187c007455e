package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

func openTestStore(t *testing.T, dir string, maxBytes int64) *store {
	t.Helper()
	s, err := openStore(dir, "n1", maxBytes, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return s
}

func peekAll(t *testing.T, s *store) []pending {
	t.Helper()
	p, err := s.peek(1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStore_Outbox_AppendPeekAck(t *testing.T) {
	s := openTestStore(t, t.TempDir(), 0)
	if len(s.incarnation) != 16 {
		t.Fatalf("incarnation %q", s.incarnation)
	}
	for i := range 3 {
		if err := s.append(plan.Report{StepID: fmt.Sprintf("s/n/%d/create", i), State: plan.StepOK}); err != nil {
			t.Fatal(err)
		}
	}
	got := peekAll(t, s)
	if len(got) != 3 {
		t.Fatalf("peeked %d reports, want 3", len(got))
	}
	for i, p := range got {
		if want := fmt.Sprintf("n1:%s:%d", s.incarnation, i+1); p.report.ID != want || p.report.Node != "n1" || p.seq != uint64(i+1) {
			t.Fatalf("report %d: id %q node %q seq %d, want id %q", i, p.report.ID, p.report.Node, p.seq, want)
		}
	}
	// Batches are bounded by count and bytes (but hold at least one).
	if p, _ := s.peek(2, 1<<20); len(p) != 2 {
		t.Fatalf("peek(2) = %d reports", len(p))
	}
	if p, _ := s.peek(10, 1); len(p) != 1 {
		t.Fatalf("peek with a 1-byte bound = %d reports, want 1", len(p))
	}
	if err := s.ack(1, 2); err != nil {
		t.Fatal(err)
	}
	if got := peekAll(t, s); len(got) != 1 || got[0].seq != 3 {
		t.Fatalf("after ack: %+v", got)
	}
	if n, b := s.queued(); n != 1 || b <= 0 {
		t.Fatalf("queued = %d, %d bytes", n, b)
	}
}

// Values are sealed at rest, as the state file is.
func TestStore_Outbox_SealedAtRest(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, 0)
	if err := s.append(plan.Report{StepID: "s/n/i/create", Output: "password=hunter2"}); err != nil {
		t.Fatal(err)
	}
	s.close()
	b, err := os.ReadFile(filepath.Join(dir, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hunter2") {
		t.Fatal("the outbox holds a report in clear")
	}
	if fi, _ := os.Stat(filepath.Join(dir, storeFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("agent.db mode %o", fi.Mode().Perm())
	}
}

// A full outbox drops its oldest reports and never blocks.
func TestStore_Outbox_ByteBoundDropsOldest(t *testing.T) {
	s := openTestStore(t, t.TempDir(), 8<<10)
	out := strings.Repeat("x", 1000)
	for i := range 50 {
		if err := s.append(plan.Report{StepID: fmt.Sprintf("s/n/%d/create", i), Output: out}); err != nil {
			t.Fatal(err)
		}
	}
	n, b := s.queued()
	if b > 8<<10 || n == 0 || n >= 50 {
		t.Fatalf("outbox holds %d reports, %d bytes; want at most 8 KiB", n, b)
	}
	got := peekAll(t, s)
	if len(got) != n || got[len(got)-1].report.StepID != "s/n/49/create" || got[0].seq != uint64(51-n) {
		t.Fatalf("kept %d reports from seq %d; want the newest %d", len(got), got[0].seq, n)
	}
	// One report over the whole bound is still kept, alone.
	if err := s.append(plan.Report{StepID: "big", Output: strings.Repeat("y", 20<<10)}); err != nil {
		t.Fatal(err)
	}
	if got := peekAll(t, s); len(got) != 1 || got[0].report.StepID != "big" {
		t.Fatalf("after a report over the bound: %d reports", len(got))
	}
}

// What was committed survives a crash: a copy of the files taken while the
// agent runs (as a power cut would leave them) opens with the same
// incarnation, the same reports, and a sequence that goes on.
func TestStore_Outbox_ReopenAfterCrash(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, 0)
	for i := range 3 {
		s.append(plan.Report{StepID: fmt.Sprintf("s/n/%d/create", i)})
	}
	s.ack(1)
	s.checkpoint() // an acknowledgement is on disk after the next checkpoint (TestStore_Outbox_LazyAcksAndVolatileReports)
	crashed := t.TempDir()
	for _, f := range []string{storeFile, stateKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(crashed, f), b, 0o600)
	}
	s2 := openTestStore(t, crashed, 0)
	if s2.incarnation != s.incarnation {
		t.Fatalf("incarnation changed across a restart: %s → %s", s.incarnation, s2.incarnation)
	}
	got := peekAll(t, s2)
	if len(got) != 2 || got[0].seq != 2 || got[1].seq != 3 {
		t.Fatalf("after reopen: %+v", got)
	}
	s2.append(plan.Report{StepID: "after"})
	if got := peekAll(t, s2); got[2].seq != 4 || !strings.HasSuffix(got[2].report.ID, ":4") {
		t.Fatalf("sequence after reopen: %+v", got[2])
	}
	// A wiped data dir is a new incarnation.
	if s3 := openTestStore(t, t.TempDir(), 0); s3.incarnation == s.incarnation {
		t.Fatal("a new data dir kept the incarnation")
	}
}

// copyStore copies the database and its key as a crash at this point would
// leave them, and opens the copy.
func copyStore(t *testing.T, dir string) *store {
	t.Helper()
	crashed := t.TempDir()
	for _, f := range []string{storeFile, journalFile, stateKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(crashed, f), b, 0o600)
	}
	return openTestStore(t, crashed, 0)
}

func seqs(ps []pending) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprint(p.seq))
	}
	return strings.Join(out, ",")
}

// A running report lives in memory: it is numbered at once but sent only
// once its sequence is on disk (the next write, or reserve), so that a
// restarted agent never reuses a sequence a coordinator may have seen; a
// later one of the same step replaces it. An acknowledgement leaves the
// count at once and the disk with the next checkpoint: a crash before
// that sends the report again, which the coordinators drop as a resend.
func TestStore_Outbox_LazyAcksAndVolatileReports(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, 0)
	s.append(plan.Report{StepID: "a", State: plan.StepOK})              // 1
	s.appendVolatile(plan.Report{StepID: "x", State: plan.StepRunning}) // 2
	if got := seqs(peekAll(t, s)); got != "1" || !s.unsendable() {
		t.Fatalf("peeked %s (unsendable %v), want 1 and the running report held back", got, s.unsendable())
	}
	s.append(plan.Report{StepID: "x", State: plan.StepOK}) // 3, stores the sequence past 2
	if got := seqs(peekAll(t, s)); got != "1,2,3" || s.unsendable() {
		t.Fatalf("peeked %s, want 1,2,3 in order", got)
	}
	s.appendVolatile(plan.Report{StepID: "y", State: plan.StepRunning})                     // 4
	s.appendVolatile(plan.Report{StepID: "y", State: plan.StepRunning, Output: "progress"}) // 5 replaces 4
	if err := s.reserve(); err != nil {
		t.Fatal(err)
	}
	got := peekAll(t, s)
	if seqs(got) != "1,2,3,5" || got[3].report.Output != "progress" || got[3].report.ID != s.reportID(5) {
		t.Fatalf("peeked %s, want 1,2,3,5 (the progress report)", seqs(got))
	}
	if n, _ := s.queued(); n != 4 {
		t.Fatalf("queued %d, want 4", n)
	}
	if err := s.ack(1, 2); err != nil {
		t.Fatal(err)
	}
	if got := seqs(peekAll(t, s)); got != "3,5" {
		t.Fatalf("after the ack: %s", got)
	}
	if n, _ := s.queued(); n != 2 {
		t.Fatalf("queued %d after the ack, want 2", n)
	}
	// A crash now: the acknowledged report is sent again, the running
	// reports are gone, and numbering goes on past every sequence used.
	c := copyStore(t, dir)
	if got := seqs(peekAll(t, c)); got != "1,3" {
		t.Fatalf("after a crash before the next write: %s, want 1,3", got)
	}
	if c.next != 6 {
		t.Fatalf("after a crash the next sequence is %d, want 6", c.next)
	}
	// The next checkpoint deletes what was acknowledged.
	if err := s.checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := seqs(peekAll(t, copyStore(t, dir))); got != "3" {
		t.Fatalf("after the checkpoint: %s, want 3", got)
	}
	s.append(plan.Report{StepID: "z", State: plan.StepOK}) // 6
	if got := seqs(peekAll(t, copyStore(t, dir))); got != "3,6" {
		t.Fatalf("after the next write: %s, want 3,6", got)
	}
}

// Reports an older agent queued in its state file move into the outbox
// once, with their IDs, ahead of new ones.
func TestAgent_New_MigratesStateQueueIntoOutbox(t *testing.T) {
	data := t.TempDir()
	old := &localState{Steps: map[string]*stepRecord{}, Seq: 7, Queue: []plan.Report{
		{ID: "n1:6", Node: "n1", StepID: "s/n/a/create", State: plan.StepRunning},
		{ID: "n1:7", Node: "n1", StepID: "s/n/a/create", State: plan.StepOK},
	}}
	if err := old.save(filepath.Join(data, "agent-state.json")); err != nil {
		t.Fatal(err)
	}
	newAgent := func() *Agent {
		a, err := New(Config{Name: "n1", DataDir: data, Client: api.NewClient("http://127.0.0.1:1")})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := newAgent()
	a.enqueue(plan.Report{StepID: "s/n/b/create", State: plan.StepOK})
	got := peekAll(t, a.store)
	if len(got) != 3 || got[0].report.ID != "n1:6" || got[1].report.ID != "n1:7" ||
		!strings.HasPrefix(got[2].report.ID, "n1:"+a.Incarnation()+":") {
		t.Fatalf("outbox after migration: %+v", got)
	}
	st, err := loadState(filepath.Join(data, "agent-state.json"))
	if err != nil || len(st.Queue) != 0 {
		t.Fatalf("state file still queues %d reports (%v)", len(st.Queue), err)
	}
	a.Shutdown()
	// Started again (even with the old queue back, as a crash between
	// the two writes would leave it): nothing is moved twice.
	if err := old.save(filepath.Join(data, "agent-state.json")); err != nil {
		t.Fatal(err)
	}
	a = newAgent()
	defer a.Shutdown()
	if got := peekAll(t, a.store); len(got) != 3 {
		t.Fatalf("outbox after a restart holds %d reports, want 3", len(got))
	}
}

// sizeLimitedCoordinator accepts report batches up to limit bytes, answers
// 413 above it and 400 for a report of step "bad"; it records what it took.
type sizeLimitedCoordinator struct {
	limit   int
	mu      sync.Mutex
	got     []plan.Report
	refused int
}

func (c *sizeLimitedCoordinator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	if len(b) > c.limit {
		c.mu.Lock()
		c.refused++
		c.mu.Unlock()
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		fmt.Fprintf(w, `{"code":413,"error":"request body larger than %d bytes"}`, c.limit)
		return
	}
	var req api.ReportsRequest
	json.Unmarshal(b, &req)
	for _, rep := range req.Reports {
		if rep.StepID == "bad" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"code":400,"error":"malformed report"}`))
			return
		}
	}
	c.mu.Lock()
	c.got = append(c.got, req.Reports...)
	c.mu.Unlock()
	w.Write([]byte(`{"applied":1}`))
}

func (c *sizeLimitedCoordinator) delivered() []plan.Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]plan.Report(nil), c.got...)
}

// A batch over the coordinator's body limit is split until it fits; a
// single report still too large goes trimmed; an invalid one is dropped;
// nothing after them is held back.
func TestAgent_SendLoop_SplitsOn413AndDropsInvalid(t *testing.T) {
	c := &sizeLimitedCoordinator{limit: 16 << 10}
	srv := httptest.NewServer(c)
	defer srv.Close()
	a, err := New(Config{Name: "n1", DataDir: t.TempDir(), Client: api.NewClient(srv.URL)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	var want []string
	for i := range 20 {
		id := fmt.Sprintf("s/n/%d/create", i)
		r := plan.Report{StepID: id, State: plan.StepOK, Output: strings.Repeat("o", 3000)}
		switch i {
		case 7:
			r.StepID = "bad"
		case 12:
			r.Output = strings.Repeat("big", 20<<10) // 60 KiB: over the limit alone
		}
		a.enqueue(r)
		if r.StepID != "bad" {
			want = append(want, r.StepID)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.sendLoop(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the outbox drained", func() bool { n, _ := a.store.queued(); return n == 0 })
	got := c.delivered()
	var ids []string
	for _, r := range got {
		ids = append(ids, r.StepID)
		if r.StepID == "s/n/12/create" && (!strings.HasPrefix(r.Output, truncationMarker) || len(r.Output) > 2<<10) {
			t.Errorf("the over-size report went with %d bytes of output", len(r.Output))
		}
	}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("delivered\n%v\nwant (in order, without the invalid one)\n%v", ids, want)
	}
	if c.refused == 0 {
		t.Fatal("the coordinator never refused a batch: the test proves nothing")
	}
}

// Reports carry the incarnation in their IDs, and registration names it.
func TestAgent_Incarnation_InReportIDsAndRegistration(t *testing.T) {
	f, srv := newFake(t, testModuleDir(t))
	data := t.TempDir()
	a := startAgent(t, srv, data)
	f.publish(f.step("one", "a", 1))
	waitFor(t, "the report", func() bool { return len(f.final("s/n/one/create")) == 1 })
	inc := a.Incarnation()
	a.Shutdown()
	if r := f.final("s/n/one/create")[0]; !strings.HasPrefix(r.ID, "n1:"+inc+":") {
		t.Fatalf("report ID %q does not carry the incarnation %s", r.ID, inc)
	}
	f.mu.Lock()
	reg := f.registered
	f.mu.Unlock()
	if reg == nil || reg.Incarnation != inc {
		t.Fatalf("registration %+v does not carry the incarnation %s", reg, inc)
	}
	// Same data dir, same incarnation; a wiped one, a new incarnation.
	a2 := startAgent(t, srv, data)
	if a2.Incarnation() != inc {
		t.Fatalf("restart changed the incarnation")
	}
	a2.Shutdown()
	os.RemoveAll(data)
	a3 := startAgent(t, srv, data)
	defer a3.Shutdown()
	if a3.Incarnation() == inc {
		t.Fatal("a wiped data dir kept its incarnation")
	}
}

// The agent remembers only the operations its coordinator still lists.
func TestSeenOps_Fresh_ForgetsWhatTheCoordinatorDropped(t *testing.T) {
	var s seenOps
	op := func(id string) *plan.Op { return &plan.Op{ID: id} }
	if got := s.fresh([]*plan.Op{op("a"), op("b")}); len(got) != 2 {
		t.Fatalf("fresh = %d", len(got))
	}
	if got := s.fresh([]*plan.Op{op("a"), op("b"), op("c")}); len(got) != 1 || got[0].ID != "c" {
		t.Fatalf("fresh = %+v", got)
	}
	for i := range 1000 {
		s.fresh([]*plan.Op{op(fmt.Sprint(i))})
	}
	if s.len() != 1 {
		t.Fatalf("remembers %d operations, want 1", s.len())
	}
}
