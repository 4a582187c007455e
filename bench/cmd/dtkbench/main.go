// Command dtkbench measures dtk on this machine and, in the same run,
// puppet apply and ansible-playbook, and writes bench/results/<date>.md and
// .json. `make bench` runs the full set (about 25 minutes, 10 of them the
// idle-footprint period, which overlaps the other figures); `make
// bench-quick` a shorter one (about 5 minutes). Clusters are secure
// (mutual TLS, encrypted gossip) unless -insecure. `make bench-tls-cost`
// (-tls-compare) measures propagation and the write path on a secure and
// an insecure cluster alternately and writes <date>-tls-cost.md. `make
// bench-acl-cost` (-acl-compare) does the same with access control on and
// off, adding operator reads with tokens, and writes <date>-acl-cost.md.
// Secure clusters run with ACLs on (a bootstrapped management token for
// the benchmark's operator calls) unless -no-acl.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dtkhq/dtk/bench"
)

func main() {
	// Each simulated agent holds a few files (its state, its journal) and
	// connections open: 10,000 of them need more than a login's usual
	// hard limit. Raise it when allowed (root); Go raises the soft limit
	// to the hard one by itself.
	if lim := (syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}); syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		fmt.Fprintln(os.Stderr, "dtkbench: could not raise the open-files limit; large fleets may fail with too many open files")
	}
	var (
		quick       = flag.Bool("quick", false, "shorter run: fewer sizes and runs, 1 minute idle")
		out         = flag.String("out", "bench/results", "folder for <date>.md and <date>.json")
		binDir      = flag.String("bin", "bin", "folder with dtk-agent and dtkctl built by `make build`")
		idle        = flag.Duration("idle", 10*time.Minute, "idle period for the agent footprint")
		sizesFlag   = flag.String("sizes", "", "fleet sizes (default 100,1000,5000; quick 100,1000)")
		bashSizes   = flag.String("bash-sizes", "", "fleet sizes also deployed with the real bash runner (default 100,1000; quick 100)")
		runs        = flag.Int("runs", 5, "measured runs per figure (default 5; quick 3)")
		warmups     = flag.Int("warmups", 1, "warm-up runs per figure, not measured")
		ansibleRuns = flag.Int("ansible-runs", 0, "measured ansible runs per kind (default 2; quick 1): one run of 100 tasks takes about 45 s here")
		ansibleWarm = flag.Int("ansible-warmups", 0, "ansible warm-up runs per kind (default 1; quick 0)")
		killRuns    = flag.Int("failover-runs", 0, "kill -9 failover runs (default 5; quick 3)")
		freezeRuns  = flag.Int("freeze-runs", 0, "SIGSTOP failover runs (default 5; quick 2)")
		wpDur       = flag.Duration("write-path", 0, "measured write-path period (default 10s; quick 5s)")
		agentDir    = flag.String("agent-dir", "/dev/shm/dtkbench-agents", "data dirs of simulated agents (tmpfs by default: see docs/performance.md)")
		workDir     = flag.String("work", "", "work folder on a real disk (default: a new folder under $TMPDIR)")
		replicas    = flag.Int("read-replicas", 0, "start this many read-replica coordinators (--read-replica) next to the 3 voters for figures 1–3; simulated agents then poll the replicas")
		only        = flag.String("only", "", "comma-separated figures to run: local,fleet,failover,idle (default all)")
		cpuprofile  = flag.String("cpuprofile", "", "write a CPU profile of this process (simulated agents, clients) to this file")
		coordProf   = flag.String("coord-cpuprofile", "", "write CPU profiles over the write path's measured window: PREFIX-<coordinator>.cpu for each coordinator (GET /debug/pprof/profile as the operator; the leader's name ends in -leader) and PREFIX-bench.cpu for this process (unless -cpuprofile is given)")
		prefix      = flag.String("prefix", "127.0.201", "loopback /24 of the fleet cluster (figures 1–3 and 6): coordinators on PREFIX.1–3, read replicas on PREFIX.11 onwards; another one lets two benchmarks run side by side (with their own -agent-dir)")
		keep        = flag.Bool("keep", false, "keep the work folder (logs of every process)")
		insecure    = flag.Bool("insecure", false, "run every cluster with --insecure (plain HTTP, no client certificates, unencrypted gossip) instead of the secure default")
		tlsCompare  = flag.Bool("tls-compare", false, "only compare a secure and an insecure cluster: propagation (-sizes) and the write path at 1,000 agents, -rounds rounds of each, alternating")
		rounds      = flag.Int("rounds", 2, "with -tls-compare: rounds of one secure and one insecure cluster")
		wpConnect   = flag.Int("write-path-connect", 0, "connect the write path's clients before it starts, this many at a time (0: every client connects on its first report, all at once)")
		wpWarm      = flag.Duration("write-path-warm", 0, "unmeasured start of the write path (default 2s; with -tls-compare 5s, past the clients' TLS handshakes)")
		connProbes  = flag.Int("conn-probes", 200, "with -tls-compare: new connections timed per round")
		noACL       = flag.Bool("no-acl", false, "run secure clusters without access control (ACLs are on by default, as shipped for production; -insecure clusters never have them)")
		aclCompare  = flag.Bool("acl-compare", false, "only compare a secure cluster with ACLs on and one with ACLs off: propagation (-sizes), the write path at 1,000 agents and operator reads with tokens, -rounds rounds of each, alternating")
		opCalls     = flag.Int("op-calls", 2000, "with -acl-compare: GET /v1/services/NAME calls per operator-read measurement")
		opParallel  = flag.Int("op-parallel", 8, "with -acl-compare: operator reads at a time in the parallel measurement")
		aclTokens   = flag.Int("acl-tokens", 10000, "with -acl-compare: tokens in the state for the second operator-read measurement (at most 10,000; 0: skip)")
		memory      = flag.Bool("memory", false, "only measure one coordinator's memory per connected agent (heap, stacks and RSS after a GC) with -sizes agents idle-polling, then a fleet service of -memory-service-sizes nodes; -runs runs; writes <date>-memory.md")
		memPrefix   = flag.String("memory-prefix", "127.0.206", "with -memory: loopback prefix of the coordinator")
		memSvc      = flag.String("memory-service-sizes", "", "with -memory: node counts of the fleet service, deployed with the largest fleet connected (default: -sizes)")
		memGens     = flag.Int("memory-generations", 10, "with -memory: deploys of the service at each size (the state keeps 10 generations)")
		memLinger   = flag.Duration("memory-linger", 0, "with -memory: measure once more this long after the agents left")
	)
	flag.Parse()
	lg := log.New(os.Stderr, "dtkbench ", log.Ltime)
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	def := func(name string, v *int, full, q int) {
		if !set[name] {
			*v = map[bool]int{false: full, true: q}[*quick]
		}
	}
	def("runs", runs, 5, 3)
	def("ansible-runs", ansibleRuns, 2, 1)
	def("ansible-warmups", ansibleWarm, 1, 0)
	def("failover-runs", killRuns, 5, 3)
	def("freeze-runs", freezeRuns, 5, 2)
	if *wpDur == 0 {
		*wpDur = map[bool]time.Duration{false: 10 * time.Second, true: 5 * time.Second}[*quick]
	}
	if *sizesFlag == "" {
		*sizesFlag = map[bool]string{false: "100,1000,5000", true: "100,1000"}[*quick]
	}
	if *bashSizes == "" {
		*bashSizes = map[bool]string{false: "100,1000", true: "100"}[*quick]
	}
	sizes, err := ints(*sizesFlag)
	if err != nil {
		lg.Fatal(err)
	}
	bsizes, err := ints(*bashSizes)
	if err != nil {
		lg.Fatal(err)
	}
	want := func(f string) bool { return *only == "" || strings.Contains(","+*only+",", ","+f+",") }
	agentBin, err := filepath.Abs(filepath.Join(*binDir, "dtk-agent"))
	if err != nil {
		lg.Fatal(err)
	}
	if _, err := os.Stat(agentBin); err != nil {
		lg.Fatalf("%v: run `make build` first (make bench does)", err)
	}
	if *workDir == "" {
		if *workDir, err = os.MkdirTemp("", "dtkbench-"); err != nil {
			lg.Fatal(err)
		}
	}
	if !*keep {
		defer os.RemoveAll(*workDir)
	}
	os.RemoveAll(*agentDir)
	defer os.RemoveAll(*agentDir)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			lg.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	if *memory {
		if !set["sizes"] {
			sizes = []int{500, 1000, 2000}
		}
		svc := sizes
		if *memSvc != "" {
			if svc, err = ints(*memSvc); err != nil {
				lg.Fatal(err)
			}
		}
		if err := runMemory(lg, agentBin, *workDir, *agentDir, *memPrefix, *out, sizes, svc, *memGens, *memLinger, *runs); err != nil {
			lg.Fatal(err)
		}
		return
	}
	mode := map[bool]string{false: "full", true: "quick"}[*quick]
	if *tlsCompare {
		mode = "tls-cost"
	}
	if *aclCompare {
		if *tlsCompare || *insecure {
			lg.Fatal("-acl-compare runs secure clusters only: not with -tls-compare or -insecure")
		}
		mode = "acl-cost"
	}
	res := &bench.Results{Started: time.Now(), Mode: mode,
		Command: "dtkbench " + strings.Join(os.Args[1:], " "), Settings: map[string]string{}}
	res.Date = res.Started.Format("2006-01-02")
	version := strings.TrimSpace(out1("git", "describe", "--tags", "--always", "--dirty"))
	lg.Printf("describing the machine")
	res.Machine = bench.DescribeMachine(version)
	res.Machine.AgentDirFS = fsType(*agentDir)
	res.Noise.BusyBeforePct = 100 * bench.CPUBusy(2*time.Second)
	machine0 := machineCPU()
	res.Settings["fleet sizes"] = *sizesFlag
	res.Settings["fleet sizes with the real bash runner"] = *bashSizes
	res.Settings["runs / warm-ups per figure"] = fmt.Sprintf("%d / %d (ansible: %d / %d)", *runs, *warmups, *ansibleRuns, *ansibleWarm)
	res.Settings["idle period"] = idle.String()
	res.Settings["failover runs (kill -9 / SIGSTOP)"] = fmt.Sprintf("%d / %d", *killRuns, *freezeRuns)
	res.Settings["write-path period"] = wpDur.String()
	res.Settings["write-path warm-up"] = map[bool]string{true: "2s", false: wpWarm.String()}[*wpWarm == 0]
	if *wpConnect > 0 {
		res.Settings["write-path clients connected before the start"] = fmt.Sprintf("%d at a time", *wpConnect)
	}
	res.Settings["Raft timers"] = "shipped defaults (coordinators run without --fast; heartbeat and election timeouts 1 s, commit timeout 50 ms)"
	res.Settings["simulated agents' data dirs"] = *agentDir + " (" + res.Machine.AgentDirFS + ")"
	res.Settings["security"] = map[bool]string{
		false: "secure (the default): a CA made by the benchmark, server certificates for the coordinators, node certificates for every agent (simulated ones too), a client (operator) certificate for the benchmark's own calls; mutual TLS on the API, forwarding, blob replication and Raft; encrypted gossip",
		true:  "--insecure: plain HTTP, no certificates, unencrypted gossip",
	}[*insecure]
	if !*insecure {
		res.Settings["access control"] = map[bool]string{
			false: "ACLs on (--acl-enabled): the benchmark bootstraps a management token and sends it with every operator call; agents (node certificates) need none",
			true:  "ACLs off (-no-acl)",
		}[*noACL]
	}
	res.Settings["work folder (coordinators' Raft logs, local agent state)"] = *workDir + " (" + fsType(*workDir) + ")"
	loadNote := func(fig string) { res.Noise.LoadAvg = append(res.Noise.LoadAvg, fig+": "+bench.LoadAvg()) }

	// comparison runs one of the on/off comparisons (ACL, TLS) instead of
	// the whole benchmark and writes its report.
	comparison := func(name string, run func() error) {
		res.Settings["rounds"] = fmt.Sprint(*rounds)
		delete(res.Settings, "fleet sizes with the real bash runner")
		delete(res.Settings, "idle period")
		delete(res.Settings, "failover runs (kill -9 / SIGSTOP)")
		loadNote(name)
		if *wpWarm == 0 {
			*wpWarm = 5 * time.Second
		}
		res.Settings["write-path warm-up"] = wpWarm.String()
		if err := run(); err != nil {
			res.Errors = append(res.Errors, name+": "+err.Error())
		}
		finish(res, machine0)
		res.Notes = append(res.Notes, notes[1:3]...)
		md, err := res.Write(*out)
		if err != nil {
			lg.Fatal(err)
		}
		lg.Printf("wrote %s and .json", md)
	}
	if *aclCompare {
		res.Settings["access control"] = "on and off, alternately (see What access control costs)"
		res.Settings["operator reads"] = fmt.Sprintf("%d calls, one at a time and %d at a time; %d tokens in the state for the second measurement", *opCalls, *opParallel, *aclTokens)
		comparison("acl cost", func() error {
			ac, err := bench.RunACLCost(bench.ACLCostConfig{
				Bin: agentBin, WorkDir: filepath.Join(*workDir, "acl-cost"), AgentDir: *agentDir, Rounds: *rounds, Sizes: sizes,
				Runs: *runs, Warmups: *warmups, WritePathSize: 1000, WritePathDur: *wpDur, WritePathWarm: *wpWarm,
				OpCalls: *opCalls, OpParallel: *opParallel, Tokens: *aclTokens, Log: lg,
			})
			res.ACLCost = ac
			return err
		})
		return
	}
	if *tlsCompare {
		res.Settings["security"] = "both, alternately (see What TLS costs)"
		comparison("tls cost", func() error {
			tc, err := bench.RunTLSCost(bench.TLSCostConfig{
				Bin: agentBin, WorkDir: filepath.Join(*workDir, "tls-cost"), AgentDir: *agentDir, Rounds: *rounds, Sizes: sizes,
				Runs: *runs, Warmups: *warmups, WritePathSize: 1000, WritePathDur: *wpDur, WritePathWarm: *wpWarm, ConnProbes: *connProbes, Log: lg,
			})
			res.TLSCost = tc
			return err
		})
		return
	}
	// The idle period runs alongside the other figures: its processes are
	// alone in their cluster, and RSS and their own CPU time do not depend
	// on what else runs.
	var ib *bench.IdleBench
	if want("idle") {
		loadNote("idle start")
		lg.Printf("footprint: starting the idle cluster (%s idle)", *idle)
		ib, err = bench.StartIdle(agentBin, filepath.Join(*workDir, "idle"), "127.0.202", *insecure, !*insecure && !*noACL)
		if err != nil {
			res.Errors = append(res.Errors, "footprint: "+err.Error())
			lg.Printf("footprint: %v", err)
		}
	}
	var coordFoot []bench.CoordFootprint
	if want("local") || want("fleet") {
		lg.Printf("starting the 3-coordinator cluster")
		c, err := bench.StartClusterACL(agentBin, filepath.Join(*workDir, "fleet"), *prefix, 3, *insecure, !*insecure && !*noACL)
		if err != nil {
			lg.Fatalf("cluster: %v", err)
		}
		if *replicas > 0 {
			lg.Printf("starting %d read replicas", *replicas)
			if err := c.AddReadReplicas(*replicas); err != nil {
				c.Stop()
				lg.Fatalf("read replicas: %v", err)
			}
			notes = append(notes, fmt.Sprintf("%d read-replica coordinators (--read-replica, non-voters, %s.11 onwards) ran next to the 3 voters; the simulated agents polled them (the voters served operator calls and forwarded writes)", *replicas, *prefix))
		}
		if want("local") {
			loadNote("local")
			lg.Printf("local convergence: dtk, puppet, ansible")
			l, err := bench.RunLocal(bench.LocalConfig{Cluster: c, WorkDir: filepath.Join(*workDir, "local"), Runs: *runs, Warmups: *warmups, AnsibleRuns: *ansibleRuns, AnsibleWarmups: *ansibleWarm, Log: lg})
			if err != nil {
				res.Errors = append(res.Errors, "local convergence: "+err.Error())
				lg.Printf("local: %v", err)
			}
			res.Local = l
		}
		if want("fleet") {
			loadNote("fleet")
			fr, err := bench.RunFleet(bench.FleetConfig{
				Cluster: c, AgentDir: *agentDir, WorkDir: filepath.Join(*workDir, "fleet-work"), Sizes: sizes, BashSizes: bsizes,
				Runs: *runs, Warmups: *warmups, WritePathSize: 1000, WritePathDur: *wpDur, WritePathWarm: *wpWarm, WritePathConnect: *wpConnect, CoordProfile: *coordProf, Log: lg,
			})
			if err != nil {
				res.Errors = append(res.Errors, "fleet: "+err.Error())
				lg.Printf("fleet: %v", err)
			}
			if fr != nil {
				res.Propagation, res.Fleet, res.WritePath, coordFoot = fr.Propagation, fr.Fleet, fr.WritePath, fr.Coord
			}
		}
		c.Stop()
	}
	if want("failover") {
		loadNote("failover")
		lg.Printf("failover: %d kill -9 runs, %d SIGSTOP runs", *killRuns, *freezeRuns)
		fo, err := bench.RunFailover(bench.FailoverConfig{Bin: agentBin, Dir: filepath.Join(*workDir, "failover"), Prefix: "127.0.203", Agents: 6, KillRuns: *killRuns, FreezeRuns: *freezeRuns, Insecure: *insecure, NoACL: *noACL, Log: lg})
		if err != nil {
			res.Errors = append(res.Errors, "failover: "+err.Error())
			lg.Printf("failover: %v", err)
		}
		res.Failover = fo
	}
	if ib != nil {
		if left := time.Until(ib.Started().Add(*idle)); left > 0 {
			lg.Printf("footprint: waiting %s for the idle period to end", left.Round(time.Second))
		}
		res.Footprint = ib.Finish(*idle)
	}
	if res.Footprint == nil && len(coordFoot) > 0 {
		res.Footprint = &bench.FootprintResult{}
	}
	if res.Footprint != nil {
		res.Footprint.Coord = coordFoot
		res.Footprint.BinariesMiB = bench.BinarySizes(*binDir)
	}
	finish(res, machine0)
	res.Notes = append(res.Notes, notes...)
	res.ComputeGoals()
	md, err := res.Write(*out)
	if err != nil {
		lg.Fatal(err)
	}
	lg.Printf("wrote %s and .json", md)
	for _, g := range res.Goals {
		lg.Printf("goal %-70s %-22s %s", g.Name, g.Target, g.Measured)
	}
	if len(res.Errors) > 0 {
		lg.Printf("%d error(s): see the report", len(res.Errors))
	}
}

// finish records the end of the run and how busy the machine was with
// other work (machine0: machineCPU at the start).
func finish(res *bench.Results, machine0 float64) {
	res.Finished = time.Now()
	res.Machine.LoadAvgEnd = bench.LoadAvg()
	res.Noise.MachineCPUSeconds = machineCPU() - machine0
	res.Noise.OursCPUSeconds = oursCPU()
	res.Noise.OtherCPUSeconds = max(0, res.Noise.MachineCPUSeconds-res.Noise.OursCPUSeconds)
	res.Noise.OtherBusyPct = 100 * res.Noise.OtherCPUSeconds / (res.Finished.Sub(res.Started).Seconds() * float64(res.Machine.Cores))
}

var notes = []string{
	"Salt, Nomad and Chef are not measured: they are not installed on this machine and cannot be (no network beyond the Debian, Go and npm registries). The issue's bracketed figures for them are their published numbers, not measurements.",
	"Simulated agents (figures 1, 2, 6 and the coordinator footprint) are real agent.Agent instances in the benchmark process — pull loop, local state file, converger, durable report queue — each with its own data dir, its own node certificate (unless -insecure) and its own HTTP connection pool, spread round-robin over the three coordinators; their runner does nothing (a step succeeds at once) unless the real bash runner is named. Coordinators are real dtk-agent processes (--coordinator --no-agent --bootstrap-expect 3, shipped timers; --tls-ca --tls-cert --tls-key --encrypt, or --insecure) on loopback addresses of their own (127.0.201.1–3 for figures 1–3 and 6, 127.0.204.x / 127.0.205.x for the TLS comparison).",
	"All of it runs on one 2-core machine: coordinators, thousands of agents and the clients share two cores, which a real fleet never does; propagation times at large sizes are dominated by the CPU time to answer and decode thousands of long-polls here, not by the network.",
	"Simulated agents keep their state on tmpfs by default (-agent-dir): each real agent fsyncs its own state file on its own disk; thousands of agents fsyncing on one shared virtual disk would measure that disk, not dtk. The local-convergence agent (figure 3) keeps its state on the real disk, as a node does.",
	"Figure 3 runs the three tools in alternation within each round (dtk, puppet, ansible), so background load falls on them alike. Ansible gathers no facts (gather_facts: false) and is told its Python interpreter; Puppet runs with its defaults (facter included). Every changing round moves all 100 files to a new content revision for every tool.",
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func out1(name string, args ...string) string {
	b, _ := exec.Command(name, args...).Output()
	return string(b)
}

func fsType(dir string) string {
	os.MkdirAll(dir, 0o755)
	b := out1("stat", "-f", "-c", "%T", dir)
	return strings.TrimSpace(b)
}

// machineCPU is the machine's busy CPU time in seconds (all processes).
func machineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy uint64
	for i, x := range f[1:] {
		v, _ := strconv.ParseUint(x, 10, 64)
		if i != 3 && i != 4 && i < 8 { // not idle, iowait; not guest (counted in user)
			busy += v
		}
	}
	return float64(busy) / 100
}

// oursCPU is this process's CPU time plus that of the children it waited
// for (coordinators, agents, puppet, ansible, bash).
func oursCPU() float64 {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// runMemory runs the memory-per-agent measurement runs times and writes
// <date>-memory.md and .json to out.
func runMemory(lg *log.Logger, bin, work, agentDir, prefix, out string, sizes, svc []int, gens int, linger time.Duration, runs int) error {
	var all []*bench.MemoryResult
	var failed []string
	started := time.Now()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// A failed run (another process's cleanup stopping the coordinator,
	// say) is retried, up to two more runs in all.
	for r := 1; len(all) < runs && r <= runs+2; r++ {
		lg.Printf("memory: run %d (%d of %d wanted)", r, len(all)+1, runs)
		res, err := bench.RunMemory(bench.MemoryConfig{
			Bin: bin, WorkDir: filepath.Join(work, fmt.Sprintf("memory-%d", r)), AgentDir: filepath.Join(agentDir, fmt.Sprint(r)),
			Prefix: prefix, Sizes: sizes, ServiceSizes: svc, Generations: gens, Linger: linger,
			ProfileDir: filepath.Join(work, fmt.Sprintf("memory-%d", r), "profiles"), Log: lg,
		})
		if err != nil {
			// A lost run does not lose the others: the report names it.
			lg.Printf("memory: run %d: %v", r, err)
			failed = append(failed, fmt.Sprintf("run %d failed and was repeated: %v", r, err))
			continue
		}
		all = append(all, res)
	}
	if len(all) == 0 {
		return fmt.Errorf("every run failed: %s", strings.Join(failed, "; "))
	}
	base := filepath.Join(out, started.Format("2006-01-02")+"-memory")
	var b strings.Builder
	fmt.Fprintf(&b, "# Coordinator memory per connected agent (%s)\n\n`dtkbench %s`, version %s, load average at the end %s.\n",
		started.Format("2006-01-02 15:04 MST"), strings.Join(os.Args[1:], " "), strings.TrimSpace(out1("git", "describe", "--tags", "--always", "--dirty")), bench.LoadAvg())
	for _, f := range failed {
		fmt.Fprintf(&b, "\n%s (not counted).\n", f)
	}
	bench.WriteMemory(&b, all)
	if err := os.WriteFile(base+".md", []byte(b.String()), 0o644); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(all, "", "  ")
	if err := os.WriteFile(base+".json", j, 0o644); err != nil {
		return err
	}
	lg.Printf("wrote %s.md and .json", base)
	fmt.Print(b.String())
	return nil
}
