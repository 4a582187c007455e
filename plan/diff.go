package plan

import (
	"encoding/json"
	"sort"
)

// Change kinds in a plan diff.
const (
	ChangeAdd       = "add"
	ChangeChange    = "change"
	ChangeRemove    = "remove"
	ChangeUnchanged = "unchanged"
)

// NodeDiff is what a new plan changes on one agent.
type NodeDiff struct {
	Name  string     `json:"name"`
	Agent string     `json:"agent"`
	Steps []StepDiff `json:"steps"`
}

// StepDiff is one step's change, with every attribute and its source.
type StepDiff struct {
	ID        string `json:"id"`
	Instance  string `json:"instance"`
	Component string `json:"component"`
	Action    string `json:"action"`
	Change    string `json:"change"`
	// Changed names the attributes whose value changed (for "change").
	Changed    []string `json:"changed,omitempty"`
	Attributes []*Value `json:"attributes,omitempty"`
	Waiting    []string `json:"waiting,omitempty"`
	AssetOnly  bool     `json:"asset_changed,omitempty"`
}

// Redacted is shown in place of a sensitive value.
const Redacted = `"(sensitive)"`

// Diff compares the current plan (nil before the first deploy) with the
// next one, node by node. Sensitive values are redacted.
func Diff(old, next *Plan) []NodeDiff {
	prev := map[string]*Step{}
	if old != nil {
		for _, np := range old.Nodes {
			for _, st := range np.Steps {
				if st.Action == "create" {
					prev[st.ID] = st
				}
			}
		}
	}
	var out []NodeDiff
	seen := map[string]bool{}
	if next != nil {
		for _, np := range next.Nodes {
			nd := NodeDiff{Name: np.Name, Agent: np.Agent, Steps: []StepDiff{}}
			for _, st := range np.Steps {
				seen[st.ID] = true
				d := StepDiff{ID: st.ID, Instance: st.Instance, Component: st.Component, Action: st.Action, Waiting: st.Waiting}
				d.Attributes = attributeValues(st)
				p := prev[st.ID]
				if d.Change = stepChange(p, st); d.Change == ChangeChange {
					d.Changed = changedAttributes(p, st)
					d.AssetOnly = len(d.Changed) == 0
				}
				nd.Steps = append(nd.Steps, d)
			}
			out = append(out, nd)
		}
	}
	// Steps of the old plan that the next one drops without a delete step
	// (their component has no delete action): shown as removed.
	if old != nil {
		for _, np := range old.Nodes {
			var gone []StepDiff
			for _, st := range np.Steps {
				if st.Action == "create" && !seen[st.ID] && !seen[StepID(st.Service, st.Node, st.Instance, "delete")] {
					gone = append(gone, StepDiff{ID: st.ID, Instance: st.Instance, Component: st.Component, Action: st.Action, Change: ChangeRemove})
				}
			}
			if len(gone) == 0 {
				continue
			}
			found := false
			for i := range out {
				if out[i].Agent == np.Agent {
					out[i].Steps = append(out[i].Steps, gone...)
					found = true
				}
			}
			if !found {
				out = append(out, NodeDiff{Name: np.Name, Agent: np.Agent, Steps: gone})
			}
		}
	}
	return out
}

// stepChange is what a step of the next plan does to the create step of
// the same ID in the current plan (nil: none): a delete step removes.
func stepChange(prev, st *Step) string {
	switch {
	case st.Action != "create":
		return ChangeRemove
	case prev == nil:
		return ChangeAdd
	case prev.Digest == st.Digest:
		return ChangeUnchanged
	}
	return ChangeChange
}

func attributeValues(st *Step) []*Value {
	names := make([]string, 0, len(st.Attributes))
	for k := range st.Attributes {
		names = append(names, k)
	}
	for k := range st.Sources {
		if _, ok := st.Attributes[k]; !ok {
			names = append(names, k) // waiting for an output: no value yet
		}
	}
	sort.Strings(names)
	sensitive := map[string]bool{}
	for _, s := range st.Sensitive {
		sensitive[s] = true
	}
	out := make([]*Value, 0, len(names))
	for _, n := range names {
		v := &Value{Name: n, Value: st.Attributes[n], Source: st.Sources[n], Sensitive: sensitive[n]}
		if v.Sensitive && v.Value != nil {
			v.Value = json.RawMessage(Redacted)
		}
		out = append(out, v)
	}
	return out
}

func changedAttributes(a, b *Step) []string {
	var out []string
	for k, v := range b.Attributes {
		if string(a.Attributes[k]) != string(v) {
			out = append(out, k)
		}
	}
	for k := range a.Attributes {
		if _, ok := b.Attributes[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// RedactPlan returns a copy of a plan safe to show: sensitive attributes,
// inputs and exports replaced by Redacted.
func RedactPlan(p *Plan) *Plan {
	if p == nil {
		return nil
	}
	b, _ := json.Marshal(p)
	var cp Plan
	_ = json.Unmarshal(b, &cp)
	for _, np := range cp.Nodes {
		for _, st := range np.Steps {
			for _, s := range st.Sensitive {
				if _, ok := st.Attributes[s]; ok {
					st.Attributes[s] = json.RawMessage(Redacted)
				}
			}
		}
	}
	for _, vs := range [][]*Value{cp.Inputs, cp.Exports} {
		for _, v := range vs {
			if v.Sensitive && v.Value != nil {
				v.Value = json.RawMessage(Redacted)
			}
		}
	}
	return &cp
}
