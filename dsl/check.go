package dsl

import (
	"fmt"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/dtkhq/dtk/plan"
)

// Facts are what self.FACT and node.NAME.FACT may name.
var Facts = []string{"name", "address", "hostname", "os", "arch", "cpus", "memory_bytes", "labels"}

// roots are the variables an instance attribute value may refer to.
var roots = []string{"input", "self", "node"}

// checkRefs checks the variables an attribute value expression refers to:
// input.NAME (a declared input of t), self.FACT and node.NAME.FACT (NAME a
// node of t). It does not evaluate anything.
func (l *loader) checkRefs(expr hcl.Expression, t *plan.Template, nodes map[string]*hcl.Block) {
	for _, tr := range expr.Variables() {
		rng := startRange(tr.SourceRange())
		root := tr.RootName()
		switch root {
		case "input":
			name, ok := stepName(tr, 1)
			if !ok || t.Input(name) != nil {
				continue
			}
			names := make([]string, len(t.Inputs))
			for i, in := range t.Inputs {
				names[i] = in.Name
			}
			l.errorf(rng, fmt.Sprintf("unknown input %q", name), "%s", hint(name, names,
				fmt.Sprintf("template %q declares no inputs", t.Name),
				fmt.Sprintf("template %q declares inputs %%s", t.Name)))
		case "self":
			l.checkFact(tr, 1, rng)
		case "node":
			name, ok := stepName(tr, 1)
			if !ok {
				continue
			}
			if nodes[name] == nil {
				l.errorf(rng, fmt.Sprintf("unknown node %q", name), "%s", hint(name, keys(nodes),
					"",
					fmt.Sprintf("template %q declares nodes %%s", t.Name)))
				continue
			}
			l.checkFact(tr, 2, rng)
		default:
			l.errorf(rng, fmt.Sprintf("unknown variable %q", root), "%s", hint(root, roots, "",
				"expressions may refer to input.NAME, self.FACT and node.NAME.FACT"))
		}
	}
}

// checkFact checks that step i of tr, if present, names a node fact.
func (l *loader) checkFact(tr hcl.Traversal, i int, rng hcl.Range) {
	name, ok := stepName(tr, i)
	if !ok || contains(Facts, name) {
		return
	}
	l.errorf(rng, fmt.Sprintf("unknown node fact %q", name), "%s", hint(name, Facts, "", "node facts are %s"))
}

// stepName returns the name step i of tr selects, if it is an attribute
// access or an index by a constant string.
func stepName(tr hcl.Traversal, i int) (string, bool) {
	if i >= len(tr) {
		return "", false
	}
	switch s := tr[i].(type) {
	case hcl.TraverseAttr:
		return s.Name, true
	case hcl.TraverseIndex:
		if s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull() {
			return s.Key.AsString(), true
		}
	}
	return "", false
}

// hint is "did you mean X?" for the candidate closest to given (if close
// enough), else list (a format with one %s) filled with the candidates, or
// none when there are no candidates.
func hint(given string, candidates []string, none, list string) string {
	// Closest by Levenshtein distance, below HCL's own threshold of 3; on
	// a tie, closest in length (so that "wbe" suggests "web", not "db").
	best, bestDist, bestLen := "", 3, 0
	for _, c := range candidates {
		d := levenshtein.Distance(given, c, nil)
		dl := abs(len(c) - len(given))
		if d < bestDist || (d == bestDist && best != "" && dl < bestLen) {
			best, bestDist, bestLen = c, d, dl
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	if len(candidates) == 0 {
		return none
	}
	if !strings.Contains(list, "%s") {
		return list
	}
	return fmt.Sprintf(list, quoteList(candidates))
}

// quoteList is `"a", "b" and "c"`.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// keys returns m's keys, sorted.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sortedAttrs returns attrs in source order.
func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Range.Start.Byte < out[j].Range.Start.Byte
	})
	return out
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
