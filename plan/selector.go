package plan

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// SelectableFacts are the facts a node or node_group may select by.
var SelectableFacts = []string{"name", "address", "hostname", "os", "arch", "cpus", "memory_bytes"}

// StringMap converts a labels or facts value to a map of strings (nil for
// null).
func StringMap(v cty.Value) (map[string]string, error) {
	mv, err := convert.Convert(v, cty.Map(cty.String))
	if err != nil {
		return nil, err
	}
	if mv.IsNull() {
		return nil, nil
	}
	out := map[string]string{}
	for k, e := range mv.AsValueMap() {
		if e.IsNull() {
			return nil, fmt.Errorf("%q has a null value", k)
		}
		out[k] = e.AsString()
	}
	return out, nil
}

// errCount is a count that is not a whole number in range.
var errCount = errors.New("not a whole number of agents")

// CountValue converts a node_group's count to a whole number from least to
// math.MaxInt32.
func CountValue(v cty.Value, least int) (int, error) {
	n, err := convert.Convert(v, cty.Number)
	if err != nil || n.IsNull() {
		return 0, errCount
	}
	i, acc := n.AsBigFloat().Int64()
	if acc != big.Exact || i < int64(least) || i > math.MaxInt32 {
		return 0, errCount
	}
	return int(i), nil
}

// selectorOf is tn with its selector expressions (labels, facts and count
// written over the template's inputs) evaluated, each recorded with where
// its value came from (NodePlan.Selector); tn itself when it has none, nil
// when one is in violation.
func (c *compiler) selectorOf(tn *TemplateNode) (*TemplateNode, []*Value) {
	if tn.LabelsExpr == nil && tn.FactsExpr == nil && tn.CountExpr == nil {
		return tn, nil
	}
	cp := *tn
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"input": cty.ObjectVal(c.inputs)}, Functions: c.functionsFor(c.in.Module)}
	ok := true
	var srcs []*Value
	eval := func(e *Expr, what string) (cty.Value, bool) {
		v, err := c.evalExpr(*e, ctx)
		switch {
		case err != nil:
			c.violate(posPtr(e.Pos), "%s %q: %s: %v", nodeKind(tn), tn.Name, what, err)
		case !v.IsWhollyKnown():
			// An input in violation (reported already) reads as unknown.
		case v.ContainsMarked():
			c.violate(posPtr(e.Pos), "%s %q: %s: a selector cannot be computed from a sensitive value (it is shown in plans and messages)", nodeKind(tn), tn.Name, what)
		default:
			srcs = append(srcs, &Value{Name: what, Value: ctyJSON(v), Source: c.source(*e, nil)})
			return v, true
		}
		ok = false
		return cty.NilVal, false
	}
	if tn.LabelsExpr != nil {
		if v, good := eval(tn.LabelsExpr, "labels"); good {
			m, err := StringMap(v)
			if err != nil {
				c.violate(posPtr(tn.LabelsExpr.Pos), "%s %q: labels must be a map of strings: %v", nodeKind(tn), tn.Name, err)
				ok = false
			}
			cp.Labels = m
		}
	}
	if tn.FactsExpr != nil {
		if v, good := eval(tn.FactsExpr, "facts"); good {
			m, err := StringMap(v)
			if err != nil {
				c.violate(posPtr(tn.FactsExpr.Pos), "%s %q: facts must be a map of strings: %v", nodeKind(tn), tn.Name, err)
				ok = false
			}
			// In key order: the same violation on every replica and run.
			for _, k := range sortedKeys(m) {
				if !slices.Contains(SelectableFacts, k) {
					c.violate(posPtr(tn.FactsExpr.Pos), "%s %q: facts: %q is not a fact a node is selected by (%v)", nodeKind(tn), tn.Name, k, SelectableFacts)
					ok = false
					break
				}
			}
			cp.Facts = m
		}
	}
	if tn.CountExpr != nil {
		if v, good := eval(tn.CountExpr, "count"); good {
			n, err := CountValue(v, 0)
			if err != nil {
				c.violate(posPtr(tn.CountExpr.Pos), "node_group %q: count is %s: want a whole number of agents from 0 to %d", tn.Name, shownValue(v), math.MaxInt32)
				ok = false
			}
			cp.Count, cp.CountExpr = n, nil
			if n == 0 {
				cp.Count = noMembers
			}
		}
	}
	if !ok {
		return nil, nil
	}
	return &cp, srcs
}

// noMembers is the resolved Count of a node_group whose count expression
// is 0: it takes no agent (Count 0 means every matching agent).
const noMembers = -1

func nodeKind(tn *TemplateNode) string {
	if tn.Group {
		return "node_group"
	}
	return "node"
}

// shownValue is a value as a message quotes it.
func shownValue(v cty.Value) string {
	if v.IsNull() {
		return "null"
	}
	return string(ctyJSON(v))
}
