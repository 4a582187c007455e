package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The password the environment is staged with: no page may show it.
const uiSecret = "s3cret-Db-Pw-9172"

// A person at a browser, on a secure three-coordinator cluster with ACLs
// and the dashboard on: they sign in with a read-only token, see the fleet
// (three nodes up, the coordinators and the leader), open a staged
// service and read its plan preview with where each value comes from,
// watch its deploy go to converged without reloading, and open a node to
// see what runs there. No page shows the sensitive input. With
// DTK_UPDATE_SCREENSHOTS=1 the test saves the screenshots the docs use.
func TestE2E_UI_DashboardThroughADeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	chromium := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		if os.Getenv("DTK_REQUIRE_TOOLS") != "" {
			t.Fatal("chromium is not installed (apt-get install chromium); .ci/run installs it")
		}
		t.Skip("chromium is not installed (apt-get install chromium): the dashboard's browser test needs it")
	}

	root := t.TempDir()
	ips := map[string]string{"c1": "127.0.0.241", "c2": "127.0.0.242", "c3": "127.0.0.243",
		"db-1": "127.0.0.244", "web-1": "127.0.0.245", "web-2": "127.0.0.246"}
	for _, n := range []string{"c1", "c2", "c3"} {
		args := []string{"--coordinator", "--no-agent", "--bootstrap-expect", "3", "--acl-enabled", "--ui",
			"--data-dir", filepath.Join(root, n), "--serf-addr", ips[n] + ":7946"}
		for _, o := range []string{"c1", "c2", "c3"} {
			if o != n {
				args = append(args, "--join", ips[o]+":7946")
			}
		}
		startAgent(t, n, args...)
	}
	labels := map[string][]string{"db-1": {"role=db", "zone=a"}, "web-1": {"role=web", "zone=a"}, "web-2": {"role=web", "zone=b"}}
	for _, n := range []string{"db-1", "web-1", "web-2"} {
		args := []string{"--data-dir", filepath.Join(root, n), "--serf-addr", ips[n] + ":7946", "--join", ips["c1"] + ":7946"}
		for _, l := range labels[n] {
			args = append(args, "--label", l)
		}
		startAgent(t, n, args...)
	}
	addr := ips["c1"] + ":7070"
	for _, n := range []string{"c1", "c2", "c3"} {
		waitLeader(t, ips[n]+":7070")
	}
	mgmt := strings.TrimSpace(mustCtl(t, addr, "acl", "bootstrap"))
	admin := func(args ...string) string {
		t.Helper()
		return mustCtl(t, addr, append([]string{"--token", mgmt}, args...)...)
	}
	rules := filepath.Join(root, "viewer.hcl")
	os.WriteFile(rules, []byte("service \"\" { policy = \"read\" }\nnode { policy = \"read\" }\noperator { policy = \"read\" }\n"), 0o600)
	admin("acl", "policy", "create", "viewer", "--rules", rules)
	viewer := strings.TrimSpace(admin("acl", "token", "create", "--policy", "viewer", "--description", "dashboard"))
	waitFor(t, 60*time.Second, "three nodes up", func() bool {
		return strings.Count(admin("node", "list"), " up ") >= 3
	})
	admin("module", "push", "testdata/ui/shop")
	admin("service", "stage", "env-prod", "--template", "shop/env", "--set", "db_password="+uiSecret)
	admin("service", "deploy", "env-prod", "--wait", "--timeout", "2m")
	admin("service", "stage", "shop-web", "--template", "shop/web", "--parent", "env-prod")

	// The browser: headless Chromium, as root without its sandbox; the
	// cluster's CA is not in its trust store, so certificate errors are
	// ignored (the test's own CA, on loopback).
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("headless", "new"), chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(filepath.Join(root, "chromium")), chromedp.WindowSize(1280, 860))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 90*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		for {
			s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
			// A navigation (a form's answer, a live update) can replace
			// the page under the query: ask the new one.
			if err != nil && navigated(err) && ctx.Err() == nil {
				continue
			}
			if err != nil {
				t.Fatalf("text of %s: %v", sel, err)
			}
			return s
		}
	}
	// waitText waits until the element's text holds want (live updates,
	// no reload).
	waitText := func(sel, want string, timeout time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, timeout+5*time.Second)
		defer cancel()
		js := `(document.querySelector(` + jsString(sel) + `)?.textContent || "").includes(` + jsString(want) + `)`
		for {
			_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
			if err != nil && navigated(err) && ctx.Err() == nil {
				continue // the page was replaced under the poll: poll the new one
			}
			if err != nil {
				t.Fatalf("waiting for %q in %s: %v (it shows %q)", want, sel, err, text(sel))
			}
			return
		}
	}
	noSecret := func(page string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(html, uiSecret) {
			t.Errorf("the %s page shows the sensitive input", page)
		}
	}
	shots := os.Getenv("DTK_UPDATE_SCREENSHOTS") != ""
	screenshot := func(name string) {
		t.Helper()
		if !shots {
			return
		}
		ctx, cancel := context.WithTimeout(browser, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		out := filepath.Join("..", "..", "docs", "images", name)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s", out)
	}
	base := "https://" + addr

	// Not signed in: the dashboard sends the browser to the sign-in page.
	run("open the dashboard", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
	if got := text("main"); !strings.Contains(got, "Sign in with an ACL token") {
		t.Fatalf("sign-in page says %q", got)
	}
	screenshot("dashboard-login.png")
	run("a wrong token", chromedp.SendKeys(chromedp.ID("token"), "dtkacl-not-a-token"), chromedp.Submit(chromedp.ID("token")))
	waitText("p.note", "refused", 15*time.Second)
	run("sign in", chromedp.SendKeys(chromedp.ID("token"), viewer), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("nodes")))

	// The fleet: three nodes up with their labels and versions, the
	// services, the coordinators and the leader.
	waitText("#nodes-up .big", "3", 30*time.Second)
	fleet := text("main")
	for _, want := range []string{"db-1", "web-1", "web-2", "role=web", "zone=b", "e2e", "env-prod", "shop-web", "staged", "converged",
		"No failing steps", "Coordinators", "leader", "c1", "c2", "c3"} {
		if !strings.Contains(fleet, want) {
			t.Errorf("the fleet page lacks %q:\n%s", want, fleet)
		}
	}
	if who := text("header .who"); !strings.Contains(who, "dashboard") {
		t.Errorf("signed in as %q", who)
	}
	noSecret("fleet")
	screenshot("dashboard-fleet.png")

	// The staged service: its environment, and the plan preview of the
	// change a deploy would make, each value with where it comes from.
	run("open the service", chromedp.Click(chromedp.CSS(`#services a[href="/ui/services/shop-web"]`)), chromedp.WaitVisible(chromedp.ID("preview")))
	if got := text("#state"); got != "staged" {
		t.Errorf("shop-web shows state %q, want staged", got)
	}
	if got := text("#tree"); !strings.Contains(got, "parent: env-prod") {
		t.Errorf("environment: %q", got)
	}
	preview := text("#preview")
	for _, want := range []string{"would change 4 step(s)", "add", "web-1", "web-2", "message = app prod up from input tier (export of env-prod)", "(sensitive) from default"} {
		if !strings.Contains(preview, want) {
			t.Errorf("the preview lacks %q:\n%s", want, preview)
		}
	}
	screenshot("dashboard-preview.png")

	// The deploy, watched live: the page is not reloaded (a mark set on
	// the window survives), and the state goes to deploying, then converged.
	run("mark the page", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[chromedp.Void](`window.dtkNotReloaded = true`)(ctx, tg)
		return err
	}))
	admin("service", "deploy", "shop-web")
	waitText("#state", "deploying", 30*time.Second)
	waitText("#steps", "running", 30*time.Second)
	screenshot("dashboard-deploying.png")
	waitText("#state", "converged", 90*time.Second)
	waitText("#progress-text", "4 of 4 steps done", 10*time.Second)
	stillThere, err := chromedp.Run(browser, chromedp.Evaluate[bool](`window.dtkNotReloaded === true`))
	if err != nil || !stillThere {
		t.Errorf("the page was reloaded during the deploy (%v)", err)
	}
	steps := text("#steps")
	for _, want := range []string{"web-1", "web-2", "app", "proxy", "ok"} {
		if !strings.Contains(steps, want) {
			t.Errorf("the steps lack %q:\n%s", want, steps)
		}
	}
	if live := text("#live"); !strings.Contains(live, "live") {
		t.Errorf("the live indicator says %q", live)
	}
	noSecret("service")
	screenshot("dashboard-service.png")

	// A node: what runs there, from which services.
	run("open a node", chromedp.Navigate(base+"/ui/nodes/db-1"), chromedp.WaitVisible(chromedp.ID("runs")))
	if got := text("#runs"); !strings.Contains(got, "env-prod") || !strings.Contains(got, "database") {
		t.Errorf("db-1 runs %q", got)
	}
	noSecret("node")
	screenshot("dashboard-node.png")

	// The environment page lists its child; signing out ends the session.
	run("open the environment", chromedp.Navigate(base+"/ui/services/env-prod"), chromedp.WaitVisible(chromedp.ID("tree")))
	if got := text("#tree"); !strings.Contains(got, "children: shop-web") {
		t.Errorf("env-prod's tree: %q", got)
	}
	noSecret("environment")
	run("sign out", chromedp.Click(chromedp.CSS(`header form button`)), chromedp.WaitVisible(chromedp.ID("token")))
	run("back to the fleet", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("token")))
}

// jsString quotes s for a JavaScript expression.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}

// navigated says a browser call failed because a navigation replaced the
// page it ran in (a form's answer, a live update): it is asked again.
func navigated(err error) bool {
	return strings.Contains(err.Error(), "Cannot find context") || strings.Contains(err.Error(), "Inspected target navigated or closed")
}
