package dsl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/hclguard"
)

func writeModule(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadWithin_NestingDepthIsConfigurable(t *testing.T) {
	expr := strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100)
	dir := writeModule(t, "module {\n  name    = \"m\"\n  version = \"1.0.0\"\n}\n\nx = "+expr+"\n")
	lim := Limits{Guard: hclguard.Limits{Depth: 64, Setting: "limits.nesting_depth"}, NameBytes: 63}
	_, err := LoadWithin(dir, lim)
	if err == nil || !strings.Contains(err.Error(), "expressions nest deeper than 64 levels (limits.nesting_depth)") ||
		!strings.Contains(err.Error(), "raise limits.nesting_depth in the coordinator config") {
		t.Fatalf("LoadWithin depth 64: %v, want the limit named with how to raise it", err)
	}
	lim.Guard.Depth = 200
	if _, err := LoadWithin(dir, lim); err != nil && strings.Contains(err.Error(), "nest deeper") {
		t.Fatalf("LoadWithin depth 200: %v", err)
	}
}

func TestLoadWithin_RefusesLongNames(t *testing.T) {
	long := "c" + strings.Repeat("x", 99)
	dir := writeModule(t, "module {\n  name    = \"m\"\n  version = \"1.0.0\"\n}\n\ncomponent \""+long+"\" {\n}\n")
	_, err := LoadWithin(dir, Limits{NameBytes: 63, NameSetting: "limits.name_bytes"})
	if err == nil || !strings.Contains(err.Error(), "is longer than 63 bytes (limits.name_bytes)") || !strings.HasPrefix(err.Error(), "main.hcl:6:") {
		t.Fatalf("LoadWithin: %v, want the name limit at main.hcl:6", err)
	}
	_, err = LoadWithin(dir, Limits{NameBytes: 100})
	if err != nil && strings.Contains(err.Error(), "longer than") {
		t.Fatalf("LoadWithin with name_bytes 100: %v", err)
	}
	// A module name too.
	dir = writeModule(t, "module {\n  name    = \""+long+"\"\n  version = \"1.0.0\"\n}\n")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "module name") || !strings.Contains(err.Error(), "longer than 63 bytes") {
		t.Fatalf("Load: %v, want the module name refused", err)
	}
}

func TestLoad_RefusesHugeSource(t *testing.T) {
	src := "module {\n  name    = \"m\"\n  version = \"1.0.0\"\n}\n" + strings.Repeat("# padding\n", 1<<20/10+1)
	dir := writeModule(t, src)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "main.hcl is larger than 1048576 bytes") {
		t.Fatalf("Load: %.200v, want main.hcl refused as too large", err)
	}
	_, err := LoadWithin(writeModule(t, src[:2000]), Limits{SourceBytes: 1000, SourceSetting: "limits.hcl_file_bytes"})
	if err == nil || !strings.Contains(err.Error(), "main.hcl is larger than 1000 bytes (limits.hcl_file_bytes)") ||
		!strings.Contains(err.Error(), "raise limits.hcl_file_bytes in the coordinator config") {
		t.Fatalf("LoadWithin: %.300v, want the setting named", err)
	}
}
