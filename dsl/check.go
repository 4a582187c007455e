package dsl

import (
	"fmt"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Facts are what self.FACT and node.NAME.FACT may name.
var Facts = []string{"name", "address", "hostname", "os", "arch", "cpus", "memory_bytes", "labels"}

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

// diagSummary is the error diagnostics' summaries and details, joined.
func diagSummary(diags hcl.Diagnostics) string {
	var msgs []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		m := d.Summary
		if d.Detail != "" {
			m += ": " + d.Detail
		}
		msgs = append(msgs, m)
	}
	return strings.Join(msgs, "; ")
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
