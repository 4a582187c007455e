package dsl

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad loads arbitrary text as a module's main.hcl (next to a
// templates/ folder): Load must not panic, and must return a module or an
// *Error, never both nor neither.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*/main.hcl")
	for _, p := range seeds {
		if src, err := os.ReadFile(p); err == nil {
			f.Add(src)
		}
	}
	// One folder for every run: a worker runs the target in turn.
	dir := f.TempDir()
	files := map[string]string{
		"templates/a.conf": "port ${port}\n%{ for h in hosts }${h} %{ endfor }\n",
		"scripts/run.sh":   "true\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if err := os.WriteFile(filepath.Join(dir, "main.hcl"), src, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := Load(dir)
		var e *Error
		switch {
		case err == nil && m == nil:
			t.Fatal("Load returned neither a module nor an error")
		case err != nil && m != nil:
			t.Fatal("Load returned a module and an error")
		case err != nil && !errors.As(err, &e):
			t.Fatalf("Load error is %T: %v", err, err)
		case err != nil:
			for _, d := range e.Diagnostics() {
				if d.Summary == "" {
					t.Errorf("diagnostic without summary: %+v", d)
				}
			}
		}
	})
}
