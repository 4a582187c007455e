package dsl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// docModules writes the files of docs/dsl.md (fenced blocks whose first
// line is "# file: MODULE/PATH") into a folder per module and loads each.
func docModules(t *testing.T) map[string]*plan.Module {
	t.Helper()
	doc, err := os.ReadFile("../docs/dsl.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	blocks := strings.Split(string(doc), "```")
	dirs := map[string]bool{}
	for i := 1; i < len(blocks); i += 2 {
		_, body, _ := strings.Cut(blocks[i], "\n") // the info string
		first, rest, _ := strings.Cut(body, "\n")
		name, ok := strings.CutPrefix(first, "# file: ")
		if !ok {
			continue
		}
		mod, _, _ := strings.Cut(name, "/")
		dirs[mod] = true
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mods := map[string]*plan.Module{}
	for _, name := range keys(dirs) {
		m, err := Load(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("the %s module of docs/dsl.md does not load:\n%v", name, err)
		}
		m.Digest = "sha256:doc-" + m.Name
		mods[name] = m
	}
	return mods
}

// TestDSLDoc loads the modules of docs/dsl.md and compiles the stack they
// form: platform-dev (an environment), shop-dev staged with respect to it,
// and shop-load staged with respect to shop-dev.
func TestDSLDoc(t *testing.T) {
	mods := docModules(t)
	for _, want := range []string{"hello", "base", "platform", "shop"} {
		if mods[want] == nil {
			t.Fatalf("docs/dsl.md has no %s module (has %v)", want, keys(mods))
		}
	}
	all := map[string]*plan.Module{}
	for _, m := range mods {
		all[m.Ref()] = m
	}
	node := func(name, role, addr string) *plan.Node {
		return &plan.Node{Name: name, Labels: map[string]string{"env": "dev", "role": role},
			Facts: plan.Facts{Hostname: name + ".example", Address: addr, OS: "linux", Arch: "amd64", CPUs: 2}}
	}
	nodes := []*plan.Node{
		node("n1", "db", "10.0.0.1"), node("n2", "web", "10.0.0.2"), node("n3", "web", "10.0.0.3"),
		{Name: "p1", Labels: map[string]string{"env": "prod", "role": "web"}},
	}
	outputs := map[string]map[string]json.RawMessage{}
	done := map[string]string{}
	compile := func(svc *plan.Service, ancestors ...*plan.Service) *plan.Plan {
		t.Helper()
		in := plan.CompileInput{Service: svc, Module: all[svc.Module+"@"+svc.Version], Modules: all,
			Nodes: nodes, Generation: 1, Outputs: outputs, Done: done}
		for _, a := range ancestors {
			in.Ancestors = append(in.Ancestors, plan.Ancestor{Service: a, Module: all[a.Module+"@"+a.Version]})
		}
		p, viol := plan.Compile(in)
		if viol != nil {
			t.Fatalf("%s: %v", svc.Name, viol)
		}
		return p
	}
	steps := func(p *plan.Plan, node string) []*plan.Step {
		for _, np := range p.Nodes {
			if np.Name == node {
				return np.Steps
			}
		}
		t.Fatalf("plan %s has no node %s", p.Service, node)
		return nil
	}
	instances := func(sts []*plan.Step) []string {
		var out []string
		for _, st := range sts {
			out = append(out, st.Instance)
		}
		return out
	}
	input := func(p *plan.Plan, name string) *plan.Value {
		for _, v := range p.Inputs {
			if v.Name == name {
				return v
			}
		}
		t.Fatalf("plan %s has no input %s", p.Service, name)
		return nil
	}

	hello := &plan.Service{Name: "demo", Module: "hello", Version: "1.0.0", Template: "site", Inputs: map[string]string{"greeting": "Hi"}}
	if got := steps(compile(hello), "web")[0].Attributes["text"]; string(got) != `"Hi from n2.example"` {
		t.Errorf("hello: text = %s", got)
	}

	platform := &plan.Service{Name: "platform-dev", Module: "platform", Version: "1.0.0", Template: "env",
		Inputs: map[string]string{"region": "eu-west-1"}, Lock: map[string]string{"base": "1.2.0"}}
	platform.Plan = compile(platform)
	if len(platform.Plan.Nodes) != 3 {
		t.Errorf("platform-dev has %d nodes, want the 3 dev agents", len(platform.Plan.Nodes))
	}

	shop := &plan.Service{Name: "shop-dev", Module: "shop", Version: "2.3.0", Template: "shop", Parent: "platform-dev",
		Inputs: map[string]string{"domain": "dev.shop.example"}, Lock: map[string]string{"base": "1.2.0"}}
	p := compile(shop, platform)
	if v := input(p, "region"); v.Source != "export of platform-dev" || string(v.Value) != `"eu-west-1"` {
		t.Errorf("region = %+v", v)
	}
	if v := input(p, "db_password"); v.Source != "export of platform-dev" || !v.Sensitive {
		t.Errorf("db_password = %+v", v)
	}
	web := steps(p, "web[n2]")
	if got, want := instances(web), []string{"platform-dev.monitor", "platform-dev.motd", "nginx", "app"}; !slices.Equal(got, want) {
		t.Errorf("web[n2] runs %v, want %v", got, want)
	}
	app := web[3]
	if len(app.Waiting) == 0 || !slices.Contains(app.Sensitive, "database_url") {
		t.Errorf("app: waiting %v, sensitive %v", app.Waiting, app.Sensitive)
	}

	// The database reports its address and the schema converges: the
	// application no longer waits.
	outputs["shop-dev/db/pg/create"] = map[string]json.RawMessage{"address": json.RawMessage(`"n1.example:5432"`)}
	p = compile(shop, platform)
	for _, st := range steps(p, "db") {
		done[st.ID] = st.Digest
	}
	p = compile(shop, platform)
	app = steps(p, "web[n2]")[3]
	if len(app.Waiting) != 0 || !strings.Contains(string(app.Attributes["database_url"]), "@n1.example:5432/shop") {
		t.Errorf("app: waiting %v, database_url %s", app.Waiting, app.Attributes["database_url"])
	}
	if !strings.Contains(string(app.Attributes["config"]), "server 10.0.0.3:8080;") {
		t.Errorf("app: config %s", app.Attributes["config"])
	}
	shop.Plan = p

	load := &plan.Service{Name: "shop-load", Module: "shop", Version: "2.3.0", Template: "loadtest", Parent: "shop-dev",
		Lock: map[string]string{"base": "1.2.0"}}
	p = compile(load, shop, platform)
	if v := input(p, "url"); v.Source != "export of shop-dev" || string(v.Value) != `"https://dev.shop.example/"` {
		t.Errorf("url = %+v", v)
	}
	runner := steps(p, "runner")
	if got, want := instances(runner), []string{"platform-dev.monitor", "platform-dev.motd", "load"}; !slices.Equal(got, want) {
		t.Errorf("runner runs %v, want %v", got, want)
	}
}
