package plan

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Change kinds in a plan diff.
const (
	ChangeAdd       = "add"
	ChangeChange    = "change"
	ChangeRemove    = "remove"
	ChangeUnchanged = "unchanged"
	// ChangeRun is a step the plan leaves unchanged that the deploy runs
	// all the same: it reads an output of a step that runs (Reason).
	ChangeRun = "run"
)

// NodeDiff is what a new plan changes on one agent.
type NodeDiff struct {
	Name  string     `json:"name"`
	Agent string     `json:"agent"`
	Steps []StepDiff `json:"steps"`
	// Selector is the node plan's: its labels, facts and count written
	// as expressions, with where their values came from.
	Selector []*Value `json:"selector,omitempty"`
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
	// Reason says why a step of change "run" runs: "reads output pg of
	// node db, which changes".
	Reason string `json:"reason,omitempty"`
}

// Redacted is shown in place of a sensitive value.
const Redacted = `"(sensitive)"`

// Diff compares the current plan (nil before the first deploy) with the
// next one, node by node. Sensitive values are redacted.
func Diff(old, next *Plan) []NodeDiff {
	prev := createSteps(old)
	var out []NodeDiff
	seen := map[string]bool{}
	if next != nil {
		for _, np := range next.Nodes {
			nd := NodeDiff{Name: np.Name, Agent: np.Agent, Steps: []StepDiff{}, Selector: np.Selector}
			for _, st := range np.Steps {
				seen[st.ID] = true
				d := StepDiff{ID: st.ID, Instance: st.Instance, Component: st.Component, Action: st.Action, Waiting: st.Waiting}
				d.Attributes = attributeValues(st)
				p := prev[st.ID]
				if d.Change = stepChange(p, st); d.Change == ChangeChange {
					d.Changed = changedAttributes(p, st)
					d.AssetOnly = len(d.Changed) == 0
					withOld(d.Attributes, d.Changed, p)
				}
				nd.Steps = append(nd.Steps, d)
			}
			out = append(out, nd)
		}
		reasons := rerunsOf(prev, next, nil)
		for i := range out {
			for j := range out[i].Steps {
				if d := &out[i].Steps[j]; reasons[d.ID] != "" {
					d.Change, d.Reason = ChangeRun, reasons[d.ID]
				}
			}
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
	// By node name, each node's steps in plan order (the compiler lists
	// node blocks before node groups).
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// createSteps are the create steps of a plan (nil: none) by ID.
func createSteps(p *Plan) map[string]*Step {
	out := map[string]*Step{}
	if p == nil {
		return out
	}
	for _, np := range p.Nodes {
		for _, st := range np.Steps {
			if st.Action == "create" {
				out[st.ID] = st
			}
		}
	}
	return out
}

// withOld sets the old value (prev's) of each changed attribute.
func withOld(attrs []*Value, changed []string, prev *Step) {
	for _, v := range attrs {
		if !slices.Contains(changed, v.Name) {
			continue
		}
		switch old, ok := prev.Attributes[v.Name]; {
		case v.Sensitive || slices.Contains(prev.Sensitive, v.Name):
			v.Old = json.RawMessage(Redacted)
		case ok:
			v.Old = old
		default:
			v.Old = json.RawMessage("null")
		}
	}
}

// Reruns finds the steps of next that its plan leaves unchanged but that a
// deploy runs all the same: each reads an output of a step that runs, whose
// new output reaches it when that step reports. runs holds the steps known
// to run (step ID → true when the step changes, false when it may: the
// agent could not predict it); it is not changed. The answer maps each
// such step's ID to the reason ("reads output pg of node db, which
// changes"); a step that runs only because of another's output may change
// its own outputs, so steps reading those run too ("which may change").
func Reruns(next *Plan, runs map[string]bool) map[string]string {
	if next == nil || len(runs) == 0 {
		return nil
	}
	byID := map[string]*Step{}
	for _, np := range next.Nodes {
		for _, st := range np.Steps {
			byID[st.ID] = st
		}
	}
	out := map[string]string{}
	running := func(id string) (bool, bool) {
		if certain, ok := runs[id]; ok {
			return certain, true
		}
		_, ok := out[id]
		return false, ok
	}
	// Until nothing more runs: a chain of readers across nodes need not
	// be in plan order.
	for more := true; more; {
		more = false
		for _, np := range next.Nodes {
			for _, st := range np.Steps {
				if _, known := running(st.ID); known || st.Action != "create" {
					continue
				}
				for _, dep := range st.DependsOn {
					p := byID[dep]
					if p == nil {
						continue
					}
					reads, subscribes := readsOutput(st, p), slices.Contains(st.Subscribe, dep)
					if !reads && !subscribes {
						continue
					}
					if certain, ok := running(dep); ok {
						how := "may run"
						if certain {
							how = "runs"
						}
						if reads {
							// It runs if the value it reads is new: only the
							// producer's run can tell.
							out[st.ID] = fmt.Sprintf("reads output %s of node %s, which %s in this deploy", p.Instance, p.Node, how)
						} else {
							// A subscriber runs when what it subscribes to
							// reports a change, which only the run can tell.
							out[st.ID] = fmt.Sprintf("subscribes to %s, which %s in this deploy: refreshes (%s) if it reports a change",
								p.Instance, how, cmp.Or(st.RefreshAction, "create"))
						}
						more = true
						break
					}
				}
			}
		}
	}
	return out
}

// readsOutput says an attribute of st takes its value from an output of
// p: its source names "output of NODE/INSTANCE".
func readsOutput(st, p *Step) bool {
	want := "output of " + p.Node + "/" + p.Instance
	for _, src := range st.Sources {
		for part := range strings.SplitSeq(src, ", ") {
			if part == want {
				return true
			}
		}
	}
	return false
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
