package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Results is one run of the benchmark, as written to results/<date>.json.
type Results struct {
	Date     string            `json:"date"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Mode     string            `json:"mode"`
	Command  string            `json:"command"`
	Machine  Machine           `json:"machine"`
	Settings map[string]string `json:"settings"`
	Noise    Noise             `json:"noise"`

	Propagation []PropagationResult `json:"propagation,omitempty"`
	Fleet       []FleetResult       `json:"fleet_deploy,omitempty"`
	Local       *LocalResult        `json:"local_convergence,omitempty"`
	Footprint   *FootprintResult    `json:"footprint,omitempty"`
	Failover    *FailoverResult     `json:"failover,omitempty"`
	WritePath   *WritePathResult    `json:"write_path,omitempty"`
	TLSCost     *TLSCostResult      `json:"tls_cost,omitempty"`
	ACLCost     *ACLCostResult      `json:"acl_cost,omitempty"`
	Goals       []Goal              `json:"goals"`
	Notes       []string            `json:"notes"`
	Errors      []string            `json:"errors,omitempty"`
}

// Noise is how busy the machine was with work other than this benchmark.
type Noise struct {
	BusyBeforePct float64 `json:"busy_before_pct"`
	// MachineCPUSeconds is all CPU time spent on the machine during the
	// run; OursCPUSeconds what this process and the processes it started
	// (and waited for) used. The difference is other work.
	MachineCPUSeconds float64  `json:"machine_cpu_seconds"`
	OursCPUSeconds    float64  `json:"ours_cpu_seconds"`
	OtherCPUSeconds   float64  `json:"other_cpu_seconds"`
	OtherBusyPct      float64  `json:"other_busy_pct_of_machine"`
	LoadAvg           []string `json:"loadavg_per_figure"`
}

// Goal is one of the goals and how this run did.
type Goal struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
	Missing  bool   `json:"not_measured,omitempty"`
}

// Write writes dir/<date>.json and dir/<date>.md.
func (r *Results) Write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	name := r.Date
	if r.Mode != "full" {
		name += "-" + r.Mode
	}
	base := filepath.Join(dir, name)
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	return base + ".md", os.WriteFile(base+".md", []byte(r.Markdown()), 0o644)
}

// ComputeGoals fills Goals from the figures.
func (r *Results) ComputeGoals() {
	r.Goals = nil
	g := Goal{Name: "plan propagation p99 at 1,000 agents", Target: "≤ 1 s", Missing: true}
	for _, p := range r.Propagation {
		if p.Agents == 1000 && p.Received.N > 0 {
			g.Missing = false
			g.Measured = fmt.Sprintf("%s from the deploy call's return (p50 %s); %s from the moment it was sent",
				num(p.Received.P99, "ms"), num(p.Received.P50, "ms"), num(p.ReceivedFromSend.P99, "ms"))
			g.Met = p.Received.P99 <= 1000
		}
	}
	r.Goals = append(r.Goals, g)
	g = Goal{Name: "unchanged convergence of 100 resources vs `puppet apply`", Target: "≥ 20× faster", Missing: true}
	if l := r.Local; l != nil && l.DtkUnchanged.N > 0 && l.PuppetUnchanged.N > 0 {
		g.Missing = false
		ratio := l.PuppetUnchanged.P50 / l.DtkUnchanged.P50
		g.Measured = fmt.Sprintf("%.0f× (dtk redeploy pass %s vs puppet apply %s; vs puppet's own catalog time %s: %.1f×)",
			ratio, num(l.DtkUnchanged.P50, "ms"), num(l.PuppetUnchanged.P50, "ms"), num(l.PuppetCatalogUnchanged.P50, "ms"),
			l.PuppetCatalogUnchanged.P50/l.DtkUnchanged.P50)
		g.Met = ratio >= 20
	}
	r.Goals = append(r.Goals, g)
	g = Goal{Name: "idle agent RSS", Target: "≤ 20 MB (19.1 MiB)", Missing: true}
	if f := r.Footprint; f != nil && len(f.Agents) > 0 {
		g.Missing = false
		w := f.Agents[0]
		for _, a := range f.Agents {
			if a.RSSMiB > w.RSSMiB {
				w = a
			}
		}
		g.Measured = fmt.Sprintf("%.1f MiB = %.1f anon + %.1f file (largest of %d agents after %s idle)", w.RSSMiB, w.AnonMiB, w.FileMiB,
			len(f.Agents), time.Duration(f.IdleSeconds*float64(time.Second)).Round(time.Second))
		g.Met = w.RSSMiB*(1<<20) <= 20e6
	}
	r.Goals = append(r.Goals, g)
	for _, m := range r.failoverModes() {
		g = Goal{Name: "failover (" + m.Mode + ") → next write accepted", Target: "≤ 3 s", Missing: m.Write.N == 0}
		if m.Write.N > 0 {
			g.Measured = fmt.Sprintf("median %s (max %s, n=%d)", num(m.Write.P50, "ms"), num(m.Write.Max, "ms"), m.Write.N)
			g.Met = m.Write.P50 <= 3000
		}
		r.Goals = append(r.Goals, g)
		g = Goal{Name: "failover (" + m.Mode + ") → every agent polling a live coordinator", Target: "≤ 5 s", Missing: m.Agents.N == 0}
		if m.Agents.N > 0 {
			g.Measured = fmt.Sprintf("median %s (max %s, n=%d)", num(m.Agents.P50, "ms"), num(m.Agents.Max, "ms"), m.Agents.N)
			g.Met = m.Agents.P50 <= 5000
		}
		r.Goals = append(r.Goals, g)
	}
}

func (r *Results) failoverModes() []FailoverMode {
	if r.Failover == nil {
		return nil
	}
	return r.Failover.Modes
}

// Markdown renders the report.
func (r *Results) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# dtk benchmark, %s (%s)\n\n", r.Date, r.Mode)
	p("`%s`, %s → %s (%s). Generated by `bench/cmd/dtkbench`; numbers in milliseconds unless said otherwise; p50/p90/p99 are nearest-rank percentiles; n is the number of samples.\n\n",
		r.Command, r.Started.Format("15:04:05"), r.Finished.Format("15:04:05 MST"), r.Finished.Sub(r.Started).Round(time.Second))
	p("## Machine\n\n| | |\n| --- | --- |\n")
	m := r.Machine
	p("| CPU | %s, %d cores |\n| memory | %.1f GiB |\n| kernel | %s (%s) |\n| Go | %s |\n| dtk | %s |\n", m.CPUModel, m.Cores, m.MemoryGiB, m.Kernel, m.OS, m.GoVersion, m.DtkVersion)
	for _, k := range sortedKeys(m.Tools) {
		p("| %s | %s |\n", k, m.Tools[k])
	}
	p("| load average at start / end | %s / %s |\n", m.LoadAvgStart, m.LoadAvgEnd)
	if m.AgentDirFS != "" {
		p("| simulated agents' data dirs | %s |\n", m.AgentDirFS)
	}
	p("\n**Noise.** The machine was %.0f%% busy just before the run. During the run it spent %.0f CPU-seconds, of which this benchmark and its child processes used %.0f: %.0f CPU-seconds (%.0f%% of the machine's capacity over the run) went to other work (other engineers' builds and tests on this shared 2-core machine). Load averages at the start of each figure: %s.\n\n",
		r.Noise.BusyBeforePct, r.Noise.MachineCPUSeconds, r.Noise.OursCPUSeconds, r.Noise.OtherCPUSeconds, r.Noise.OtherBusyPct, strings.Join(r.Noise.LoadAvg, "; "))
	if len(r.Goals) > 0 {
		p("## Goals\n\n| goal | target | measured | |\n| --- | --- | --- | --- |\n")
	}
	for _, g := range r.Goals {
		mark := "met"
		switch {
		case g.Missing:
			mark, g.Measured = "not measured", "—"
		case !g.Met:
			mark = "**missed**"
		}
		p("| %s | %s | %s | %s |\n", g.Name, g.Target, g.Measured, mark)
	}
	if len(r.Propagation) > 0 {
		p("\n## 1. Plan propagation (3 coordinators, simulated agents)\n\n")
		p("Deploy of a changed input to every agent's slice. Received = the agent has read and decoded the answer to its plan long-poll carrying the new slice; started = it has saved the slice to its state file and started the step. Times from the deploy call's return (the commit on the leader) unless said otherwise; pooled over agents × runs.\n\n")
		p("| agents | deploy call p50 | received p50 | p90 | p99 | max | from call sent: p50 | p99 | max | started p99 | last agent per run (p50, max) | n | early |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for _, x := range r.Propagation {
			p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s, %s | %d | %d |\n", x.Agents, num(x.DeployCall.P50, "ms"),
				num(x.Received.P50, "ms"), num(x.Received.P90, "ms"), num(x.Received.P99, "ms"), num(x.Received.Max, "ms"),
				num(x.ReceivedFromSend.P50, "ms"), num(x.ReceivedFromSend.P99, "ms"), num(x.ReceivedFromSend.Max, "ms"),
				num(x.Started.P99, "ms"), num(x.LastAgent.P50, "ms"), num(x.LastAgent.Max, "ms"), x.Received.N, x.Early)
		}
		p("\nRuns per size: %d after %d warm-up(s); runner: %s. \"early\" counts agents that held the slice before the deploy call had returned to the client (followers apply the entry while the leader answers); they count as negative times. Where every sample is early (the coordinators are still answering thousands of long-polls on the same two cores when the leader's answer to the deploy call goes out), only the from-call-sent columns mean anything.\n",
			r.Propagation[0].Runs, r.Propagation[0].Warmups, r.Propagation[0].Runner)
	}
	if len(r.Fleet) > 0 {
		p("\n## 2. Fleet deploy\n\nFrom sending the deploy call to the service status saying `converged` (every step report committed), observed by polling `GET /v1/services` every 20 ms. One-step template: `create { inline = \"true\" }`.\n\n")
		p("| agents | runner | p50 | p90 | max | min | n |\n| --- | --- | --- | --- | --- | --- | --- |\n")
		for _, x := range r.Fleet {
			p("| %d | %s | %s | %s | %s | %s | %d |\n", x.Agents, x.Runner, num(x.Converged.P50, "ms"), num(x.Converged.P90, "ms"), num(x.Converged.Max, "ms"), num(x.Converged.Min, "ms"), x.Converged.N)
		}
	}
	if l := r.Local; l != nil {
		p("\n## 3. Local convergence: %d files with content on one node\n\n", l.Files)
		p("| tool | first (changing) run p50 | min–max | unchanged run p50 | min–max | n (first/unchanged) |\n| --- | --- | --- | --- | --- | --- |\n")
		row := func(name string, f, u Summary) {
			if f.N == 0 && u.N == 0 {
				p("| %s | not run | | not run | | 0/0 |\n", name)
				return
			}
			p("| %s | %s | %s–%s | %s | %s–%s | %d/%d |\n", name, num(f.P50, "ms"), num(f.Min, "ms"), num(f.Max, "ms"), num(u.P50, "ms"), num(u.Min, "ms"), num(u.Max, "ms"), f.N, u.N)
		}
		row("dtk agent, converge pass (redeploy: new generation, same digests)", l.DtkFirst, l.DtkUnchanged)
		p("| dtk agent, reconcile pass of the cached slice (same generation) | | | %s | %s–%s | –/%d |\n", num(l.DtkReconcile.P50, "ms"), num(l.DtkReconcile.Min, "ms"), num(l.DtkReconcile.Max, "ms"), l.DtkReconcile.N)
		row("`puppet apply` (wall time)", l.PuppetFirst, l.PuppetUnchanged)
		row("puppet: \"Applied catalog in\" (its own figure, no start-up/compile)", l.PuppetCatalogFirst, l.PuppetCatalogUnchanged)
		row("`ansible-playbook -c local` (wall time)", l.AnsibleFirst, l.AnsibleUnchanged)
		if l.DtkUnchanged.P50 > 0 {
			p("\nRatios (p50 over p50): unchanged — puppet apply / dtk = **%.0f×**, puppet catalog only / dtk = %.1f×, ansible / dtk = **%.0f×**, puppet / dtk reconcile = %.0f×; first run — puppet / dtk = %.1f×, ansible / dtk = %.1f×.\n",
				ratio(l.PuppetUnchanged, l.DtkUnchanged), ratio(l.PuppetCatalogUnchanged, l.DtkUnchanged), ratio(l.AnsibleUnchanged, l.DtkUnchanged),
				ratio(l.PuppetUnchanged, l.DtkReconcile), ratio(l.PuppetFirst, l.DtkFirst), ratio(l.AnsibleFirst, l.DtkFirst))
		}
		p("\nChecks: %s.\n", strings.Join(l.Checks, "; "))
		for _, e := range l.Errors {
			p("- error: %s\n", e)
		}
	}
	if f := r.Footprint; f != nil {
		p("\n## 4. Footprint\n\nIdle cluster of real processes (3 coordinators, 3 agents, one service deployed), left alone for %s; VmRSS and VmHWM from /proc/PID/status, CPU from utime+stime in /proc/PID/stat over the idle period.\n\n", time.Duration(f.IdleSeconds*float64(time.Second)).Round(time.Second))
		p("| process | RSS | of which anonymous (heap, stacks) | of which file-backed (the binary's pages) | peak RSS | CPU over the period | CPU share of one core |\n| --- | --- | --- | --- | --- | --- | --- |\n")
		for _, x := range append(append([]ProcFootprint(nil), f.Agents...), f.Coordinators...) {
			p("| %s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.2f s | %.3f%% |\n", x.Name, x.RSSMiB, x.AnonMiB, x.FileMiB, x.PeakMiB, x.CPUSeconds, x.CPUPercent)
		}
		if len(f.Agents) > 0 && len(f.Agents[0].Samples) > 0 {
			p("\nAgent RSS over the idle period (goal ≤ 19.07 MiB = 20 MB), read every %s: VmRSS (RssAnon + RssFile) in MiB. An agent drops its binary's resident pages 30 s after its last poll answer or converge (`drop_binary_pages`); its long-poll is answered every ~5 minutes and it reconciles every ~10.\n\n| after | ", SampleEvery)
			for _, a := range f.Agents {
				p("%s | ", a.Name)
			}
			p("\n| --- |%s\n", strings.Repeat(" --- |", len(f.Agents)))
			for i := range f.Agents[0].Samples {
				p("| %s | ", time.Duration(f.Agents[0].Samples[i].Seconds*float64(time.Second)).Round(time.Second))
				for _, a := range f.Agents {
					if i < len(a.Samples) {
						s := a.Samples[i]
						p("%.1f (%.1f + %.1f) | ", s.RSSMiB, s.AnonMiB, s.FileMiB)
					} else {
						p("| ")
					}
				}
				p("\n")
			}
		}
		if len(f.Coord) > 0 {
			p("\nCoordinators (real processes) with simulated agents connected and long-polling:\n\n| agents | open plan long-polls | coordinator RSS (each) | peak RSS (each) | leader | benchmark process RSS (the simulated agents) |\n| --- | --- | --- | --- | --- | --- |\n")
			for _, c := range f.Coord {
				p("| %d | %d | %s | %s | %s | %.0f MiB |\n", c.Agents, c.PlanPolls, mibList(c.RSSMiB), mibList(c.PeakMiB), c.Leader, c.BenchRSSMiB)
				if len(c.ReplicaRSSMiB) > 0 {
					p("| %d (read replicas, which the agents poll) | | %s | %s | | |\n", c.Agents, mibList(c.ReplicaRSSMiB), mibList(c.ReplicaPeakMiB))
				}
			}
		}
		p("\nBinaries (`make build`: CGO_ENABLED=0, -trimpath, -ldflags '-s -w'): ")
		for _, k := range sortedKeys(f.BinariesMiB) {
			p("%s %.1f MiB; ", k, f.BinariesMiB[k])
		}
		p("\n")
	}
	if fo := r.Failover; fo != nil {
		p("\n## 5. Failover (real processes, shipped Raft timers)\n\n%d coordinators, %d agents. Write: a survivor accepts `POST /v1/services/probe/inputs` (a new attempt every 20 ms on each survivor, without waiting for those in flight). Agents: the survivors' `plan_polls` (GET /v1/status) add up to the number of agents.\n\n", fo.Coordinators, fo.Agents)
		p("| leader lost by | next write p50 | min–max | every agent polling p50 | min–max | agents on the lost leader per run | n |\n| --- | --- | --- | --- | --- | --- | --- |\n")
		for _, x := range fo.Modes {
			p("| %s | %s | %s–%s | %s | %s–%s | %v | %d |\n", x.Mode, num(x.Write.P50, "ms"), num(x.Write.Min, "ms"), num(x.Write.Max, "ms"),
				num(x.Agents.P50, "ms"), num(x.Agents.Min, "ms"), num(x.Agents.Max, "ms"), x.OnLeader, x.Write.N)
			for _, e := range x.Errors {
				p("\n- error: %s", e)
			}
		}
	}
	if w := r.WritePath; w != nil {
		p("\n## 6. Write path\n\n%d concurrent API clients (one per simulated node, each its own connection pool, spread over the 3 coordinators), each posting one step report per request and waiting for the acknowledgement (= committed), for %.0f s after a %.0f s warm-up.\n\n", w.Clients, w.Seconds, w.WarmSeconds)
		p("| reports committed/s | requests | request latency | Raft entries | reports per entry | errors |\n| --- | --- | --- | --- | --- | --- |\n")
		p("| **%.0f** | %d | %s | %d | %.1f | %d |\n", w.ReportsPerSec, w.Reports, w.Latency.String(), w.RaftEntries, w.ReportsPerEntry, w.Errors)
		p("\nThe coordinators used %.1f CPU-seconds in the measured window: %.0f CPU-ms per 1,000 reports committed. ", w.CoordCPUSeconds, w.CoordCPUMsPer1k)
		if w.ConnectedAtATime > 0 {
			p("The clients were connected before the start, %d at a time; each one's first report: %s.\n", w.ConnectedAtATime, w.FirstRequest.String())
		} else {
			p("Each client's first request (it opens the connection; all %d clients start at once): %s.\n", w.Clients, w.FirstRequest.String())
		}
		if len(w.CoordCPU) > 0 {
			p("\nCPU in the measured window (seconds): coordinators %s (leader %s); this process (the clients and the simulated agents) %.1f; the whole machine %.1f of %.0f available.\n",
				fmtSeconds(w.CoordCPU), w.Leader, w.BenchCPUSeconds, w.MachineCPUSeconds, w.Seconds*float64(r.Machine.Cores))
		}
		if w.LeaderEnd != w.Leader {
			p("\n**The leader changed in the measured window** (%s at its start, %q at its end): the figure measures an election, not the write path.\n", w.Leader, w.LeaderEnd)
		}
		p("\nConnection set-up: %d failed requests before a client's first answer; %d clients never answered, %d answered only after the measured window began.\n", w.ConnectErrors, w.FailedClients, w.LateClients)
		if w.FirstError != "" {
			p("\nFirst error: %s\n", w.FirstError)
		}
	}
	if t := r.TLSCost; t != nil {
		t.markdown(p)
	}
	if t := r.ACLCost; t != nil {
		t.markdown(p)
	}
	p("\n## Settings\n\n")
	for _, k := range sortedKeys(r.Settings) {
		p("- %s: %s\n", k, r.Settings[k])
	}
	if len(r.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}
	if len(r.Errors) > 0 {
		p("\n## Errors\n\n")
		for _, e := range r.Errors {
			p("- %s\n", e)
		}
	}
	return b.String()
}

func ratio(a, b Summary) float64 {
	if b.P50 == 0 || a.N == 0 {
		return 0
	}
	return a.P50 / b.P50
}

func mibList(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprintf("%.0f", x))
	}
	return strings.Join(s, " / ") + " MiB"
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// fmtSeconds lists seconds with one decimal: "1.2 + 3.4 + 0.5".
func fmtSeconds(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(parts, " + ")
}
