package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

type status struct {
	State      string `json:"state"`
	Generation uint64 `json:"generation"`
	Nodes      []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Steps  []struct {
			Component  string `json:"component"`
			Instance   string `json:"instance"`
			Action     string `json:"action"`
			State      string `json:"state"`
			ExitCode   int    `json:"exit_code"`
			DurationMs int64  `json:"duration_ms"`
			Generation uint64 `json:"generation"`
		} `json:"steps"`
	} `json:"nodes"`
}

func getStatus(t *testing.T, addr, name string) status {
	t.Helper()
	out := mustCtl(t, addr, "service", "status", name, "--json")
	var st status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	return st
}

// stepStates maps "instance/action" to its state.
func stepStates(st status) map[string]string {
	m := map[string]string{}
	for _, n := range st.Nodes {
		for _, s := range n.Steps {
			m[s.Instance+"/"+s.Action] = s.State
		}
	}
	return m
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String(), nil
}

// A coordinator and two agents as real processes, each on its own loopback
// address: push, stage, deploy, change one input, restart an agent, delete.
func TestE2E_DeployChangeRestartDelete(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const coordIP, webIP, dbIP = "127.0.0.20", "127.0.0.21", "127.0.0.22"
	addr := coordIP + ":7070"
	startAgent(t, "coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"),
		"--serf-addr", coordIP+":7946")
	join := "--join=" + coordIP + ":7946"
	webDir := filepath.Join(root, "web")
	web := startAgent(t, "web", "--data-dir", webDir, "--serf-addr", webIP+":7946", join, "--label", "role=web")
	startAgent(t, "db", "--data-dir", filepath.Join(root, "db"), "--serf-addr", dbIP+":7946", join, "--label", "role=db")
	t.Cleanup(func() { killHTTPServer(webDir) })

	waitLeader(t, addr)
	waitFor(t, 60*time.Second, "two nodes registered", func() bool {
		out, _, code := ctl(t, addr, "node", "list", "--json")
		return code == 0 && strings.Count(out, `"status": "up"`) == 2
	})

	mustCtl(t, addr, "module", "push", "../../examples/hello")
	mustCtl(t, addr, "service", "stage", "demo", "--template", "hello/site", "--set", "port=18080")
	out := mustCtl(t, addr, "service", "deploy", "demo", "--wait")
	if !strings.Contains(out, "converged") {
		t.Fatalf("deploy output lacks the outcome:\n%s", out)
	}
	st := getStatus(t, addr, "demo")
	if st.State != "converged" || st.Generation != 1 {
		t.Fatalf("status = %s gen %d", st.State, st.Generation)
	}
	for k, v := range stepStates(st) {
		if v != "ok" {
			t.Fatalf("step %s = %s, want ok", k, v)
		}
	}
	page, err := httpGet("http://" + webIP + ":18080/index.html")
	if err != nil || !strings.Contains(page, "Hello from web") || !strings.Contains(page, dbIP) {
		t.Fatalf("page = %q, %v", page, err)
	}
	pid1 := readFile(t, filepath.Join(webDir, "agent", "run", "http.pid"))

	// Change one input: only the two steps that use it run again.
	mustCtl(t, addr, "service", "set", "demo", "greeting=Bonjour")
	mustCtl(t, addr, "service", "deploy", "demo", "--wait")
	st = getStatus(t, addr, "demo")
	want := map[string]string{"greeting/create": "ok", "index/create": "ok", "site/create": "skipped"}
	if got := stepStates(st); !mapsEqual(got, want) || st.Generation != 2 {
		t.Fatalf("after changing greeting: gen %d steps %v, want %v", st.Generation, got, want)
	}
	if page, _ := httpGet("http://" + webIP + ":18080/index.html"); !strings.Contains(page, "Bonjour from web") {
		t.Fatalf("page after change = %q", page)
	}
	if pid := readFile(t, filepath.Join(webDir, "agent", "run", "http.pid")); pid != pid1 {
		t.Fatalf("the HTTP server was restarted (%s → %s) though its step did not change", pid1, pid)
	}

	// Kill the web agent hard and restart it: it converges from its own
	// state and runs nothing.
	web.stop(syscall.SIGKILL)
	web2 := startAgent(t, "web", "--data-dir", webDir, "--serf-addr", webIP+":7946", join, "--label", "role=web")
	converged := regexp.MustCompile(`msg=converged .*? ran=(\d+)`)
	waitFor(t, 30*time.Second, "restarted agent registered and converged", func() bool {
		o := web2.Output()
		return strings.Contains(o, "msg=registered") && converged.MatchString(o)
	})
	// Its first poll (with the cached index) must find nothing new either.
	if st := getStatus(t, addr, "demo"); st.State != "converged" || st.Generation != 2 {
		t.Fatalf("after restart: %s gen %d", st.State, st.Generation)
	}
	for _, m := range converged.FindAllStringSubmatch(web2.Output(), -1) {
		if m[1] != "0" {
			t.Fatalf("restarted agent ran %s steps:\n%s", m[1], web2.Output())
		}
	}

	// Delete: the delete actions run and the service is gone.
	mustCtl(t, addr, "service", "delete", "demo", "--wait")
	if _, _, code := ctl(t, addr, "service", "status", "demo"); code != 2 {
		t.Fatalf("status of a deleted service: exit %d, want 2", code)
	}
	if _, err := os.Stat(filepath.Join(webDir, "agent", "www", "index.html")); !os.IsNotExist(err) {
		t.Fatalf("page still there after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "db", "agent", "kv", "greeting")); !os.IsNotExist(err) {
		t.Fatalf("kv entry still there after delete: %v", err)
	}
	if _, err := httpGet("http://" + webIP + ":18080/"); err == nil {
		t.Fatal("HTTP server still answers after delete")
	}
	if out := mustCtl(t, addr, "service", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("service list after delete = %s", out)
	}
}

// Bad input gets a clear error and exit code 2.
func TestE2E_BadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	const coordIP = "127.0.0.30"
	addr := coordIP + ":7070"
	startAgent(t, "coord", "--coordinator", "--no-agent", "--data-dir", filepath.Join(root, "coord"),
		"--serf-addr", coordIP+":7946")
	waitLeader(t, addr)

	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "main.hcl"), []byte("module {\n  name    = \"broken\"\n  version = \"1.0.0\"\n}\n\ncomponent \"c\" {\n  create {\n    script = \"missing.sh\"\n  }\n}\n"), 0o644)
	_, errOut, code := ctl(t, addr, "module", "push", broken)
	if code != 2 || !strings.Contains(errOut, "main.hcl:8:") || !strings.Contains(errOut, "missing.sh") {
		t.Fatalf("broken module: exit %d\n%s", code, errOut)
	}

	mustCtl(t, addr, "module", "push", "../../examples/hello")
	_, errOut, code = ctl(t, addr, "service", "stage", "x", "--template", "hello/nosuch")
	if code != 2 || !strings.Contains(errOut, `no template "nosuch"`) || !strings.Contains(errOut, "site") {
		t.Fatalf("unknown template: exit %d\n%s", code, errOut)
	}
	_, errOut, code = ctl(t, addr, "service", "deploy", "ghost")
	if code != 2 || !strings.Contains(errOut, `service "ghost"`) {
		t.Fatalf("unknown service: exit %d\n%s", code, errOut)
	}
	_, errOut, code = ctl(t, addr, "service", "stage")
	if code != 2 {
		t.Fatalf("missing argument: exit %d\n%s", code, errOut)
	}
	// No node matches: deploy refuses with the violation, exit 2.
	mustCtl(t, addr, "service", "stage", "lonely", "--template", "hello/site")
	_, errOut, code = ctl(t, addr, "service", "deploy", "lonely")
	if code != 2 || !strings.Contains(errOut, "no agent matches labels {role=db}") {
		t.Fatalf("deploy without nodes: exit %d\n%s", code, errOut)
	}
	// A malformed API request gets a JSON 400.
	resp, err := opClient.Post("https://"+addr+"/v1/services", "application/json", strings.NewReader(`{"name":`))
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(body["error"].(string), "malformed") {
		t.Fatalf("malformed request: %d %v", resp.StatusCode, body)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// killHTTPServer stops an example HTTP server a failed test left running.
func killHTTPServer(dataDir string) {
	b, err := os.ReadFile(filepath.Join(dataDir, "agent", "run", "http.pid"))
	if err != nil {
		return
	}
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	if pid > 0 {
		syscall.Kill(pid, syscall.SIGTERM)
	}
}
