package main

import (
	"context"
	"sort"
	"strings"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/modsource"
	"github.com/dtkhq/dtk/plan"
)

// ModuleCmd is `dtkctl module`.
type ModuleCmd struct {
	Push     ModulePushCmd     `cmd:"" help:"Pack a module folder and push it to the cluster."`
	Publish  ModulePublishCmd  `cmd:"" help:"Publish a module folder to an OCI registry (no cluster needed)."`
	List     ModuleListCmd     `cmd:"" help:"List pushed modules."`
	Delete   ModuleDeleteCmd   `cmd:"" help:"Delete a module version no service uses (its archive is then collected)."`
	Validate ModuleValidateCmd `cmd:"" help:"Check a module folder as a coordinator would, offline (no cluster needed)."`
	Fmt      ModuleFmtCmd      `cmd:"" help:"Format a module's .hcl files in the canonical style (offline)."`
	Sign     ModuleSignCmd     `cmd:"" help:"Sign a module folder with a private key: writes DIR/dtk.sig (offline)."`
	Verify   ModuleVerifyCmd   `cmd:"" help:"Check a module folder's signature against trusted public keys (offline)."`
}

// ModuleDeleteCmd is `dtkctl module delete NAME@VERSION`.
type ModuleDeleteCmd struct {
	Ref  string `arg:"" help:"The module version to delete." placeholder:"NAME@VERSION"`
	JSON bool   `help:"Print the deleted module as JSON."`
}

// Validate checks the NAME@VERSION form.
func (c *ModuleDeleteCmd) Validate() error {
	name, version, ok := strings.Cut(c.Ref, "@")
	if !ok || name == "" || version == "" {
		return usagef("give the module version as NAME@VERSION, for example web@1.2.0 (dtkctl module list shows them)")
	}
	return nil
}

// Run deletes the module version.
func (c *ModuleDeleteCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	name, version, _ := strings.Cut(c.Ref, "@")
	m, err := cl.DeleteModule(ctx, name, version)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(m)
	}
	out.Printf("deleted %s\n", m.Ref())
	return nil
}

// ModulePushCmd is `dtkctl module push DIR`.
type ModulePushCmd struct {
	Dir  string `arg:"" help:"Module folder, or oci://REGISTRY/REPO:TAG (or @sha256:DIGEST), or git::URL//PATH?ref=REF." placeholder:"DIR|SOURCE"`
	JSON bool   `help:"Print the pushed module as JSON."`
	// Registry: for an oci:// source (module_remote.go).
	Registry RegistryFlags `embed:""`
}

// Help is the detail of `module push --help`.
func (ModulePushCmd) Help() string {
	return `Packs the folder (dot-folders such as .git left out) and uploads it; the coordinator checks it and records NAME@VERSION from its module block. Check a folder first, offline, with "dtkctl module validate DIR".

Examples:
  dtkctl module validate ./web && dtkctl module push ./web
  dtkctl module push ./web --json | jq -r .digest
  dtkctl module push oci://registry.example.com/dtk/web:1.2.0
  dtkctl module push 'git::https://git.example.com/ops/modules.git//web?ref=v1.2.0'

A module from an OCI registry (published with "dtkctl module publish") or a git repository is fetched into a scratch folder, checked (media types, size, digest; the module folder inside the clone) and then pushed as that folder would be. See docs/modules.md, "Sharing modules".`
}

// Validate checks DIR (or the source's syntax) before anything is packed.
func (c *ModulePushCmd) Validate() error {
	if modsource.IsRemote(c.Dir) {
		return checkRemoteSource(c.Dir, &c.Registry)
	}
	if err := c.Registry.check(c.Dir); err != nil {
		return err
	}
	return checkModuleDir(c.Dir)
}

// Run packs and pushes; a module from a registry or git is fetched into
// a scratch folder first.
func (c *ModulePushCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if modsource.IsRemote(c.Dir) {
		dir, done, err := fetchModule(ctx, c.Dir, &c.Registry, out, c.JSON)
		if err != nil {
			return err
		}
		defer done()
		c.Dir = dir
	}
	b, err := archive.Pack(c.Dir)
	if err != nil {
		return err
	}
	if stale := staleSignature(b); stale != "" {
		out.Notef("warning: %s: coordinators that check signatures refuse it; sign it again (dtkctl module sign)\n", stale)
	}
	digest := archive.Digest(b)
	m, err := cl.PushModule(ctx, b, digest)
	if err != nil {
		return err
	}
	if m.Digest != "" {
		digest = m.Digest
	}
	if c.JSON {
		return out.JSON(m)
	}
	out.Printf("pushed %s (%s…, %s, %s)\n", m.Ref(), digest[:min(len(digest), len("sha256:")+8)],
		plural(len(m.Components), "component"), plural(len(m.Templates), "template"))
	return nil
}

// ModuleListCmd is `dtkctl module list`.
type ModuleListCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run lists modules.
func (c *ModuleListCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	mods, err := cl.Modules(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		if mods == nil {
			mods = []*plan.Module{}
		}
		return out.JSON(mods)
	}
	rows := make([][]string, 0, len(mods))
	for _, m := range mods {
		rows = append(rows, []string{m.Name, m.Version, orDash(shortDigest(m.Digest)), sigColumn(m.KeyID, m.SignedBy),
			orDash(strings.Join(sortedKeys(m.Templates), ",")), orDash(strings.Join(sortedKeys(m.Components), ","))})
	}
	out.Table([]string{"NAME", "VERSION", "DIGEST", "SIGNED BY", "TEMPLATES", "COMPONENTS"}, rows)
	if len(mods) == 0 {
		out.Notef("no modules yet: push one with \"dtkctl module push DIR\"\n")
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
