package coordinator

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/tlsutil"
	"github.com/dtkhq/dtk/plan"
)

// The secrets of the leak test: an operator's input, a sensitive default
// and an output a step reports.
const (
	testSecret        = "hunter2-XyZZy-7431"
	testDefaultSecret = "default-secret-Qw81"
	testOutputSecret  = "output-secret-Lk52"
)

const sensitiveModule = `module {
  name    = "vault"
  version = "1.0.0"
}

component "secret_file" {
  attribute "path" {
    type     = string
    required = true
  }
  attribute "content" {
    type      = string
    required  = true
    sensitive = true
  }
  attribute "note" {
    type    = string
    default = ""
  }
  attribute "salt" {
    type      = string
    default   = "` + testDefaultSecret + `"
    sensitive = true
  }
  output "token" {
    sensitive = true
  }
  create {
    inline = "true"
  }
  delete {
    inline = "true"
  }
  action "rotate" {
    inline = "true"
  }
}

template "app" {
  input "password" {
    type      = string
    sensitive = true
  }
  input "user" {
    type    = string
    default = "admin"
  }
  export "dsn" {
    value = "${input.user}:${input.password}"
  }
  node "a" {
    labels = { role = "a" }
    component "secret_file" "creds" {
      path    = "/etc/creds"
      content = "pw=${input.password}"
      note    = "derived-${input.password}"
    }
  }
  node "b" {
    labels = { role = "b" }
    component "secret_file" "other" {
      path    = "/etc/other"
      content = "static"
    }
  }
}
`

// httpAnswer is one response of the leak test.
type httpAnswer struct {
	code  int
	ctype string
	body  string
}

func call(t *testing.T, c *http.Client, method, url, body string) httpAnswer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpAnswer{resp.StatusCode, resp.Header.Get("Content-Type"), string(b)}
}

// A service with a sensitive input, fed into a sensitive attribute and
// into one computed from it, deployed, reported on (by an agent that does
// not redact its output) and run ops on: no answer of any route shows a
// secret, except a node's own slice and operations served to that node.
func TestRedact_NoRouteShowsSecrets(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServer(t, p)
	base := "https://" + s.HTTPAddr()
	operator := p.client(tlsutil.RoleClient, "ops")
	nodes := map[string]*http.Client{"n1": p.client(tlsutil.RoleNode, "n1"), "n2": p.client(tlsutil.RoleNode, "n2")}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(sensitiveModule), 0o644); err != nil {
		t.Fatal(err)
	}
	tgz, err := archive.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	digest := archive.Digest(tgz)

	secrets := []string{testSecret, testDefaultSecret, testOutputSecret}
	leaks := func(body string) string {
		for _, sec := range secrets {
			if strings.Contains(body, sec) {
				return sec
			}
		}
		return ""
	}
	// must answers a write; its answer must not show a secret either.
	must := func(c *http.Client, method, path, body string) httpAnswer {
		t.Helper()
		a := call(t, c, method, base+path, body)
		if a.code != 200 {
			t.Fatalf("%s %s: %d %s", method, path, a.code, a.body)
		}
		if sec := leaks(a.body); sec != "" {
			t.Errorf("%s %s answers with secret %q:\n%s", method, path, sec, a.body)
		}
		return a
	}
	must(operator, "POST", "/v1/modules", string(tgz))
	must(nodes["n1"], "PUT", "/v1/nodes/n1", `{"name":"n1","labels":{"role":"a"}}`)
	must(nodes["n2"], "PUT", "/v1/nodes/n2", `{"name":"n2","labels":{"role":"b"}}`)
	must(operator, "POST", "/v1/services", `{"name":"app","template":"vault/app","inputs":{"password":"x`+testSecret+`"}}`)
	must(operator, "POST", "/v1/services/app/inputs", `{"inputs":{"password":"`+testSecret+`"}}`)
	must(operator, "POST", "/v1/services/app/deploy", ``)

	// The node's slice, in clear to the node: the secret reaches it.
	var sl plan.Slice
	if err := json.Unmarshal([]byte(must2(t, call(t, nodes["n1"], "GET", base+"/v1/nodes/n1/plan?wait=10ms", ""))), &sl); err != nil {
		t.Fatal(err)
	}
	var create *plan.Step
	for _, st := range sl.Steps {
		if st.Action == "create" {
			create = st
		}
	}
	if create == nil || string(create.Attributes["content"]) != `"pw=`+testSecret+`"` ||
		string(create.Attributes["note"]) != `"derived-`+testSecret+`"` || string(create.Attributes["salt"]) != `"`+testDefaultSecret+`"` {
		t.Fatalf("n1's own slice lacks the clear values: %+v", create)
	}
	// An agent that does not redact reports the secrets in its output,
	// error and a sensitive output.
	rep := plan.Report{ID: "n1:1", Node: "n1", Service: "app", StepID: create.ID, Action: "create", Generation: create.Generation,
		Digest: create.Digest, State: plan.StepOK, Output: "connecting with " + testSecret + "\n", Error: "not really: " + testSecret,
		Outputs: map[string]json.RawMessage{"token": json.RawMessage(`"` + testOutputSecret + `"`)}}
	rb, _ := json.Marshal(map[string]any{"reports": []plan.Report{rep}})
	must(nodes["n1"], "POST", "/v1/nodes/n1/reports", string(rb))

	var ops []string
	for _, o := range []struct{ kind, body string }{{"dry-run", ""}, {"exec", `{"action":"rotate"}`}} {
		a := must(operator, "POST", "/v1/services/app/"+o.kind, o.body)
		var op plan.Op
		if err := json.Unmarshal([]byte(a.body), &op); err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op.ID)
		// n1 answers without finishing, so the op stays in its list.
		res := plan.Report{ID: "n1:op", Node: "n1", Service: "app", StepID: create.ID, Action: "create",
			State: plan.StepOK, Output: "op saw " + testSecret, Outputs: map[string]json.RawMessage{"token": json.RawMessage(`"` + testOutputSecret + `"`)}}
		rb, _ := json.Marshal(map[string]any{"reports": []plan.Report{res}, "final": false})
		must(nodes["n1"], "POST", "/v1/nodes/n1/ops/"+op.ID+"/results", string(rb))
	}

	// Every GET route, by every kind of caller.
	fills := map[string][]string{
		"{name}":    {"app", "n1", "n2", "vault"},
		"{version}": {"1.0.0", "latest"},
		"{digest}":  {digest},
		"{id}":      ops,
	}
	var paths []string
	for _, ri := range s.routes {
		method, pattern, ok := strings.Cut(ri.pattern, " ")
		if !ok || method != "GET" || pattern == "/debug/pprof/profile" || pattern == "/debug/pprof/trace" {
			continue // profiles run for seconds and answer no JSON
		}
		expanded := []string{pattern}
		for key, vals := range fills {
			var next []string
			for _, p := range expanded {
				if !strings.Contains(p, key) {
					next = append(next, p)
					continue
				}
				for _, v := range vals {
					next = append(next, strings.ReplaceAll(p, key, v))
				}
			}
			expanded = next
		}
		paths = append(paths, expanded...)
	}
	callers := map[string]*http.Client{"operator": operator, "n1": nodes["n1"], "n2": nodes["n2"]}
	checked, clear := 0, 0
	for _, path := range paths {
		for who, c := range callers {
			a := call(t, c, "GET", base+path+"?wait=10ms", "")
			own := who != "operator" && (path == "/v1/nodes/"+who+"/plan" || path == "/v1/nodes/"+who+"/ops")
			if !strings.HasPrefix(a.ctype, "application/json") {
				continue // blobs and snapshots: archives, not answers
			}
			checked++
			sec := leaks(a.body)
			switch {
			case own && sec == "":
				t.Errorf("%s GET %s: %d, want the clear values for the node itself:\n%s", who, path, a.code, a.body)
			case own:
				clear++
			case sec != "":
				t.Errorf("%s GET %s: %d shows secret %q:\n%s", who, path, a.code, sec, a.body)
			}
		}
	}
	if checked < 30 || clear != 4 {
		t.Fatalf("checked %d answers, %d in clear: the test did not reach the routes", checked, clear)
	}

	// What operators see instead: the redaction marker.
	for _, path := range []string{"/v1/services/app", "/v1/services/app/plan", "/v1/nodes/n1/plan", "/v1/ops/" + ops[1], "/v1/modules/vault/1.0.0"} {
		a := call(t, operator, "GET", base+path+"?wait=10ms", "")
		if a.code != 200 || !strings.Contains(a.body, redactedText) {
			t.Errorf("GET %s: %d without %q:\n%s", path, a.code, redactedText, a.body)
		}
	}
	// The state itself keeps the clear values (redaction copies).
	if v := s.State().Service("app").Inputs["password"]; v != testSecret {
		t.Errorf("state's input is %q after redacted reads", v)
	}
	if b, _ := json.Marshal(s.State().Slice("n1")); !strings.Contains(string(b), testSecret) {
		t.Errorf("state's slice lost the clear value: %s", b)
	}
}

func must2(t *testing.T, a httpAnswer) string {
	t.Helper()
	if a.code != 200 {
		t.Fatalf("%d %s", a.code, a.body)
	}
	return a.body
}
