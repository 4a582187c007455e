package dsl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/dtkhq/dtk/internal/hclguard"
	"github.com/dtkhq/dtk/plan"
)

// Limits bound what LoadWithin accepts; Load uses DefaultLimits.
type Limits struct {
	// Guard bounds how deep expressions nest (internal/hclguard).
	Guard hclguard.Limits
	// NameBytes bounds the names a module declares (module, component,
	// template, action, instance, attribute, output); NameSetting names
	// the configuration key that sets it, for messages.
	NameBytes   int
	NameSetting string
	// SourceBytes bounds each .hcl file: lexing and parsing take many
	// times the text in memory, and module source is short.
	// SourceSetting names its key.
	SourceBytes   int64
	SourceSetting string
}

// DefaultLimits are those of Load. A coordinator passes its own
// (internal/limits), whose .hcl files are smaller.
var DefaultLimits = Limits{NameBytes: 63, SourceBytes: 1 << 20}

// Load parses and checks the module folder dir within DefaultLimits.
func Load(dir string) (*plan.Module, error) {
	return LoadWithin(dir, DefaultLimits)
}

// LoadWithin parses and checks the module folder dir.
//
// It reads every *.hcl file at the top level of dir (in name order), decodes
// the module, component and template blocks and checks them. It fills
// Module.Files with the sha256 digest of every regular file under dir
// (dot-directories excluded), and Module.Texts with the content of every
// file under dir/templates (see FunctionsFor in package plan). Digest and
// Size are left for the archiver.
//
// Problems in the module's source are returned as an *Error holding every
// diagnostic found. A folder that cannot be read is reported as a plain
// error.
func LoadWithin(dir string, lim Limits) (*plan.Module, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("module folder: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("module folder %s: not a directory", dir)
	}

	files, err := hashFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("module folder %s: %w", dir, err)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("module folder %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".hcl") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, &Error{diags: []Diagnostic{{
			Summary: "no .hcl files in module folder",
			Detail:  fmt.Sprintf("%s holds no *.hcl file; a module needs at least a module block", dir),
		}}}
	}
	sort.Strings(names)

	l := &loader{
		dir:        dir,
		lim:        lim,
		srcs:       map[string][]byte{},
		files:      files,
		components: map[string]*plan.Component{},
		templates:  map[string]hclsyntax.Expression{},
	}
	if err := l.loadTexts(); err != nil {
		return nil, fmt.Errorf("module folder %s: %w", dir, err)
	}
	var bodies []*hclsyntax.Body
	var parseDiags hcl.Diagnostics
	for _, name := range names {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && lim.SourceBytes > 0 && fi.Size() > lim.SourceBytes {
			summary := fmt.Sprintf("%s is larger than %d bytes", name, lim.SourceBytes)
			detail := fmt.Sprintf("it holds %d bytes: split it into several files, or ship data as files", fi.Size())
			if lim.SourceSetting != "" {
				summary += " (" + lim.SourceSetting + ")"
				detail += ", or raise " + lim.SourceSetting + " in the coordinator config"
			}
			parseDiags = append(parseDiags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail})
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("module folder %s: %w", dir, err)
		}
		l.srcs[name] = src
		if diags := lim.Guard.Config(src, name, hcl.InitialPos); diags.HasErrors() {
			parseDiags = append(parseDiags, diags...)
			continue
		}
		f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
		parseDiags = append(parseDiags, diags...)
		if f != nil {
			if body, ok := f.Body.(*hclsyntax.Body); ok {
				bodies = append(bodies, body)
			}
		}
	}
	// Decoding a file that does not parse mostly yields noise: report the
	// syntax errors alone.
	if parseDiags.HasErrors() {
		return nil, newError(parseDiags, l.srcs)
	}

	m := l.decode(bodies)
	if e := newError(l.diags, l.srcs); e != nil {
		return nil, e
	}
	m.Files = files
	m.Texts = l.texts
	return m, nil
}

// hashFiles maps every regular file under dir (skipping dot-directories) to
// "sha256:<hex>" of its content.
func hashFiles(dir string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		// Streamed: an asset may be as large as an archive unpacks to.
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = "sha256:" + hex.EncodeToString(h.Sum(nil))
		return nil
	})
	return files, err
}
