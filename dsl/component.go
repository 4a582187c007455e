package dsl

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/dtkhq/dtk/plan"
)

// reservedAttributes are names a component attribute may not take: an
// instance block uses them for itself.
var reservedAttributes = []string{"depends_on", "once", "subscribe", "refresh"}

// reservedActions are the action names that have their own blocks.
var reservedActions = []string{"create", "delete", "check"}

// decodeRequires decodes a module block's requires blocks.
func (l *loader) decodeRequires(blocks hcl.Blocks, m *plan.Module) {
	first := map[string]*hcl.Block{}
	for _, b := range blocks {
		name := b.Labels[0]
		if prev, ok := first[name]; ok {
			l.errorf(startRange(b.DefRange), fmt.Sprintf("duplicate requires %q", name),
				"first declared at %s", blockPos(prev))
			continue
		}
		first[name] = b
		l.checkName(b.LabelRanges[0], "module", name, nameRE)
		if name == m.Name {
			l.errorf(startRange(b.LabelRanges[0]), fmt.Sprintf("module %q requires itself", name),
				"a module's own components need no requires block")
			continue
		}
		req := &plan.Require{Name: name, Pos: blockPos(b)}
		content, diags := b.Body.Content(requireSchema)
		l.add(diags)
		if a := content.Attributes["version"]; a != nil {
			if s, ok := l.stringValue(a); ok {
				req.Version = s
				if err := plan.CheckConstraint(s); err != nil {
					l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("invalid version constraint %q", s),
						"%s; a constraint is one or more comma-separated \"OP VERSION\" with OP one of =, !=, >, >=, <, <=, ~> "+
							"and VERSION MAJOR[.MINOR[.PATCH]], e.g. \"~> 1.2\" or \">= 1.0.0, < 2.0.0\"", err)
				}
			}
		}
		m.Requires = append(m.Requires, req)
	}
}

// decodeOutput decodes a component's output block.
func (l *loader) decodeOutput(b *hcl.Block, c *plan.Component) {
	name := b.Labels[0]
	for _, o := range c.Outputs {
		if o.Name == name {
			l.errorf(startRange(b.DefRange), fmt.Sprintf("duplicate output %q", name),
				"first declared at %s", o.Pos)
			return
		}
	}
	l.checkName(b.LabelRanges[0], "output", name, attrNameRE)
	o := &plan.Output{Name: name, Pos: blockPos(b)}
	content, diags := b.Body.Content(outputSchema)
	l.add(diags)
	if a := content.Attributes["description"]; a != nil {
		o.Description, _ = l.stringValue(a)
	}
	if a := content.Attributes["sensitive"]; a != nil {
		o.Sensitive, _ = l.boolValue(a)
	}
	c.Outputs = append(c.Outputs, o)
}

// decodeCustomAction decodes an action "NAME" block: an action run on
// demand (dtkctl service exec), with the schema of create.
func (l *loader) decodeCustomAction(b *hcl.Block, c *plan.Component, seen map[string]*hcl.Block) {
	name := b.Labels[0]
	if contains(reservedActions, name) {
		l.errorf(startRange(b.LabelRanges[0]), fmt.Sprintf("action name %q is reserved", name),
			"write a %s { ... } block instead of action %q", name, name)
		return
	}
	if prev, ok := seen[name]; ok {
		l.errorf(startRange(b.DefRange), fmt.Sprintf("duplicate action %q", name),
			"first declared at %s", blockPos(prev))
		return
	}
	seen[name] = b
	l.checkName(b.LabelRanges[0], "action", name, nameRE)
	if act := l.decodeAction(b); act != nil {
		c.Actions[name] = act
	}
}

// validation is a decoded validation block with its condition's syntax.
type validation struct {
	*plan.Validation
	cond  hcl.Expression
	block hcl.Range
}

// decodeValidation decodes a validation block of an attribute or input.
func (l *loader) decodeValidation(b *hcl.Block) *validation {
	content, diags := b.Body.Content(validationSchema)
	l.add(diags)
	v := &validation{Validation: &plan.Validation{Pos: blockPos(b)}, block: startRange(b.DefRange)}
	ok := !diags.HasErrors()
	if a := content.Attributes["condition"]; a != nil {
		v.Condition = l.exprSource(a.Expr)
		before := len(l.diags)
		l.checkExpr(a.Expr, &scope{where: "a validation condition", roots: []string{"value"}})
		if len(l.diags) == before {
			v.cond = a.Expr // checked: the default can be tested against it
		}
	}
	if a := content.Attributes["error_message"]; a != nil {
		s, good := l.stringValue(a)
		switch {
		case !good:
			ok = false
		case strings.TrimSpace(s) == "":
			l.errorf(startRange(a.Expr.Range()), "empty error_message",
				"say what is wrong with the value, e.g. \"port must be between 1 and 65535\"")
			ok = false
		}
		v.ErrorMessage = s
	}
	if !ok {
		return nil
	}
	return v
}

// checkDefaultValid checks an attribute's or input's default against its
// validation conditions, as the compiler will.
func (l *loader) checkDefaultValid(attr *plan.Attribute, what string, vals []*validation) {
	if attr.Default == nil || len(vals) == 0 {
		return
	}
	ty, err := plan.ParseType(attr.Type)
	if err != nil {
		return
	}
	v, err := ctyjson.Unmarshal(attr.Default, ty)
	if err != nil {
		return
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"value": v}, Functions: plan.Functions()}
	for _, val := range vals {
		if val.cond == nil {
			continue
		}
		res, diags := val.cond.Value(ctx)
		if diags.HasErrors() {
			l.errorf(startRange(val.cond.Range()), fmt.Sprintf("the default of %s %q cannot be validated", what, attr.Name),
				"%s", diagSummary(diags))
			continue
		}
		res, _ = res.UnmarkDeep()
		if !res.IsWhollyKnown() || res.IsNull() || res.Type() != cty.Bool {
			l.errorf(startRange(val.cond.Range()), "validation condition is not true or false",
				"the condition gives %s for the default of %s %q", res.Type().FriendlyName(), what, attr.Name)
			continue
		}
		if res.False() {
			l.errorf(val.block, fmt.Sprintf("the default of %s %q fails its validation", what, attr.Name),
				"%s", val.ErrorMessage)
		}
	}
}
