package plan_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/dsl"
	"github.com/dtkhq/dtk/plan"
)

// TestSameTemplateTwoEnvironments stages the same template under a dev
// and a prod environment: the two plans differ only where the
// environments differ (their exports, hence the inputs filled from them,
// the attributes computed from those, the injected agent's endpoint, and
// the digests of the steps whose attributes differ), once the names that
// differ by construction (services, agents) are put side by side.
func TestSameTemplateTwoEnvironments(t *testing.T) {
	envMod := loadModule(t, "testdata/environments/env")
	shopMod := loadModule(t, "testdata/environments/shop")
	modules := map[string]*plan.Module{envMod.Ref(): envMod, shopMod.Ref(): shopMod}

	// Each environment has its own agents, alike but for their names and
	// addresses.
	var nodes []*plan.Node
	rename := map[string]string{} // dev string → prod string
	for i, env := range []string{"dev", "prod"} {
		for j, role := range []string{"db", "web", "web"} {
			name := fmt.Sprintf("%s-%s-%d", env, role, j)
			n := &plan.Node{Name: name, Labels: map[string]string{"env": env, "role": role}, Facts: plan.Facts{
				Hostname: name + ".example.com", Address: fmt.Sprintf("10.%d.0.%d", i, j+1),
				OS: "linux", Arch: "amd64", CPUs: 4, MemoryBytes: 8 << 30,
			}}
			nodes = append(nodes, n)
			if env == "dev" {
				rename[n.Facts.Address] = fmt.Sprintf("10.1.0.%d", j+1)
			}
		}
	}
	rename["dev"] = "prod" // service names, agent and host names

	compile := func(envName, envTemplate, shopName string) *plan.Plan {
		env := &plan.Service{Name: envName, Module: "env", Version: "1.0.0", Template: envTemplate}
		p, viol := plan.Compile(plan.CompileInput{Service: env, Module: envMod, Modules: modules, Nodes: nodes, Generation: 1})
		if viol != nil {
			t.Fatalf("%s: %v", envName, viol)
		}
		env.Plan = p
		shop := &plan.Service{Name: shopName, Module: "shop", Version: "1.0.0", Template: "shop", Parent: envName}
		p, viol = plan.Compile(plan.CompileInput{
			Service: shop, Module: shopMod, Modules: modules, Nodes: nodes, Generation: 1,
			Ancestors: []plan.Ancestor{{Service: env, Module: envMod}},
		})
		if viol != nil {
			t.Fatalf("%s: %v", shopName, viol)
		}
		return p
	}
	dev := compile("dev", "dev", "shop-dev")
	prod := compile("prod", "prod", "shop-prod")

	devJSON, _ := json.Marshal(dev)
	normalized := string(devJSON)
	keys := make([]string, 0, len(rename))
	for k := range rename {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		normalized = strings.ReplaceAll(normalized, k, rename[k])
	}
	var a, b any
	if err := json.Unmarshal([]byte(normalized), &a); err != nil {
		t.Fatal(err)
	}
	prodJSON, _ := json.Marshal(prod)
	if err := json.Unmarshal(prodJSON, &b); err != nil {
		t.Fatal(err)
	}
	got := jsonDiff("", a, b)

	app := func(member string) string {
		return "nodes[web[" + member + "]].steps[shop-prod/web[" + member + "]/app/create]"
	}
	monitor := func(node string) string {
		return "nodes[" + node + "].steps[shop-prod/" + node + "/prod.monitor/create]"
	}
	want := []string{
		"inputs[db_size].value",
		"inputs[region].value",
		monitor("db") + ".attributes.endpoint",
		monitor("db") + ".digest",
		"nodes[db].steps[shop-prod/db/pg/create].attributes.size",
		"nodes[db].steps[shop-prod/db/pg/create].digest",
		monitor("web[prod-web-1]") + ".attributes.endpoint",
		monitor("web[prod-web-1]") + ".digest",
		app("prod-web-1") + ".attributes.region",
		app("prod-web-1") + ".digest",
		monitor("web[prod-web-2]") + ".attributes.endpoint",
		monitor("web[prod-web-2]") + ".digest",
		app("prod-web-2") + ".attributes.region",
		app("prod-web-2") + ".digest",
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the plans differ at\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// And with environments that supply the same, the plans are the same.
	devAgain := compile("dev", "dev", "shop-dev")
	if !reflect.DeepEqual(dev, devAgain) {
		t.Errorf("compiling twice gives different plans")
	}
}

func loadModule(t testing.TB, dir string) *plan.Module {
	t.Helper()
	m, err := dsl.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	m.Digest = "sha256:fake-" + m.Name
	return m
}

// jsonDiff lists the paths at which two decoded JSON values differ. Array
// elements are named by their "id" or "name" member when they have one.
func jsonDiff(path string, a, b any) []string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return []string{path}
		}
		var out []string
		seen := map[string]bool{}
		for k := range x {
			seen[k] = true
		}
		for k := range y {
			seen[k] = true
		}
		for k := range seen {
			p := k
			if path != "" {
				p = path + "." + k
			}
			out = append(out, jsonDiff(p, x[k], y[k])...)
		}
		sort.Strings(out)
		return out
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return []string{path}
		}
		var out []string
		for i := range x {
			out = append(out, jsonDiff(fmt.Sprintf("%s[%s]", path, elemName(x[i], i)), x[i], y[i])...)
		}
		sort.Strings(out)
		return out
	default:
		if !reflect.DeepEqual(a, b) {
			return []string{path}
		}
		return nil
	}
}

func elemName(v any, i int) string {
	if m, ok := v.(map[string]any); ok {
		for _, k := range []string{"id", "name"} {
			if s, ok := m[k].(string); ok {
				return s
			}
		}
	}
	return fmt.Sprint(i)
}
