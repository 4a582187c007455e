package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/limits"
)

const coordHead = `coordinator = true
insecure    = true
`

func TestParse_Limits_Defaults(t *testing.T) {
	c, err := Check([]byte(coordHead), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits != limits.Default() {
		t.Errorf("limits %+v, want the defaults %+v", c.Limits, limits.Default())
	}
	d := limits.Default()
	if d.ModulePackedBytes != 256<<20 || d.ModuleUnpackedBytes != 256<<20 || d.JSONBodyBytes != 4<<20 || d.NestingDepth != 64 || d.ReportOutputBytes != 4096 {
		t.Errorf("defaults changed: %+v (update docs/install.md and docs/security.md too)", d)
	}
	for _, f := range limitFields {
		if c.IsSet(f.name) || c.Where(f.name) != "default" {
			t.Errorf("%s: set by default", f.name)
		}
	}
}

func TestParse_Limits_Overrides(t *testing.T) {
	src := coordHead + `limits {
  nesting_depth         = 128
  module_packed_bytes   = "1GiB"
  module_unpacked_bytes = "2 GiB"
  module_files          = 50000
  hcl_file_bytes        = "1MiB"
  label_key_bytes       = 63
  label_value_bytes     = "1KiB"
  labels                = 100
  name_bytes            = 100
  json_body_bytes       = 8388608
  report_body_bytes     = "16MiB"
  report_output_bytes   = "64KiB"
}
`
	c, err := Check([]byte(src), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := limits.Limits{NestingDepth: 128, ModulePackedBytes: 1 << 30, ModuleUnpackedBytes: 2 << 30, ModuleFiles: 50000,
		HCLFileBytes: 1 << 20, LabelKeyBytes: 63, LabelValueBytes: 1024, Labels: 100, NameBytes: 100, JSONBodyBytes: 8 << 20,
		ReportBodyBytes: 16 << 20, ReportOutputBytes: 64 << 10}
	if c.Limits != want {
		t.Errorf("got  %+v\nwant %+v", c.Limits, want)
	}
	if w := c.Where(limits.KeyModulePackedBytes); w != "agent.hcl:5:27" {
		t.Errorf("Where(module_packed_bytes) = %q", w)
	}

	// A flag wins over the file, and service install renders it again.
	v := int64(64 << 20)
	o := Overrides{Limits: map[string]int64{limits.KeyModulePackedBytes: v}}
	c.Apply(o)
	if c.Limits.ModulePackedBytes != v || c.Where(limits.KeyModulePackedBytes) != "--limits-module-packed-bytes" {
		t.Errorf("after the flag: %d from %s", c.Limits.ModulePackedBytes, c.Where(limits.KeyModulePackedBytes))
	}
	if args := strings.Join(o.Args(), " "); args != "--limits-module-packed-bytes 67108864" {
		t.Errorf("Args() = %q", args)
	}
	// A change is reported, as needing a restart.
	d := Diff(Default(), c)
	found := false
	for _, ch := range d {
		if ch.Field == limits.KeyModulePackedBytes {
			found = !ch.Runtime
		}
	}
	if !found {
		t.Errorf("Diff = %+v, want %s needing a restart", d, limits.KeyModulePackedBytes)
	}
}

func TestParse_Limits_Invalid(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"too small", `module_packed_bytes = 10`, `agent.hcl:4:25: limits.module_packed_bytes: 10 bytes is out of range: use 1 KiB to 64 GiB`},
		{"too deep", `nesting_depth = 100000`, `agent.hcl:4:19: limits.nesting_depth: 100000 is out of range: use 8 to 1000`},
		{"negative", `labels = -1`, `agent.hcl:4:12: limits.labels: -1 is out of range: use 1 to 10000`},
		{"fraction", `module_files = 1.5`, `agent.hcl:4:18: limits.module_files: must be a whole number, got 1.5`},
		{"bad unit", `json_body_bytes = "4 MB"`, `agent.hcl:4:21: limits.json_body_bytes: "4 MB" is not a size`},
		{"unit on a count", `module_files = "10KiB"`, `agent.hcl:4:18: limits.module_files: must be a whole number, got a string`},
		{"bool", `report_output_bytes = true`, `agent.hcl:4:25: limits.report_output_bytes: must be a size`},
		{"unknown", `module_size = 1`, `agent.hcl:4:3: Unsupported argument: An argument named "module_size" is not expected here`},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := coordHead + "limits {\n  " + c.body + "\n}\n"
			_, err := Check([]byte(src), "agent.hcl")
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), c.want) {
				t.Fatalf("got %v, want one error starting %q", err, c.want)
			}
		})
	}
	// On an agent, the block means nothing: say so.
	_, err := Check([]byte("limits {\n  labels = 10\n}\n"), "agent.hcl")
	if err == nil || !strings.Contains(err.Error(), "agent.hcl:2:12: limits.labels: only a coordinator uses this") {
		t.Errorf("agent with limits: %v", err)
	}
	// A bad flag is named as the flag.
	cfg := Default()
	cfg.Coordinator, cfg.Insecure = true, true
	cfg.Apply(Overrides{Limits: map[string]int64{limits.KeyReportOutputBytes: 1}})
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--limits-report-output-bytes: 1 byte is out of range") {
		t.Errorf("flag out of range: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "100": 100, "64KiB": 64 << 10, "4 MiB": 4 << 20, "1GiB": 1 << 30, "12B": 12} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5GiB", "4MB", "99999999999GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}
