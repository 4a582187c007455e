package dsl

import (
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/dtkhq/dtk/plan"
)

// Diagnostic is one problem found in a module folder.
//
// Pos is embedded so that its JSON encoding is flat:
//
//	{"file": "main.hcl", "line": 12, "column": 5, "summary": "...", "detail": "...", "excerpt": "..."}
//
// A diagnostic that concerns the module as a whole (for example a missing
// module block) has a zero Pos and no excerpt.
type Diagnostic struct {
	plan.Pos
	Summary string `json:"summary"`
	Detail  string `json:"detail,omitempty"`
	// Excerpt is the offending source line followed by a line holding a
	// caret under Pos.Column (two lines, not indented); empty when the
	// diagnostic has no position.
	Excerpt string `json:"excerpt,omitempty"`
}

// String formats the diagnostic as "file:line:col: summary: detail",
// followed by the excerpt indented by four spaces.
func (d Diagnostic) String() string {
	var b strings.Builder
	if p := d.Pos.String(); p != "" {
		b.WriteString(p)
		b.WriteString(": ")
	}
	b.WriteString(d.Summary)
	if d.Detail != "" {
		b.WriteString(": ")
		b.WriteString(d.Detail)
	}
	if d.Excerpt != "" {
		for _, line := range strings.Split(d.Excerpt, "\n") {
			b.WriteString("\n    ")
			b.WriteString(line)
		}
	}
	return b.String()
}

// Error is returned by Load when a module folder has problems. It holds
// every diagnostic found, not just the first.
type Error struct {
	diags []Diagnostic
}

// Diagnostics returns the problems found, ordered by position (diagnostics
// without a position last).
func (e *Error) Diagnostics() []Diagnostic {
	return append([]Diagnostic(nil), e.diags...)
}

// Error formats every diagnostic (see Diagnostic.String), separated by
// newlines.
func (e *Error) Error() string {
	parts := make([]string, len(e.diags))
	for i, d := range e.diags {
		parts[i] = d.String()
	}
	return strings.Join(parts, "\n")
}

// newError converts HCL error diagnostics into an *Error, taking excerpts
// from srcs (file name → content). It returns nil if diags holds no error.
func newError(diags hcl.Diagnostics, srcs map[string][]byte) *Error {
	var out []Diagnostic
	for _, hd := range diags {
		if hd.Severity != hcl.DiagError {
			continue
		}
		d := Diagnostic{Summary: hd.Summary, Detail: hd.Detail}
		if rng := hd.Subject; rng != nil {
			d.Pos = plan.Pos{File: rng.Filename, Line: rng.Start.Line, Column: rng.Start.Column}
			if src, ok := srcs[rng.Filename]; ok {
				d.Excerpt = excerpt(src, rng.Start.Byte)
			}
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Pos, out[j].Pos
		if (a.File == "") != (b.File == "") {
			return b.File == ""
		}
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return &Error{diags: out}
}

// excerpt returns the line of src holding byte offset off, and a caret line
// pointing at off. Tabs before the column are kept so that the caret lines
// up however tabs are displayed.
func excerpt(src []byte, off int) string {
	if off < 0 {
		off = 0
	}
	if off > len(src) {
		off = len(src)
	}
	start := off
	for start > 0 && src[start-1] != '\n' {
		start--
	}
	end := off
	for end < len(src) && src[end] != '\n' {
		end++
	}
	line := strings.TrimRight(string(src[start:end]), "\r")
	var caret strings.Builder
	for _, r := range string(src[start:off]) {
		if r == '\t' {
			caret.WriteByte('\t')
		} else {
			caret.WriteByte(' ')
		}
	}
	caret.WriteByte('^')
	return line + "\n" + caret.String()
}
