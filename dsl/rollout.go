package dsl

import (
	"github.com/dtkhq/dtk/plan"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

var rolloutSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "max_parallel"},
		{Name: "canary"},
		{Name: "min_healthy_time"},
		{Name: "health"},
		{Name: "max_failures"},
		{Name: "auto_revert"},
		{Name: "auto_promote"},
	},
}

// decodeRollout decodes a template's rollout block (docs/rollouts.md).
func (l *loader) decodeRollout(b *hcl.Block) *plan.Rollout {
	r := &plan.Rollout{Pos: blockPos(b)}
	content, diags := b.Body.Content(rolloutSchema)
	l.add(diags)
	share := func(name string, dst *string) {
		a := content.Attributes[name]
		if a == nil {
			return
		}
		v, ok := l.constValue(a)
		if !ok {
			return
		}
		s, err := convert.Convert(v, cty.String)
		if err != nil || s.IsNull() {
			l.errorf(a.Expr.Range(), "invalid "+name, "%s is a number of nodes (2) or a percentage (\"10%%\")", name)
			return
		}
		if _, _, err := plan.ParseShare(s.AsString()); err != nil {
			l.errorf(a.Expr.Range(), "invalid "+name, "%s", err)
			return
		}
		*dst = s.AsString()
	}
	share("max_parallel", &r.MaxParallel)
	share("canary", &r.Canary)
	share("max_failures", &r.MaxFailures)
	if a := content.Attributes["min_healthy_time"]; a != nil {
		if s, ok := l.stringValue(a); ok {
			n, err := plan.ParseHealthyTime(s)
			if err != nil {
				l.errorf(a.Expr.Range(), "invalid min_healthy_time", "%s", err)
			}
			r.MinHealthySeconds = n
		}
	}
	if a := content.Attributes["health"]; a != nil {
		if s, ok := l.stringValue(a); ok {
			if s != plan.HealthSteps && s != plan.HealthCheck {
				l.errorf(a.Expr.Range(), "invalid health",
					"health is %q (the node's steps ok) or %q (and each component's check passing for min_healthy_time)", plan.HealthSteps, plan.HealthCheck)
			}
			r.Health = s
		}
	}
	if a := content.Attributes["auto_revert"]; a != nil {
		r.AutoRevert, _ = l.boolValue(a)
	}
	if a := content.Attributes["auto_promote"]; a != nil {
		if v, ok := l.boolValue(a); ok {
			r.ManualPromote = !v
		}
	}
	return r
}
