package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/limits"
	"github.com/dtkhq/dtk/plan"
)

// startServer runs a single-node coordinator with real Raft and HTTP on
// loopback ports chosen by the kernel.
func startServer(t *testing.T) *Server {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerWith is startServer with the configuration changed by edit.
func startServerWith(t *testing.T, edit func(*Config)) *Server {
	t.Helper()
	cfg := Config{Name: "c1", DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", Fast: true}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func doJSON(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q, want JSON", method, url, ct)
	}
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestHTTP_BadRequests_JSONErrors(t *testing.T) {
	s := startServer(t)
	base := "http://" + s.HTTPAddr()
	cases := []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"malformed json", "POST", "/v1/services", `{"name":`, 400, "malformed request body"},
		{"unknown field", "POST", "/v1/services", `{"name":"x","template":"a/b","bogus":1}`, 400, "unknown field"},
		{"bad service name", "POST", "/v1/services", `{"name":"Bad Name","template":"a/b"}`, 400, "invalid service name"},
		{"template without slash", "POST", "/v1/services", `{"name":"x","template":"hello"}`, 400, "MODULE/TEMPLATE"},
		{"unknown module", "POST", "/v1/services", `{"name":"x","template":"nope/site"}`, 404, "module nope is not pushed"},
		{"unknown service", "GET", "/v1/services/ghost", ``, 404, `service "ghost"`},
		{"deploy unknown service", "POST", "/v1/services/ghost/deploy", ``, 404, `service "ghost"`},
		{"unknown route", "GET", "/v1/nothing", ``, 404, "no such endpoint"},
		{"bad index", "GET", "/v1/services/x?index=abc", ``, 400, "index must be"},
		{"not a module archive", "POST", "/v1/modules", `plain text`, 400, "not a gzip archive"},
		{"logs over their bound", "POST", "/v1/services/ghost/logs", `{"log_bytes":2000000}`, 400, "log_bytes must be 1 to 1048576"},
		{"unregistered node poll", "GET", "/v1/nodes/ghost/plan?index=0&wait=1s", ``, 404, "not registered"},
		// An agent splits a batch on 413 (and only then): anything else
		// for an over-size body would leave its outbox stuck.
		{"report body over the limit", "POST", "/v1/nodes/n1/reports",
			`{"reports":[{"id":"n1:x:1","node":"n1","output":"` + strings.Repeat("x", int(limits.Default().ReportBodyBytes)) + `"}]}`, 413, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := doJSON(t, c.method, base+c.path, c.body)
			msg, _ := body["error"].(string)
			if code != c.code || !strings.Contains(msg, c.msg) {
				t.Fatalf("got %d %q, want %d containing %q", code, msg, c.code, c.msg)
			}
		})
	}
}

func TestHTTP_PushBrokenModule_DiagnosticsWithPosition(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.hcl"), []byte("module {\n  name = \"x\"\n  version = \"1.0\"\n}\n"), 0o644)
	tgz, err := archive.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(s.HTTPAddr())
	_, err = c.PushModule(context.Background(), tgz, "")
	ae, ok := err.(*api.APIError)
	if !ok || ae.Code != 400 || !strings.Contains(ae.Message, "main.hcl:3:") {
		t.Fatalf("got %v, want a 400 naming main.hcl:3", err)
	}
	if mods, _ := c.Modules(context.Background()); len(mods) != 0 {
		t.Fatal("a refused module was recorded")
	}
}

func TestHTTP_PushModule_StageDeployPlanPoll(t *testing.T) {
	s := startServer(t)
	c := api.NewClient(s.HTTPAddr())
	ctx := context.Background()
	tgz, err := archive.Pack("../examples/hello")
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.PushModule(ctx, tgz, "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Digest != archive.Digest(tgz) {
		t.Fatalf("digest %s, want %s", m.Digest, archive.Digest(tgz))
	}
	blob, err := c.Blob(ctx, m.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(blob)
	blob.Close()
	if !bytes.Equal(buf.Bytes(), tgz) {
		t.Fatal("blob differs from what was pushed")
	}
	for _, n := range []struct{ name, role string }{{"w", "web"}, {"d", "db"}} {
		if err := c.RegisterNode(ctx, nodeWith(n.name, n.role)); err != nil {
			t.Fatal(err)
		}
	}
	sl, err := c.NodePlan(ctx, "w", 0, time.Second)
	if err != nil || len(sl.Steps) != 0 {
		t.Fatalf("first poll: %v %v", sl, err)
	}
	// The long-poll must return as soon as the deploy publishes w's slice.
	got := make(chan int, 1)
	go func() {
		sl2, err := c.NodePlan(ctx, "w", sl.Index, time.Minute)
		if err != nil {
			got <- -1
			return
		}
		got <- len(sl2.Steps)
	}()
	if _, err := c.Stage(ctx, api.StageRequest{Name: "demo", Template: "hello/site", Inputs: map[string]string{"greeting": "Hi"}}); err != nil {
		t.Fatal(err)
	}
	ans, err := c.Deploy(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	// The answer counts the plan's steps rather than carrying them.
	if ans.Generation != 1 || ans.PlanSteps == 0 || ans.PlanNodes == 0 || ans.Plan == nil || len(ans.Plan.Nodes) != 0 {
		t.Fatalf("deploy answer: gen %d, %d steps on %d nodes, plan %+v", ans.Generation, ans.PlanSteps, ans.PlanNodes, ans.Plan)
	}
	select {
	case n := <-got:
		if n != 2 {
			t.Fatalf("web slice has %d steps, want 2", n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("long-poll did not return after deploy")
	}
	// Bad input value for a number input: a violation, 422, nothing changes.
	if _, err := c.SetInputs(ctx, "demo", map[string]string{"port": "eighty"}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Deploy(ctx, "demo")
	if ae, ok := err.(*api.APIError); !ok || ae.Code != 422 || !strings.Contains(ae.Message, "not a valid number") {
		t.Fatalf("deploy with a bad port: %v", err)
	}
}

func nodeWith(name, role string) *plan.Node {
	return &plan.Node{Name: name, Labels: map[string]string{"role": role}, Facts: plan.Facts{Address: "127.0.0.9"}}
}

func TestHTTP_Ops_LeaveOutDownNodes(t *testing.T) {
	s := startServer(t)
	c := api.NewClient(s.HTTPAddr())
	ctx := context.Background()
	tgz, _ := archive.Pack("../examples/hello")
	if _, err := c.PushModule(ctx, tgz, ""); err != nil {
		t.Fatal(err)
	}
	c.RegisterNode(ctx, nodeWith("w", "web"))
	c.RegisterNode(ctx, nodeWith("d", "db"))
	c.Stage(ctx, api.StageRequest{Name: "demo", Template: "hello/site"})
	if _, err := c.Deploy(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	down := func(names ...string) {
		var u []NodeStatusUpdate
		for _, n := range names {
			u = append(u, NodeStatusUpdate{Name: n, Status: "down"})
		}
		if _, err := s.apply(NodeStatusType, NodeStatusCmd{Updates: u}); err != nil {
			t.Fatal(err)
		}
	}
	down("d")
	op, err := c.StartOp(ctx, "demo", plan.OpCancel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := op.Steps["d"]; ok || len(op.Steps) != 1 || len(op.Skipped) != 1 || op.Skipped[0] != "d" {
		t.Fatalf("op steps %v, skipped %v: want d left out", op.Steps, op.Skipped)
	}
	down("w")
	_, err = c.StartOp(ctx, "demo", plan.OpDryRun, nil)
	if ae, ok := err.(*api.APIError); !ok || ae.Code != 409 || !strings.Contains(ae.Message, "down") {
		t.Fatalf("every node down: %v", err)
	}
}
