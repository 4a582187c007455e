package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const okModule = `module {
  name    = "tiny"
  version = "0.1.0"
}

component "note" {
  attribute "text" {
    type     = string
    required = true
  }
  create {
    inline = "echo $text"
  }
}

template "site" {
  node "one" {
    component "note" "hello" {
      text = "hi"
    }
  }
}
`

func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// module validate needs no coordinator: the address is unusable (https
// with no CA is a usage error for every command that talks to one).
var noCoordinator = map[string]string{"DTK_ADDR": "https://127.0.0.1:1"}

func TestModuleValidate_Valid_Exit0WithSummary(t *testing.T) {
	dir := writeModule(t, map[string]string{"main.hcl": okModule})
	r := runCLIEnv(t, noCoordinator, "module", "validate", dir)
	r.check(t, exitOK)
	if !strings.HasPrefix(r.stdout, "tiny@0.1.0 is valid: 1 component (note), 1 template (site); digest ") {
		t.Errorf("stdout %q", r.stdout)
	}
	r = runCLIEnv(t, noCoordinator, "module", "validate", dir, "--json")
	r.check(t, exitOK)
	var res validateResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !res.Valid || res.Module != "tiny" ||
		!strings.HasPrefix(res.Digest, "sha256:") || len(res.Components) != 1 {
		t.Errorf("json %v %+v:\n%s", err, res, r.stdout)
	}
}

// A broken module fails with exit 1, every problem as FILE:LINE:COL and
// the offending line.
func TestModuleValidate_Broken_Exit1WithPositions(t *testing.T) {
	broken := strings.Replace(okModule, `text = "hi"`, `text = "hi"
      colour = "blue"`, 1)
	dir := writeModule(t, map[string]string{"main.hcl": broken})
	r := runCLIEnv(t, noCoordinator, "module", "validate", dir)
	r.check(t, exitFailed)
	want := filepath.Join(dir, "main.hcl") + ":20:7: "
	if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, `colour = "blue"`) {
		t.Errorf("stderr lacks %q and the excerpt:\n%s", want, r.stderr)
	}
	r = runCLIEnv(t, noCoordinator, "module", "validate", dir, "--json")
	r.check(t, exitFailed)
	var res validateResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Valid || len(res.Diagnostics) == 0 ||
		res.Diagnostics[0].Line != 20 || res.Diagnostics[0].Column != 7 {
		t.Errorf("json %v %+v:\n%s", err, res, r.stdout)
	}

	syntax := writeModule(t, map[string]string{"main.hcl": "module {\n  name = \n}\n"})
	r = runCLIEnv(t, noCoordinator, "module", "validate", syntax)
	r.check(t, exitFailed)
	if !strings.Contains(r.stderr, filepath.Join(syntax, "main.hcl")+":2:") {
		t.Errorf("syntax error without its position:\n%s", r.stderr)
	}

	r = runCLIEnv(t, noCoordinator, "module", "validate", filepath.Join(dir, "nope"))
	r.check(t, exitUsage)
}

func TestModuleFmt_CheckListsUnformatted_ThenFormats(t *testing.T) {
	ugly := "module {\nname = \"tiny\"\n    version=\"0.1.0\"\n}\n"
	dir := writeModule(t, map[string]string{
		"main.hcl":             okModule,
		"extra.hcl":            ugly,
		"templates/x.conf.hcl": "not   hcl ${at all",
	})
	r := runCLIEnv(t, noCoordinator, "module", "fmt", dir, "--check")
	r.check(t, exitFailed)
	extra := filepath.Join(dir, "extra.hcl")
	if r.stdout != extra+"\n" || !strings.Contains(r.stderr, "1 file of 2 not formatted") {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(extra); string(b) != ugly {
		t.Error("--check changed the file")
	}

	r = runCLIEnv(t, noCoordinator, "module", "fmt", dir, "--json")
	r.check(t, exitOK)
	var res fmtResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.Files) != 1 || res.Checked != 2 {
		t.Errorf("json %v %+v", err, res)
	}
	if b, _ := os.ReadFile(extra); string(b) != "module {\n  name    = \"tiny\"\n  version = \"0.1.0\"\n}\n" {
		t.Errorf("formatted:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "templates/x.conf.hcl")); string(b) != "not   hcl ${at all" {
		t.Error("a file under templates/ was touched")
	}
	r = runCLIEnv(t, noCoordinator, "module", "fmt", dir, "--check")
	r.check(t, exitOK)
	if r.stdout != "" {
		t.Errorf("formatted module still listed: %q", r.stdout)
	}
}

func TestModuleFmt_SyntaxError_Exit1LeavesFile(t *testing.T) {
	dir := writeModule(t, map[string]string{"main.hcl": "module {\n  name = \n}\n"})
	r := runCLIEnv(t, noCoordinator, "module", "fmt", dir)
	r.check(t, exitFailed)
	if !strings.Contains(r.stderr, filepath.Join(dir, "main.hcl")+":2:") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}
