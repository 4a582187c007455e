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
			if err := FleetModule(dir, []int{n}); err != nil {
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
