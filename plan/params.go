package plan

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// ResolveParams evaluates the params of a puppet or ansible action (class
// parameter or role variable → expression over the component's
// attributes, each a variable of its own name) against a step's resolved
// attributes. It returns nil when the action has no params (the runner
// then passes every attribute). A null result is kept as null: the runner
// leaves it out, so that the class's or role's default applies. Errors
// carry the expression's file:line:col in the component's module.
//
// The compiler calls it to refuse a plan whose params cannot be evaluated,
// StepDigest to cover what the step passes, and the runner to pass it.
func ResolveParams(a *Action, attrs map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	if a == nil || a.Params == nil {
		return nil, nil
	}
	vars := make(map[string]cty.Value, len(attrs))
	for name, raw := range attrs {
		v, err := jsonToCty(raw)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", name, err)
		}
		vars[name] = v
	}
	ctx := &hcl.EvalContext{Variables: vars, Functions: Functions()}
	out := make(map[string]json.RawMessage, len(a.Params))
	for _, name := range sortedKeys(a.Params) {
		e := a.Params[name]
		v, err := (*compiler)(nil).evalExpr(e, ctx)
		if err == nil && !v.IsWhollyKnown() {
			err = errors.New("the value is not known yet")
		}
		if err != nil {
			return nil, &ParamError{Name: name, Pos: e.Pos, Err: err}
		}
		if v.IsNull() {
			out[name] = json.RawMessage("null")
			continue
		}
		out[name] = ctyJSON(v)
	}
	return out, nil
}

// ParamError is a params value that cannot be evaluated.
type ParamError struct {
	Name string
	Pos  Pos // of the expression, in the component's module
	Err  error
}

func (e *ParamError) Error() string {
	if e.Pos.File == "" {
		return fmt.Sprintf("params %s: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("params %s (%s): %v", e.Name, e.Pos, e.Err)
}

func (e *ParamError) Unwrap() error { return e.Err }

// ParamAttributes names the attributes the value of parameter name reads:
// those its params expression refers to, in the order they appear, or the attribute of that name
// when the action has no params.
func (a *Action) ParamAttributes(name string) []string {
	if a.Params == nil {
		return []string{name}
	}
	e, ok := a.Params[name]
	if !ok {
		return nil
	}
	x, diags := (*compiler)(nil).parse(e)
	if diags.HasErrors() {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, tr := range x.Variables() {
		if n := tr.RootName(); !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
