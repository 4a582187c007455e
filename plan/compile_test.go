package plan_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/dsl"
	"github.com/dtkhq/dtk/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// compileCase is a case.json: the services to compile (root first; the
// last one is the one under test), the registered nodes, and what agents
// reported.
type compileCase struct {
	Services []struct {
		Name string `json:"name"`
		// Module names the module (default: the one in module/);
		// Version picks one of several loaded versions.
		Module   string            `json:"module"`
		Version  string            `json:"version"`
		Template string            `json:"template"`
		Parent   string            `json:"parent"`
		Inputs   map[string]string `json:"inputs"`
		Lock     map[string]string `json:"lock"`
		Removed  []string          `json:"removed"`
	} `json:"services"`
	// ModuleFrom names another case whose module/ and modules/ this case
	// uses (cases that differ only in outputs or done share one module).
	ModuleFrom string       `json:"module_from"`
	Nodes      []*plan.Node `json:"nodes"`
	// Outputs reported, by create step ID.
	Outputs map[string]map[string]json.RawMessage `json:"outputs"`
	// Done: the digest each create step last converged at; "*" is the
	// step's digest in the plan being compiled.
	Done map[string]string `json:"done"`
	// Previous places the last service's template nodes as the previous
	// plan did: template node → agents.
	Previous map[string][]string `json:"previous"`
}

// loadModules loads dir/module and every dir/modules/*, with a fake
// archive digest each.
func loadModules(t testing.TB, dir string) (main *plan.Module, all map[string]*plan.Module) {
	t.Helper()
	all = map[string]*plan.Module{}
	load := func(d string) *plan.Module {
		m, err := dsl.Load(d)
		if err != nil {
			t.Fatalf("load %s: %v", d, err)
		}
		m.Digest = "sha256:fake-" + m.Name + "-" + m.Version
		all[m.Ref()] = m
		return m
	}
	if _, err := os.Stat(filepath.Join(dir, "module")); err == nil {
		main = load(filepath.Join(dir, "module"))
	}
	others, _ := filepath.Glob(filepath.Join(dir, "modules", "*"))
	for _, d := range others {
		load(d)
	}
	return main, all
}

// findModule picks a loaded module by name (and version, if given).
func findModule(t testing.TB, all map[string]*plan.Module, name, version string) *plan.Module {
	t.Helper()
	var found *plan.Module
	for _, m := range all {
		if m.Name == name && (version == "" || m.Version == version) {
			if found != nil {
				t.Fatalf("several versions of module %s are loaded: name one", name)
			}
			found = m
		}
	}
	if found == nil {
		t.Fatalf("no module %s %s", name, version)
	}
	return found
}

// compileAll compiles the case's services in order, each with its
// ancestors' plans set as the coordinator does, and returns the last
// service's plan or violations.
func compileAll(t testing.TB, dir string, c *compileCase) (*plan.Plan, plan.Violations) {
	t.Helper()
	modDir := dir
	if c.ModuleFrom != "" {
		modDir = filepath.Join(filepath.Dir(dir), c.ModuleFrom)
	}
	main, all := loadModules(t, modDir)
	services := map[string]*plan.Service{}
	var p *plan.Plan
	var viol plan.Violations
	for i, cs := range c.Services {
		var mod *plan.Module
		switch {
		case cs.Module != "":
			mod = findModule(t, all, cs.Module, cs.Version)
		case main != nil:
			mod = main
		default:
			t.Fatalf("service %s names no module and there is no module/", cs.Name)
		}
		svc := &plan.Service{
			Name: cs.Name, Module: mod.Name, Version: mod.Version, Template: cs.Template,
			Parent: cs.Parent, Inputs: cs.Inputs, Lock: cs.Lock, Removed: cs.Removed,
			State: plan.StateStaged,
		}
		in := plan.CompileInput{
			Service: svc, Module: mod, Modules: all, Nodes: c.Nodes, Generation: 1,
			Outputs: c.Outputs, Done: map[string]string{},
		}
		seen := map[string]bool{svc.Name: true}
		for name := svc.Parent; name != "" && !seen[name]; {
			seen[name] = true
			a := services[name]
			if a == nil {
				t.Fatalf("service %s: parent %s is not listed before it", svc.Name, name)
			}
			in.Ancestors = append(in.Ancestors, plan.Ancestor{Service: a, Module: all[a.Module+"@"+a.Version]})
			name = a.Parent
		}
		last := i == len(c.Services)-1
		if last && c.Previous != nil {
			prev := &plan.Plan{Service: svc.Name, Generation: 1}
			for _, name := range sortedKeys(c.Previous) {
				for _, agent := range c.Previous[name] {
					prev.Nodes = append(prev.Nodes, &plan.NodePlan{Name: name, Agent: agent})
				}
			}
			in.Previous = prev
		}
		// Compile until the digests that "*" marks as converged stop
		// changing, as the coordinator recompiles when reports arrive.
		for round := 0; ; round++ {
			p, viol = plan.Compile(in)
			if p == nil || round == 5 {
				break
			}
			changed := false
			for _, np := range p.Nodes {
				for _, st := range np.Steps {
					if d, ok := c.Done[st.ID]; ok {
						if d == "*" {
							d = st.Digest
						}
						if in.Done[st.ID] != d {
							in.Done[st.ID] = d
							changed = true
						}
					}
				}
			}
			if !changed {
				break
			}
		}
		if !last {
			if viol != nil {
				t.Fatalf("ancestor %s does not compile:\n%v", svc.Name, viol)
			}
			svc.Plan = p
			svc.Generation = 1
		}
		services[svc.Name] = svc
	}
	return p, viol
}

func readCase(t testing.TB, dir string) *compileCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "case.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c compileCase
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("case.json: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("case.json lists no services")
	}
	return &c
}

// goldenFile compares got with the file at path, or rewrites it with
// -update.
func goldenFile(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./plan -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (run go test ./plan -update to accept)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

// TestCompile runs the cases under testdata/compile: each compiles to the
// plan in expected.json, or to the violations in violations.txt.
func TestCompile(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "compile", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases under testdata/compile (%v)", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			c := readCase(t, dir)
			p, viol := compileAll(t, dir, c)
			planFile, violFile := filepath.Join(dir, "expected.json"), filepath.Join(dir, "violations.txt")
			_, errPlan := os.Stat(planFile)
			_, errViol := os.Stat(violFile)
			if errPlan == nil && errViol == nil {
				t.Fatal("a case has expected.json or violations.txt, not both")
			}
			wantViol := errViol == nil || (*update && viol != nil)
			switch {
			case wantViol && viol == nil:
				t.Fatalf("compiled without violations, want those of violations.txt; plan:\n%s", indent(t, p))
			case !wantViol && viol != nil:
				t.Fatalf("violations:\n%v", viol)
			case wantViol:
				if p != nil {
					t.Errorf("Compile returned a plan with violations")
				}
				for _, v := range viol {
					if v.Message == "" {
						t.Errorf("violation without message: %+v", v)
					}
				}
				goldenFile(t, violFile, []byte(viol.Error()+"\n"))
			default:
				checkPlan(t, p)
				goldenFile(t, planFile, indent(t, p))
			}
		})
	}
}

func indent(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// checkPlan checks what holds for every plan: step IDs are unique and
// name their service, node, instance and action; dependencies name steps
// of the plan; digests are set and recomputable.
func checkPlan(t *testing.T, p *plan.Plan) {
	t.Helper()
	ids := map[string]bool{}
	for _, np := range p.Nodes {
		for _, st := range np.Steps {
			if ids[st.ID] {
				t.Errorf("step %s twice", st.ID)
			}
			ids[st.ID] = true
			if want := plan.StepID(p.Service, np.Name, st.Instance, st.Action); st.ID != want {
				t.Errorf("step ID %s, want %s", st.ID, want)
			}
			if st.Digest == "" || st.ModuleDigest == "" {
				t.Errorf("step %s lacks a digest", st.ID)
			}
		}
	}
	for _, np := range p.Nodes {
		for _, st := range np.Steps {
			for _, d := range st.DependsOn {
				if !ids[d] {
					t.Errorf("step %s depends on %s, not in the plan", st.ID, d)
				}
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
