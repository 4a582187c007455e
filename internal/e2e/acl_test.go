package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Two teams on one secure three-coordinator cluster with ACLs on: the
// platform team owns env-* (and the env module), the app team owns app-*
// (and the app module) and stages under the platform's environment with
// only read on it. Every rule is tried with the real dtkctl; a deleted
// token stops at once on every coordinator; bad tokens get a clean 401 and
// change nothing; the audit trail says who did what.
func TestE2E_ACL_TwoTeams(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	root := t.TempDir()
	ips := map[string]string{"c1": "127.0.0.170", "c2": "127.0.0.171", "c3": "127.0.0.172", "n1": "127.0.0.173"}
	for _, n := range []string{"c1", "c2", "c3"} {
		args := []string{"--coordinator", "--no-agent", "--bootstrap-expect", "3", "--acl-enabled",
			"--data-dir", filepath.Join(root, n), "--serf-addr", ips[n] + ":7946"}
		for _, o := range []string{"c1", "c2", "c3"} {
			if o != n {
				args = append(args, "--join", ips[o]+":7946")
			}
		}
		startAgent(t, n, args...)
	}
	startAgent(t, "n1", "--data-dir", filepath.Join(root, "n1"), "--serf-addr", ips["n1"]+":7946",
		"--join", ips["c1"]+":7946", "--label", "zone=a")
	addr := func(n string) string { return ips[n] + ":7070" }
	for _, n := range []string{"c1", "c2", "c3"} {
		waitLeader(t, addr(n)) // GET /v1/status needs no token
	}

	// Without a token every operator call is a 401 (exit 2) saying so.
	if _, errOut, code := ctl(t, addr("c1"), "service", "list"); code != 2 || !strings.Contains(errOut, "needs a token") {
		t.Fatalf("no token: exit %d %s", code, errOut)
	}
	mgmt := strings.TrimSpace(mustCtl(t, addr("c2"), "acl", "bootstrap"))
	if _, errOut, code := ctl(t, addr("c3"), "acl", "bootstrap"); code != 2 || !strings.Contains(errOut, "already bootstrapped") {
		t.Errorf("second bootstrap: exit %d %s", code, errOut)
	}
	as := func(token string) func(args ...string) (string, string, int) {
		return func(args ...string) (string, string, int) {
			t.Helper()
			return ctl(t, addr("c1"), append([]string{"--token", token}, args...)...)
		}
	}
	must := func(run func(args ...string) (string, string, int), args ...string) string {
		t.Helper()
		out, errOut, code := run(args...)
		if code != 0 {
			t.Fatalf("dtkctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	refused := func(run func(args ...string) (string, string, int), want string, args ...string) {
		t.Helper()
		_, errOut, code := run(args...)
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("dtkctl %s: exit %d %q, want exit 2 with %q", strings.Join(args, " "), code, errOut, want)
		}
	}
	admin := as(mgmt)
	rules := map[string]string{
		"platform": "service \"env-\" { policy = \"deploy\" }\nmodule \"env\" { policy = \"write\" }\nnode { policy = \"read\" }\n",
		"app":      "service \"app-\" { policy = \"deploy\" }\nservice \"env-\" { policy = \"read\" }\nmodule \"app\" { policy = \"write\" }\nmodule \"env\" { policy = \"read\" }\n",
		"viewer":   "service \"\" { policy = \"read\" }\nmodule \"\" { policy = \"read\" }\noperator { policy = \"read\" }\n",
	}
	tokens := map[string]string{}
	for name, r := range rules {
		f := filepath.Join(root, name+".hcl")
		os.WriteFile(f, []byte(r), 0o600)
		must(admin, "acl", "policy", "create", name, "--rules", f)
		tokens[name] = strings.TrimSpace(must(admin, "acl", "token", "create", "--policy", name, "--description", name+" team"))
	}
	platform, app, viewer := as(tokens["platform"]), as(tokens["app"]), as(tokens["viewer"])

	must(platform, "module", "push", "testdata/teams/env")
	refused(app, `lacks module "env" write`, "module", "push", "testdata/teams/env")
	must(app, "module", "push", "testdata/teams/app")
	must(platform, "service", "stage", "env-prod", "--template", "env/env")
	must(platform, "service", "deploy", "env-prod", "--wait", "--timeout", "2m")
	// The app team stages under env-prod with only read on it, and deploys.
	must(app, "service", "stage", "app-api", "--template", "app/api", "--parent", "env-prod")
	must(app, "service", "deploy", "app-api", "--wait", "--timeout", "2m")
	refused(app, `lacks service "env-prod" deploy`, "service", "deploy", "env-prod")
	refused(app, `lacks service "env-prod" write`, "service", "set", "env-prod", "x=1")
	refused(platform, `lacks service "app-api" deploy`, "service", "deploy", "app-api")
	refused(app, `lacks service "env-dev" write`, "service", "stage", "env-dev", "--template", "env/env")
	// Read-only: status yes; exec, cancel, push, snapshot restore no.
	must(viewer, "service", "status", "app-api")
	refused(viewer, "lacks", "service", "exec", "app-api", "create")
	refused(viewer, "lacks", "service", "cancel", "app-api")
	refused(viewer, "lacks", "module", "push", "testdata/teams/app")
	snap := filepath.Join(root, "snap.tgz")
	must(admin, "operator", "snapshot", "save", snap)
	refused(viewer, "lacks operator write", "operator", "snapshot", "restore", snap)
	// Lists are filtered: the platform team does not see app-api.
	waitFor(t, 10*time.Second, "the platform's list with env-prod and without app-api", func() bool {
		out := must(platform, "service", "list", "--json")
		return !strings.Contains(out, "app-api") && strings.Contains(out, "env-prod")
	})

	// Bad tokens: each a clean 401, nothing changes.
	before := must(admin, "service", "list", "--json")
	for what, tok := range map[string]string{
		"forged":        "dtkacl-" + strings.Repeat("0", 48),
		"other cluster": "dtkacl-4f1c2e9b7a6d5c3b2a190807f6e5d4c3b2a19080f7e6d5c4",
		"100 KB":        strings.Repeat("A", 100<<10),
	} {
		// Through the environment, as an operator would pass a big one.
		out, errOut, code := ctlEnv(t, addr("c2"), []string{"DTK_TOKEN=" + tok}, "service", "deploy", "app-api")
		if code != 2 || !strings.Contains(errOut, "ACL token") {
			t.Errorf("%s token: exit %d %s%s", what, code, out, errOut)
		}
	}
	// A 1 MB token (more than a command line can carry) and a forged
	// Authorization header, straight to the API.
	for what, hdr := range map[string][2]string{
		"1 MB token":           {"X-Dtk-Token", strings.Repeat("A", 1<<20)},
		"forged Authorization": {"Authorization", "Basic YWRtaW46YWRtaW4="},
		"empty bearer":         {"Authorization", "Bearer "},
	} {
		req, _ := http.NewRequest("POST", "https://"+addr("c3")+"/v1/services/app-api/deploy", nil)
		req.Header.Set(hdr[0], hdr[1])
		resp, err := opClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(b), `"error"`) {
			t.Errorf("%s: %d %s", what, resp.StatusCode, b)
		}
	}
	if after := must(admin, "service", "list", "--json"); after != before {
		t.Errorf("refused requests changed the services:\n%s\n%s", before, after)
	}

	// A deleted token stops at once on every coordinator.
	var created struct {
		Accessor string `json:"accessor_id"`
		Secret   string `json:"secret_id"`
	}
	if err := json.Unmarshal([]byte(must(admin, "acl", "token", "create", "--policy", "viewer", "--description", "short-lived", "--json")), &created); err != nil || created.Accessor == "" {
		t.Fatalf("token create --json: %v %+v", err, created)
	}
	short, accessor := created.Secret, created.Accessor
	for _, c := range []string{"c1", "c2", "c3"} {
		waitFor(t, 10*time.Second, "the new token usable on "+c, func() bool {
			_, _, code := ctl(t, addr(c), "--token", short, "service", "list")
			return code == 0
		})
	}
	must(admin, "acl", "token", "delete", accessor)
	for _, c := range []string{"c1", "c2", "c3"} {
		waitFor(t, 5*time.Second, "the deleted token refused by "+c, func() bool {
			_, errOut, code := ctl(t, addr(c), "--token", short, "service", "list")
			return code == 2 && strings.Contains(errOut, "not found")
		})
	}

	// The audit trail names the app team's token for its deploy.
	waitFor(t, 10*time.Second, "the app team's deploy in the audit trail", func() bool {
		out := must(viewer, "audit", "list", "--service", "app-api")
		return strings.Contains(out, "app team") && strings.Contains(out, "POST /v1/services/app-api/deploy")
	})
}

// ctlEnv runs dtkctl as an operator with extra environment.
func ctlEnv(t *testing.T, addr string, env []string, args ...string) (string, string, int) {
	t.Helper()
	out, errOut, code := ctlWithEnv(t, env, append(ctlTLSArgs(addr), args...)...)
	return out, errOut, code
}

// ctlWithEnv runs dtkctl with args and extra environment.
func ctlWithEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin.ctl, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("dtkctl %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}
