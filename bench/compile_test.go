package bench

import (
	"fmt"
	"os"
	"testing"

	"github.com/dtkhq/dtk/dsl"
	"github.com/dtkhq/dtk/plan"
)

// BenchmarkCompileFleet compiles the fleet template of figure 1 (N node
// blocks) against N registered nodes: what every coordinator does in the
// FSM for each deploy. `go test -bench CompileFleet -cpuprofile cpu.out
// ./bench/` shows where the time goes.
func BenchmarkCompileFleet(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := b.TempDir()
			if err := FleetNodesModule(dir, []int{n}); err != nil {
				b.Fatal(err)
			}
			mod, err := dsl.Load(dir)
			if err != nil {
				b.Fatal(err)
			}
			var nodes []*plan.Node
			for i := 1; i <= n; i++ {
				nodes = append(nodes, &plan.Node{Name: SimName(i), Status: "up", Labels: map[string]string{"bench_id": fmt.Sprintf("%05d", i)},
					Facts: plan.Facts{Hostname: "h", OS: "linux", Arch: "amd64", Address: "127.0.0.1"}})
			}
			svc := &plan.Service{Name: "fleet", Module: mod.Name, Version: mod.Version, Template: fmt.Sprintf("fleet%d", n), Inputs: map[string]string{"gen": "x"}}
			var prev *plan.Plan
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p, viol := plan.Compile(plan.CompileInput{Service: svc, Module: mod, Modules: map[string]*plan.Module{mod.Name + "@" + mod.Version: mod},
					Nodes: nodes, Generation: uint64(i + 1), Previous: prev, Done: map[string]string{}})
				if viol != nil {
					b.Fatal(viol)
				}
				prev = p
			}
		})
	}
}

func profiling() bool { return os.Getenv("DTK_PROFILE") != "" }

// BenchmarkCompileGroup compiles one node_group of three chained components
// over N agents, the shape whose ordering was quadratic (issue "Ten
// thousand agents"): time per op should grow linearly with N.
func BenchmarkCompileGroup(b *testing.B) {
	for _, n := range []int{1000, 5000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir := b.TempDir()
			src := `module {
  name    = "grp"
  version = "1.0.0"
}
component "c" {
  attribute "v" {
    type = string
  }
  create {
    inline = "true"
  }
}
template "grp" {
  input "gen" {
    type = string
  }
  node_group "web" {
    labels = { role = "web" }
    component "c" "a" { v = input.gen }
    component "c" "b" { v = component.a.v }
    component "c" "d" { v = component.b.v }
  }
}
`
			if err := os.WriteFile(dir+"/main.hcl", []byte(src), 0o644); err != nil {
				b.Fatal(err)
			}
			mod, err := dsl.Load(dir)
			if err != nil {
				b.Fatal(err)
			}
			var nodes []*plan.Node
			for i := 1; i <= n; i++ {
				nodes = append(nodes, &plan.Node{Name: SimName(i), Status: "up", Labels: map[string]string{"role": "web"},
					Facts: plan.Facts{Hostname: "h", OS: "linux", Arch: "amd64", Address: "127.0.0.1"}})
			}
			svc := &plan.Service{Name: "grp", Module: mod.Name, Version: mod.Version, Template: "grp", Inputs: map[string]string{"gen": "x"}}
			var prev *plan.Plan
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p, viol := plan.Compile(plan.CompileInput{Service: svc, Module: mod, Modules: map[string]*plan.Module{mod.Name + "@" + mod.Version: mod},
					Nodes: nodes, Generation: uint64(i + 1), Previous: prev, Done: map[string]string{}})
				if viol != nil {
					b.Fatal(viol)
				}
				prev = p
			}
		})
	}
}
