package config

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/dtkhq/dtk/internal/limits"
)

// limitField is one attribute of the `limits { ... }` block: a bound of
// limits.Limits, with its flag and the range Validate accepts. Sizes
// (bytes) may be written with a unit: 4194304, "4MiB" and "4 MiB" are
// the same.
type limitField struct {
	name, flag string
	bytes      bool
	min, max   int64
	ptr        func(*limits.Limits) any // *int or *int64
}

// limitFields lists the bounds in documentation order.
var limitFields = []limitField{
	{limits.KeyNestingDepth, "--limits-nesting-depth", false, 8, 1000, func(l *limits.Limits) any { return &l.NestingDepth }},
	{limits.KeyModulePackedBytes, "--limits-module-packed-bytes", true, 1 << 10, 64 << 30, func(l *limits.Limits) any { return &l.ModulePackedBytes }},
	{limits.KeyModuleUnpackedBytes, "--limits-module-unpacked-bytes", true, 1 << 10, 64 << 30, func(l *limits.Limits) any { return &l.ModuleUnpackedBytes }},
	{limits.KeyModuleFiles, "--limits-module-files", false, 1, 1000000, func(l *limits.Limits) any { return &l.ModuleFiles }},
	{limits.KeyHCLFileBytes, "--limits-hcl-file-bytes", true, 4 << 10, 16 << 20, func(l *limits.Limits) any { return &l.HCLFileBytes }},
	{limits.KeyLabelKeyBytes, "--limits-label-key-bytes", true, 1, 4096, func(l *limits.Limits) any { return &l.LabelKeyBytes }},
	{limits.KeyLabelValueBytes, "--limits-label-value-bytes", true, 1, 64 << 10, func(l *limits.Limits) any { return &l.LabelValueBytes }},
	{limits.KeyLabels, "--limits-labels", false, 1, 10000, func(l *limits.Limits) any { return &l.Labels }},
	{limits.KeyNameBytes, "--limits-name-bytes", true, 1, 1024, func(l *limits.Limits) any { return &l.NameBytes }},
	{limits.KeyJSONBodyBytes, "--limits-json-body-bytes", true, 64 << 10, 1 << 30, func(l *limits.Limits) any { return &l.JSONBodyBytes }},
	{limits.KeyReportBodyBytes, "--limits-report-body-bytes", true, 64 << 10, 1 << 30, func(l *limits.Limits) any { return &l.ReportBodyBytes }},
	{limits.KeyReportOutputBytes, "--limits-report-output-bytes", true, 256, 16 << 20, func(l *limits.Limits) any { return &l.ReportOutputBytes }},
}

// limitFieldList is limitFields as fields: coordinator-only, applied at
// the next restart.
func limitFieldList() []field {
	out := make([]field, len(limitFields))
	for i, f := range limitFields {
		out[i] = field{name: f.name, flag: f.flag, coordinatorOnly: true}
	}
	return out
}

func lookupLimit(name string) (limitField, bool) {
	for _, f := range limitFields {
		if f.name == name {
			return f, true
		}
	}
	return limitField{}, false
}

func (f limitField) get(l *limits.Limits) int64 {
	switch p := f.ptr(l).(type) {
	case *int:
		return int64(*p)
	case *int64:
		return *p
	}
	panic("config: limit " + f.name)
}

func (f limitField) set(l *limits.Limits, v int64) {
	switch p := f.ptr(l).(type) {
	case *int:
		*p = int(v)
	case *int64:
		*p = v
	}
}

// units are the suffixes a size may carry.
var units = []struct {
	suffix string
	shift  uint
}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"B", 0}}

// ParseSize reads a size: a whole number of bytes, or one with a unit
// (KiB, MiB, GiB; "256MiB", "256 MiB").
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	shift := uint(0)
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, shift = strings.TrimSpace(num), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is not a size: use a whole number of bytes or one with a unit, such as \"256MiB\", \"64KiB\" or \"1GiB\"", s)
	}
	return n << shift, nil
}

// Size is a size flag (--limits-*-bytes): a number of bytes, or one
// with a unit, as ParseSize reads it.
type Size int64

// UnmarshalText parses a flag's value.
func (s *Size) UnmarshalText(b []byte) error {
	n, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// LimitFlags are the --limits-* flags with the field each sets, in
// documentation order.
func LimitFlags() map[string]string {
	out := map[string]string{}
	for _, f := range limitFields {
		out[strings.TrimPrefix(f.flag, "--")] = f.name
	}
	return out
}

// decodeLimit sets one bound from its attribute: a number, or for sizes
// also a string with a unit.
func (c *Config) decodeLimit(a *hcl.Attribute, v cty.Value, f limitField) *Error {
	var n int64
	switch {
	case v.Type() == cty.Number:
		bf := v.AsBigFloat()
		i, acc := bf.Int64()
		if !bf.IsInt() || acc != big.Exact {
			return c.fileError(a.Expr.Range(), f.name, "must be a whole number, got %s", bf.Text('g', -1))
		}
		n = i
	case v.Type() == cty.String && f.bytes:
		var err error
		if n, err = ParseSize(v.AsString()); err != nil {
			return c.fileError(a.Expr.Range(), f.name, "%v", err)
		}
	case f.bytes:
		return c.fileError(a.Expr.Range(), f.name, "must be a size: a whole number of bytes or a string such as \"256MiB\", got %s", typeName(v.Type()))
	default:
		return c.fileError(a.Expr.Range(), f.name, "must be a whole number, got %s", typeName(v.Type()))
	}
	f.set(&c.Limits, n)
	return nil
}

// validateLimits checks every bound against its range.
func (c *Config) validateLimits() Errors {
	var errs Errors
	for _, f := range limitFields {
		v := f.get(&c.Limits)
		if v >= f.min && v <= f.max {
			continue
		}
		show := strconv.FormatInt
		if f.bytes {
			errs = append(errs, c.fieldError(f.name, nil, "%s is out of range: use %s to %s", limits.Size(v), limits.Size(f.min), limits.Size(f.max)))
			continue
		}
		errs = append(errs, c.fieldError(f.name, nil, "%s is out of range: use %s to %s", show(v, 10), show(f.min, 10), show(f.max, 10)))
	}
	return errs
}
