package main

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

func TestServiceHistory_TableAndJSON(t *testing.T) {
	f := newFake(t)
	recs := []api.HistoryRecord{
		{ID: "web-9", Service: "web", Kind: "deploy", Generation: 2, By: "client/alice", StartedMS: 1_700_000_000_000, EndedMS: 1_700_000_012_500,
			Result: "failed", Changed: 2, Failed: 1, Diff: []plan.NodeDiff{}},
		{ID: "op1", Service: "web", Kind: "exec", Generation: 1, By: "client/bob", StartedMS: 1_700_000_000_000, Result: "running", Action: "backup", Op: "op1", Diff: []plan.NodeDiff{}},
	}
	f.handle("GET /v1/services/web/history", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, recs) })
	f.handle("GET /v1/services/none/history", apiError(404, `not found: service "none"`))
	res := runCLI(t, f.addr(), "service", "history", "web")
	res.check(t, 0)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "GEN") {
		t.Fatalf("table:\n%s", res.stdout)
	}
	for _, want := range []string{"deploy", "client/alice", "2023-11-14T22:13:20Z", "12.5s", "failed", "2 changed, 1 failed"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	if !strings.Contains(lines[2], "so far") || !strings.Contains(lines[2], "action backup") {
		t.Errorf("running exec row: %q", lines[2])
	}
	res = runCLI(t, f.addr(), "service", "history", "web", "--json")
	res.check(t, 0)
	if !strings.Contains(res.stdout, `"kind": "deploy"`) || !strings.Contains(res.stdout, `"by": "client/alice"`) {
		t.Errorf("json:\n%s", res.stdout)
	}
	runCLI(t, f.addr(), "service", "history", "none").check(t, 2)
}

// events prints the recent events; --follow long-polls from the index it
// was given, until the coordinator refuses (here), or it is interrupted.
func TestEvents_PrintFilterAndFollow(t *testing.T) {
	f := newFake(t)
	var mu sync.Mutex
	var asked []string
	f.handle("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.RawQuery)
		n := len(asked)
		mu.Unlock()
		switch q := r.URL.Query(); {
		case !q.Has("index"):
			writeJSON(w, 200, api.EventList{Index: 2, Events: []api.Event{
				{Index: 1, TimeMS: 1_700_000_000_000, Type: "node-up", Node: "n1", Message: "registered"},
				{Index: 2, TimeMS: 1_700_000_001_000, Type: "deploy-started", Service: "web", Generation: 3},
			}})
		case q.Get("index") == "2" && q.Get("wait") != "" && n == 2:
			writeJSON(w, 200, api.EventList{Index: 4, Events: []api.Event{
				{Index: 3, TimeMS: 1_700_000_002_000, Type: "step-failed", Service: "web", Generation: 3, Node: "n2", Step: "web/b/x/create", Message: "exit status 3"},
				{Index: 4, TimeMS: 1_700_000_003_000, Type: "deploy-started", Service: "db", Generation: 1},
			}})
		default:
			apiError(403, "permission denied")(w, r)
		}
	})
	res := runCLI(t, f.addr(), "events")
	res.check(t, 0)
	if want := "2023-11-14T22:13:20Z  node-up  node n1: registered\n2023-11-14T22:13:21Z  deploy-started  web gen 3\n"; res.stdout != want {
		t.Fatalf("events:\n%q\nwant\n%q", res.stdout, want)
	}
	mu.Lock()
	asked = nil
	mu.Unlock()
	res = runCLI(t, f.addr(), "events", "--follow", "--service", "web", "--json")
	res.check(t, 2) // ended by the 403
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"type":"deploy-started"`) || !strings.Contains(lines[1], `"type":"step-failed"`) ||
		!strings.Contains(lines[1], `"step":"web/b/x/create"`) || strings.Contains(res.stdout, `"db"`) {
		t.Fatalf("followed events of web:\n%s", res.stdout)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 3 || !strings.Contains(asked[2], "index=4") {
		t.Fatalf("queries: %q", asked)
	}
}
