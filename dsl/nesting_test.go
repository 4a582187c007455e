package dsl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// nestingBombs are attributes whose expression nests 100,000 levels deep:
// parsing any of them used to overflow the stack and kill the process.
func nestingBombs() map[string]string {
	const n = 100000
	return map[string]string{
		"parens":   strings.Repeat("(", n) + "1" + strings.Repeat(")", n),
		"brackets": strings.Repeat("[", n) + strings.Repeat("]", n),
		"braces":   strings.Repeat("{a=", n) + "1" + strings.Repeat("}", n),
		"calls":    strings.Repeat("upper(", n) + `"a"` + strings.Repeat(")", n),
		"strings":  strings.Repeat(`"${`, n) + "1" + strings.Repeat(`}"`, n),
		"unary":    strings.Repeat("!", n) + "true",
		"ternary":  strings.Repeat("1?1:", n) + "1", // short, to stay under DefaultLimits.SourceBytes
	}
}

func TestLoad_RefusesNestingBombs(t *testing.T) {
	for name, expr := range nestingBombs() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			src := "module {\n  name    = \"m\"\n  version = \"1.0.0\"\n}\n\nlocals_like = " + expr + "\n"
			if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), "expressions nest deeper than 64 levels") {
				t.Fatalf("Load: %.300v, want the nesting limit", err)
			}
			if !strings.HasPrefix(err.Error(), "main.hcl:6:") {
				t.Errorf("error does not start with main.hcl:6:COL: %.100s", err)
			}
		})
	}
}

func TestLoad_RefusesNestingBombInTemplate(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "good", "links"))); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err != nil {
		t.Fatalf("the module loads before the change: %v", err)
	}
	n := 30000 // files under templates/ hold at most 64 KiB
	tmpl := "x = ${" + strings.Repeat("(", n) + "1" + strings.Repeat(")", n) + "}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "banner.txt"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "templates/banner.txt:1:") || !strings.Contains(err.Error(), "expressions nest deeper than 64 levels") {
		t.Fatalf("Load: %.300v, want the nesting limit at templates/banner.txt:1:", err)
	}
}
