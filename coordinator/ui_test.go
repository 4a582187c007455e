package coordinator

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/dtkhq/dtk/internal/acl"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/tlsutil"
	"github.com/dtkhq/dtk/plan"
)

// browser is a client without a certificate, as a browser is, that keeps
// cookies and does not follow redirects (the tests look at them).
func browser(t *testing.T, p *testPKI) *http.Client {
	t.Helper()
	c := p.anonymous()
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

type uiAnswer struct {
	code     int
	location string
	body     string
	header   http.Header
}

func uiDo(t *testing.T, c *http.Client, method, url string, form url.Values, hdr ...string) uiAnswer {
	t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, url, rd)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return uiAnswer{resp.StatusCode, resp.Header.Get("Location"), string(b), resp.Header}
}

func startUIServer(t *testing.T, p *testPKI, aclOn bool) (*Server, string) {
	t.Helper()
	s := startSecureServerWith(t, p, func(c *Config) { c.UI, c.ACLEnabled = true, aclOn })
	return s, "https://" + s.HTTPAddr()
}

// Signing in: no token sends the browser to the login page; a bad token
// and a cross-origin form are refused; a good one sets a cookie that is
// HttpOnly, Secure, SameSite=Strict and for /ui/ only, which the dashboard
// reads and the API does not; signing out and deleting the token end it.
func TestUI_Login_CookieRedirectsAndRevocation(t *testing.T) {
	p := newTestPKI(t)
	s, base := startUIServer(t, p, true)
	ctx := context.Background()
	boot, err := aclClient(p, s, "").ACLBootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mgmt := aclClient(p, s, boot.SecretID)
	if _, err := mgmt.PutACLPolicy(ctx, api.ACLPolicy{Name: "viewer", Rules: `service "" { policy = "read" }`}); err != nil {
		t.Fatal(err)
	}
	tk, err := mgmt.CreateACLToken(ctx, api.ACLTokenRequest{Policies: []string{"viewer"}, Description: "dash"})
	if err != nil {
		t.Fatal(err)
	}
	b := browser(t, p)

	a := uiDo(t, b, "GET", base+"/ui/", nil)
	if a.code != 303 || a.location != "/ui/login?why=missing" {
		t.Fatalf("no token: %d %q", a.code, a.location)
	}
	a = uiDo(t, b, "GET", base+"/ui/services/web", nil)
	if a.code != 303 || !strings.Contains(a.location, "next=%2Fui%2Fservices%2Fweb") {
		t.Errorf("no token on a service page: %d %q", a.code, a.location)
	}
	if a = uiDo(t, b, "GET", base+"/ui/?fragment=1&index=1", nil); a.code != 401 {
		t.Errorf("no token on a live fragment: %d", a.code)
	}
	a = uiDo(t, b, "GET", base+"/ui/login?why=missing", nil)
	if a.code != 200 || !strings.Contains(a.body, `name="token"`) || !strings.Contains(a.body, "Sign in with an ACL token") {
		t.Fatalf("login page: %d %s", a.code, a.body)
	}
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	// A crafted reason shows nothing.
	if a = uiDo(t, b, "GET", base+"/ui/login?why=Your+token+leaked", nil); strings.Contains(a.body, "leaked") {
		t.Error("the login page shows text from the link")
	}

	a = uiDo(t, b, "POST", base+"/ui/login", url.Values{"token": {"dtkacl-forged"}})
	if a.code != 303 || !strings.Contains(a.location, "why=refused") || len(b.Jar.Cookies(mustURL(t, base+"/ui/"))) != 0 {
		t.Fatalf("bad token: %d %q", a.code, a.location)
	}
	a = uiDo(t, b, "POST", base+"/ui/login", url.Values{"token": {tk.SecretID}}, "Sec-Fetch-Site", "cross-site")
	if a.code != 403 {
		t.Errorf("cross-site sign-in: %d", a.code)
	}
	a = uiDo(t, b, "POST", base+"/ui/login", url.Values{"token": {tk.SecretID}, "next": {"//evil.example/"}})
	if a.code != 303 || a.location != "/ui/" {
		t.Fatalf("sign in: %d %q", a.code, a.location)
	}
	var set *http.Cookie
	for _, ck := range (&http.Response{Header: a.header}).Cookies() {
		if ck.Name == uiCookie {
			set = ck
		}
	}
	if set == nil || !set.HttpOnly || !set.Secure || set.SameSite != http.SameSiteStrictMode || set.Path != "/ui/" || set.Value != tk.SecretID {
		t.Fatalf("cookie: %+v", set)
	}
	a = uiDo(t, b, "GET", base+"/ui/", nil)
	if a.code != 200 || !strings.Contains(a.body, "<h1>Fleet</h1>") || !strings.Contains(a.body, "dash") {
		t.Fatalf("signed in: %d %s", a.code, a.body)
	}
	// The API ignores the cookie, even with an operator certificate.
	op := p.client(tlsutil.RoleClient, "ops")
	if c, msg := send(t, op, "GET", base+"/v1/services", "", "Cookie", uiCookie+"="+tk.SecretID); c != 401 || !strings.Contains(msg, "needs a token") {
		t.Errorf("API with the dashboard cookie: %d %q", c, msg)
	}
	// Without node read, the node pages are refused and the fleet shows no nodes.
	if strings.Contains(a.body, `id="nodes"`) {
		t.Error("a token without node read sees the node list")
	}
	if a = uiDo(t, b, "GET", base+"/ui/nodes/n1", nil); a.code != 403 || !strings.Contains(a.body, "lacks node read") {
		t.Errorf("node page without node read: %d", a.code)
	}

	// Deleting the token ends the session at once.
	if err := mgmt.DeleteACLToken(ctx, tk.AccessorID); err != nil {
		t.Fatal(err)
	}
	if a = uiDo(t, b, "GET", base+"/ui/", nil); a.code != 303 || a.location != "/ui/login?why=expired" {
		t.Errorf("deleted token: %d %q", a.code, a.location)
	}
	a = uiDo(t, b, "POST", base+"/ui/logout", url.Values{})
	if a.code != 303 || len(b.Jar.Cookies(mustURL(t, base+"/ui/"))) != 0 {
		t.Errorf("sign out: %d, cookies %v", a.code, b.Jar.Cookies(mustURL(t, base+"/ui/")))
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Off by default; with ACLs off the dashboard needs an operator
// certificate, as the API does, and a node certificate is not one.
func TestUI_Access_DisabledAndWithoutACLs(t *testing.T) {
	p := newTestPKI(t)
	off := startSecureServer(t, p)
	if c, msg := send(t, p.client(tlsutil.RoleClient, "ops"), "GET", "https://"+off.HTTPAddr()+"/ui/", ""); c != 404 || !strings.Contains(msg, "no such endpoint") {
		t.Errorf("dashboard off: %d %q", c, msg)
	}
	_, base := startUIServer(t, p, false)
	if a := uiDo(t, browser(t, p), "GET", base+"/ui/", nil); a.code != 401 || !strings.Contains(a.body, "operator (client) certificate") {
		t.Errorf("no certificate, ACLs off: %d %s", a.code, a.body)
	}
	if a := uiDo(t, p.client(tlsutil.RoleNode, "n1"), "GET", base+"/ui/", nil); a.code != 401 {
		t.Errorf("node certificate, ACLs off: %d", a.code)
	}
	if a := uiDo(t, p.client(tlsutil.RoleClient, "ops"), "GET", base+"/ui/", nil); a.code != 200 || !strings.Contains(a.body, "client/ops") {
		t.Errorf("operator certificate, ACLs off: %d", a.code)
	}
	// Static files need nothing and hold no data.
	if a := uiDo(t, browser(t, p), "GET", base+"/ui/static/dtk.js", nil); a.code != 200 || !strings.Contains(a.body, "fragment") {
		t.Errorf("static script: %d", a.code)
	}
}

// A token that may read one service sees that one only (the other is
// absent from the fleet and its page is a 404), and no page shows a
// sensitive value: not the input, not what a failed step printed.
func TestUI_Pages_ACLFilteringAndNoSecrets(t *testing.T) {
	p := newTestPKI(t)
	s, base := startUIServer(t, p, true)
	ctx := context.Background()
	boot, err := aclClient(p, s, "").ACLBootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mgmt := aclClient(p, s, boot.SecretID)
	op := p.client(tlsutil.RoleClient, "ops")
	must := func(c *http.Client, method, path, body string, token string) string {
		t.Helper()
		hdr := []string{}
		if token != "" {
			hdr = []string{api.TokenHeader, token}
		}
		code, msg := send(t, c, method, base+path, body, hdr...)
		if code != 200 {
			t.Fatalf("%s %s: %d %s", method, path, code, msg)
		}
		return msg
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(sensitiveModule), 0o644); err != nil {
		t.Fatal(err)
	}
	tgz, err := archive.Pack(dir)
	if err != nil {
		t.Fatal(err)
	}
	must(op, "POST", "/v1/modules", string(tgz), boot.SecretID)
	for _, n := range []string{"n1", "n2"} {
		role := map[string]string{"n1": "a", "n2": "b"}[n]
		must(p.client(tlsutil.RoleNode, n), "PUT", "/v1/nodes/"+n, `{"name":"`+n+`","labels":{"role":"`+role+`"}}`, "")
	}
	for _, svc := range []string{"app", "hidden-app"} {
		must(op, "POST", "/v1/services", `{"name":"`+svc+`","template":"vault/app","inputs":{"password":"`+testSecret+`"}}`, boot.SecretID)
		must(op, "POST", "/v1/services/"+svc+"/deploy", "", boot.SecretID)
	}
	// n1's create step fails, printing the secret; its check had found drift.
	var sl plan.Slice
	json.Unmarshal([]byte(must(p.client(tlsutil.RoleNode, "n1"), "GET", "/v1/nodes/n1/plan?wait=10ms", "", "")), &sl)
	var reps []plan.Report
	for i, st := range sl.Steps {
		if st.Service == "app" && st.Action == "create" {
			reps = append(reps, plan.Report{ID: "n1:" + string(rune('1'+i)), Node: "n1", Service: "app", StepID: st.ID, Action: "create",
				Generation: st.Generation, Digest: st.Digest, State: plan.StepFailed, ExitCode: 3, Drift: true,
				Output: "using " + testSecret, Error: "denied for " + testSecret, FinishedAt: time.Now().UnixMilli()})
		}
	}
	rb, _ := json.Marshal(map[string]any{"reports": reps})
	must(p.client(tlsutil.RoleNode, "n1"), "POST", "/v1/nodes/n1/reports", string(rb), "")
	if st := s.State().Service("app").State; st != plan.StateFailed {
		t.Fatalf("app is %s, want failed", st)
	}

	if _, err := mgmt.PutACLPolicy(ctx, api.ACLPolicy{Name: "app-only", Rules: `service "app" { policy = "read" }
node { policy = "read" }
operator { policy = "read" }`}); err != nil {
		t.Fatal(err)
	}
	tk, err := mgmt.CreateACLToken(ctx, api.ACLTokenRequest{Policies: []string{"app-only"}})
	if err != nil {
		t.Fatal(err)
	}
	b := browser(t, p)
	if a := uiDo(t, b, "POST", base+"/ui/login", url.Values{"token": {tk.SecretID}}); a.code != 303 {
		t.Fatalf("sign in: %d", a.code)
	}
	pages := map[string]uiAnswer{}
	for _, path := range []string{"/ui/", "/ui/services/app", "/ui/nodes/n1", "/ui/nodes/n2",
		"/ui/?fragment=1&index=1", "/ui/services/app?fragment=1&index=1", "/ui/nodes/n1?fragment=1&index=1"} {
		a := uiDo(t, b, "GET", base+path, nil)
		if a.code != 200 {
			t.Fatalf("GET %s: %d %s", path, a.code, a.body)
		}
		if strings.Contains(a.body, testSecret) || strings.Contains(a.body, testDefaultSecret) {
			t.Errorf("GET %s shows a secret:\n%s", path, a.body)
		}
		if strings.Contains(a.body, "hidden-app") {
			t.Errorf("GET %s shows a service the token may not read", path)
		}
		pages[path] = a
	}
	if a := uiDo(t, b, "GET", base+"/ui/services/hidden-app", nil); a.code != 404 {
		t.Errorf("unreadable service page: %d", a.code)
	}
	fleet := pages["/ui/"].body
	for _, want := range []string{`href="/ui/services/app"`, `href="/ui/nodes/n1"`, "nodes up", "Failing steps", "denied for (sensitive)",
		"Recent drift repairs", "Coordinators", "leader"} {
		if !strings.Contains(fleet, want) {
			t.Errorf("the fleet page lacks %q", want)
		}
	}
	svc := pages["/ui/services/app"].body
	for _, want := range []string{`class="badge state-failed"`, "password", redactedText, "exit 3", "Staged change", "<td>deploy</td>", "drift repaired"} {
		if !strings.Contains(svc, want) {
			t.Errorf("the service page lacks %q", want)
		}
	}
	if !strings.Contains(pages["/ui/nodes/n1"].body, `href="/ui/services/app"`) {
		t.Error("the node page does not show the service that runs there")
	}
	if strings.Contains(pages["/ui/services/app?fragment=1&index=1"].body, "<html") {
		t.Error("a fragment is a whole page")
	}
	if got := pages["/ui/services/app?fragment=1&index=1"].header.Get(IndexHeader); got == "" || got == "0" {
		t.Errorf("fragment index %q", got)
	}
}

// A live fragment waits for the state to move past the index the page
// showed, and answers at once when it already has.
func TestUI_Fragment_WaitsForChange(t *testing.T) {
	p := newTestPKI(t)
	s, base := startUIServer(t, p, false)
	op := p.client(tlsutil.RoleClient, "ops")
	idx := s.State().Index()
	start := time.Now()
	done := make(chan uiAnswer, 1)
	go func() { done <- uiDo(t, op, "GET", base+"/ui/?fragment=1&index="+itoa(idx), nil) }()
	time.Sleep(200 * time.Millisecond)
	if code, msg := send(t, p.client(tlsutil.RoleNode, "n7"), "PUT", base+"/v1/nodes/n7", `{"name":"n7"}`); code != 200 {
		t.Fatalf("register: %d %s", code, msg)
	}
	select {
	case a := <-done:
		if a.code != 200 || !strings.Contains(a.body, "/ui/nodes/n7") || time.Since(start) < 150*time.Millisecond {
			t.Errorf("fragment: %d after %v: %s", a.code, time.Since(start), a.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fragment did not answer after a change")
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// BenchmarkUI_Overview_1000Nodes_200Services times the fleet page (render
// and ACL filtering, through the handler) on a state of 1,000 nodes and
// 200 deployed services, every step reported, some failed, some drift.
func BenchmarkUI_Overview_1000Nodes_200Services(b *testing.B) {
	s := uiBenchServer(b, 1000, 200)
	pol, err := acl.Parse([]byte(`service "" { policy = "read" }
node { policy = "read" }
operator { policy = "read" }`), "viewer")
	if err != nil {
		b.Fatal(err)
	}
	az := acl.NewAuthorizer("token bench", pol)
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		req := httptest.NewRequest("GET", "/ui/", nil)
		req = req.WithContext(withAuthz(withCaller(req.Context(), caller{}), az))
		rec := httptest.NewRecorder()
		if err := s.uiOverview(rec, req); err != nil || rec.Code != 200 {
			b.Fatalf("%v %d", err, rec.Code)
		}
		took = append(took, time.Since(start))
		b.SetBytes(int64(rec.Body.Len()))
	}
	// The budget is 200 ms for the first page (docs/dashboard.md): the
	// median and the worst run, besides Go's mean.
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "ms-max")
}

// uiBenchServer builds a state through the FSM: nodes with role a or b,
// services of testModule deployed on them, their steps reported (every
// 20th service failed, every 7th step a drift repair).
func uiBenchServer(tb testing.TB, nodes, services int) *Server {
	fsm := NewFSM(slog.New(slog.DiscardHandler))
	var index uint64
	apply := func(typ MessageType, cmd any) any {
		b, err := Encode(typ, cmd)
		if err != nil {
			tb.Fatal(err)
		}
		index++
		resp := fsm.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: b})
		if err, ok := resp.(error); ok {
			tb.Fatalf("apply %d: %v", typ, err)
		}
		return resp
	}
	now := time.Now().UnixMilli()
	for i := range nodes {
		role := []string{"a", "b"}[i%2]
		apply(RegisterNodeType, RegisterNodeCmd{Node: plan.Node{Name: "node-" + pad(i), Labels: map[string]string{"role": role, "rack": "r" + pad(i%40)},
			Facts: plan.Facts{Address: "10.0.0.1", AgentVersion: "v1.0.0", OS: "linux", Arch: "amd64"}}, Time: now})
	}
	apply(PutModuleType, PutModuleCmd{Module: testModule()})
	seq := 0
	for i := range services {
		name := "svc-" + pad(i)
		apply(StageServiceType, StageServiceCmd{Name: name, Module: "m", Version: "1.0.0", Template: "t", Time: now})
		apply(DeployServiceType, DeployServiceCmd{Name: name})
		svc := fsm.State().Service(name)
		var reps []plan.Report
		for _, np := range svc.Plan.Nodes {
			for _, st := range np.Steps {
				seq++
				state := plan.StepOK
				if i%20 == 0 {
					state = plan.StepFailed
				}
				reps = append(reps, plan.Report{ID: np.Agent + ":" + itoa(uint64(seq)), Node: np.Agent, Service: name, StepID: st.ID, Action: st.Action,
					Generation: st.Generation, Digest: st.Digest, State: state, DurationMs: 1200, Drift: seq%7 == 0, FinishedAt: now, StartedAt: now - 1200})
			}
		}
		apply(ReportsType, ReportsCmd{Reports: reps, Time: now})
	}
	return &Server{cfg: Config{Name: "c1", UI: true}, fsm: fsm, log: slog.New(slog.DiscardHandler)}
}

func pad(i int) string {
	s := itoa(uint64(i))
	return strings.Repeat("0", max(0, 4-len(s))) + s
}
