package dsl

import (
	"testing"
)

// TestModuleVersionForms: every semver 2.0.0 version is a module version,
// build metadata included; the constraint forms docs/dsl.md shows load.
func TestModuleVersionForms(t *testing.T) {
	for _, v := range []string{"1.0.0", "1.0.0-rc.10", "1.0.0-alpha.beta.1", "1.0.0+build.5", "1.0.0-rc.1+exp.sha.5114f85", "0.0.0-x-y-z.--"} {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"main.hcl": `module {
  name    = "m"
  version = "` + v + `"
  requires "a" { version = "~> 1.2" }
  requires "b" { version = ">= 1.2.0, < 2.0.0" }
  requires "c" { version = ">= 1.0, < 2.0" }
  requires "d" { version = "~> 1.2.3" }
  requires "e" { version = "1.0.0-rc.10" }
  requires "f" { version = "!= 1.5.0, >1, <=3" }
}
`})
		m, err := Load(dir)
		if err != nil {
			t.Errorf("version %q: %v", v, err)
			continue
		}
		if m.Version != v {
			t.Errorf("Version = %q, want %q", m.Version, v)
		}
	}
}
