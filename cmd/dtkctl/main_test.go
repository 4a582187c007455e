package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/term"
	"github.com/dtkhq/dtk/plan"
)

// fakeCoord is a coordinator on httptest serving the few routes a test
// registers; a request to any other route fails the test.
type fakeCoord struct {
	t   *testing.T
	mux *http.ServeMux
	srv *httptest.Server
}

func newFake(t *testing.T) *fakeCoord {
	t.Helper()
	f := &fakeCoord{t: t, mux: http.NewServeMux()}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := f.mux.Handler(r); pattern == "" {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			writeJSON(w, http.StatusNotImplemented, api.APIError{Message: "not in the fake"})
			return
		}
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCoord) handle(pattern string, h http.HandlerFunc) { f.mux.HandleFunc(pattern, h) }

func (f *fakeCoord) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(code int, msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, code, api.APIError{Code: code, Message: msg})
	}
}

// statusSeq answers blocking status queries from seq: the query with
// ?index=N gets seq[N] and index N+1, so a client that does not pass the
// index it was given back never gets past seq[0]. A nil entry answers 404.
func statusSeq(t *testing.T, seq []*api.ServiceStatus) http.HandlerFunc {
	var mu sync.Mutex
	calls := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n > 3*len(seq) {
			t.Errorf("status queried %d times for %d answers: the watch loop does not end", n, len(seq))
			writeJSON(w, http.StatusInternalServerError, api.APIError{Message: "too many queries"})
			return
		}
		if r.URL.Query().Get("wait") == "" {
			t.Errorf("status query without wait: %s", r.URL)
		}
		i, err := strconv.Atoi(r.URL.Query().Get("index"))
		if err != nil {
			t.Errorf("bad index in %s", r.URL)
		}
		i = min(i, len(seq)-1)
		w.Header().Set(api.IndexHeader, strconv.Itoa(i+1))
		if seq[i] == nil {
			writeJSON(w, http.StatusNotFound, api.APIError{Code: 404, Message: `not found: service "web"`})
			return
		}
		writeJSON(w, http.StatusOK, seq[i])
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs dtkctl with $DTK_ADDR set to addr.
func runCLI(t *testing.T, addr string, args ...string) result {
	t.Helper()
	return runCLIEnv(t, map[string]string{"DTK_ADDR": addr}, args...)
}

// runCLIEnv runs dtkctl with the environment env.
func runCLIEnv(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	code := run(context.Background(), args, &stdout, &stderr, getenv)
	return result{code, stdout.String(), stderr.String()}
}

func (r result) check(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") {
		t.Fatalf("stack trace or panic printed:\n%s", r.stderr)
	}
}

func TestRun_UsageErrors_Exit2(t *testing.T) {
	f := newFake(t) // any request fails the test
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"service", "stage"},
		{"service", "stage", "web"}, // --template is required
		{"service", "deploy", "web", "--timeout", "soon"},
		{"service", "set", "web"},
		{"node", "list", "--frobnicate"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			r := runCLI(t, f.addr(), args...)
			r.check(t, exitUsage)
			if !strings.HasPrefix(r.stderr, "error: ") || !strings.Contains(r.stderr, "--help") {
				t.Errorf("want an error and a help hint, got:\n%s", r.stderr)
			}
		})
	}
}

func TestRun_HelpAndVersion_Exit0(t *testing.T) {
	r := runCLI(t, "127.0.0.1:1", "version")
	r.check(t, exitOK)
	if !strings.HasPrefix(r.stdout, "dtkctl dev (go") {
		t.Errorf("version printed %q", r.stdout)
	}
	r = runCLI(t, "127.0.0.1:1", "service", "deploy", "--help")
	r.check(t, exitOK)
	if !strings.Contains(r.stdout, "--wait") {
		t.Errorf("help lacks --wait:\n%s", r.stdout)
	}
}

func TestServiceStage_SetWithoutEquals_Exit2(t *testing.T) {
	f := newFake(t)
	r := runCLI(t, f.addr(), "service", "stage", "web", "--template", "hello/web", "--set", "port")
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, `"port": expected KEY=VALUE`) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	r = runCLI(t, f.addr(), "service", "set", "web", "a=1", "=2")
	r.check(t, exitUsage)
}

func TestServiceStage_SetParsing(t *testing.T) {
	f := newFake(t)
	var got api.StageRequest
	f.handle("POST /v1/services", func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		writeJSON(w, 200, plan.Service{Name: got.Name, Module: "hello", Version: "1.0.0", Template: "web", Parent: got.Parent, State: "staged"})
	})
	r := runCLI(t, f.addr(), "service", "stage", "web", "--template", "hello/web", "--parent", "net",
		"--set", "a=1", "--set", "list=x,y", "--set", "expr=k=v", "--set", "empty=", "--set", "a=2")
	r.check(t, exitOK)
	want := api.StageRequest{Name: "web", Template: "hello/web", Parent: "net",
		Inputs: map[string]string{"a": "2", "list": "x,y", "expr": "k=v", "empty": ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stage request %+v, want %+v", got, want)
	}
	if r.stdout != "staged web (hello@1.0.0/web with respect to net)\n" {
		t.Errorf("stdout %q", r.stdout)
	}
}

func TestServiceSet_Inputs(t *testing.T) {
	f := newFake(t)
	var got api.InputsRequest
	f.handle("POST /v1/services/{name}/inputs", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&got)
		// The coordinator answers with sensitive inputs redacted.
		writeJSON(w, 200, plan.Service{Name: r.PathValue("name"), Inputs: map[string]string{"port": "8080", "password": "(sensitive)"}})
	})
	r := runCLI(t, f.addr(), "service", "set", "web", "port=8080", "motd=", "password=hunter2", "other=x")
	r.check(t, exitOK)
	if want := map[string]string{"port": "8080", "motd": "", "password": "hunter2", "other": "x"}; !reflect.DeepEqual(got.Inputs, want) {
		t.Errorf("inputs %v, want %v", got.Inputs, want)
	}
	if r.stdout != "updated web: motd unset, other set, password=(sensitive), port=8080\n" || strings.Contains(r.stdout+r.stderr, "hunter2") {
		t.Errorf("stdout %q", r.stdout)
	}
}

func TestRun_APIErrors(t *testing.T) {
	diag := "module is invalid:\nmain.hcl:3:5: unknown attribute \"prot\"\n  3 |   prot = 80\n    |   ^"
	f := newFake(t)
	f.handle("POST /v1/services", apiError(400, diag))
	f.handle("GET /v1/services/{name}", apiError(404, `not found: service "nope"`))
	f.handle("GET /v1/services", apiError(500, "boom"))
	f.handle("POST /v1/services/{name}/deploy", apiError(422, "plan has violations:\ninput \"port\" is not set"))

	r := runCLI(t, f.addr(), "service", "stage", "web", "--template", "hello/web")
	r.check(t, exitUsage)
	if r.stderr != "error: "+diag+"\n" {
		t.Errorf("400 printed %q", r.stderr)
	}

	r = runCLI(t, f.addr(), "service", "status", "nope")
	r.check(t, exitUsage)
	if r.stderr != "error: not found: service \"nope\"\n" {
		t.Errorf("404 printed %q", r.stderr)
	}

	r = runCLI(t, f.addr(), "service", "list")
	r.check(t, exitFailed)
	if r.stderr != "error: boom\n" {
		t.Errorf("500 printed %q", r.stderr)
	}

	r = runCLI(t, f.addr(), "service", "deploy", "web", "--wait")
	r.check(t, exitUsage)
	if !strings.Contains(r.stderr, "input \"port\" is not set") {
		t.Errorf("422 printed %q", r.stderr)
	}
}

func TestRun_Unreachable_Exit1(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	r := runCLI(t, "127.0.0.1:1", "--addr", addr, "node", "list")
	r.check(t, exitFailed)
	if !strings.Contains(r.stderr, "cannot reach coordinator at http://"+addr) || !strings.Contains(r.stderr, "--addr") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

func TestModulePush(t *testing.T) {
	f := newFake(t)
	f.handle("POST /v1/modules", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/gzip" {
			t.Errorf("content type %q", ct)
		}
		writeJSON(w, 200, plan.Module{Name: "hello", Version: "1.0.0", Digest: "sha256:abcd1234ef567890",
			Components: map[string]*plan.Component{"a": {}, "b": {}, "c": {}},
			Templates:  map[string]*plan.Template{"web": {}}})
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "module.hcl"), []byte("module \"hello\" {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, f.addr(), "module", "push", dir)
	r.check(t, exitOK)
	if want := "pushed hello@1.0.0 (sha256:abcd1234…, 3 components, 1 template)\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}

	r = runCLI(t, f.addr(), "module", "push", filepath.Join(dir, "missing"))
	r.check(t, exitUsage)
	r = runCLI(t, f.addr(), "module", "push", filepath.Join(dir, "module.hcl"))
	r.check(t, exitUsage)
}

func TestListTables(t *testing.T) {
	f := newFake(t)
	f.handle("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []*plan.Node{{Name: "agent-1", Status: "up", Labels: map[string]string{"zone": "a", "role": "web"},
			Facts: plan.Facts{OS: "linux", Arch: "amd64", Address: "10.0.0.1", AgentVersion: "0.1.0"}}})
	})
	f.handle("GET /v1/modules", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []*plan.Module{{Name: "hello", Version: "1.0.0", Digest: "sha256:0123456789abcdef", KeyID: "3f9a0c2d1e4b5a67", SignedBy: "alice",
			Components: map[string]*plan.Component{"page": {}, "nginx": {}}, Templates: map[string]*plan.Template{"web": {}}},
			{Name: "hello", Version: "1.1.0", Templates: map[string]*plan.Template{"web": {}}}})
	})
	r := runCLI(t, f.addr(), "node", "list")
	r.check(t, exitOK)
	want := "NAME     STATUS  ADDRESS   LABELS           OS/ARCH      VERSION\n" +
		"agent-1  up      10.0.0.1  role=web,zone=a  linux/amd64  0.1.0\n"
	if r.stdout != want {
		t.Errorf("node list:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = runCLI(t, f.addr(), "module", "list")
	r.check(t, exitOK)
	want = "NAME   VERSION  DIGEST        SIGNED BY                 TEMPLATES  COMPONENTS\n" +
		"hello  1.0.0    0123456789ab  alice (3f9a0c2d1e4b5a67)  web        nginx,page\n" +
		"hello  1.1.0    -             -                         web        -\n"
	if r.stdout != want {
		t.Errorf("module list:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func testStatus(gen uint64, state string, steps ...api.StepStatus) *api.ServiceStatus {
	st := &api.ServiceStatus{Name: "web", State: state, Generation: gen, Module: "hello", Version: "1.0.0", Template: "web"}
	for i, s := range steps {
		node := api.NodeStatus{Name: "agent-" + strconv.Itoa(i+1), TemplateNode: s.Instance, Status: "up"}
		if s.Action == "" {
			s.Action = "create"
		}
		s.ID = "web/" + s.Instance + "/" + s.Instance + "/" + s.Action
		s.Component = s.Instance + "-comp"
		node.Steps = []api.StepStatus{s}
		st.Nodes = append(st.Nodes, node)
	}
	return st
}

func step(inst, state string, exit int, ms int64, gen uint64) api.StepStatus {
	return api.StepStatus{Instance: inst, State: state, ExitCode: exit, DurationMs: ms, Generation: gen}
}

func deployFake(t *testing.T, seq []*api.ServiceStatus) *fakeCoord {
	f := newFake(t)
	f.handle("POST /v1/services/{name}/deploy", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, plan.Service{Name: "web", State: "deploying", Generation: 3,
			Plan: &plan.Plan{Generation: 3, Nodes: []*plan.NodePlan{{Steps: []*plan.Step{{}}}, {Steps: []*plan.Step{{}}}}}})
	})
	f.handle("GET /v1/services/{name}", statusSeq(t, seq))
	return f
}

// A deploy --wait follows the deployed generation only (the stale converged
// generation 2 must not end it) and prints one line per step change.
func TestServiceDeploy_WaitConverged_Exit0(t *testing.T) {
	f := deployFake(t, []*api.ServiceStatus{
		testStatus(2, "converged", step("index", "ok", 0, 5, 2), step("db", "ok", 0, 5, 2)),
		testStatus(3, "deploying", step("index", "running", 0, 0, 3), step("db", "ok", 0, 5, 2)),
		testStatus(3, "deploying", step("index", "ok", 0, 12, 3), step("db", "running", 0, 0, 3)),
		testStatus(3, "converged", step("index", "ok", 0, 12, 3), step("db", "skipped", 0, 1500, 3)),
	})
	r := runCLI(t, f.addr(), "service", "deploy", "web", "--wait")
	r.check(t, exitOK)
	want := `deploying web generation 3 (2 steps on 2 nodes)
agent-1 index/index create: running
agent-1 index/index create: ok (12ms)
agent-2 db/db create: running
agent-2 db/db create: skipped (1.5s)

NODE     STEP                      ACTION  STATE      EXIT  DURATION
agent-1  index/index (index-comp)  create  unchanged  0     12ms
agent-2  db/db (db-comp)           create  skipped    -     1.5s
web converged at generation 3
`
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func TestServiceDeploy_WaitFailed_Exit1(t *testing.T) {
	failed := step("db", "failed", 3, 40, 3)
	failed.Error = "exit status 3"
	failed.Output = "creating table\npermission denied\n"
	f := deployFake(t, []*api.ServiceStatus{
		testStatus(3, "deploying", step("index", "running", 0, 0, 3), step("db", "pending", 0, 0, 0)),
		testStatus(3, "failed", step("index", "ok", 0, 12, 3), failed),
	})
	r := runCLI(t, f.addr(), "service", "deploy", "web", "--wait")
	r.check(t, exitFailed)
	for _, want := range []string{
		"agent-2 db/db create: failed (exit 3, 40ms)\n",
		"agent-2  db/db (db-comp)           create  failed     3     40ms\n",
		"agent-2 db/db create failed: exit status 3\n    creating table\n    permission denied\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.stderr != "error: deploy of web failed at generation 3: 1 step failed\n" {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestServiceDeploy_WaitTimeout_Exit1(t *testing.T) {
	f := newFake(t)
	f.handle("POST /v1/services/{name}/deploy", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, plan.Service{Name: "web", State: "deploying", Generation: 1})
	})
	f.handle("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never changes
	})
	r := runCLI(t, f.addr(), "service", "deploy", "web", "--wait", "--timeout", "20ms")
	r.check(t, exitFailed)
	if !strings.Contains(r.stderr, "timed out after 20ms waiting for web to converge") {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestServiceDelete_Wait(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  []*api.ServiceStatus
		code int
		out  string
	}{
		{"gone", []*api.ServiceStatus{
			testStatus(4, "deleting", step("index", "running", 0, 0, 4)),
			nil,
		}, exitOK, "deleted web\n"},
		{"failed", []*api.ServiceStatus{
			testStatus(4, "deleting", step("index", "running", 0, 0, 4)),
			testStatus(4, "failed", step("index", "failed", 1, 3, 4)),
		}, exitFailed, "agent-1 index/index create failed: exit code 1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.handle("DELETE /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, plan.Service{Name: "web", State: "deleting", Generation: 4})
			})
			f.handle("GET /v1/services/{name}", statusSeq(t, tc.seq))
			r := runCLI(t, f.addr(), "service", "delete", "web", "--wait")
			r.check(t, tc.code)
			if !strings.HasSuffix(r.stdout, tc.out) {
				t.Errorf("stdout does not end in %q:\n%s", tc.out, r.stdout)
			}
		})
	}
}

// service status --json is a contract: the api.ServiceStatus object as is.
func TestServiceStatus_JSON(t *testing.T) {
	st := testStatus(3, "failed", step("index", "ok", 0, 12, 3), step("db", "failed", 2, 40, 3))
	f := newFake(t)
	f.handle("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "" {
			t.Errorf("status is not a blocking query: %s", r.URL)
		}
		writeJSON(w, 200, st)
	})
	r := runCLI(t, f.addr(), "service", "status", "web", "--json")
	r.check(t, exitOK)

	var got api.ServiceStatus
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, st) {
		t.Errorf("got %+v, want %+v", got, st)
	}
	var raw map[string]any
	_ = json.Unmarshal([]byte(r.stdout), &raw)
	for _, k := range []string{"state", "generation", "nodes"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("no %q in %s", k, r.stdout)
		}
	}
	node := raw["nodes"].([]any)[1].(map[string]any)
	if node["name"] != "agent-2" {
		t.Errorf("node name %v", node["name"])
	}
	s := node["steps"].([]any)[0].(map[string]any)
	for k, v := range map[string]any{"component": "db-comp", "action": "create", "state": "failed", "exit_code": 2.0, "duration_ms": 40.0} {
		if s[k] != v {
			t.Errorf("step %s = %v, want %v", k, s[k], v)
		}
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"name\": \"web\",\n") {
		t.Errorf("not indented JSON:\n%s", r.stdout)
	}
}

func TestServicePlan_ViolationsExit1(t *testing.T) {
	f := newFake(t)
	f.handle("GET /v1/services/{name}/plan", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.PlanPreview{
			Service: "web", Generation: 2,
			Violations: []plan.Violation{{Message: `input "port" is not set`, Pos: &plan.Pos{File: "web.hcl", Line: 4, Column: 3}}},
		})
	})
	r := runCLI(t, f.addr(), "service", "plan", "web")
	r.check(t, exitFailed)
	if !strings.Contains(r.stdout, "  web.hcl:4:3: input \"port\" is not set\n") {
		t.Errorf("stdout lacks the violation:\n%s", r.stdout)
	}
}

func TestServicePlan_DiffWithProvenance(t *testing.T) {
	f := newFake(t)
	f.handle("GET /v1/services/{name}/plan", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.PlanPreview{
			Service: "web", Generation: 2,
			Nodes: []plan.NodeDiff{{Name: "web", Agent: "agent-1", Steps: []plan.StepDiff{
				{Instance: "index", Component: "page", Action: "create", Change: plan.ChangeChange, Changed: []string{"message"},
					Attributes: []*plan.Value{{Name: "message", Value: []byte(`"Bonjour"`), Old: []byte(`"Hello"`), Source: "input greeting (operator)"}}},
				{Instance: "site", Component: "http_server", Action: "create", Change: plan.ChangeUnchanged},
			}}},
			Inputs: []*plan.Value{{Name: "greeting", Value: []byte(`"Bonjour"`), Source: "operator"}},
		})
	})
	r := runCLI(t, f.addr(), "service", "plan", "web")
	r.check(t, exitOK)
	for _, want := range []string{"~ index (page)        create", `message = "Hello" → "Bonjour"  ← input greeting (operator)`, "= site  (http_server) create", "0 to add, 1 to change, 0 to remove, 1 unchanged"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestProgress_TTYRedrawsInPlace(t *testing.T) {
	var buf bytes.Buffer
	p := (&Output{Out: &buf, TTY: true}).progress(3)
	defer p.close()
	p.update(testStatus(3, "deploying", step("index", "running", 0, 0, 3), step("db", "pending", 0, 0, 0)))
	first := buf.String()
	if strings.Contains(first, "\x1b[") {
		t.Errorf("first draw moves the cursor: %q", first)
	}
	if !strings.Contains(first, "agent-1 (index)  ● running: index create\n") || !strings.Contains(first, "agent-2 (db)  · 1 pending\n") {
		t.Errorf("first draw:\n%s", first)
	}
	buf.Reset()
	p.update(testStatus(3, "failed", step("index", "ok", 0, 9, 3), step("db", "failed", 1, 9, 3)))
	if !strings.HasPrefix(buf.String(), "\r"+strings.Repeat("\x1b[1A\x1b[2K", 3)+"web: failed") {
		t.Errorf("redraw does not erase the 3 lines drawn: %q", buf.String())
	}
	if !strings.Contains(buf.String(), "agent-2 (db)  ✗ failed: db create\n") {
		t.Errorf("redraw:\n%s", buf.String())
	}
}

// --set-file reads a value from a file (less one trailing newline), so
// that a secret stays out of the command line; a file that cannot be read
// is a usage error and nothing is sent.
func TestService_SetFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := write("pw", "s3cr3t-value\n")
	two := write("two", "line\n\n")
	crlf := write("crlf", "win\r\n")
	bare := write("bare", "no-newline")
	empty := write("empty", "\n")
	huge := write("huge", strings.Repeat("x", maxValueFile+1))

	f := newFake(t)
	var staged api.StageRequest
	var set api.InputsRequest
	f.handle("POST /v1/services", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&staged)
		writeJSON(w, 200, plan.Service{Name: staged.Name, Module: "m", Version: "1", Template: "t"})
	})
	f.handle("POST /v1/services/{name}/inputs", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&set)
		writeJSON(w, 200, plan.Service{Name: r.PathValue("name"), Inputs: map[string]string{"password": "(sensitive)", "port": "80"}})
	})

	cases := []struct {
		name string
		args []string
		code int
		want map[string]string // the inputs sent
		msg  string            // in stderr
	}{
		{"stage", []string{"service", "stage", "web", "--template", "m/t", "--set", "port=80", "--set-file", "password=" + pw, "--set-file", "two=" + two, "--set-file", "crlf=" + crlf, "--set-file", "bare=" + bare},
			exitOK, map[string]string{"port": "80", "password": "s3cr3t-value", "two": "line\n", "crlf": "win", "bare": "no-newline"}, ""},
		{"set", []string{"service", "set", "web", "port=80", "--set-file", "password=" + pw}, exitOK, map[string]string{"port": "80", "password": "s3cr3t-value"}, ""},
		{"set with a file only", []string{"service", "set", "web", "--set-file", "password=" + pw}, exitOK, map[string]string{"password": "s3cr3t-value"}, ""},
		{"stage, missing file", []string{"service", "stage", "web", "--template", "m/t", "--set-file", "password=" + filepath.Join(dir, "nope")}, exitUsage, nil, "--set-file password: cannot read"},
		{"set, missing file", []string{"service", "set", "web", "--set-file", "password=" + filepath.Join(dir, "nope")}, exitUsage, nil, "--set-file password: cannot read"},
		{"set, no equals", []string{"service", "set", "web", "--set-file", "password"}, exitUsage, nil, "expected KEY=VALUE"},
		{"set, both ways", []string{"service", "set", "web", "password=x", "--set-file", "password=" + pw}, exitUsage, nil, "also given"},
		{"set, empty file", []string{"service", "set", "web", "--set-file", "password=" + empty}, exitUsage, nil, "is empty"},
		{"set, nothing", []string{"service", "set", "web"}, exitUsage, nil, "nothing to set"},
		{"set, file too large", []string{"service", "set", "web", "--set-file", "password=" + huge}, exitUsage, nil, "larger than 1048576 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			staged, set = api.StageRequest{}, api.InputsRequest{}
			r := runCLI(t, f.addr(), c.args...)
			r.check(t, c.code)
			got := staged.Inputs
			if c.args[1] == "set" {
				got = set.Inputs
			}
			if c.want != nil && !reflect.DeepEqual(got, c.want) {
				t.Errorf("inputs sent %q, want %q", got, c.want)
			}
			if c.want == nil && (staged.Name != "" || set.Inputs != nil) {
				t.Errorf("a request was sent: %+v %+v", staged, set)
			}
			if !strings.Contains(r.stderr, c.msg) {
				t.Errorf("stderr %q, want %q", r.stderr, c.msg)
			}
			if strings.Contains(r.stdout+r.stderr, "s3cr3t-value") {
				t.Errorf("the secret is printed:\n%s%s", r.stdout, r.stderr)
			}
		})
	}
}

// The text plan shows every value in full, wrapped within its column to
// the terminal's width; a changed value as old → new (a sensitive one only
// as changed); the names, values and sources in aligned columns; a step
// that runs because it reads a changing output, with why.
func TestPrintPlan_FullValuesWrappedAndAligned(t *testing.T) {
	addrs := `["127.0.32.2","127.0.32.3","127.0.32.4","127.0.32.5"]`
	pv := &api.PlanPreview{Service: "web", Generation: 4, Nodes: []plan.NodeDiff{
		{Name: "db", Agent: "a1", Steps: []plan.StepDiff{
			{Instance: "pg", Component: "postgres", Action: "create", Change: plan.ChangeChange, Changed: []string{"password", "peers"},
				Attributes: []*plan.Value{
					{Name: "password", Value: []byte(plan.Redacted), Old: []byte(plan.Redacted), Source: "input pw (operator)", Sensitive: true},
					// As the coordinator's indented answer holds them.
					{Name: "peers", Value: []byte(strings.ReplaceAll(addrs, ",", ",\n      ")), Old: []byte("[\n  \"127.0.32.2\"\n]"), Source: "input peers (operator)"},
					{Name: "port", Value: []byte(`5432`), Source: "default"},
				}},
			{Instance: "schema", Component: "migrate", Action: "create", Change: plan.ChangeRun, Reason: "reads output pg of node db, which runs in this deploy"},
		}},
	}}
	var buf bytes.Buffer
	printPlan(&Output{Out: &buf, Size: func() (int, int) { return 72, 0 }}, "web", pv)
	want := `plan for web, generation 4:

node db → a1
  ~ pg     (postgres) create
      password = "(sensitive)" (changed)       ← input pw (operator)
      peers    = ["127.0.32.2"] →              ← input peers (operator)
                 ["127.0.32.2","127.0.32.3",
                 "127.0.32.4","127.0.32.5"]
      port     = 5432                          ← default
  ↻ schema (migrate)  create  [may run: reads output pg of node db, which runs in this deploy]

0 to add, 1 to change, 1 may run, 0 to remove, 0 unchanged
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.Contains(l, "…") || term.StringWidth(l) > 72 && strings.HasPrefix(l, "      ") {
			t.Errorf("line cut or too wide: %q", l)
		}
	}
}

// Status says what a successful step did: changed something, found
// nothing to change, or repaired drift; not a bare "ok".
func TestStepTable_SaysWhatASuccessfulStepDid(t *testing.T) {
	changed, drift := step("index", "ok", 0, 5, 3), step("db", "ok", 0, 5, 3)
	changed.Changed, drift.Changed, drift.Drift = true, true, true
	var buf bytes.Buffer
	(&Output{Out: &buf}).stepTable(testStatus(3, "converged", changed, drift, step("site", "ok", 0, 5, 3)), 3)
	want := `NODE     STEP                      ACTION  STATE           EXIT  DURATION
agent-1  index/index (index-comp)  create  changed         0     5ms
agent-2  db/db (db-comp)           create  drift repaired  0     5ms
agent-3  site/site (site-comp)     create  unchanged       0     5ms
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}
