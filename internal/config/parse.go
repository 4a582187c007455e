package config

import (
	"errors"
	"math/big"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/dtkhq/dtk/internal/hclguard"
)

// schema accepts every field as an optional attribute and nothing else;
// HCL rejects the rest with a "did you mean" suggestion.
var schema = func() *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, b := range blocks {
		s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: b})
	}
	for _, f := range fields {
		if !strings.Contains(f.name, ".") {
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: f.name})
		}
	}
	return s
}()

// blocks are the `NAME { ... }` blocks of the file; their fields are named
// "NAME.attribute".
var blocks = []string{"tls", "acl", "ui", "limits", "http", "modules"}

// blockSchema is the schema of one block's body.
func blockSchema(block string) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, f := range fields {
		if name, ok := strings.CutPrefix(f.name, block+"."); ok {
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: name})
		}
	}
	return s
}

// Load reads the file at path over the defaults. Like Parse, it does not
// Validate: flags may still be merged first.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, Errors{{Where: path, Msg: "no such file (the dtk package installs a commented one; reference: docs/install.md)"}}
		}
		return nil, Errors{{Where: path, Msg: err.Error()}}
	}
	return Parse(src, path)
}

// Parse decodes src (named filename in errors) over the defaults. It
// reports every syntax, unknown-field and type error it finds (an Errors),
// and returns the configuration even then, with the fields it could
// decode; Validate checks the values.
func Parse(src []byte, filename string) (*Config, error) {
	c := Default()
	c.File = filename
	c.src = src
	if diags := hclguard.Config(src, filename, hcl.InitialPos); diags.HasErrors() {
		return c, c.diagErrors(diags)
	}
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return c, c.diagErrors(diags)
	}
	content, diags := f.Body.Content(schema)
	errs := c.diagErrors(diags)
	type named struct {
		field string
		attr  *hcl.Attribute
	}
	var attrs []named
	for _, a := range content.Attributes {
		attrs = append(attrs, named{a.Name, a})
	}
	seen := map[string]bool{}
	for _, b := range content.Blocks {
		if seen[b.Type] {
			errs = append(errs, c.fileError(b.DefRange, b.Type, "only one %s block is allowed", b.Type))
			continue
		}
		seen[b.Type] = true
		if len(b.Labels) > 0 {
			errs = append(errs, c.fileError(b.DefRange, b.Type, "the %s block takes no label", b.Type))
		}
		bc, diags := b.Body.Content(blockSchema(b.Type))
		errs = append(errs, c.diagErrors(diags)...)
		for _, a := range bc.Attributes {
			attrs = append(attrs, named{b.Type + "." + a.Name, a})
		}
	}
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].attr.Range.Start.Byte < attrs[j].attr.Range.Start.Byte })
	for _, a := range attrs {
		errs = append(errs, c.decode(a.field, a.attr)...)
	}
	sortErrors(errs)
	return c, errs.orNil()
}

// Check parses src and validates the result, returning every error of
// both kinds (an Errors) or nil: what `dtk-agent config check` prints.
func Check(src []byte, filename string) (*Config, error) {
	c, err := Parse(src, filename)
	return c, Join(err, c.Validate())
}

// Join merges errors (Errors or others) into one Errors sorted by position,
// or nil.
func Join(errs ...error) error {
	var out Errors
	for _, err := range errs {
		var es Errors
		switch {
		case err == nil:
		case errors.As(err, &es):
			out = append(out, es...)
		default:
			out = append(out, &Error{Msg: err.Error()})
		}
	}
	sortErrors(out)
	return out.orNil()
}

// decode sets one field from its attribute.
func (c *Config) decode(field string, a *hcl.Attribute) Errors {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return c.diagErrors(diags)
	}
	if v.IsNull() {
		return nil // same as leaving it out
	}
	o := origin{kind: fromFile, rng: a.Expr.Range()}
	var err *Error
	switch field {
	case FieldName:
		err = c.decodeString(a, v, &c.Name)
	case FieldDataDir:
		err = c.decodeString(a, v, &c.DataDir)
	case FieldHTTPAddr:
		err = c.decodeString(a, v, &c.HTTPAddr)
	case FieldSerfAddr:
		err = c.decodeString(a, v, &c.SerfAddr)
	case FieldRaftAddr:
		err = c.decodeString(a, v, &c.RaftAddr)
	case FieldLogLevel:
		err = c.decodeString(a, v, &c.LogLevel)
	case FieldLogFormat:
		err = c.decodeString(a, v, &c.LogFormat)
	case FieldMetricsAddr:
		err = c.decodeString(a, v, &c.MetricsAddr)
	case FieldStepUser:
		err = c.decodeString(a, v, &c.StepUser)
	case FieldStepGroup:
		err = c.decodeString(a, v, &c.StepGroup)
	case FieldCoordinator:
		err = c.decodeBool(a, v, &c.Coordinator)
	case FieldNoAgent:
		err = c.decodeBool(a, v, &c.NoAgent)
	case FieldReadReplica:
		err = c.decodeBool(a, v, &c.ReadReplica)
	case FieldDropBinaryPages:
		err = c.decodeBool(a, v, &c.DropBinaryPages)
	case FieldBootstrapExpect:
		err = c.decodeInt(a, v, &c.BootstrapExpect)
	case FieldPollWait:
		err = c.decodeDuration(a, v, &c.PollWait)
	case FieldReconcileInterval:
		err = c.decodeDuration(a, v, &c.ReconcileInterval)
	case FieldTLSCAFile:
		err = c.decodeString(a, v, &c.TLSCAFile)
	case FieldTLSCertFile:
		err = c.decodeString(a, v, &c.TLSCertFile)
	case FieldTLSKeyFile:
		err = c.decodeString(a, v, &c.TLSKeyFile)
	case FieldTLSCAKeyFile:
		err = c.decodeString(a, v, &c.TLSCAKeyFile)
	case FieldCAFingerprint:
		err = c.decodeString(a, v, &c.CAFingerprint)
	case FieldEncrypt:
		err = c.decodeString(a, v, &c.Encrypt)
	case FieldKeyringFile:
		err = c.decodeString(a, v, &c.KeyringFile)
	case FieldJoinToken:
		err = c.decodeString(a, v, &c.JoinToken)
	case FieldInsecure:
		err = c.decodeBool(a, v, &c.Insecure)
	case FieldNodeCertTTL:
		err = c.decodeDuration(a, v, &c.NodeCertTTL)
	case FieldNodeGCAfter:
		err = c.decodeDuration(a, v, &c.NodeGCAfter)
	case FieldACLEnabled:
		err = c.decodeBool(a, v, &c.ACLEnabled)
	case FieldHTTPReadHeaderTimeout:
		err = c.decodeDuration(a, v, &c.HTTPReadHeaderTimeout)
	case FieldHTTPReadTimeout:
		err = c.decodeDuration(a, v, &c.HTTPReadTimeout)
	case FieldHTTPWriteTimeout:
		err = c.decodeDuration(a, v, &c.HTTPWriteTimeout)
	case FieldHTTPIdleTimeout:
		err = c.decodeDuration(a, v, &c.HTTPIdleTimeout)
	case FieldUIEnabled:
		err = c.decodeBool(a, v, &c.UIEnabled)
	case FieldModulesRequireSignature:
		err = c.decodeBool(a, v, &c.ModulesRequireSignature)
	case FieldEnrollAddr:
		var elems []hcl.Range
		err, elems = c.decodeList(a, v, &c.EnrollAddr, addrList)
		o.elems = elems
	case FieldJoin:
		var elems []hcl.Range
		err, elems = c.decodeList(a, v, &c.Join, addrList)
		o.elems = elems
	case FieldModulesTrustedKeys:
		var elems []hcl.Range
		err, elems = c.decodeList(a, v, &c.ModulesTrustedKeys, pathList)
		o.elems = elems
	case FieldLabels:
		var keys map[string]hcl.Range
		err, keys = c.decodeMap(a, v)
		o.keys = keys
	default:
		if f, ok := lookupLimit(field); ok {
			err = c.decodeLimit(a, v, f)
		}
	}
	if err != nil {
		return Errors{err}
	}
	c.origins[field] = o
	return nil
}

func typeName(t cty.Type) string {
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Number:
		return "a number"
	case t == cty.Bool:
		return "a bool"
	case t.IsTupleType() || t.IsListType():
		return "a list"
	case t.IsObjectType() || t.IsMapType():
		return "a map"
	}
	return t.FriendlyName()
}

func (c *Config) decodeString(a *hcl.Attribute, v cty.Value, dst *string) *Error {
	if !v.Type().IsPrimitiveType() || v.Type() == cty.Bool {
		return c.fileError(a.Expr.Range(), a.Name, "must be a string, got %s", typeName(v.Type()))
	}
	s, _ := convert.Convert(v, cty.String)
	*dst = s.AsString()
	return nil
}

func (c *Config) decodeBool(a *hcl.Attribute, v cty.Value, dst *bool) *Error {
	if v.Type() != cty.Bool {
		return c.fileError(a.Expr.Range(), a.Name, "must be true or false, got %s", typeName(v.Type()))
	}
	*dst = v.True()
	return nil
}

func (c *Config) decodeInt(a *hcl.Attribute, v cty.Value, dst *int) *Error {
	if v.Type() != cty.Number {
		return c.fileError(a.Expr.Range(), a.Name, "must be a whole number, got %s", typeName(v.Type()))
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return c.fileError(a.Expr.Range(), a.Name, "must be a whole number, got %s", bf.Text('g', -1))
	}
	i, acc := bf.Int64()
	if acc != big.Exact || i > 1<<20 || i < -(1<<20) {
		return c.fileError(a.Expr.Range(), a.Name, "%s is out of range", bf.Text('g', -1))
	}
	*dst = int(i)
	return nil
}

func (c *Config) decodeDuration(a *hcl.Attribute, v cty.Value, dst *time.Duration) *Error {
	if v.Type() != cty.String {
		return c.fileError(a.Expr.Range(), a.Name, "must be a duration in quotes such as \"30s\", \"5m\" or \"1h\", got %s", typeName(v.Type()))
	}
	d, err := time.ParseDuration(v.AsString())
	if err != nil {
		return c.fileError(a.Expr.Range(), a.Name, "%q is not a duration: use a number and a unit such as \"30s\", \"5m\" or \"1h\"", v.AsString())
	}
	*dst = d
	return nil
}

// listKind says what a list attribute holds, for its errors.
type listKind struct{ elem, example string }

var (
	addrList = listKind{`"host:port" string`, `["10.0.0.1:7946"]`}
	pathList = listKind{"file path", `["/etc/dtk/keys/team.pub"]`}
)

func (c *Config) decodeList(a *hcl.Attribute, v cty.Value, dst *[]string, kind listKind) (*Error, []hcl.Range) {
	t := v.Type()
	if !t.IsTupleType() && !t.IsListType() && !t.IsSetType() {
		return c.fileError(a.Expr.Range(), a.Name, "must be a list of %ss, e.g. %s, got %s", kind.elem, kind.example, typeName(t)), nil
	}
	var elems []hcl.Range
	if exprs, diags := hcl.ExprList(a.Expr); !diags.HasErrors() {
		for _, e := range exprs {
			elems = append(elems, e.Range())
		}
	}
	var out []string
	i := 0
	for it := v.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		r := a.Expr.Range()
		if i < len(elems) {
			r = elems[i]
		}
		if ev.IsNull() || !ev.Type().IsPrimitiveType() || ev.Type() == cty.Bool {
			return c.fileError(r, a.Name, "element %d must be a %s, got %s", i+1, kind.elem, typeName(ev.Type())), nil
		}
		s, _ := convert.Convert(ev, cty.String)
		out = append(out, s.AsString())
	}
	*dst = out
	return nil, elems
}

func (c *Config) decodeMap(a *hcl.Attribute, v cty.Value) (*Error, map[string]hcl.Range) {
	t := v.Type()
	if !t.IsObjectType() && !t.IsMapType() {
		return c.fileError(a.Expr.Range(), a.Name, "must be a map of strings, e.g. { role = \"web\" }, got %s", typeName(t)), nil
	}
	keys := map[string]hcl.Range{}
	vals := map[string]hcl.Range{}
	if pairs, diags := hcl.ExprMap(a.Expr); !diags.HasErrors() {
		for _, p := range pairs {
			kv, diags := p.Key.Value(nil)
			if diags.HasErrors() || kv.IsNull() || kv.Type() != cty.String {
				continue
			}
			keys[kv.AsString()] = p.Key.Range()
			vals[kv.AsString()] = p.Value.Range()
		}
	}
	out := map[string]string{}
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		key := k.AsString()
		r, ok := vals[key]
		if !ok {
			r = a.Expr.Range()
		}
		if ev.IsNull() || !ev.Type().IsPrimitiveType() || ev.Type() == cty.Bool {
			return c.fileError(r, a.Name, "label %q must be a string, got %s", key, typeName(ev.Type())), nil
		}
		s, _ := convert.Convert(ev, cty.String)
		out[key] = s.AsString()
	}
	c.Labels = out
	return nil, keys
}

// sortErrors orders errors by position so that a file reads top to bottom;
// errors without a position come last.
func sortErrors(es Errors) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].at, es[j].at
		switch {
		case a.Line == 0 || b.Line == 0:
			return a.Line != 0 && b.Line == 0
		case a.Line != b.Line:
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// Resolve builds the configuration of one run: the defaults, then the file
// at path (or DefaultPath when path is "" and that file exists), then the
// flags in o; then it validates. It returns every error (an Errors) or the
// configuration.
func Resolve(path string, o Overrides) (*Config, error) {
	c := Default()
	var err error
	if path == "" {
		if _, serr := os.Stat(DefaultPath); serr == nil {
			path = DefaultPath
		}
	}
	if path != "" {
		c, err = Load(path)
		if c == nil {
			return nil, err
		}
	}
	c.Apply(o)
	if err := Join(err, c.Validate()); err != nil {
		return nil, err
	}
	return c, nil
}
