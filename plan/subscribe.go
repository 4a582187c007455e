package plan

import (
	"slices"
	"strings"
)

// subscriptions sets a step's Subscribe (the create steps of the same
// node's instances it subscribes to, which are among its dependencies) and
// its refresh action.
func (c *compiler) subscriptions(it *item, st *Step) {
	if len(it.inst.Subscribe) == 0 {
		return
	}
	prefix := ""
	if it.inject != nil {
		prefix = it.inject.Service.Name + "."
	}
	for _, d := range it.deps {
		name, ok := strings.CutPrefix(d.name, prefix)
		if ok && d.p == it.p && d.step != nil && slices.Contains(it.inst.Subscribe, name) {
			st.Subscribe = append(st.Subscribe, d.step.ID)
		}
	}
	if name := it.inst.Refresh; name != "" && name != "create" {
		a := it.comp.Actions[name]
		if a == nil || name == "delete" {
			c.violate(posPtr(it.inst.Pos), "%s: refresh names unknown action %q of component %s", it.name, name, it.comp.Name)
			return
		}
		st.RefreshAction, st.RefreshRun = name, a
	}
}

// previousForce is the Force of the previous plan's step id: a force
// request stays with its step until the agent has run it, whatever is
// recompiled meanwhile (an output arriving, another deploy).
func (c *compiler) previousForce(id string) uint64 {
	if c.prevSteps == nil {
		c.prevSteps = map[string]*Step{}
		if c.in.Previous != nil {
			for _, np := range c.in.Previous.Nodes {
				for _, st := range np.Steps {
					c.prevSteps[st.ID] = st
				}
			}
		}
	}
	if st := c.prevSteps[id]; st != nil {
		return st.Force
	}
	return 0
}
