package actions

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

const siteManifest = `# A manifest as an operator would write it: attributes are facts.
$a = $facts['dtk_attributes']
file { $a['path']:
  content => "hello ${a['greeting']} on port ${a['port']}\n",
}
file { $facts['dtk_outputs']:
  content => "path=${a['path']}\nport=${a['port']}\n",
}
`

// Proves: first run changes, second is unchanged, --noop predicts without
// changing, a hand edit (drift) is repaired, outputs come back.
func TestPuppet_Run_Manifest(t *testing.T) {
	needTool(t, "puppet", "puppet")
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"manifests/site.pp": siteManifest})
	target := filepath.Join(t.TempDir(), "motd")
	req := request(t, dir, plan.Action{Kind: "puppet", Manifest: "manifests/site.pp"},
		map[string]any{"path": target, "greeting": "hi", "port": 8080})

	res := run(t, req)
	wantState(t, res, Changed)
	if got := readFile(t, target); got != "hello hi on port 8080\n" {
		t.Fatalf("file = %q", got)
	}
	if res.Outputs["path"] != target || res.Outputs["port"] != "8080" {
		t.Errorf("outputs = %v", res.Outputs)
	}
	if _, err := os.Stat(filepath.Join(req.ScratchDir, "puppet", "var", "facts.d", "dtk.json")); err != nil {
		t.Errorf("puppet state is not in the scratch folder: %v", err)
	}

	res = run(t, req)
	wantState(t, res, OK)
	if res.Outputs["port"] != "8080" {
		t.Errorf("outputs of an unchanged run = %v", res.Outputs)
	}

	req.Attributes = attrs(t, map[string]any{"path": target, "greeting": "bonjour", "port": 8080})
	dry := req
	dry.DryRun = true
	res = run(t, dry)
	wantState(t, res, Changed)
	if !strings.Contains(res.Output, "(noop)") || res.CannotPredict {
		t.Errorf("dry run output lacks (noop) or says it cannot predict: %q", res.Output)
	}
	if got := readFile(t, target); got != "hello hi on port 8080\n" {
		t.Fatalf("dry run changed the file: %q", got)
	}

	res = run(t, req)
	wantState(t, res, Changed)
	if got := readFile(t, target); got != "hello bonjour on port 8080\n" {
		t.Fatalf("file = %q", got)
	}

	dry.Attributes = req.Attributes
	wantState(t, run(t, dry), OK)

	if err := os.WriteFile(target, []byte("edited by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantState(t, run(t, req), Changed)
	if got := readFile(t, target); got != "hello bonjour on port 8080\n" {
		t.Fatalf("drift not repaired: %q", got)
	}
}

const webClass = `class mymod::web (
  String $path,
  Integer $port,
  Array[String] $tags = [],
  Hash $opts = {},
  Boolean $on = false,
  Float $ratio = 0.5,
  String $quote = '',
  String $unset = 'default',
) {
  $o = $opts.map |$k, $v| { "${k}:${v['n']}" }.join(',')
  file { $path:
    content => "port=${port} tags=${tags.join(',')} opts=${o} on=${on} ratio=${ratio} unset=${unset}\n${quote}\n",
  }
}
`

// Proves: a class from the module's modules/ folder gets the attributes
// as typed, safely quoted parameters; a null attribute keeps the class
// default.
func TestPuppet_Run_Class(t *testing.T) {
	needTool(t, "puppet", "puppet")
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"modules/mymod/manifests/web.pp": webClass})
	target := filepath.Join(t.TempDir(), "web.conf")
	quote := `it's a \ test ${facts} "q"`
	req := request(t, dir, plan.Action{Kind: "puppet", Class: "mymod::web"}, map[string]any{
		"path": target, "port": 8080, "tags": []string{"a", "b"}, "opts": map[string]any{"x": map[string]int{"n": 1}},
		"on": true, "ratio": 1.0, "quote": quote, "unset": nil,
	})
	req.Attributes["ratio"] = json.RawMessage(`2.5`)
	res := run(t, req)
	wantState(t, res, Changed)
	want := "port=8080 tags=a,b opts=x:1 on=true ratio=2.5 unset=default\n" + quote + "\n"
	if got := readFile(t, target); got != want {
		t.Fatalf("file = %q, want %q", got, want)
	}
	wantState(t, run(t, req), OK)
}

func TestPuppet_Run_Failures(t *testing.T) {
	needTool(t, "puppet", "puppet")
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"compile.pp":  "fail('boom from the manifest')\n",
		"resource.pp": "file { '/nonexistent-dtk-dir/x': content => 'x' }\n",
	})
	res := run(t, request(t, dir, plan.Action{Kind: "puppet", Manifest: "compile.pp"}, nil))
	wantState(t, res, Failed)
	if res.ExitCode != 1 || !strings.Contains(res.Output, "boom from the manifest") {
		t.Errorf("exit %d, output %q", res.ExitCode, res.Output)
	}
	res = run(t, request(t, dir, plan.Action{Kind: "puppet", Manifest: "resource.pp"}, nil))
	wantState(t, res, Failed)
	if res.ExitCode != 4 && res.ExitCode != 6 {
		t.Errorf("exit %d, want 4 or 6", res.ExitCode)
	}
	res = run(t, request(t, dir, plan.Action{Kind: "puppet", Class: "nope::missing"}, nil))
	wantState(t, res, Failed)
}

// Proves: a sensitive class parameter reaches Puppet (through a file, not
// the command line) and is redacted from the output.
func TestPuppet_Run_Sensitive(t *testing.T) {
	needTool(t, "puppet", "puppet")
	t.Parallel()
	const secret = "puppet-Secret-3vX"
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"scan.sh": scanScript,
		"modules/vault/manifests/init.pp": `class vault (String $password, String $scan) {
  notice("the password is ${password}")
  exec { 'scan':
    command     => "/bin/bash ${facts['dtk_module_dir']}/scan.sh ${scan}",
    environment => ["S=${password}"],
  }
}
`,
	})
	scan := filepath.Join(t.TempDir(), "scan")
	req := request(t, dir, plan.Action{Kind: "puppet", Class: "vault"}, map[string]any{"password": secret, "scan": scan})
	req.Sensitive = []string{"password"}
	res := run(t, req)
	wantState(t, res, Changed)
	if strings.Contains(res.Output, secret) || !strings.Contains(res.Output, "the password is (sensitive)") {
		t.Errorf("output = %q", res.Output)
	}
	if got := strings.TrimSpace(readFile(t, scan)); got != "clean" {
		t.Errorf("scan: %s", got)
	}
}

func TestPuppetLiteral(t *testing.T) {
	for in, want := range map[string]string{
		`null`:                       "undef",
		`"a'b\\c"`:                   `'a\'b\\c'`,
		`"${x} \n"`:                  "'${x} \n'",
		`12`:                         "12",
		`1.5`:                        "1.5",
		`1e3`:                        "1000.0",
		`[1, "x", true]`:             "[1, 'x', true]",
		`{"b": {"c": null}, "a": 1}`: "{'a' => 1, 'b' => {'c' => undef}}",
	} {
		got, err := puppetValue(json.RawMessage(in))
		if err != nil || got != want {
			t.Errorf("%s: got %s (%v), want %s", in, got, err, want)
		}
	}
}

// publicModules links Debian's packaged puppetlabs-ntp and -stdlib, unchanged,
// into the module folder dir's modules/ (skipping the test without them).
func publicModules(t *testing.T, dir string) {
	t.Helper()
	for _, m := range []string{"ntp", "stdlib"} {
		src := "/usr/share/puppet/modules/" + m
		if _, err := os.Stat(src); err != nil {
			needTool(t, src, "puppet-module-puppetlabs-"+m)
		}
	}
	// Nothing to ship: Puppet searches the node's module folders
	// ($basemodulepath) after the module's own.
}

// Proves: a module that ships a Puppet module of its own (modules/wrap)
// also reaches the modules installed on the node, where Debian's packages
// put them: its class declares puppetlabs-ntp, which stdlib's functions
// serve, neither of them shipped.
func TestPuppet_Run_ShippedModuleUsesTheNodesModules(t *testing.T) {
	needTool(t, "puppet", "puppet")
	t.Parallel()
	dir := t.TempDir()
	publicModules(t, dir)
	writeFiles(t, dir, map[string]string{"modules/wrap/manifests/init.pp": `class wrap (String $dir) {
  class { 'ntp':
    config         => "${dir}/ntp.conf",
    servers        => ['wrap.example'],
    package_manage => false,
    service_manage => false,
  }
}
`})
	out := t.TempDir()
	req := request(t, dir, plan.Action{Kind: "puppet", Class: "wrap"}, map[string]any{"dir": out})
	wantState(t, run(t, req), Changed)
	if conf := readFile(t, filepath.Join(out, "ntp.conf")); !strings.Contains(conf, "server wrap.example") {
		t.Errorf("ntp.conf lacks the server:\n%s", conf)
	}
}

// params wraps puppetlabs-ntp as a component would: a renamed parameter
// (servers from the attribute upstream), one computed from an attribute
// (config), constants, a null attribute (iburst: the class default
// applies) and a helper attribute (note) that is not passed.
func ntpParams() map[string]plan.Expr {
	return map[string]plan.Expr{
		"servers":        {Source: "upstream", Pos: plan.Pos{File: "main.hcl", Line: 9, Column: 16}},
		"config":         {Source: `"${dir}/ntp.conf"`, Pos: plan.Pos{File: "main.hcl", Line: 10, Column: 16}},
		"package_manage": {Source: "false"},
		"service_manage": {Source: "false"},
		"iburst_enable":  {Source: "iburst"},
	}
}

// Proves: with params, a public Puppet class gets exactly the mapped
// parameters (the helper attribute would fail the class: it has no such
// parameter), a null one keeps the class default.
func TestPuppet_Run_ClassParams(t *testing.T) {
	needTool(t, "puppet", "puppet")
	t.Parallel()
	dir := t.TempDir()
	publicModules(t, dir)
	out := t.TempDir()
	act := plan.Action{Kind: "puppet", Class: "ntp", Params: ntpParams()}
	req := request(t, dir, act, map[string]any{
		"upstream": []string{"a.example", "b.example"}, "dir": out, "iburst": nil, "note": "a helper",
	})
	wantState(t, run(t, req), Changed)
	conf := readFile(t, filepath.Join(out, "ntp.conf"))
	for _, want := range []string{"server a.example iburst\n", "server b.example iburst\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("ntp.conf lacks %q:\n%s", want, conf)
		}
	}
	wantState(t, run(t, req), OK)
}

// Proves: a failed class names, after Puppet's error, the HCL that set the
// parameter Puppet complains about (through params, the attribute it
// reads), or the instance when no parameter is named; the report's tail
// holds Puppet's error and none of Facter's noise.
func TestPuppet_Run_FailureSetAt(t *testing.T) {
	needTool(t, "puppet", "puppet")
	t.Parallel()
	dir := t.TempDir()
	publicModules(t, dir)
	const (
		instance = `shop/main.hcl:12:3 (component "ntp" "time")`
		upstream = `shop/main.hcl:14:7 (component "ntp" "time", attribute "upstream")`
	)
	req := request(t, dir, plan.Action{Kind: "puppet", Class: "ntp", Params: ntpParams()}, map[string]any{
		"upstream": "pool.example", "dir": t.TempDir(), "iburst": nil,
	})
	req.Origin, req.Origins = instance, map[string]string{"upstream": upstream, "dir": "elsewhere"}
	res := run(t, req)
	wantState(t, res, Failed)
	if !strings.Contains(res.Output, "parameter 'servers' expects an Array value") ||
		!strings.Contains(res.Output, "\ndtk: set at "+upstream+"\n") || strings.Count(res.Output, "set at") != 1 {
		t.Errorf("output does not end with where servers was set:\n%s", res.Output)
	}
	if strings.Contains(res.Output, "Facter:") {
		t.Errorf("facter's noise is in the tail:\n%s", res.Output)
	}

	// A manifest's failure names no parameter: the instance.
	writeFiles(t, dir, map[string]string{"boom.pp": "fail('boom')\n"})
	req = request(t, dir, plan.Action{Kind: "puppet", Manifest: "boom.pp"}, nil)
	req.Origin = instance
	res = run(t, req)
	wantState(t, res, Failed)
	if !strings.Contains(res.Output, "dtk: set at "+instance+"\n") {
		t.Errorf("output lacks the instance:\n%s", res.Output)
	}
}

// Proves: known noise (facter's complaints, fact counts, deprecations and
// their indented continuation lines) is left out of the report's tail, so
// that the real error stays in its 4 KiB; the output log keeps every line.
func TestSession_KeepOutOfTail(t *testing.T) {
	script := `for i in $(seq 300); do
  echo "Warning: Facter: Could not process routing table entry: $i"
  echo "Error: Facter: Permission denied @ rb_sysopen - /proc/1/environ"
done
echo "Warning: The current total number of facts: 12345 exceeds the number of facts limit: 10000"
echo "Warning: The function 'hiera' is deprecated in favor of using 'lookup'."
echo "   (file & line not available)"
echo 'Error: Facter: error while resolving custom fact "app_version": a module fact'
echo "Error: the real error"
printf "Notice: no newline at the end"`
	req := request(t, t.TempDir(), plan.Action{Kind: "bash", Inline: script}, nil)
	s, err := newSession(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	s.keepOutOfTail(puppetNoise)
	code, err := s.run(command{name: "bash", args: []string{"-c", script}})
	if err != nil || code != 0 {
		t.Fatalf("run: %d, %v", code, err)
	}
	res := s.finish(Result{State: OK})
	want := "Error: Facter: error while resolving custom fact \"app_version\": a module fact\nError: the real error\nNotice: no newline at the end\n" +
		"dtk: 603 lines of known noise (facter, deprecation warnings) left out of this tail; output.log has them\n"
	if res.Output != want {
		t.Errorf("tail = %q, want %q", res.Output, want)
	}
	if log := readFile(t, filepath.Join(req.ScratchDir, LogFile)); strings.Count(log, "Facter:") != 601 || !strings.Contains(log, "the real error") {
		t.Errorf("the log lost lines: %d bytes", len(log))
	}
}
