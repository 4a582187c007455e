package plan

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Functions are the functions available in attribute expressions.
func Functions() map[string]function.Function {
	return map[string]function.Function{
		"format":     stdlib.FormatFunc,
		"join":       stdlib.JoinFunc,
		"split":      stdlib.SplitFunc,
		"upper":      stdlib.UpperFunc,
		"lower":      stdlib.LowerFunc,
		"trimspace":  stdlib.TrimSpaceFunc,
		"replace":    stdlib.ReplaceFunc,
		"concat":     stdlib.ConcatFunc,
		"length":     lengthFunc,
		"lookup":     stdlib.LookupFunc,
		"merge":      stdlib.MergeFunc,
		"keys":       stdlib.KeysFunc,
		"values":     stdlib.ValuesFunc,
		"contains":   stdlib.ContainsFunc,
		"jsonencode": stdlib.JSONEncodeFunc,
		"tostring":   stdlib.MakeToFunc(cty.String),
		"tonumber":   stdlib.MakeToFunc(cty.Number),
		"min":        stdlib.MinFunc,
		"max":        stdlib.MaxFunc,
		// Numbers.
		"abs":      stdlib.AbsoluteFunc,
		"ceil":     stdlib.CeilFunc,
		"floor":    stdlib.FloorFunc,
		"parseint": stdlib.ParseIntFunc,
		// Strings.
		"chomp":      stdlib.ChompFunc,
		"formatlist": stdlib.FormatListFunc,
		"regex":      stdlib.RegexFunc,
		"regexall":   stdlib.RegexAllFunc,
		"strrev":     stdlib.ReverseFunc,
		"substr":     stdlib.SubstrFunc,
		"title":      stdlib.TitleFunc,
		"trim":       stdlib.TrimFunc,
		"trimprefix": stdlib.TrimPrefixFunc,
		"trimsuffix": stdlib.TrimSuffixFunc,
		// Collections.
		"coalesce":     stdlib.CoalesceFunc,
		"coalescelist": stdlib.CoalesceListFunc,
		"compact":      stdlib.CompactFunc,
		"distinct":     stdlib.DistinctFunc,
		"element":      stdlib.ElementFunc,
		"flatten":      stdlib.FlattenFunc,
		"index":        stdlib.IndexFunc,
		"reverse":      stdlib.ReverseListFunc,
		"setunion":     stdlib.SetUnionFunc,
		"slice":        stdlib.SliceFunc,
		"sort":         stdlib.SortFunc,
		"zipmap":       stdlib.ZipmapFunc,
		// Types and encodings.
		"jsondecode": stdlib.JSONDecodeFunc,
		"tobool":     stdlib.MakeToFunc(cty.Bool),
		"tolist":     stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"toset":      stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tomap":      stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		// Errors: can(regex("^a", value)), try(x.y, "default").
		"can": tryfunc.CanFunc,
		"try": tryfunc.TryFunc,
	}
}

// lengthFunc is the length of a collection, or of a string in characters
// (as in Terraform).
var lengthFunc = function.New(&function.Spec{
	Description: "The number of elements of a collection, or of characters of a string.",
	Params: []function.Parameter{{
		Name: "value", Type: cty.DynamicPseudoType,
		AllowDynamicType: true, AllowUnknown: true, AllowMarked: true,
	}},
	Type: func(args []cty.Value) (cty.Type, error) {
		ty := args[0].Type()
		if ty == cty.String || ty == cty.DynamicPseudoType || ty.IsCollectionType() || ty.IsTupleType() || ty.IsObjectType() {
			return cty.Number, nil
		}
		return cty.NilType, function.NewArgErrorf(0, "length of a %s: want a string, a list, a map, a set, a tuple or an object", ty.FriendlyName())
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		v, marks := args[0].Unmark()
		if !v.IsKnown() {
			return cty.UnknownVal(cty.Number).WithMarks(marks), nil
		}
		if v.Type() == cty.String {
			n, err := stdlib.Strlen(v)
			return n.WithMarks(marks), err
		}
		if v.Type().IsObjectType() && v.IsKnown() && !v.IsNull() {
			return cty.NumberIntVal(int64(len(v.Type().AttributeTypes()))).WithMarks(marks), nil
		}
		n, err := stdlib.Length(v)
		return n.WithMarks(marks), err
	},
})

// TemplatesDir is the module folder whose files templatefile renders.
const TemplatesDir = "templates"

// FunctionsFor are the functions of expressions written in module m:
// Functions plus templatefile(path, vars), which renders a file of m's
// templates/ folder (Module.Texts) with HCL template syntax ("${port}",
// "%{ for x in xs }...%{ endfor }"), the keys of vars being its variables.
// Templates may call Functions, but not templatefile.
func FunctionsFor(m *Module) map[string]function.Function {
	fs := Functions()
	fs["templatefile"] = templateFileFunc(m)
	return fs
}

func templateFileFunc(m *Module) function.Function {
	return function.New(&function.Spec{
		Description: "Renders a file of the module's templates/ folder with the given variables.",
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
			{Name: "vars", Type: cty.DynamicPseudoType},
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := path.Clean(args[0].AsString())
			var text string
			ok := false
			if m != nil {
				text, ok = m.Texts[p]
			}
			if !ok {
				return cty.NilVal, function.NewArgErrorf(0, "no file %q under the module's %s/ folder%s", args[0].AsString(), TemplatesDir, textsHint(m))
			}
			vars := args[1]
			ty := vars.Type()
			if vars.IsNull() || !(ty.IsObjectType() || ty.IsMapType()) {
				return cty.NilVal, function.NewArgErrorf(1, "the variables must be an object, such as { port = 80 }")
			}
			ctxVars := map[string]cty.Value{}
			for it := vars.ElementIterator(); it.Next(); {
				k, v := it.Element()
				ctxVars[k.AsString()] = v
			}
			tmpl, diags := hclsyntax.ParseTemplate([]byte(text), p, hcl.InitialPos)
			if diags.HasErrors() {
				return cty.NilVal, function.NewArgErrorf(0, "%s", PositionedError(diags))
			}
			v, diags := tmpl.Value(&hcl.EvalContext{Variables: ctxVars, Functions: Functions()})
			if diags.HasErrors() {
				return cty.NilVal, function.NewArgErrorf(0, "%s", PositionedError(diags))
			}
			if v.IsNull() {
				return cty.NilVal, function.NewArgErrorf(0, "%s renders to null", p)
			}
			out, err := convert.Convert(v, cty.String)
			if err != nil {
				return cty.NilVal, function.NewArgErrorf(0, "%s renders to a %s, not a string", p, v.Type().FriendlyName())
			}
			return out, nil
		},
	})
}

// textsHint lists a module's template files for an error message.
func textsHint(m *Module) string {
	if m == nil || len(m.Texts) == 0 {
		return " (the module has no templates/ folder)"
	}
	names := make([]string, 0, len(m.Texts))
	for k := range m.Texts {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) > 5 {
		names = append(names[:5], "...")
	}
	return " (it has " + strings.Join(names, ", ") + ")"
}

// PositionedError is diags as one error, each with its file:line:col.
func PositionedError(diags hcl.Diagnostics) error {
	var msgs []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		m := d.Summary
		if d.Detail != "" {
			m += ": " + d.Detail
		}
		if d.Subject != nil {
			m = fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, m)
		}
		msgs = append(msgs, m)
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}
