package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/dtkhq/dtk/internal/api"
)

// ServiceGraphCmd is `dtkctl service graph NAME`.
type ServiceGraphCmd struct {
	Name   string `arg:"" help:"Service name."`
	Format string `default:"dot" enum:"dot,mermaid,json" help:"Output format: dot (Graphviz), mermaid or json."`
	JSON   bool   `help:"Print JSON (the same as --format json)."`
}

// graphJSON is what `service graph --json` prints.
type graphJSON struct {
	Service string `json:"service"`
	// Services are the parent → child edges among the related services.
	Services [][2]string `json:"services"`
	// Nodes hold each node's create steps (IDs).
	Nodes []graphJSONNode `json:"nodes"`
	// Deps are step → step it depends on.
	Deps [][2]string `json:"deps"`
}

type graphJSONNode struct {
	Name  string   `json:"name"`
	Steps []string `json:"steps"`
}

// Run prints the environment tree around the service (its ancestors and
// descendants) and, for the service, its component instances per node
// with their dependencies.
func (c *ServiceGraphCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	st, _, err := cl.ServiceStatus(ctx, c.Name, 0, 0)
	if err != nil {
		return err
	}
	list, err := cl.Services(ctx)
	if err != nil {
		return err
	}
	g := buildGraph(c.Name, st, list)
	if c.JSON || c.Format == "json" {
		gj := graphJSON{Service: c.Name, Services: g.services, Deps: g.deps, Nodes: []graphJSONNode{}}
		if gj.Services == nil {
			gj.Services = [][2]string{}
		}
		if gj.Deps == nil {
			gj.Deps = [][2]string{}
		}
		for _, n := range g.nodes {
			gj.Nodes = append(gj.Nodes, graphJSONNode{Name: n.name, Steps: append([]string{}, n.steps...)})
		}
		return out.JSON(gj)
	}
	if c.Format == "mermaid" {
		out.Printf("%s", g.mermaid())
	} else {
		out.Printf("%s", g.dot())
	}
	return nil
}

type graph struct {
	services [][2]string // parent → child edges among related services
	focus    string
	nodes    []graphNode
	deps     [][2]string // step ID → step ID it depends on
	labels   map[string]string
}

type graphNode struct {
	name  string
	steps []string
}

func buildGraph(name string, st *api.ServiceStatus, list []api.ServiceSummary) *graph {
	g := &graph{focus: name, labels: map[string]string{}}
	parent := map[string]string{}
	for _, s := range list {
		parent[s.Name] = s.Parent
	}
	related := map[string]bool{name: true}
	for p := parent[name]; p != "" && !related[p]; p = parent[p] {
		related[p] = true
	}
	// Descendants: repeat until no new child is found.
	for changed := true; changed; {
		changed = false
		for _, s := range list {
			if related[s.Parent] && !related[s.Name] && s.Parent != "" {
				related[s.Name], changed = true, true
			}
		}
	}
	for _, s := range list {
		if related[s.Name] && s.Parent != "" && related[s.Parent] {
			g.services = append(g.services, [2]string{s.Parent, s.Name})
		}
	}
	sort.Slice(g.services, func(i, j int) bool { return g.services[i][1] < g.services[j][1] })
	for _, n := range st.Nodes {
		gn := graphNode{name: n.TemplateNode + " (" + n.Name + ")"}
		for _, s := range n.Steps {
			if s.Action != "create" {
				continue
			}
			gn.steps = append(gn.steps, s.ID)
			g.labels[s.ID] = s.Instance + "\\n" + s.Component
			for _, d := range s.DependsOn {
				g.deps = append(g.deps, [2]string{s.ID, d})
			}
		}
		g.nodes = append(g.nodes, gn)
	}
	return g
}

func dotID(s string) string { return fmt.Sprintf("%q", s) }

func (g *graph) dot() string {
	var b strings.Builder
	b.WriteString("digraph dtk {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n")
	b.WriteString("  subgraph cluster_env {\n    label=\"environments\";\n")
	fmt.Fprintf(&b, "    %s [style=bold];\n", dotID("svc:"+g.focus))
	for _, e := range g.services {
		fmt.Fprintf(&b, "    %s [label=%s];\n    %s [label=%s];\n    %s -> %s;\n",
			dotID("svc:"+e[0]), dotID(e[0]), dotID("svc:"+e[1]), dotID(e[1]), dotID("svc:"+e[0]), dotID("svc:"+e[1]))
	}
	fmt.Fprintf(&b, "    %s [label=%s];\n  }\n", dotID("svc:"+g.focus), dotID(g.focus))
	for i, n := range g.nodes {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s;\n", i, dotID(n.name))
		for _, s := range n.steps {
			fmt.Fprintf(&b, "    %s [label=%s];\n", dotID(s), dotID(g.labels[s]))
		}
		b.WriteString("  }\n")
	}
	for _, d := range g.deps {
		fmt.Fprintf(&b, "  %s -> %s [label=\"after\"];\n", dotID(d[1]), dotID(d[0]))
	}
	b.WriteString("}\n")
	return b.String()
}

func (g *graph) mermaid() string {
	ids := map[string]string{}
	id := func(s string) string {
		if v, ok := ids[s]; ok {
			return v
		}
		v := fmt.Sprintf("n%d", len(ids))
		ids[s] = v
		return v
	}
	var b strings.Builder
	b.WriteString("flowchart LR\n  subgraph environments\n")
	fmt.Fprintf(&b, "    %s[\"%s\"]\n", id("svc:"+g.focus), g.focus)
	for _, e := range g.services {
		fmt.Fprintf(&b, "    %s[\"%s\"] --> %s[\"%s\"]\n", id("svc:"+e[0]), e[0], id("svc:"+e[1]), e[1])
	}
	b.WriteString("  end\n")
	for _, n := range g.nodes {
		fmt.Fprintf(&b, "  subgraph %s[\"%s\"]\n", id("node:"+n.name), n.name)
		for _, s := range n.steps {
			fmt.Fprintf(&b, "    %s[\"%s\"]\n", id(s), strings.ReplaceAll(g.labels[s], "\\n", "<br/>"))
		}
		b.WriteString("  end\n")
	}
	for _, d := range g.deps {
		fmt.Fprintf(&b, "  %s --> %s\n", id(d[1]), id(d[0]))
	}
	return b.String()
}
