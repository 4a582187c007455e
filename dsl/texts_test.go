package dsl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const minimalModule = "module {\n  name    = \"m\"\n  version = \"1.0.0\"\n}\n"

// TestTexts: every file under templates/ (dot-directories excluded) is in
// Module.Texts, whole; nothing else is.
func TestTexts(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"main.hcl":                minimalModule,
		"templates/a.conf":        "port ${port}\n",
		"templates/sub/b.txt":     "héllo",
		"templates/.git/config":   "x",
		"templates/empty":         "",
		"other/templates/c.conf":  "not a template",
		"templates.conf":          "neither",
		"templates/max.txt":       strings.Repeat("x", MaxTextSize),
		"scripts/templates/d.txt": "nor this",
	})
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"templates/a.conf": 13, "templates/sub/b.txt": 6, "templates/empty": 0, "templates/max.txt": MaxTextSize}
	if len(m.Texts) != len(want) {
		t.Errorf("Texts has %d files, want %d: %v", len(m.Texts), len(want), keys(m.Texts))
	}
	for name, size := range want {
		if text, ok := m.Texts[name]; !ok || len(text) != size {
			t.Errorf("Texts[%q] = %d bytes (present: %v), want %d", name, len(text), ok, size)
		}
	}
	if m.Texts["templates/sub/b.txt"] != "héllo" {
		t.Errorf("content changed: %q", m.Texts["templates/sub/b.txt"])
	}

	// Without a templates/ folder, no texts.
	dir = t.TempDir()
	writeFiles(t, dir, map[string]string{"main.hcl": minimalModule})
	if m, err := Load(dir); err != nil || m.Texts != nil {
		t.Errorf("Load = %v, %v; want no texts", m, err)
	}
}

// TestTextsLimits: a file under templates/ larger than 64 KiB, or not
// UTF-8, is a diagnostic naming it.
func TestTextsLimits(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"main.hcl":          minimalModule,
		"templates/big.txt": strings.Repeat("x", MaxTextSize+1),
		"templates/bin.dat": "\xff\xfe\x00binary",
		"templates/ok.txt":  "fine",
	})
	_, err := Load(dir)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *Error", err)
	}
	want := "template file templates/big.txt is too large: it holds 65537 bytes; files under templates/ hold at most 65536 (64 KiB): ship larger files as assets\n" +
		"template file templates/bin.dat is not UTF-8 text: files under templates/ are text for templatefile(); ship binary files elsewhere in the module"
	if err.Error() != want {
		t.Errorf("err =\n%v\nwant\n%s", err, want)
	}
}
