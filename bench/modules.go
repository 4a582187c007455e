package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/plan"
)

// FleetModule writes module "benchfleet": one component whose create is
// the bash one-liner `true`, and for each size N a template "fleetN" with
// one node_group of N agents (those labelled bench_id), each with one
// instance of the component whose attribute follows the input "gen" (so a
// changed input changes every node's slice).
//
// A node_group, not N node blocks (as before 2026-11-27): at 4,000 agents
// node blocks made a 1.3 MB module that every agent downloads at once on
// the first deploy, which measured the blob transfer, not the plan.
// BenchmarkCompileFleet still times compiling many node blocks
// (FleetNodesModule).
func FleetModule(dir string, sizes []int) error {
	var b strings.Builder
	b.WriteString(stepModuleHeader("benchfleet"))
	for _, n := range sizes {
		fmt.Fprintf(&b, "\ntemplate \"fleet%d\" {\n  input \"gen\" {\n    type    = string\n    default = \"0\"\n  }\n", n)
		fmt.Fprintf(&b, "  node_group \"n\" {\n    count = %d\n    component \"step\" \"s\" {\n      gen = input.gen\n    }\n  }\n}\n", n)
	}
	return writeModule(dir, b.String())
}

// stepModuleHeader is module name's header and its one component "step",
// whose attribute "gen" a deploy changes.
func stepModuleHeader(name string) string {
	return `module {
  name    = "` + name + `"
  version = "1.0.0"
}

component "step" {
  attribute "gen" {
    type     = string
    required = true
  }
  create {
    inline = "true"
  }
}
`
}

// FleetNodesModule writes module "benchfleet" as the fleet benchmark did
// before 2026-11-27: for each size N a template "fleetN" with N node
// blocks, node nXXXXX on the agent labelled bench_id=XXXXX.
// BenchmarkCompileFleet compiles it: placing many node blocks.
func FleetNodesModule(dir string, sizes []int) error {
	var b strings.Builder
	b.WriteString(stepModuleHeader("benchfleet"))
	for _, n := range sizes {
		fmt.Fprintf(&b, "\ntemplate \"fleet%d\" {\n  input \"gen\" {\n    type    = string\n    default = \"0\"\n  }\n", n)
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, "  node \"n%05d\" {\n    labels = { bench_id = \"%05d\" }\n    component \"step\" \"s\" {\n      gen = input.gen\n    }\n  }\n", i, i)
		}
		b.WriteString("}\n")
	}
	return writeModule(dir, b.String())
}

// IdleModule writes module "benchidle": template "idle" with n nodes
// (labels bench_idle=1..n), each one bash step `true`; its input "x"
// gives the failover benchmark a cheap write (set the input of a service
// that is staged but not deployed).
func IdleModule(dir string, n int) error {
	var b strings.Builder
	b.WriteString(`module {
  name    = "benchidle"
  version = "1.0.0"
}

component "step" {
  attribute "x" {
    type     = string
    required = true
  }
  create {
    inline = "true"
  }
}

template "idle" {
  input "x" {
    type    = string
    default = "0"
  }
`)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  node \"n%d\" {\n    labels = { bench_idle = \"%d\" }\n    component \"step\" \"s\" {\n      x = input.x\n    }\n  }\n", i, i)
	}
	b.WriteString("}\n")
	return writeModule(dir, b.String())
}

// LocalFiles is the local-convergence workload: NFiles files with
// content, the same bytes for dtk, Puppet and Ansible.
const NFiles = 100

// FileContent is file i's content at revision rev.
func FileContent(i int, rev string) string {
	return fmt.Sprintf("file %03d rev %s: the quick brown fox jumps over the lazy dog; dtk benchmark content line.\n", i, rev)
}

// LocalModule writes module "benchlocal": a "file" component (a bash
// one-liner that writes the file unless it already has the content, and
// then says _changed=false) and template "files" with NFiles instances on
// the node labelled bench_local=1, under input dir at revision input rev.
func LocalModule(dir string) error {
	var b strings.Builder
	b.WriteString(`module {
  name    = "benchlocal"
  version = "1.0.0"
}

component "file" {
  attribute "path" {
    type     = string
    required = true
  }
  attribute "content" {
    type     = string
    required = true
  }
  create {
    inline = <<-EOT
      if [ -f "$path" ] && printf '%s' "$content" | cmp -s - "$path"; then
        echo _changed=false >> "$DTK_OUTPUTS"
      else
        printf '%s' "$content" > "$path"
      fi
    EOT
  }
}

template "files" {
  input "dir" {
    type = string
  }
  input "rev" {
    type    = string
    default = "0"
  }
  node "local" {
    labels = { bench_local = "1" }
`)
	for i := 1; i <= NFiles; i++ {
		c := strings.ReplaceAll(FileContent(i, "REV"), "REV", "${input.rev}")
		c = strings.ReplaceAll(c, "\n", `\n`)
		fmt.Fprintf(&b, "    component \"file\" \"f%03d\" {\n      path    = \"${input.dir}/f%03d.txt\"\n      content = \"%s\"\n    }\n", i, i, c)
	}
	b.WriteString("  }\n}\n")
	return writeModule(dir, b.String())
}

func writeModule(dir, hcl string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(hcl), 0o644)
}

// PushModule packs and pushes a module folder.
func PushModule(cl *api.Client, dir string) (*plan.Module, error) {
	b, err := archive.Pack(dir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := cl.PushModule(ctx, b, archive.Digest(b))
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", dir, err)
	}
	return m, nil
}
