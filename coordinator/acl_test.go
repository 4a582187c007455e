package coordinator

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/tlsutil"
	"github.com/dtkhq/dtk/plan"
)

// writeTestModule writes a one-template module NAME@1.0.0.
func writeTestModule(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	os.MkdirAll(dir, 0o755)
	src := `module {
  name    = "` + name + `"
  version = "1.0.0"
}
component "c" {
  create {
    inline = "true"
  }
}
template "t" {
  node "n" {
    labels = { role = "x" }
    component "c" "c" {}
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func code(err error) int {
	var ae *api.APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	if err == nil {
		return 200
	}
	return -1
}

func aclClient(p *testPKI, s *Server, token string) *api.Client {
	c := api.NewClient(s.HTTPAddr())
	c.Secure, c.HTTP, c.Token = true, api.TLSHTTPClientFor(p.store(tlsutil.RoleClient, "ops")), token
	return c
}

// Two teams on one cluster: the platform owns env-*, the app team owns
// app-* and reads env-*; every rule is tried, and tokens that are absent,
// forged, oversized, expired, deleted or another cluster's are refused.
func TestACL_TwoTeams_EveryRule(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServerWith(t, p, func(c *Config) { c.ACLEnabled = true })
	ctx := context.Background()
	anon := aclClient(p, s, "")
	if _, err := anon.Services(ctx); code(err) != 401 || !strings.Contains(err.Error(), "needs a token") {
		t.Fatalf("no token: %v", err)
	}
	boot, err := anon.ACLBootstrap(ctx)
	if err != nil || boot.SecretID == "" {
		t.Fatalf("bootstrap: %v", err)
	}
	if _, err := anon.ACLBootstrap(ctx); code(err) != 409 {
		t.Errorf("second bootstrap: %v", err)
	}
	if strings.Contains(stateJSON(s), boot.SecretID) {
		t.Fatal("a token secret is in the state")
	}
	mgmt := aclClient(p, s, boot.SecretID)
	policy := func(name, rules string) {
		t.Helper()
		if _, err := mgmt.PutACLPolicy(ctx, api.ACLPolicy{Name: name, Rules: rules}); err != nil {
			t.Fatal(err)
		}
	}
	policy("platform", `service "env-" { policy = "deploy" }
module "env" { policy = "write" }
node { policy = "write" }`)
	policy("app", `service "app-" { policy = "deploy" }
service "env-" { policy = "read" }
service "app-locked" { policy = "deny" }
module "app" { policy = "write" }
module "env" { policy = "read" }`)
	policy("viewer", `service "" { policy = "read" }
module "" { policy = "read" }
operator { policy = "read" }`)
	if _, err := mgmt.PutACLPolicy(ctx, api.ACLPolicy{Name: "bad", Rules: `service "x" { policy = "admin" }`}); code(err) != 400 || !strings.Contains(err.Error(), "bad:1:") {
		t.Errorf("bad rules: %v", err)
	}
	token := func(pols ...string) *api.Client {
		t.Helper()
		tk, err := mgmt.CreateACLToken(ctx, api.ACLTokenRequest{Policies: pols, Description: strings.Join(pols, "+")})
		if err != nil {
			t.Fatal(err)
		}
		return aclClient(p, s, tk.SecretID)
	}
	platform, app, viewer := token("platform"), token("app"), token("viewer")

	pushAs := func(c *api.Client, name string) error {
		tgz, err := archive.Pack(writeTestModule(t, name))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.PushModule(ctx, tgz, "")
		return err
	}
	if err := pushAs(platform, "env"); err != nil {
		t.Fatal(err)
	}
	if err := pushAs(app, "env"); code(err) != 403 || !strings.Contains(err.Error(), `module "env" write`) {
		t.Errorf("app pushing env: %v", err)
	}
	if err := pushAs(app, "app"); err != nil {
		t.Fatal(err)
	}
	if err := pushAs(viewer, "app"); code(err) != 403 {
		t.Errorf("viewer pushing: %v", err)
	}
	stage := func(c *api.Client, name, tmpl, parent string) error {
		_, err := c.Stage(ctx, api.StageRequest{Name: name, Template: tmpl, Parent: parent})
		return err
	}
	if err := stage(platform, "env-prod", "env/t", ""); err != nil {
		t.Fatal(err)
	}
	// Under the platform's environment with only read on it.
	if err := stage(app, "app-api", "app/t", "env-prod"); err != nil {
		t.Fatalf("app staging under env-prod: %v", err)
	}
	for _, c := range []struct {
		what string
		err  error
		want int
	}{
		{"app stages env-x", stage(app, "env-x", "env/t", ""), 403},
		{"app stages app-locked (deny wins)", stage(app, "app-locked", "app/t", ""), 403},
		{"platform stages app-x", stage(platform, "app-x", "app/t", ""), 403},
	} {
		if code(c.err) != c.want {
			t.Errorf("%s: %v, want %d", c.what, c.err, c.want)
		}
	}
	deploy := func(c *api.Client, name string) int { _, err := c.Deploy(ctx, name); return code(err) }
	if got := deploy(app, "app-api"); got == 403 || got == 401 {
		t.Errorf("app deploying app-api: %d", got)
	}
	if got := deploy(app, "env-prod"); got != 403 {
		t.Errorf("app deploying env-prod: %d", got)
	}
	if got := deploy(platform, "app-api"); got != 403 {
		t.Errorf("platform deploying app-api: %d", got)
	}
	// Force and restore are deploys, with the same right.
	for _, req := range []api.DeployRequest{{Force: &api.Part{}}, {Restore: &api.Part{Component: "x"}}} {
		if _, err := viewer.DeployWith(ctx, "app-api", req); code(err) != 403 {
			t.Errorf("viewer deploying app-api with force or restore: %v", err)
		}
	}
	// A dry run's answers and clusters need read on its service, also
	// when a blocking read finds the op only once it is created.
	if _, err := s.apply(CreateOpType, CreateOpCmd{Op: plan.Op{ID: "dry1", Kind: plan.OpDryRun, Service: "app-api", Created: 1, Steps: map[string][]*plan.Step{"n1": {}}}}); err != nil {
		t.Fatal(err)
	}
	for who, c := range map[string]*api.Client{"platform": platform, "viewer": viewer, "app": app} {
		want := map[string]int{"platform": 403, "viewer": 200, "app": 200}[who]
		if _, err := c.DryRunClusters(ctx, "dry1", 0); code(err) != want {
			t.Errorf("%s reading the clusters: %v, want %d", who, err, want)
		}
		if _, err := c.DryRunClusters(ctx, "dry1", 1); code(err) != want {
			t.Errorf("%s reading the clusters, blocking: %v, want %d", who, err, want)
		}
		if _, err := c.OpBrief(ctx, "dry1", 0, time.Second); code(err) != want {
			t.Errorf("%s following the dry run: %v, want %d", who, err, want)
		}
	}

	// Read-only: reads work; exec, cancel, push and snapshots do not.
	if _, _, err := viewer.ServiceStatus(ctx, "app-api", 0, 0); err != nil {
		t.Errorf("viewer reading: %v", err)
	}
	if _, err := viewer.StartOp(ctx, "app-api", "exec", &api.OpRequest{Action: "create"}); code(err) != 403 {
		t.Errorf("viewer exec: %v", err)
	}
	if _, err := viewer.StartOp(ctx, "app-api", "cancel", nil); code(err) != 403 {
		t.Errorf("viewer cancel: %v", err)
	}
	if _, err := viewer.SnapshotSave(ctx, io_discard{}); code(err) != 403 {
		t.Errorf("viewer snapshot save: %v", err)
	}
	if _, err := viewer.SnapshotRestore(ctx, strings.NewReader("x")); code(err) != 403 {
		t.Errorf("viewer snapshot restore: %v", err)
	}
	// Lists show only what a token may read.
	svcs, _ := app.Services(ctx)
	if len(svcs) != 2 {
		t.Errorf("app sees %v", svcs)
	}
	if svcs, _ := platform.Services(ctx); len(svcs) != 1 || svcs[0].Name != "env-prod" {
		t.Errorf("platform sees %v", svcs)
	}
	// Bad tokens: each a clean 401 that changes nothing.
	servicesJSON := func() string {
		b, _ := json.Marshal(s.State().Services())
		return string(b)
	}
	before := servicesJSON()
	for what, tok := range map[string]string{
		"forged":        "dtkacl-" + strings.Repeat("ab", 24),
		"1 MB":          strings.Repeat("x", 1<<20),
		"other cluster": "dtkacl-0123456789abcdef0123456789abcdef0123456789abcdef",
	} {
		c := aclClient(p, s, tok)
		if _, err := c.Deploy(ctx, "app-api"); code(err) != 401 {
			t.Errorf("%s token: %v", what, err)
		}
	}
	req, _ := http.NewRequest("GET", "https://"+s.HTTPAddr()+"/v1/services", nil)
	req.Header.Set("Authorization", "Basic Zm9vOmJhcg==")
	if resp, err := anon.HTTP.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("forged Authorization header: %v %v", resp, err)
	}
	if servicesJSON() != before {
		t.Error("refused requests changed the services")
	}
	// A deleted token stops at once; an expired one too.
	tk, _ := mgmt.CreateACLToken(ctx, api.ACLTokenRequest{Policies: []string{"viewer"}})
	short := aclClient(p, s, tk.SecretID)
	if _, err := short.Services(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mgmt.DeleteACLToken(ctx, tk.AccessorID); err != nil {
		t.Fatal(err)
	}
	if _, err := short.Services(ctx); code(err) != 401 {
		t.Errorf("deleted token: %v", err)
	}
	exp, _ := mgmt.CreateACLToken(ctx, api.ACLTokenRequest{Policies: []string{"viewer"}, TTL: "1ms"})
	if _, err := aclClient(p, s, exp.SecretID).Services(ctx); code(err) != 401 || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
	// Only management makes management; a policy in use cannot go.
	aclWriter := func() *api.Client {
		policy("aclw", `acl = "write"`)
		return token("aclw")
	}()
	if _, err := aclWriter.CreateACLToken(ctx, api.ACLTokenRequest{Management: true}); code(err) != 403 {
		t.Errorf("acl=write making a management token: %v", err)
	}
	// A recursive delete needs write on every child too.
	if _, err := platform.Delete(ctx, "env-prod", api.DeleteOptions{Recursive: true}); code(err) != 403 || !strings.Contains(err.Error(), `"app-api"`) {
		t.Errorf("platform deleting app-api through its parent: %v", err)
	}
	// A recursive deploy needs deploy on every service below too.
	if _, err := platform.DeployRecursive(ctx, "env-prod", api.DeployRequest{}); code(err) != 403 || !strings.Contains(err.Error(), `"app-api"`) {
		t.Errorf("platform deploying app-api through its parent: %v", err)
	}
	// A token that may write no module cannot even upload one.
	if err := pushAs(viewer, "anything"); code(err) != 403 || !strings.Contains(err.Error(), "lacks module write") {
		t.Errorf("viewer push: %v", err)
	}
	if err := mgmt.DeleteACLPolicy(ctx, "app"); code(err) != 409 {
		t.Errorf("deleting a policy in use: %v", err)
	}
	// The audit trail names who did what; an operator with read on the
	// services sees entries about them only.
	var trail *api.AuditList
	waitCond(t, "the stage of app-api in the audit trail", func() bool {
		trail, err = mgmt.Audit(ctx, "app-api", "", 0)
		return err == nil && len(trail.Entries) >= 1
	})
	e := trail.Entries[0]
	if e.Method != "POST" || e.Path != "/v1/services" || e.Caller != "client/ops" || !strings.Contains(e.Token, "(app)") || e.Remote == "" || e.Code != 200 {
		t.Errorf("stage entry: %+v", e)
	}
	if l, err := platform.Audit(ctx, "", "", 0); code(err) != 403 {
		t.Errorf("platform reading the trail without operator read: %v %v", l, err)
	}
	all, _ := viewer.Audit(ctx, "", "", 0)
	for _, e := range all.Entries {
		if e.Method == "GET" || strings.Contains(e.Path, "/reports") {
			t.Errorf("not a write by an operator: %+v", e)
		}
	}
}

type io_discard struct{}

func (io_discard) Write(b []byte) (int, error) { return len(b), nil }

// With ACLs on, every route that names its rights refuses a token that
// has none of them with a 403 naming the missing right, and every operator
// route refuses a request without a token with a 401.
func TestACL_EveryRoute_NamesTheMissingRight(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServerWith(t, p, func(c *Config) { c.ACLEnabled = true })
	ctx := context.Background()
	anon := aclClient(p, s, "")
	boot, err := anon.ACLBootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mgmt := aclClient(p, s, boot.SecretID)
	if _, err := mgmt.PutACLPolicy(ctx, api.ACLPolicy{Name: "nothing", Rules: `service "zzz-" { policy = "read" }`}); err != nil {
		t.Fatal(err)
	}
	tk, err := mgmt.CreateACLToken(ctx, api.ACLTokenRequest{Policies: []string{"nothing"}})
	if err != nil {
		t.Fatal(err)
	}
	hc := api.TLSHTTPClientFor(p.store(tlsutil.RoleClient, "ops"))
	base := "https://" + s.HTTPAddr()
	checked := 0
	for _, rt := range s.routes {
		if rt.access != accessOperator && rt.access != accessNodeRead && rt.access != accessBlob {
			continue
		}
		method, path := fill(rt.pattern, "n2")
		body := ""
		if method == "POST" || method == "PUT" {
			body = "{}"
		}
		if c, msg := send(t, hc, method, base+path, body); c != 401 || !strings.Contains(msg, "token") {
			t.Errorf("no token %s %s: %d %q", method, path, c, msg)
		}
		if !rt.needs {
			continue
		}
		checked++
		if strings.HasPrefix(path, "/v1/ops/") {
			// No such operation: 404, whoever asks (nothing to protect).
			if c, msg := send(t, hc, method, base+path, body, api.TokenHeader, tk.SecretID); c != 404 {
				t.Errorf("unknown op: %d %q", c, msg)
			}
			continue
		}
		if c, msg := send(t, hc, method, base+path, body, api.TokenHeader, tk.SecretID); c != 403 || !strings.Contains(msg, "lacks") {
			t.Errorf("token without rights %s %s: %d %q", method, path, c, msg)
		}
	}
	if checked < 30 {
		t.Errorf("only %d routes name their rights", checked)
	}
}

// With a key-encryption key, the Raft log (raft.db) and snapshots hold no
// value in clear: a secret staged as an input is not found in any file of
// the coordinator's data dir, nor in an operator snapshot.
func TestDataKey_NothingInClearAtRest(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServer(t, p)
	ctx := context.Background()
	c := api.NewClient(s.HTTPAddr())
	c.Secure, c.HTTP = true, api.TLSHTTPClientFor(p.store(tlsutil.RoleClient, "ops"))
	tgz, err := archive.Pack(writeTestModule(t, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PushModule(ctx, tgz, ""); err != nil {
		t.Fatal(err)
	}
	const secretValue = "s3cr3t-Value-Only-Here-7731"
	if _, err := c.Stage(ctx, api.StageRequest{Name: "vault-1", Template: "vault/t", Inputs: map[string]string{"password": secretValue}}); err != nil && !strings.Contains(err.Error(), "password") {
		t.Fatal(err)
	}
	c.SetInputs(ctx, "vault-1", map[string]string{"password": secretValue})
	var snap strings.Builder
	if _, err := c.SnapshotSave(ctx, &snap); err != nil {
		t.Fatal(err)
	}
	s.raft.Snapshot().Error() // a Raft snapshot file too
	found := false
	filepath.Walk(s.cfg.DataDir, func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), secretValue) {
				t.Errorf("%s holds the secret in clear", path)
			}
			if strings.HasSuffix(path, "raft.db") {
				found = true
			}
		}
		return nil
	})
	if !found {
		t.Fatal("no raft.db under the data dir")
	}
	zr, err := gzip.NewReader(strings.NewReader(snap.String()))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if len(plain) == 0 || strings.Contains(string(plain), secretValue) || !strings.Contains(string(plain), "sealed_state") {
		t.Error("an operator snapshot holds the secret in clear (or is not sealed)")
	}
	// The state in memory still has it (the coordinator compiles with it).
	if svc := s.State().Service("vault-1"); svc == nil || svc.Inputs["password"] != secretValue {
		t.Fatalf("service: %+v", svc)
	}
}

// A coordinator restarted without the keyring_file on a sealed log stops
// at start with the fix, instead of failing on the first sealed entry.
func TestDataKey_RestartWithoutKeyringRefusedAtStart(t *testing.T) {
	p := newTestPKI(t)
	s := startSecureServer(t, p)
	if _, err := s.apply(SetInputsType, SetInputsCmd{Name: "none"}); err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	cfg := s.cfg
	s.Shutdown(context.Background())
	cfg.KEK, cfg.CAKeyPEM = nil, nil
	again, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = again.Start()
	if err == nil {
		again.Shutdown(context.Background())
		t.Fatal("a coordinator without the keyring started on a sealed log")
	}
	if !errors.Is(err, ErrNeedKeyring) || !strings.Contains(err.Error(), "keyring_file") {
		t.Fatalf("error = %v", err)
	}
}
