package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/modsource"
)

// Modules shared through OCI registries and git repositories
// (internal/modsource): `module publish DIR oci://...`, and the oci:// and
// git:: sources of `module push`.

// RegistryFlags say how to reach an OCI registry.
type RegistryFlags struct {
	RegistryUsername      string `help:"Registry user, with --registry-password-stdin. Without it, the credentials of the Docker configuration are used ($$DOCKER_CONFIG/config.json, else ~/.docker/config.json, credential helpers included)." placeholder:"USER"`
	RegistryPasswordStdin bool   `help:"Read the registry password or token from standard input."`
	RegistryCA            string `help:"CA certificates (PEM) to trust for the registry, besides the system's." type:"existingfile" placeholder:"FILE"`
	PlainHTTP             bool   `name:"plain-http" help:"Talk plain http to the registry: no TLS, so the module and the password travel unencrypted and unauthenticated. Only for a test registry on loopback."`
}

// check refuses registry flags for a source that is not oci://, and a
// password without a user.
func (f *RegistryFlags) check(src string) error {
	used := f.RegistryUsername != "" || f.RegistryPasswordStdin || f.RegistryCA != "" || f.PlainHTTP
	if used && !strings.HasPrefix(src, modsource.OCIPrefix) {
		return usagef("--registry-username, --registry-password-stdin, --registry-ca and --plain-http are for oci:// sources only")
	}
	if f.RegistryPasswordStdin && f.RegistryUsername == "" {
		return usagef("--registry-password-stdin needs --registry-username")
	}
	if f.RegistryUsername != "" && !f.RegistryPasswordStdin {
		return usagef("--registry-username needs --registry-password-stdin (the password is never a flag: pipe it in)")
	}
	return nil
}

// options are the modsource options of the flags: the password read from
// standard input, a loud warning for plain http.
func (f *RegistryFlags) options(out *Output) (modsource.RegistryOptions, error) {
	opts := modsource.RegistryOptions{Username: f.RegistryUsername, CAFile: f.RegistryCA, PlainHTTP: f.PlainHTTP,
		UserAgent: "dtkctl/" + version}
	if f.RegistryPasswordStdin {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
		if err != nil {
			return opts, usagef("--registry-password-stdin: %v", err)
		}
		opts.Password = strings.TrimRight(string(b), "\r\n")
		if opts.Password == "" {
			return opts, usagef("--registry-password-stdin: standard input is empty")
		}
	}
	if f.PlainHTTP {
		out.Notef("WARNING: --plain-http: talking to the registry without TLS; the module and any password travel unencrypted, and nothing proves the registry is the one you meant\n")
	}
	return opts, nil
}

// checkRemoteSource checks the syntax of an oci:// or git:: source of
// module push: a usage error (exit 2) before anything is fetched.
func checkRemoteSource(src string, f *RegistryFlags) error {
	if err := f.check(src); err != nil {
		return err
	}
	if strings.HasPrefix(src, modsource.OCIPrefix) {
		ref, err := modsource.ParseOCI(src)
		if err != nil {
			return usagef("%v", err)
		}
		if ref.Tag == "" && ref.Digest == "" {
			return usagef("%s names no tag: add :TAG (the module's version) or @sha256:DIGEST", src)
		}
		return nil
	}
	if _, err := modsource.ParseGit(src); err != nil {
		return usagef("%v", err)
	}
	return nil
}

// fetchModule fetches the module of an oci:// or git:: source into a
// scratch folder and says where it came from (on Err with --json, so
// that Out stays JSON). done removes the folder.
func fetchModule(ctx context.Context, src string, f *RegistryFlags, out *Output, jsonOut bool) (dir string, done func(), err error) {
	scratch, err := os.MkdirTemp("", "dtkctl-module-*")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(scratch) }
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	note := out.Printf
	if jsonOut {
		note = out.Notef
	}
	if strings.HasPrefix(src, modsource.OCIPrefix) {
		ref, err := modsource.ParseOCI(src)
		if err != nil {
			return "", nil, usagef("%v", err)
		}
		opts, err := f.options(out)
		if err != nil {
			return "", nil, err
		}
		dir = filepath.Join(scratch, "module")
		art, err := modsource.PullOCI(ctx, ref, dir, opts, modsource.DefaultLimits())
		if err != nil {
			return "", nil, sourceError(err)
		}
		note("pulled %s: %s@%s, manifest %s\n", art.Reference, orDash(art.Module), orDash(art.Version), art.Digest)
		return dir, cleanup, nil
	}
	g, err := modsource.ParseGit(src)
	if err != nil {
		return "", nil, usagef("%v", err)
	}
	co, err := modsource.FetchGit(ctx, g, filepath.Join(scratch, "clone"))
	if err != nil {
		return "", nil, sourceError(err)
	}
	from := ""
	if co.RefName != "" {
		from = " (" + co.RefName + ")"
	}
	note("checked out %s at commit %s%s\n", g, co.Commit, from)
	return co.Dir, cleanup, nil
}

// sourceError makes a bad source a usage error (exit 2); anything else
// (not found, not a module, too large, unreachable) is a failure (exit 1).
func sourceError(err error) error {
	if errors.Is(err, modsource.ErrSyntax) {
		return usagef("%v", err)
	}
	return err
}

// ModulePublishCmd is `dtkctl module publish DIR oci://REGISTRY/REPO[:TAG]`.
type ModulePublishCmd struct {
	Dir              string        `arg:"" help:"Module folder." placeholder:"DIR"`
	Ref              string        `arg:"" help:"Where to publish. The tag defaults to the module's version." placeholder:"oci://REGISTRY/REPO[:TAG]"`
	AllowTagMismatch bool          `help:"Publish under a tag other than the module's version (a moving tag such as stable)."`
	JSON             bool          `help:"Print the published artifact as JSON: reference, manifest digest, archive digest, size, module, version."`
	Registry         RegistryFlags `embed:""`
}

// Help is the detail of `module publish --help`.
func (ModulePublishCmd) Help() string {
	return `Checks the folder offline as "dtkctl module validate" does, packs it as "dtkctl module push" would (every file, dtk.sig included, byte for byte) and pushes the archive to an OCI registry as a dtk module artifact (docs/modules.md, "Sharing modules"). The tag must be the module's version unless --allow-tag-mismatch is given. Any cluster that reaches the registry then takes it with "dtkctl module push oci://...". No coordinator is needed.

Examples:
  dtkctl module publish ./web oci://registry.example.com/dtk/web
  dtkctl module publish ./web oci://registry.example.com/dtk/web:1.2.0 --json | jq -r .digest
  echo "$TOKEN" | dtkctl module publish ./web oci://harbor.example.com/ops/web --registry-username robot --registry-password-stdin`
}

// Validate checks the folder and the reference's syntax.
func (c *ModulePublishCmd) Validate() error {
	if err := checkModuleDir(c.Dir); err != nil {
		return err
	}
	if c.Ref == "" {
		return nil // kong says the argument is missing
	}
	if !strings.HasPrefix(c.Ref, modsource.OCIPrefix) {
		return usagef("publish to an OCI registry: oci://REGISTRY/REPO[:TAG] (a git repository is published with git itself)")
	}
	if err := c.Registry.check(c.Ref); err != nil {
		return err
	}
	ref, err := modsource.ParseOCI(c.Ref)
	if err != nil {
		return usagef("%v", err)
	}
	if ref.Digest != "" {
		return usagef("publish to a tag, not a digest: the registry computes the digest")
	}
	return nil
}

// Run validates, packs and publishes.
func (c *ModulePublishCmd) Run(ctx context.Context, out *Output) error {
	ref, _ := modsource.ParseOCI(c.Ref)
	res := validateModule(c.Dir)
	if !res.Valid {
		return usagef("%s", invalidModuleMessage(c.Dir, res))
	}
	switch {
	case ref.Tag == "":
		if !modsource.ValidTag(res.Version) {
			return usagef("the module's version %q is not a valid OCI tag (letters, digits, _ . -; no +): give a tag, %s:TAG, with --allow-tag-mismatch", res.Version, c.Ref)
		}
		ref.Tag = res.Version
	case ref.Tag != res.Version && !c.AllowTagMismatch:
		want := ref
		want.Tag = res.Version
		return usagef("the tag %s is not the version of %s@%s in %s: publish to %s, or add --allow-tag-mismatch to publish under another tag",
			ref.Tag, res.Module, res.Version, c.Dir, want)
	}
	b, err := archive.Pack(c.Dir)
	if err != nil {
		return err
	}
	if archive.Digest(b) != res.Digest {
		return failf("%s changed while it was being published: publish again", c.Dir)
	}
	opts, err := c.Registry.options(out)
	if err != nil {
		return err
	}
	art, err := modsource.Publish(ctx, ref, b, modsource.Module{Name: res.Module, Version: res.Version}, opts)
	if err != nil {
		return sourceError(err)
	}
	if c.JSON {
		return out.JSON(art)
	}
	pinned := ref
	pinned.Tag, pinned.Digest = "", art.Digest
	out.Printf("published %s@%s to %s (%s, archive %s)\n", art.Module, art.Version, art.Reference, shortDigest(art.Digest), shortDigest(art.ArchiveDigest))
	out.Notef("push it to a cluster with: dtkctl module push %s\n", pinned)
	return nil
}

// invalidModuleMessage is what `module validate` says of an invalid
// module: its diagnostics, one a line.
func invalidModuleMessage(dir string, res validateResult) string {
	if len(res.Diagnostics) == 0 {
		return fmt.Sprintf("%s is not a valid module: %s", dir, res.Error)
	}
	msgs := make([]string, len(res.Diagnostics))
	for i, d := range res.Diagnostics {
		msgs[i] = d.String()
	}
	return fmt.Sprintf("%s is not a valid module (%s):\n%s", dir, plural(len(msgs), "problem"), strings.Join(msgs, "\n"))
}
