package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Error is one problem with a configuration.
type Error struct {
	// Where is "FILE:LINE:COL" for a value from the file, "--flag" for a
	// value given on the command line, or a file name alone.
	Where string
	// Field is the field at fault ("" for syntax errors and unknown
	// fields).
	Field string
	Msg   string
	// Excerpt is the source line and a caret under the position, when the
	// value came from the file.
	Excerpt string

	at hcl.Pos // for sorting; zero when not from the file
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Where != "" {
		b.WriteString(e.Where)
		b.WriteString(": ")
	}
	// A flag already names the field.
	if e.Field != "" && !strings.HasPrefix(e.Where, "--") {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found, in file order. It is the error that
// Parse, Load and Validate return.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Verbose prints every error with its source excerpt.
func (es Errors) Verbose() string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.Error())
		b.WriteByte('\n')
		if e.Excerpt != "" {
			b.WriteString(e.Excerpt)
		}
	}
	return b.String()
}

func (es Errors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// excerpt is the line of src that r starts on, with a caret under the
// column.
func excerpt(src []byte, r hcl.Range) string {
	if src == nil || r.Start.Line < 1 {
		return ""
	}
	lines := strings.Split(string(src), "\n")
	if r.Start.Line > len(lines) {
		return ""
	}
	line := strings.TrimRight(lines[r.Start.Line-1], "\r")
	col := max(r.Start.Column-1, 0)
	if col > len(line) {
		col = len(line)
	}
	// Keep tabs so that the caret lines up.
	pad := []rune{}
	for _, ch := range line[:col] {
		if ch == '\t' {
			pad = append(pad, '\t')
		} else {
			pad = append(pad, ' ')
		}
	}
	return fmt.Sprintf("    %s\n    %s^\n", line, string(pad))
}

// fileError is an error about a value at r in the file.
func (c *Config) fileError(r hcl.Range, fieldName, format string, args ...any) *Error {
	return &Error{Where: pos(r), Field: fieldName, Msg: fmt.Sprintf(format, args...), Excerpt: excerpt(c.src, r), at: r.Start}
}

// fieldError is an error about a field wherever it was set; at is the
// range to point at when it came from the file.
func (c *Config) fieldError(fieldName string, at *hcl.Range, format string, args ...any) *Error {
	o := c.origins[fieldName]
	if o.kind == fromFile {
		r := o.rng
		if at != nil {
			r = *at
		}
		return c.fileError(r, fieldName, format, args...)
	}
	where := o.where(fieldName)
	if o.kind == fromDefault {
		where = "default " + fieldName
		fieldName = ""
	}
	return &Error{Where: where, Field: fieldName, Msg: fmt.Sprintf(format, args...)}
}

// diagErrors turns HCL diagnostics into errors.
func (c *Config) diagErrors(diags hcl.Diagnostics) Errors {
	var out Errors
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + strings.TrimSuffix(d.Detail, ".")
		}
		e := &Error{Msg: msg}
		if d.Subject != nil {
			e.Where = pos(*d.Subject)
			e.Excerpt = excerpt(c.src, *d.Subject)
			e.at = d.Subject.Start
		}
		out = append(out, e)
	}
	return out
}
