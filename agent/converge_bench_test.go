package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dtkhq/dtk/actions"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// benchSteps are n create steps whose action is a one-line bash script
// that writes a file: a first run of them spawns n bash processes.
func benchSteps(digest string, n int) []*plan.Step {
	steps := make([]*plan.Step, n)
	for i := range steps {
		inst := fmt.Sprintf("f%03d", i)
		st := &plan.Step{
			ID: plan.StepID("files", "n", inst, "create"), Service: "files", Node: "n", Instance: inst,
			Component: "file", Action: "create", Generation: 1, ModuleDigest: digest,
			Run:        plan.Action{Kind: "bash", Inline: `printf '%s\n' "$content" > "$DTK_SCRATCH/file"`},
			Attributes: map[string]json.RawMessage{"content": json.RawMessage(fmt.Sprintf(`"line %d"`, i))},
		}
		st.Digest = plan.StepDigest(st, nil)
		steps[i] = st
	}
	return steps
}

// cpuTimes is the CPU time of this process and of its waited-for children
// (the steps' bash processes).
func cpuTimes() (self, children time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return self, time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// spawnBare runs the steps' script as the bash runner would, n times, in
// plain exec calls: what the processes alone cost at this moment.
func spawnBare(b *testing.B, steps []*plan.Step) time.Duration {
	dir := b.TempDir()
	start := time.Now()
	for _, st := range steps {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", st.Run.Inline, "dtk-inline")
		cmd.Env = append(os.Environ(), "content="+actions.EnvValue(st.Attributes["content"]), "DTK_SCRATCH="+dir)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
	return time.Since(start)
}

func medianMs(d []time.Duration) float64 {
	d = slices.Clone(d)
	slices.Sort(d)
	return float64(d[len(d)/2].Microseconds()) / 1000
}

// A first (changing) converge of 100 one-line bash steps by a real agent
// (real bash runner, data dir on the disk under $TMPDIR, report sender
// running against a fake coordinator): from adopting the slice to the
// pass's end. Each iteration is a fresh agent on a fresh data dir, so
// every step runs. Besides ns/op (the mean) it reports the median wall
// time, the CPU time per pass of the agent's process (sender and fake
// coordinator included) and of the step processes, and, since process
// creation costs what the machine makes it cost, the median time of the
// same 100 scripts run by plain exec calls just before each pass
// (bare-spawns-ms) and the median of the difference (overhead-ms): what
// the agent adds. `make bench-converge`.
func BenchmarkConverge_100BashSteps_FirstRun(b *testing.B) {
	const n = 100
	f, srv := newFake(b, testModuleDir(b))
	steps := benchSteps(f.digest, n)
	var walls, bare, overhead []time.Duration
	var cpuSelf, cpuChildren time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		spawns := spawnBare(b, steps)
		f.mu.Lock()
		f.reports = nil
		f.mu.Unlock()
		a, err := New(Config{Name: "n1", DataDir: b.TempDir(), Client: api.NewClient(srv.URL), PollWait: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		a.Start(ctx)
		if _, err := a.moduleDir(ctx, f.digest); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "the first (empty) converge", func() bool { return a.Converges() >= 1 })
		sl := &plan.Slice{Node: "n1", Index: 2, Steps: steps}
		self0, children0 := cpuTimes()
		start := time.Now()
		b.StartTimer()
		a.adopt(ctx, sl)
		b.StopTimer()
		walls = append(walls, time.Since(start))
		bare = append(bare, spawns)
		overhead = append(overhead, walls[len(walls)-1]-spawns)
		self1, children1 := cpuTimes()
		cpuSelf += self1 - self0
		cpuChildren += children1 - children0
		waitFor(b, "every final report delivered", func() bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			ok := 0
			for _, r := range f.reports {
				if r.State == plan.StepOK && r.Changed {
					ok++
				}
			}
			return ok == n
		})
		cancel()
		a.Shutdown()
	}
	b.ReportMetric(medianMs(walls), "median-ms")
	b.ReportMetric(medianMs(bare), "bare-spawns-ms")
	b.ReportMetric(medianMs(overhead), "overhead-ms")
	b.ReportMetric(float64(cpuSelf.Microseconds())/1000/float64(b.N), "agent-cpu-ms/op")
	b.ReportMetric(float64(cpuChildren.Microseconds())/1000/float64(b.N), "steps-cpu-ms/op")
}

// One changing step's write: its final report and its record, one entry
// in the journal (the flush a changing step costs; a checkpoint every
// journal's worth of steps included).
func BenchmarkStore_WriteStep(b *testing.B) {
	s, err := openStore(b.TempDir(), "n1", 0, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	st := benchSteps("sha256:"+strings.Repeat("0", 64), 1)[0]
	rec := &stepRecord{Digest: st.Digest, Service: st.Service, Node: st.Node, Instance: st.Instance,
		Action: st.Action, ModuleDigest: st.ModuleDigest, Attributes: st.Attributes}
	rep := plan.Report{Service: st.Service, StepID: st.ID, Action: st.Action, Generation: 1, Digest: st.Digest,
		State: plan.StepOK, Changed: true, Output: "done\n"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := &recordChange{seq: uint64(i + 1), unfail: []string{st.ID}}
		if err := c.putRecord(st.ID, rec); err != nil {
			b.Fatal(err)
		}
		if err := s.write([]plan.Report{rep}, c); err != nil {
			b.Fatal(err)
		}
	}
}
