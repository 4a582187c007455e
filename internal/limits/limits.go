// Package limits holds the bounds a coordinator puts on what one request
// may carry: the `limits { ... }` block of the configuration (parsed by
// internal/config, enforced by the coordinator, the DSL loader, the
// archive unpacker and internal/hclguard). Each bound has a configuration
// key, and every refusal names it (Refusal), so that an operator who meets
// one knows what to raise.
package limits

import "fmt"

// Keys of the bounds, as written in the configuration file.
const (
	KeyNestingDepth        = "limits.nesting_depth"
	KeyModulePackedBytes   = "limits.module_packed_bytes"
	KeyModuleUnpackedBytes = "limits.module_unpacked_bytes"
	KeyModuleFiles         = "limits.module_files"
	KeyHCLFileBytes        = "limits.hcl_file_bytes"
	KeyLabelKeyBytes       = "limits.label_key_bytes"
	KeyLabelValueBytes     = "limits.label_value_bytes"
	KeyLabels              = "limits.labels"
	KeyNameBytes           = "limits.name_bytes"
	KeyJSONBodyBytes       = "limits.json_body_bytes"
	KeyReportBodyBytes     = "limits.report_body_bytes"
	KeyReportOutputBytes   = "limits.report_output_bytes"
)

// Limits are a coordinator's bounds. Every field is a bound (zero allows
// nothing): start from Default.
type Limits struct {
	// NestingDepth bounds how deep expressions in module source nest
	// (parentheses, brackets, braces, interpolations, function calls):
	// the HCL parser recurses once per level.
	NestingDepth int
	// ModulePackedBytes bounds a module push's body (the tar.gz archive).
	ModulePackedBytes int64
	// ModuleUnpackedBytes bounds what a module archive unpacks to, all
	// files together (and so each one).
	ModuleUnpackedBytes int64
	// ModuleFiles bounds the entries (files and folders) of a module.
	ModuleFiles int
	// HCLFileBytes bounds each .hcl file of a module: lexing and parsing
	// take up to about 400 times the text in memory (a file of nothing but
	// parentheses is one token a byte).
	HCLFileBytes int64
	// LabelKeyBytes, LabelValueBytes and Labels bound node labels (a
	// node's own, an operator's, a join token's).
	LabelKeyBytes   int
	LabelValueBytes int
	Labels          int
	// NameBytes bounds the names a module declares (module, component,
	// template, action, instance). Node, service and policy names follow
	// the shared name rule (internal/names: at most 63 bytes) whatever
	// this says, because certificates carry them.
	NameBytes int
	// JSONBodyBytes bounds the body of every JSON API request except
	// reports.
	JSONBodyBytes int64
	// ReportBodyBytes bounds the body of an agent's report batch (step
	// reports, operation results).
	ReportBodyBytes int64
	// ReportOutputBytes is how much of a step's output tail the
	// coordinator keeps per report; the rest is cut, with a marker.
	ReportOutputBytes int
}

// Default is what a coordinator uses when its configuration sets nothing.
func Default() Limits {
	return Limits{
		NestingDepth:        64,
		ModulePackedBytes:   256 << 20,
		ModuleUnpackedBytes: 256 << 20,
		ModuleFiles:         10000,
		HCLFileBytes:        256 << 10,
		LabelKeyBytes:       255,
		LabelValueBytes:     255,
		Labels:              64,
		NameBytes:           63,
		JSONBodyBytes:       4 << 20,
		ReportBodyBytes:     4 << 20,
		ReportOutputBytes:   4 << 10,
	}
}

// Refusal is the message of a request refused by the bound key: what
// passed the bound, then the key and how to raise it, e.g. "module unpacks
// to more than 256 MiB (limits.module_unpacked_bytes); raise it in the
// coordinator config".
func Refusal(key, format string, args ...any) string {
	return fmt.Sprintf(format, args...) + fmt.Sprintf(" (%s); raise it in the coordinator config", key)
}

// Size formats n bytes for a message: "256 MiB", "64 KiB", "1000 bytes".
func Size(n int64) string {
	for _, u := range []struct {
		unit  string
		shift uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.unit)
		}
	}
	if n == 1 {
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}
