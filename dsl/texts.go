package dsl

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"

	"github.com/dtkhq/dtk/plan"
)

// MaxTextSize bounds each file under a module's templates/ folder: they
// travel in the module's metadata (Module.Texts).
const MaxTextSize = 64 << 10

// loadTexts reads every regular file under dir/templates (dot-directories
// excluded) into l.texts. A file too large or not UTF-8 is a diagnostic;
// a folder that cannot be read is an error.
func (l *loader) loadTexts() error {
	root := filepath.Join(l.dir, plan.TemplatesDir)
	if info, err := os.Stat(root); err != nil || !info.IsDir() {
		return nil
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > MaxTextSize {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("template file %s is too large", rel),
				Detail:   fmt.Sprintf("it holds %d bytes; files under templates/ hold at most %d (64 KiB): ship larger files as assets", info.Size(), MaxTextSize),
			})
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !utf8.Valid(data) {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("template file %s is not UTF-8 text", rel),
				Detail:   "files under templates/ are text for templatefile(); ship binary files elsewhere in the module",
			})
			return nil
		}
		if l.texts == nil {
			l.texts = map[string]string{}
		}
		l.texts[rel] = string(data)
		return nil
	})
}
