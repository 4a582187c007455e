package actions

import (
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
