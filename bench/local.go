package bench

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dtkhq/dtk/actions"
	"github.com/dtkhq/dtk/agent"
	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/tlsutil"
	"github.com/dtkhq/dtk/plan"
)

// LocalResult is figure 3: NFiles files converged on one node.
type LocalResult struct {
	Files   int `json:"files"`
	Runs    int `json:"runs"`
	Warmups int `json:"warmups"`
	// Dtk: a converge pass of the real agent (real bash runner), from
	// holding the slice to the pass finishing.
	DtkFirst     Summary `json:"dtk_first"`
	DtkUnchanged Summary `json:"dtk_unchanged_redeploy"`
	// DtkReconcile: the periodic re-converge of the cached slice (same
	// generation: no reports to queue), from Start to the pass finishing.
	DtkReconcile Summary `json:"dtk_unchanged_reconcile"`
	// Processes the unchanged passes spawned (should be 0).
	DtkUnchangedSpawns int64 `json:"dtk_unchanged_spawns"`
	DtkFirstSpawns     int64 `json:"dtk_first_spawns"`
	// Puppet and Ansible: wall time of the whole command, and for Puppet
	// also the "Applied catalog in X seconds" it prints.
	PuppetFirst            Summary `json:"puppet_first"`
	PuppetUnchanged        Summary `json:"puppet_unchanged"`
	PuppetCatalogFirst     Summary `json:"puppet_catalog_first"`
	PuppetCatalogUnchanged Summary `json:"puppet_catalog_unchanged"`
	AnsibleFirst           Summary `json:"ansible_first"`
	AnsibleUnchanged       Summary `json:"ansible_unchanged"`
	// Checks holds what was verified about each tool's runs (exit codes,
	// changed counts, file contents).
	Checks []string `json:"checks"`
	Errors []string `json:"errors,omitempty"`
}

// LocalConfig configures figure 3.
type LocalConfig struct {
	Cluster       *Cluster
	WorkDir       string // on a real disk: the agent's state lives here
	Runs, Warmups int
	AnsibleRuns   int
	// AnsibleWarmups replaces Warmups for Ansible (a run takes ~45 s).
	AnsibleWarmups int
	Log            *log.Logger
}

// RunLocal runs figure 3. The three tools alternate within each round so
// that background load hits them alike.
func RunLocal(cfg LocalConfig) (*LocalResult, error) {
	res := &LocalResult{Files: NFiles, Runs: cfg.Runs, Warmups: cfg.Warmups}
	dirs := map[string]string{}
	for _, t := range []string{"dtk", "puppet", "ansible"} {
		dirs[t] = filepath.Join(cfg.WorkDir, "files-"+t)
		os.RemoveAll(dirs[t])
		if err := os.MkdirAll(dirs[t], 0o755); err != nil {
			return res, err
		}
	}
	la, err := newLocalAgent(cfg)
	if err != nil {
		return res, err
	}
	defer func() { la.stop() }()
	puppet := &puppetTool{dir: dirs["puppet"], work: cfg.WorkDir}
	ansible := &ansibleTool{dir: dirs["ansible"], work: cfg.WorkDir}
	_, hasPuppet := exec.LookPath("puppet")
	_, hasAnsible := exec.LookPath("ansible-playbook")

	var dFirst, dUnch, dRec, pFirst, pUnch, pcFirst, pcUnch, aFirst, aUnch []float64
	record := func(dst *[]float64, warm bool, d time.Duration) {
		if !warm {
			*dst = append(*dst, Ms(d)...)
		}
	}
	checkFiles := func(tool, rev string) {
		for _, i := range []int{1, NFiles / 2, NFiles} {
			b, err := os.ReadFile(filepath.Join(dirs[tool], fmt.Sprintf("f%03d.txt", i)))
			if err != nil || string(b) != FileContent(i, rev) {
				res.Errors = append(res.Errors, fmt.Sprintf("%s rev %s: file %d has unexpected content (%v)", tool, rev, i, err))
			}
		}
	}
	// First (changing) runs: every round moves all NFiles files to a new
	// revision of their content, for every tool.
	// Ansible joins the rounds in its own number: its warm-ups in the last
	// warm-up rounds, its measured runs in the first measured rounds.
	ansibleIn := func(r int) bool {
		if r < cfg.Warmups {
			return r >= cfg.Warmups-cfg.AnsibleWarmups
		}
		return r-cfg.Warmups < cfg.AnsibleRuns
	}
	var ansibleRev string
	for r := 0; r < cfg.Warmups+cfg.Runs; r++ {
		rev := fmt.Sprintf("r%d", r)
		warm := r < cfg.Warmups
		d, spawns, err := la.deploy(map[string]string{"rev": rev, "dir": dirs["dtk"]})
		if err != nil {
			return res, fmt.Errorf("dtk first run: %w", err)
		}
		checkFiles("dtk", rev)
		record(&dFirst, warm, d)
		if !warm {
			res.DtkFirstSpawns = max(res.DtkFirstSpawns, spawns)
		}
		if hasPuppet == nil {
			wall, cat, code, err := puppet.apply(rev)
			if err != nil || code != 2 {
				res.Errors = append(res.Errors, fmt.Sprintf("puppet first run %s: exit %d (want 2: changes) %v", rev, code, err))
			}
			checkFiles("puppet", rev)
			record(&pFirst, warm, wall)
			record(&pcFirst, warm, cat)
		}
		if hasAnsible == nil && ansibleIn(r) {
			wall, changed, err := ansible.play(rev)
			if err != nil || changed != NFiles {
				res.Errors = append(res.Errors, fmt.Sprintf("ansible first run %s: changed=%d (want %d) %v", rev, changed, NFiles, err))
			}
			checkFiles("ansible", rev)
			record(&aFirst, warm, wall)
			ansibleRev = rev
		}
		cfg.Log.Printf("local: first-run round %d done", r)
	}
	// Unchanged runs: the same content again.
	last := fmt.Sprintf("r%d", cfg.Warmups+cfg.Runs-1)
	for r := 0; r < cfg.Warmups+cfg.Runs; r++ {
		warm := r < cfg.Warmups
		d, spawns, err := la.deploy(nil)
		if err != nil {
			return res, fmt.Errorf("dtk unchanged run: %w", err)
		}
		record(&dUnch, warm, d)
		res.DtkUnchangedSpawns += spawns
		if hasPuppet == nil {
			wall, cat, code, err := puppet.apply(last)
			if err != nil || code != 0 {
				res.Errors = append(res.Errors, fmt.Sprintf("puppet unchanged run: exit %d (want 0: no changes) %v", code, err))
			}
			record(&pUnch, warm, wall)
			record(&pcUnch, warm, cat)
		}
		if hasAnsible == nil && ansibleIn(r) {
			wall, changed, err := ansible.play(ansibleRev)
			if err != nil || changed != 0 {
				res.Errors = append(res.Errors, fmt.Sprintf("ansible unchanged run: changed=%d (want 0) %v", changed, err))
			}
			record(&aUnch, warm, wall)
		}
		cfg.Log.Printf("local: unchanged round %d done", r)
	}
	// Reconcile passes: restart the agent on its data dir; its first act
	// is to converge the cached slice (same generation, so nothing to
	// report).
	for r := 0; r < cfg.Warmups+cfg.Runs; r++ {
		d, spawns, err := la.restartConverge()
		if err != nil {
			return res, fmt.Errorf("dtk reconcile: %w", err)
		}
		record(&dRec, r < cfg.Warmups, d)
		res.DtkUnchangedSpawns += spawns
	}
	res.DtkFirst, res.DtkUnchanged, res.DtkReconcile = Summarize("ms", dFirst), Summarize("ms", dUnch), Summarize("ms", dRec)
	res.PuppetFirst, res.PuppetUnchanged = Summarize("ms", pFirst), Summarize("ms", pUnch)
	res.PuppetCatalogFirst, res.PuppetCatalogUnchanged = Summarize("ms", pcFirst), Summarize("ms", pcUnch)
	res.AnsibleFirst, res.AnsibleUnchanged = Summarize("ms", aFirst), Summarize("ms", aUnch)
	res.Checks = append(res.Checks,
		fmt.Sprintf("dtk: every first run wrote all %d files (contents checked), spawning %d processes per pass; unchanged passes spawned %d processes in total", NFiles, res.DtkFirstSpawns, res.DtkUnchangedSpawns),
		"puppet apply --detailed-exitcodes: exit 2 (changes) on every first run, 0 on every unchanged run, unless listed under errors",
		fmt.Sprintf("ansible-playbook: changed=%d on every first run, changed=0 on every unchanged run, unless listed under errors", NFiles))
	return res, nil
}

// localAgent is a real agent (real bash runner, state on disk) on the
// benchmark cluster, with hooks to time its converge passes.
type localAgent struct {
	cfg     LocalConfig
	cl      *api.Client
	ac      *api.Client
	a       *agent.Agent
	dir     string
	spawns  atomic.Int64
	planAt  atomic.Int64
	planIdx atomic.Uint64
	svc     string
	staged  bool
}

func newLocalAgent(cfg LocalConfig) (*localAgent, error) {
	la := &localAgent{cfg: cfg, cl: cfg.Cluster.Client(), dir: filepath.Join(cfg.WorkDir, "local-agent"), svc: "files"}
	os.RemoveAll(la.dir)
	modDir := filepath.Join(cfg.WorkDir, "benchlocal")
	if err := LocalModule(modDir); err != nil {
		return nil, err
	}
	if _, err := PushModule(la.cl, modDir); err != nil {
		return nil, err
	}
	return la, la.start()
}

func (la *localAgent) start() error {
	pki := la.cfg.Cluster.PKI
	st, err := pki.Store(tlsutil.RoleNode, "local-1")
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	base := pki.HTTP(st).Transport
	la.ac = &api.Client{Addrs: la.cfg.Cluster.Addrs, HTTP: &http.Client{Transport: &planTimer{base: base, la: la}}, Secure: pki.Secure()}
	a, err := agent.New(agent.Config{
		Name: "local-1", DataDir: la.dir, Labels: map[string]string{"bench_local": "1"},
		Address: "127.0.0.1", Version: "bench", Client: la.ac,
		Logger: slog.New(slog.DiscardHandler),
		Runner: func(kind string) (actions.Runner, error) {
			r, err := actions.Lookup(kind)
			if err != nil {
				return nil, err
			}
			return countingRunner{r, &la.spawns}, nil
		},
	})
	if err != nil {
		return err
	}
	la.a = a
	la.planAt.Store(0)
	a.Start(context.Background())
	return waitUntil(30*time.Second, 10*time.Millisecond, "the local agent to register", func() bool { return la.planAt.Load() != 0 })
}

func (la *localAgent) stop() {
	if la.a != nil {
		la.a.Shutdown()
	}
}

// deploy sets inputs (when given) and deploys, then measures the pass
// from the agent holding the new slice to the converge finishing, and
// waits for the service to converge (all reports committed) so that the
// next round starts quiet.
func (la *localAgent) deploy(inputs map[string]string) (time.Duration, int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if !la.staged {
		if _, err := la.cl.Stage(ctx, api.StageRequest{Name: la.svc, Template: "benchlocal/files", Inputs: inputs}); err != nil {
			return 0, 0, err
		}
		la.staged = true
	} else if inputs != nil {
		if _, err := la.cl.SetInputs(ctx, la.svc, inputs); err != nil {
			return 0, 0, err
		}
	}
	before := la.a.Converges()
	spawns0 := la.spawns.Load()
	idx0 := la.planIdx.Load()
	d, err := la.cl.Deploy(ctx, la.svc)
	if err != nil {
		return 0, 0, err
	}
	// Wait for the answer carrying the new slice, then the pass.
	if err := waitUntil(time.Minute, 100*time.Microsecond, "the new slice", func() bool { return la.planIdx.Load() > idx0 && la.planIdx.Load() >= d.ModifyIndex }); err != nil {
		return 0, 0, err
	}
	got := time.Unix(0, la.planAt.Load())
	if err := waitUntil(time.Minute, 100*time.Microsecond, "the converge pass", func() bool { return la.a.Converges() > before }); err != nil {
		return 0, 0, err
	}
	pass := time.Since(got)
	err = waitUntil(time.Minute, 10*time.Millisecond, "the service to converge", func() bool {
		st, _, err := la.cl.ServiceStatus(ctx, la.svc, 0, 0)
		return err == nil && st.Generation == d.Generation && st.State == plan.StateConverged
	})
	return pass, la.spawns.Load() - spawns0, err
}

// restartConverge stops the agent and starts it again on its data dir;
// it converges its cached slice first thing. The pass is timed from Start
// to the converge counter moving.
func (la *localAgent) restartConverge() (time.Duration, int64, error) {
	la.a.Shutdown()
	a, err := agent.New(agent.Config{
		Name: "local-1", DataDir: la.dir, Labels: map[string]string{"bench_local": "1"},
		Address: "127.0.0.1", Version: "bench", Client: la.ac, Logger: slog.New(slog.DiscardHandler),
		Runner: func(kind string) (actions.Runner, error) {
			r, err := actions.Lookup(kind)
			if err != nil {
				return nil, err
			}
			return countingRunner{r, &la.spawns}, nil
		},
	})
	if err != nil {
		return 0, 0, err
	}
	la.a = a
	spawns0 := la.spawns.Load()
	t := time.Now()
	a.Start(context.Background())
	err = waitUntil(time.Minute, 50*time.Microsecond, "the reconcile pass", func() bool { return a.Converges() > 0 })
	d := time.Since(t)
	return d, la.spawns.Load() - spawns0, err
}

// planTimer records when the local agent has read a plan answer.
type planTimer struct {
	base http.RoundTripper
	la   *localAgent
}

func (p *planTimer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK || !strings.HasSuffix(req.URL.Path, "/plan") {
		return resp, err
	}
	idx, _ := strconv.ParseUint(resp.Header.Get(api.IndexHeader), 10, 64)
	resp.Body = &hookBody{ReadCloser: resp.Body, done: func() {
		p.la.planAt.Store(time.Now().UnixNano())
		p.la.planIdx.Store(idx)
	}}
	return resp, nil
}

// countingRunner counts runs (each bash run is one process).
type countingRunner struct {
	actions.Runner
	n *atomic.Int64
}

func (c countingRunner) Run(ctx context.Context, req actions.Request) actions.Result {
	c.n.Add(1)
	return c.Runner.Run(ctx, req)
}

// puppetTool runs `puppet apply` on a manifest of NFiles file resources.
type puppetTool struct{ dir, work string }

var appliedRE = regexp.MustCompile(`Applied catalog in ([0-9.]+) seconds`)

func (p *puppetTool) apply(rev string) (wall, catalog time.Duration, code int, err error) {
	var b strings.Builder
	for i := 1; i <= NFiles; i++ {
		fmt.Fprintf(&b, "file { '%s/f%03d.txt':\n  ensure  => file,\n  content => %q,\n}\n", p.dir, i, FileContent(i, rev))
	}
	mf := filepath.Join(p.work, "puppet-"+rev+".pp")
	if err := os.WriteFile(mf, []byte(b.String()), 0o644); err != nil {
		return 0, 0, -1, err
	}
	out, wall, code, err := timed("puppet", "apply", "--detailed-exitcodes", "--color=false", mf)
	if m := appliedRE.FindStringSubmatch(out); m != nil {
		s, _ := strconv.ParseFloat(m[1], 64)
		catalog = time.Duration(s * float64(time.Second))
	}
	return wall, catalog, code, err
}

// ansibleTool runs `ansible-playbook -c local` on a play of NFiles copy
// tasks (content inline), facts not gathered.
type ansibleTool struct{ dir, work string }

var changedRE = regexp.MustCompile(`changed=([0-9]+)`)

func (a *ansibleTool) play(rev string) (time.Duration, int, error) {
	var b strings.Builder
	b.WriteString("- hosts: localhost\n  gather_facts: false\n  tasks:\n")
	for i := 1; i <= NFiles; i++ {
		fmt.Fprintf(&b, "    - name: f%03d\n      ansible.builtin.copy:\n        dest: %s/f%03d.txt\n        content: %q\n", i, a.dir, i, FileContent(i, rev))
	}
	pb := filepath.Join(a.work, "ansible-"+rev+".yml")
	if err := os.WriteFile(pb, []byte(b.String()), 0o644); err != nil {
		return 0, -1, err
	}
	out, wall, code, err := timed("ansible-playbook", "-c", "local", "-i", "localhost,", "-e", "ansible_python_interpreter=/usr/bin/python3", pb)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit %d", code)
	}
	changed := -1
	if m := changedRE.FindStringSubmatch(out); m != nil {
		changed, _ = strconv.Atoi(m[1])
	}
	return wall, changed, err
}

// timed runs a command and returns its output, wall time and exit code.
func timed(name string, args ...string) (string, time.Duration, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t := time.Now()
	err := cmd.Run()
	d := time.Since(t)
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code, err = ee.ExitCode(), nil
	}
	return out.String(), d, code, err
}
