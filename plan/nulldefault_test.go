package plan_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// An input with `default = null` is optional: a service that leaves it
// unset compiles, and the attribute it sets is null (left out of what the
// asset gets, so the asset's own default applies); set, it is the value.
// Without a default the input must be given.
func TestCompile_InputDefaultNull_IsOptional(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(`module {
  name    = "m"
  version = "1.0.0"
}
component "c" {
  attribute "port" { type = number }
  create { inline = "true" }
}
template "t" {
  input "port" {
    type    = number
    default = null
  }
  input "must" { type = string }
  node "n" {
    component "c" "c" {
      port = input.port
    }
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	mod := loadModule(t, dir)
	compile := func(inputs map[string]string) (*plan.Plan, plan.Violations) {
		return plan.Compile(plan.CompileInput{
			Service: &plan.Service{Name: "s", Module: mod.Name, Version: mod.Version, Template: "t", Inputs: inputs},
			Module:  mod, Modules: map[string]*plan.Module{mod.Ref(): mod},
			Nodes: []*plan.Node{{Name: "a1"}}, Generation: 1,
		})
	}
	if _, viol := compile(nil); len(viol) != 1 || !strings.Contains(viol[0].Message, `input "must" is required`) {
		t.Fatalf("must unset: violations %v, want one", viol)
	}
	p, viol := compile(map[string]string{"must": "x"})
	if viol != nil {
		t.Fatal(viol)
	}
	if got := string(p.Nodes[0].Steps[0].Attributes["port"]); got != "null" {
		t.Fatalf("port = %s, want null", got)
	}
	if p, _ = compile(map[string]string{"must": "x", "port": "9090"}); string(p.Nodes[0].Steps[0].Attributes["port"]) != "9090" {
		t.Fatalf("port = %s, want 9090", p.Nodes[0].Steps[0].Attributes["port"])
	}
}
