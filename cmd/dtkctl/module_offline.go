package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/dtkhq/dtk/dsl"
	"github.com/dtkhq/dtk/internal/archive"
	"github.com/dtkhq/dtk/internal/hclguard"
	"github.com/dtkhq/dtk/internal/limits"
)

// Module commands that work on a folder and need no coordinator.

// checkModuleDir is a usage error unless dir is a folder.
func checkModuleDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case os.IsNotExist(err):
		return usagef("module folder %q does not exist", dir)
	case err != nil:
		return usagef("module folder: %v", err)
	case !fi.IsDir():
		return usagef("%q is not a folder: give the module's folder", dir)
	}
	return nil
}

// ModuleValidateCmd is `dtkctl module validate DIR`.
type ModuleValidateCmd struct {
	Dir  string `arg:"" help:"Module folder." placeholder:"DIR"`
	JSON bool   `help:"Print JSON: valid, the module's name, version, components, templates and digest, or the diagnostics."`
}

// Help is the detail of `module validate --help`.
func (ModuleValidateCmd) Help() string {
	return `Checks a module folder as a coordinator would on push, without one: the folder is packed and unpacked as for a push and parsed and checked by the same loader, within a coordinator's default limits. Problems are printed as FILE:LINE:COL with the offending line.

Examples:
  dtkctl module validate ./web
  dtkctl module validate ./web --json | jq .diagnostics`
}

// Validate checks DIR.
func (c *ModuleValidateCmd) Validate() error { return checkModuleDir(c.Dir) }

// validateResult is what `module validate --json` prints.
type validateResult struct {
	Valid       bool             `json:"valid"`
	Module      string           `json:"module,omitempty"`
	Version     string           `json:"version,omitempty"`
	Digest      string           `json:"digest,omitempty"`
	Components  []string         `json:"components,omitempty"`
	Templates   []string         `json:"templates,omitempty"`
	Diagnostics []dsl.Diagnostic `json:"diagnostics,omitempty"`
	Error       string           `json:"error,omitempty"`
}

// Run loads the module the way a coordinator does a pushed one: pack it
// (as module push would), unpack the archive into a scratch folder within
// the archive bounds, and load it with dsl.LoadWithin within the DSL
// bounds, both a coordinator's defaults (internal/limits). Invalid: exit 1.
func (c *ModuleValidateCmd) Run(out *Output) error {
	res := validateModule(c.Dir)
	if c.JSON {
		if err := out.JSON(res); err != nil {
			return err
		}
	} else if res.Valid {
		out.Printf("%s@%s is valid: %s (%s), %s (%s); digest %s\n", res.Module, res.Version,
			plural(len(res.Components), "component"), orDash(strings.Join(res.Components, ", ")),
			plural(len(res.Templates), "template"), orDash(strings.Join(res.Templates, ", ")), shortDigest(res.Digest))
	}
	if res.Valid {
		return nil
	}
	if c.JSON {
		return failf("%s is not a valid module", c.Dir)
	}
	if len(res.Diagnostics) == 0 {
		return failf("%s is not a valid module: %s", c.Dir, res.Error)
	}
	msgs := make([]string, len(res.Diagnostics))
	for i, d := range res.Diagnostics {
		msgs[i] = d.String()
	}
	return failf("%s is not a valid module (%s):\n%s", c.Dir, plural(len(msgs), "problem"), strings.Join(msgs, "\n"))
}

func validateModule(dir string) validateResult {
	lim := limits.Default()
	b, err := archive.Pack(dir)
	if err != nil {
		return validateResult{Error: err.Error()}
	}
	if int64(len(b)) > lim.ModulePackedBytes {
		return validateResult{Error: limits.Refusal(limits.KeyModulePackedBytes, "the packed module is larger than %s", limits.Size(lim.ModulePackedBytes))}
	}
	scratch, err := os.MkdirTemp("", "dtkctl-validate-*")
	if err != nil {
		return validateResult{Error: fmt.Sprintf("scratch folder: %v", err)}
	}
	defer os.RemoveAll(scratch)
	al := archive.DefaultLimits
	al.MaxTotal, al.MaxFile, al.MaxFiles = lim.ModuleUnpackedBytes, lim.ModuleUnpackedBytes, lim.ModuleFiles
	unpacked := filepath.Join(scratch, "module")
	if err := al.Unpack(bytes.NewReader(b), unpacked); err != nil {
		return validateResult{Error: err.Error()}
	}
	m, err := dsl.LoadWithin(unpacked, dslLimits(lim))
	var de *dsl.Error
	switch {
	case errors.As(err, &de):
		diags := de.Diagnostics()
		for i := range diags {
			if diags[i].File != "" { // name the file as the operator knows it
				diags[i].File = filepath.Join(dir, filepath.FromSlash(diags[i].File))
			}
		}
		return validateResult{Diagnostics: diags, Error: "invalid module"}
	case err != nil:
		return validateResult{Error: strings.ReplaceAll(err.Error(), unpacked, dir)}
	}
	return validateResult{Valid: true, Module: m.Name, Version: m.Version, Digest: archive.Digest(b),
		Components: sortedKeys(m.Components), Templates: sortedKeys(m.Templates)}
}

// dslLimits are the DSL bounds of a coordinator with limits lim.
func dslLimits(lim limits.Limits) dsl.Limits {
	return dsl.Limits{
		Guard:     hclguard.Limits{Depth: lim.NestingDepth, Setting: limits.KeyNestingDepth},
		NameBytes: lim.NameBytes, NameSetting: limits.KeyNameBytes,
		SourceBytes: lim.HCLFileBytes, SourceSetting: limits.KeyHCLFileBytes,
	}
}

// ModuleFmtCmd is `dtkctl module fmt DIR`.
type ModuleFmtCmd struct {
	Dir   string `arg:"" help:"Module folder." placeholder:"DIR"`
	Check bool   `help:"Change nothing: list the files that are not formatted and exit 1 if there are any."`
	JSON  bool   `help:"Print JSON: the files formatted (or, with --check, not formatted)."`
}

// Help is the detail of `module fmt --help`.
func (ModuleFmtCmd) Help() string {
	return `Rewrites every .hcl file at the top of the module folder (the files a module is loaded from) in the canonical HCL style: indentation, aligned equals signs, spacing. Files under templates/ are not touched. A file that does not parse is reported as FILE:LINE:COL and left as it is.

Examples:
  dtkctl module fmt ./web
  dtkctl module fmt ./web --check   # in CI: exit 1 if a file needs formatting`
}

// Validate checks DIR.
func (c *ModuleFmtCmd) Validate() error { return checkModuleDir(c.Dir) }

// fmtResult is what `module fmt --json` prints.
type fmtResult struct {
	// Files are the files reformatted, or with --check, those that need it.
	Files   []string `json:"files"`
	Checked int      `json:"checked"`
	// Errors are the files that do not parse: "FILE:LINE:COL: summary".
	Errors []string `json:"errors,omitempty"`
}

// Run formats (or checks) every .hcl file.
func (c *ModuleFmtCmd) Run(out *Output) error {
	paths, err := filepath.Glob(filepath.Join(c.Dir, "*.hcl"))
	if err != nil {
		return err
	}
	sort.Strings(paths)
	res := fmtResult{Files: []string{}}
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		res.Checked++
		if _, diags := hclsyntax.ParseConfig(src, p, hcl.InitialPos); diags.HasErrors() {
			for _, d := range diags {
				if d.Severity == hcl.DiagError {
					res.Errors = append(res.Errors, diagString(p, d))
				}
			}
			continue
		}
		formatted := hclwrite.Format(src)
		if bytes.Equal(formatted, src) {
			continue
		}
		res.Files = append(res.Files, p)
		if c.Check {
			continue
		}
		if err := writeKeepingMode(p, formatted); err != nil {
			return err
		}
	}
	if c.JSON {
		if err := out.JSON(res); err != nil {
			return err
		}
	} else {
		for _, f := range res.Files {
			out.Printf("%s\n", f)
		}
	}
	switch {
	case len(res.Errors) > 0:
		return failf("some files do not parse (left as they are):\n%s", strings.Join(res.Errors, "\n"))
	case c.Check && len(res.Files) > 0:
		return failf("%s of %d not formatted: run \"dtkctl module fmt %s\"", plural(len(res.Files), "file"), res.Checked, c.Dir)
	case res.Checked == 0:
		out.Notef("no .hcl files in %s\n", c.Dir)
	}
	return nil
}

// diagString is an HCL diagnostic as "FILE:LINE:COL: summary: detail".
func diagString(file string, d *hcl.Diagnostic) string {
	pos := file
	if d.Subject != nil {
		pos = fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
	}
	msg := pos + ": " + d.Summary
	if d.Detail != "" {
		msg += ": " + d.Detail
	}
	return msg
}

// writeKeepingMode replaces path's content through a temporary file in
// the same folder, keeping its mode.
func writeKeepingMode(path string, b []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(fi.Mode().Perm()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
