package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// dryRunModule has three kinds of node once its inputs change: web nodes
// whose page message and server port change, web nodes whose port label
// pins their port (only the message changes), and db nodes that do not
// change.
const dryRunModule = `module {
  name    = "benchdry"
  version = "1.0.0"
}

component "page" {
  attribute "message" {
    type     = string
    required = true
  }
  create {
    inline = "true"
  }
}

component "server" {
  attribute "address" {
    type     = string
    required = true
  }
  attribute "port" {
    type     = number
    required = true
  }
  create {
    inline = "true"
  }
}

template "site" {
  input "greeting" {
    type    = string
    default = "Hello"
  }
  input "port" {
    type    = number
    default = 8080
  }
  node_group "web" {
    labels = { role = "web" }
    component "page" "index" {
      message = "${input.greeting} from ${self.name}"
    }
    component "server" "site" {
      address = self.address
      port    = lookup(self.labels, "port", input.port)
    }
  }
  node_group "db" {
    labels = { role = "db" }
    component "page" "status" {
      message = "db on ${self.name}"
    }
  }
}
`

// BenchmarkDryRun_1000Agents_ThreeKinds times a fleet dry run end to end,
// as dtkctl service deploy --dry-run does it: the dry run's start (compile
// and Raft commit), 1,000 simulated agents (real agent.Agent pull and ops
// loops in this process, each with its own node certificate and
// connection) taking it up, predicting each of their steps and sending
// their results, the operator following the op with blocking queries
// until every agent has answered, and the answer with the clusters. The
// cluster is three coordinator processes as shipped (bin/dtk-agent:
// mutual TLS, ACLs on, Raft on disk with the shipped timers); 900 web
// nodes (message and port change), 60 web nodes with a port label
// (message only) and 40 db nodes (no change). The budget is 2 s
// (docs/dry-run.md): reported as the median and worst run. make
// bench-dryrun builds the binaries first; DTK_BENCH_BIN names their folder
// (default ../bin).
func BenchmarkDryRun_1000Agents_ThreeKinds(b *testing.B) {
	const web, odd, db = 900, 60, 40
	bin, err := filepath.Abs(cmp.Or(os.Getenv("DTK_BENCH_BIN"), "../bin"))
	if err != nil {
		b.Fatal(err)
	}
	agentBin := filepath.Join(bin, "dtk-agent")
	if _, err := os.Stat(agentBin); err != nil {
		b.Skipf("%v: run make build first (make bench-dryrun does)", err)
	}
	dir := b.TempDir()
	c, err := StartCluster(agentBin, filepath.Join(dir, "cluster"), "127.0.208", 3, false)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	ctx := context.Background()
	// One coordinator, as dtkctl --addr talks to: its state moves only
	// forward between the follow and the answer with the clusters.
	cl := c.OperatorAt(c.Coords[0].HTTP)
	mod := filepath.Join(dir, "module")
	if err := writeModule(mod, dryRunModule); err != nil {
		b.Fatal(err)
	}
	if _, err := PushModule(cl, mod); err != nil {
		b.Fatal(err)
	}
	fleet, err := NewSimFleet(filepath.Join(dir, "agents"), c.Addrs(), c.PKI, func(i int) map[string]string {
		switch {
		case i <= web:
			return map[string]string{"role": "web"}
		case i <= web+odd:
			return map[string]string{"role": "web", "port": "9090"}
		}
		return map[string]string{"role": "db"}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.Grow(web+odd+db, 3*time.Minute); err != nil {
		b.Fatal(err)
	}
	if _, err := cl.Stage(ctx, api.StageRequest{Name: "site", Template: "benchdry/site"}); err != nil {
		b.Fatal(err)
	}
	if _, err := cl.Deploy(ctx, "site"); err != nil {
		// The answer (the plan of 1,000 nodes) can be lost while the
		// coordinators hand the slices out: the deploy is what counts.
		if werr := waitUntil(time.Minute, 100*time.Millisecond, "generation 1 of site", func() bool {
			sctx, cancel := ctxT(10 * time.Second)
			defer cancel()
			st, _, serr := cl.ServiceStatus(sctx, "site", 0, 0)
			return serr == nil && st.Generation > 0
		}); werr != nil {
			b.Fatalf("%v (after %v)", werr, err)
		}
	}
	if err := waitConverged(cl, "site", 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	if _, err := cl.SetInputs(ctx, "site", map[string]string{"greeting": "Hi", "port": "8081"}); err != nil {
		b.Fatal(err)
	}

	var took []time.Duration
	for b.Loop() {
		if d := os.Getenv("DTK_PROFILE_DIR"); d != "" {
			for _, co := range c.Coords {
				go func() {
					ctx, cancel := ctxT(time.Minute)
					defer cancel()
					f, _ := os.Create(filepath.Join(d, co.Name+".prof"))
					defer f.Close()
					hc := c.OperatorAt(co.HTTP)
					resp, err := hc.HTTP.Do(mustReq(ctx, "https://"+co.HTTP+"/debug/pprof/profile?seconds=20", c.Token))
					if err == nil {
						io.Copy(f, resp.Body)
						resp.Body.Close()
					}
				}()
			}
		}
		start := time.Now()
		st, err := dryRunClusters(ctx, cl, "site")
		if err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		var sizes []int
		for _, c := range st.Clusters {
			sizes = append(sizes, len(c.Agents))
		}
		if !reflect.DeepEqual(sizes, []int{web, odd, db}) {
			b.Fatalf("cluster sizes %v, want [%d %d %d]: %+v", sizes, web, odd, db, st.Clusters)
		}
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "ms-max")
}

// dryRunClusters is dtkctl's dry run: start it, follow it until every
// agent has answered, read the clusters.
func dryRunClusters(ctx context.Context, cl *api.Client, svc string) (*api.DryRunClusters, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	op, err := cl.StartOpBrief(ctx, svc, plan.OpDryRun, nil)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	polls := 0
	first := time.Duration(0)
	for len(op.Done) < len(op.Steps) {
		if op, err = cl.OpBrief(ctx, op.ID, op.Index, 30*time.Second); err != nil {
			return nil, fmt.Errorf("follow the dry run (%d of %d answered): %w", len(op.Done), len(op.Steps), err)
		}
		polls++
		if os.Getenv("DTK_BENCH_VERBOSE") != "" {
			fmt.Fprintf(os.Stderr, "  %6.2fs: %d results, %d done\n", time.Since(t0).Seconds(), len(op.Results), len(op.Done))
		}
		if first == 0 && len(op.Results) > 0 {
			first = time.Since(t0)
		}
	}
	t1 := time.Now()
	st, err := cl.DryRunClusters(ctx, op.ID, op.Index)
	if os.Getenv("DTK_BENCH_VERBOSE") != "" {
		fmt.Fprintf(os.Stderr, "first result %s, all done %s after %d polls, clusters %s\n", first, t1.Sub(t0), polls, time.Since(t1))
	}
	return st, err
}

// waitConverged polls a service's status until it is converged; on
// timeout, the error counts its steps by state.
func waitConverged(cl *api.Client, svc string, timeout time.Duration) error {
	var last *api.ServiceStatus
	err := waitUntil(timeout, 200*time.Millisecond, svc+" converged", func() bool {
		ctx, cancel := ctxT(10 * time.Second)
		defer cancel()
		st, _, err := cl.ServiceStatus(ctx, svc, 0, 0)
		if err == nil {
			last = st
		}
		return err == nil && st.State == plan.StateConverged
	})
	if err != nil && last != nil {
		states := map[string]int{}
		var why string
		for _, n := range last.Nodes {
			for _, s := range n.Steps {
				states[s.State]++
				if s.State == plan.StepFailed && why == "" {
					why = fmt.Sprintf("; %s on %s: %s", s.ID, n.Name, s.Error)
				}
			}
		}
		err = fmt.Errorf("%w: %s, steps %v%s", err, last.State, states, why)
	}
	return err
}

func mustReq(ctx context.Context, url, token string) *http.Request {
	r, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if token != "" {
		r.Header.Set(api.TokenHeader, token)
	}
	return r
}
