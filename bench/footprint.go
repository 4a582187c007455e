package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// ProcFootprint is one process's memory and CPU.
type ProcFootprint struct {
	Name       string  `json:"name"`
	RSSMiB     float64 `json:"rss_mib"`
	PeakMiB    float64 `json:"peak_rss_mib"`
	AnonMiB    float64 `json:"rss_anon_mib"`
	FileMiB    float64 `json:"rss_file_mib"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPercent is CPU time over the idle period as a share of one core.
	CPUPercent float64 `json:"cpu_percent_of_one_core"`
	// Samples are VmRSS, RssAnon and RssFile every SampleEvery over the
	// idle period (agents only): whether the RSS holds, or creeps back
	// (a poll answer every 5 minutes, a reconcile every 10).
	Samples []RSSSample `json:"samples,omitempty"`
}

// RSSSample is one reading of a process's memory during the idle period.
type RSSSample struct {
	Seconds float64 `json:"seconds"` // since the idle period began
	RSSMiB  float64 `json:"rss_mib"`
	AnonMiB float64 `json:"rss_anon_mib"`
	FileMiB float64 `json:"rss_file_mib"`
}

// SampleEvery is how often the idle agents' RSS is read.
const SampleEvery = 30 * time.Second

// FootprintResult is figure 4.
type FootprintResult struct {
	IdleSeconds  float64            `json:"idle_seconds"`
	Agents       []ProcFootprint    `json:"agents"`
	Coordinators []ProcFootprint    `json:"coordinators"`
	BinariesMiB  map[string]float64 `json:"binaries_mib"`
	Coord        []CoordFootprint   `json:"coordinator_with_fleet"`
}

// IdleBench is the idle cluster of figure 4: three coordinators and three
// agents as real processes, one small service deployed, then left alone.
type IdleBench struct {
	c     *Cluster
	start time.Time
	at    map[*Proc]ProcStats

	stopSampling chan struct{}
	sampled      chan struct{}
	samples      map[*Proc][]RSSSample
}

// StartIdle starts the idle cluster and deploys a three-node service of
// one bash step each; the idle period starts once it has converged. The
// agents are secure (node certificates, encrypted gossip) unless insecure;
// the coordinators run with ACLs when aclOn.
func StartIdle(bin, dir, prefix string, insecure, aclOn bool) (*IdleBench, error) {
	c, err := StartClusterACL(bin, dir, prefix, 3, insecure, aclOn)
	if err != nil {
		return nil, err
	}
	ib := &IdleBench{c: c, at: map[*Proc]ProcStats{}}
	fail := func(err error) (*IdleBench, error) { c.Stop(); return nil, err }
	for i := 1; i <= 3; i++ {
		if _, err := c.AddAgent(fmt.Sprintf("idle-agent-%d", i), hostAddr(prefix, 10+i), map[string]string{"bench_idle": fmt.Sprint(i)}); err != nil {
			return fail(err)
		}
	}
	cl := c.Client()
	mod := filepath.Join(dir, "benchidle")
	if err := IdleModule(mod, 3); err != nil {
		return fail(err)
	}
	if _, err := PushModule(cl, mod); err != nil {
		return fail(err)
	}
	if err := waitUntil(60*time.Second, 100*time.Millisecond, "3 idle agents registered", func() bool {
		ctx, cancel := ctxT(5 * time.Second)
		defer cancel()
		n, err := cl.Nodes(ctx)
		return err == nil && len(n) >= 3
	}); err != nil {
		return fail(err)
	}
	if err := deployAndWait(cl, "idle", "benchidle/idle", 2*time.Minute); err != nil {
		return fail(err)
	}
	// Let start-up work (module download, reports) settle before the
	// idle period starts.
	time.Sleep(2 * time.Second)
	ib.start = time.Now()
	for _, p := range ib.procs() {
		st, _ := ReadProcStats(p.PID())
		ib.at[p] = st
	}
	ib.stopSampling, ib.sampled, ib.samples = make(chan struct{}), make(chan struct{}), map[*Proc][]RSSSample{}
	go ib.sample()
	return ib, nil
}

// sample reads the agents' RSS every SampleEvery until Finish.
func (ib *IdleBench) sample() {
	defer close(ib.sampled)
	t := time.NewTicker(SampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ib.stopSampling:
			return
		case <-t.C:
		}
		for _, p := range ib.c.Agents {
			st, err := ReadProcStats(p.PID())
			if err != nil {
				continue
			}
			ib.samples[p] = append(ib.samples[p], RSSSample{
				Seconds: time.Since(ib.start).Seconds(), RSSMiB: float64(st.RSSKiB) / 1024,
				AnonMiB: float64(st.AnonKiB) / 1024, FileMiB: float64(st.FileKiB) / 1024,
			})
		}
	}
}

func (ib *IdleBench) procs() []*Proc {
	var ps []*Proc
	for _, co := range ib.c.Coords {
		ps = append(ps, co.Proc)
	}
	return append(ps, ib.c.Agents...)
}

// Started is when the idle period began.
func (ib *IdleBench) Started() time.Time { return ib.start }

// Finish waits until the idle period has lasted d, reads every process's
// RSS and CPU time, and stops the cluster.
func (ib *IdleBench) Finish(d time.Duration) *FootprintResult {
	time.Sleep(time.Until(ib.start.Add(d)))
	close(ib.stopSampling)
	<-ib.sampled
	res := &FootprintResult{IdleSeconds: time.Since(ib.start).Seconds()}
	for _, p := range ib.procs() {
		st, err := ReadProcStats(p.PID())
		if err != nil {
			continue
		}
		cpu := st.CPU - ib.at[p].CPU
		pf := ProcFootprint{
			Name: p.Name, RSSMiB: float64(st.RSSKiB) / 1024, PeakMiB: float64(st.HWMKiB) / 1024,
			AnonMiB: float64(st.AnonKiB) / 1024, FileMiB: float64(st.FileKiB) / 1024,
			CPUSeconds: cpu.Seconds(), CPUPercent: 100 * cpu.Seconds() / res.IdleSeconds,
			Samples: ib.samples[p],
		}
		if isCoord(ib.c, p) {
			res.Coordinators = append(res.Coordinators, pf)
		} else {
			res.Agents = append(res.Agents, pf)
		}
	}
	ib.c.Stop()
	return res
}

// Stop stops the cluster without measuring.
func (ib *IdleBench) Stop() { ib.c.Stop() }

func isCoord(c *Cluster, p *Proc) bool {
	for _, co := range c.Coords {
		if co.Proc == p {
			return true
		}
	}
	return false
}

// BinarySizes stats the built binaries.
func BinarySizes(binDir string) map[string]float64 {
	out := map[string]float64{}
	for _, b := range []string{"dtk-agent", "dtkctl"} {
		if fi, err := os.Stat(filepath.Join(binDir, b)); err == nil {
			out[b] = float64(fi.Size()) / (1 << 20)
		}
	}
	return out
}

// deployAndWait stages (if needed) and deploys a service, then waits for
// it to converge.
func deployAndWait(cl *api.Client, name, template string, timeout time.Duration) error {
	ctx, cancel := ctxT(timeout)
	defer cancel()
	if _, err := cl.Stage(ctx, api.StageRequest{Name: name, Template: template}); err != nil {
		return fmt.Errorf("stage %s: %w", name, err)
	}
	d, err := cl.Deploy(ctx, name)
	if err != nil {
		return fmt.Errorf("deploy %s: %w", name, err)
	}
	return waitUntil(timeout, 50*time.Millisecond, name+" to converge", func() bool {
		st, _, err := cl.ServiceStatus(ctx, name, 0, 0)
		return err == nil && st.Generation == d.Generation && st.State == plan.StateConverged
	})
}
