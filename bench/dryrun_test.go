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
	"syscall"
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
// (message only) and 40 db nodes (no change).
//
// The budget is 2 s (docs/dry-run.md): reported as the median and worst
// run, with the CPU time a run took (all of it, and the coordinators'
// alone: on a real fleet the agents' share is spent on their own
// machines) and the machine's load, which says how far the wall time on a
// shared machine is from an idle one's. make bench-dryrun builds the
// binaries first; DTK_BENCH_BIN names their folder (default ../bin).
// DTK_BENCH_VERBOSE=1 prints each run's phases and CPU; DTK_PROFILE_DIR=D
// writes a 4-second CPU profile of each coordinator from each run's start
// to D.
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

	verbose := os.Getenv("DTK_BENCH_VERBOSE") != ""
	var took, cpu, coordCPU, others []time.Duration
	for b.Loop() {
		if d := os.Getenv("DTK_PROFILE_DIR"); d != "" {
			profileCoords(c, d, 4*time.Second)
		}
		start, cpu0 := time.Now(), cpuNow(c)
		idle0u, all0u := procStat()
		st, phases, err := dryRunClusters(ctx, cl, "site")
		if err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		used := cpuNow(c).minus(cpu0)
		cpu = append(cpu, used.total())
		coordCPU = append(coordCPU, used.total()-used.self)
		// What the machine's cores did meanwhile besides this run (other
		// engineers' builds and tests on a shared machine).
		idle1u, all1u := procStat()
		busy := time.Duration(float64((all1u-all0u)-(idle1u-idle0u))/float64(clockTicks)*float64(time.Second)) - used.total()
		others = append(others, max(busy, 0))
		if verbose {
			fmt.Fprintf(os.Stderr, "run %d: %s in %s; CPU %s (this process %s, coordinators %v; other processes %s)\n",
				len(took), phases, took[len(took)-1].Round(time.Millisecond), used.total().Round(time.Millisecond), used.self.Round(time.Millisecond), used.coords, others[len(others)-1].Round(time.Millisecond))
		}
		var sizes []int
		for _, c := range st.Clusters {
			sizes = append(sizes, len(c.Agents))
		}
		if !reflect.DeepEqual(sizes, []int{web, odd, db}) {
			b.Fatalf("cluster sizes %v, want [%d %d %d]: %+v", sizes, web, odd, db, st.Clusters)
		}
	}
	ms := func(ds []time.Duration, q float64) float64 {
		slices.Sort(ds)
		return float64(ds[int(q*float64(len(ds)-1)+0.5)].Microseconds()) / 1000
	}
	b.ReportMetric(ms(took, 0.5), "ms-median")
	b.ReportMetric(ms(took, 1), "ms-max")
	b.ReportMetric(ms(cpu, 0.5), "cpu-ms-median")
	b.ReportMetric(ms(coordCPU, 0.5), "coord-cpu-ms-median")
	b.ReportMetric(ms(others, 0.5), "others-cpu-ms-median")
	b.ReportMetric(loadAvg1(), "load-avg-1m")
}

// dryRunClusters is dtkctl's dry run: start it, follow it until every
// agent has answered (brief answers), read the clusters as of what the
// follow saw. It says how long each phase took.
func dryRunClusters(ctx context.Context, cl *api.Client, svc string) (*api.DryRunClusters, string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	t0 := time.Now()
	op, err := cl.StartOpBrief(ctx, svc, plan.OpDryRun, nil)
	if err != nil {
		return nil, "", err
	}
	t1 := time.Now()
	var first time.Time
	polls := 0
	for len(op.Done) < len(op.Steps) {
		if op, err = cl.OpBrief(ctx, op.ID, op.Index, 30*time.Second); err != nil {
			return nil, "", fmt.Errorf("follow the dry run (%d of %d answered): %w", len(op.Done), len(op.Steps), err)
		}
		polls++
		if first.IsZero() && len(op.Results) > 0 {
			first = time.Now()
		}
	}
	t2 := time.Now()
	st, err := cl.DryRunClusters(ctx, op.ID, op.Index)
	ms := func(a, b time.Time) time.Duration { return b.Sub(a).Round(time.Millisecond) }
	return st, fmt.Sprintf("start %s, first answer %s later, all %d %s later (%d polls), clusters %s",
		ms(t0, t1), ms(t1, first), len(op.Done), ms(t1, t2), polls, ms(t2, time.Now())), err
}

// cpuUse is CPU time used so far: this process's (the simulated agents
// and the operator) and each coordinator's.
type cpuUse struct {
	self   time.Duration
	coords []time.Duration
}

func cpuNow(c *Cluster) cpuUse {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	u := cpuUse{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	for _, co := range c.Coords {
		u.coords = append(u.coords, procCPU(co))
	}
	return u
}

func (u cpuUse) minus(v cpuUse) cpuUse {
	d := cpuUse{self: u.self - v.self}
	for i := range u.coords {
		d.coords = append(d.coords, (u.coords[i] - v.coords[i]).Round(time.Millisecond))
	}
	return d
}

func (u cpuUse) total() time.Duration {
	t := u.self
	for _, c := range u.coords {
		t += c
	}
	return t
}

// profileCoords writes a CPU profile of each coordinator over the next d
// to dir/NAME.prof, in the background.
func profileCoords(c *Cluster, dir string, d time.Duration) {
	for _, co := range c.Coords {
		go func() {
			ctx, cancel := ctxT(d + 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("https://%s/debug/pprof/profile?seconds=%d", co.HTTP, int(d.Seconds())), nil)
			req.Header.Set(api.TokenHeader, c.Token)
			resp, err := c.OperatorAt(co.HTTP).HTTP.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if f, err := os.Create(filepath.Join(dir, co.Name+".prof")); err == nil {
				io.Copy(f, resp.Body)
				f.Close()
			}
		}()
	}
}

// clockTicks is the unit of /proc/stat (USER_HZ: 100 on Linux).
const clockTicks = 100

// loadAvg1 is the machine's load average over the last minute.
func loadAvg1() float64 {
	var l float64
	fmt.Sscan(LoadAvg(), &l)
	return l
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
