package coordinator

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// A deploy may bring back what a partial delete removed (Restore) and run
// steps again although their digest is unchanged (Force). A forced step
// carries the deploy's Raft index in Step.Force; the agent records the
// Force of each step's last run and runs it again only for a higher one, so
// a force request runs once however often the slice is pulled, across agent
// restarts and leader changes. The compiler keeps Force through recompiles.

// prepareDeploy checks a deploy's force and restore parts against svc and
// applies the restore; undo takes the restore back (the deploy failed).
// msg is what the history records of them.
func (s *State) prepareDeploy(svc *plan.Service, c *DeployServiceCmd) (undo func(), msg string, err error) {
	undo = func() {}
	var what []string
	if f := c.Force; f != nil {
		if (f.Node != "" || f.Component != "") && forcedSteps(svc.Plan, f) == 0 {
			return undo, "", fmt.Errorf("%w: no deployed step of service %q matches%s", ErrNotFound, svc.Name, partText(f))
		}
		what = append(what, "forced"+partText(f))
	}
	if r := c.Restore; r != nil {
		var keep, back []string
		nodes := map[string]bool{r.Node: true} // the names r.Node stands for
		if svc.Plan != nil {
			for _, np := range svc.Plan.Nodes {
				nodes[np.Name] = nodes[np.Name] || np.Agent == r.Node
			}
		}
		for _, e := range svc.Removed {
			if restores(e, r.Component, nodes) {
				back = append(back, e)
			} else {
				keep = append(keep, e)
			}
		}
		if len(back) == 0 {
			removed := "nothing was removed"
			if len(svc.Removed) > 0 {
				removed = "removed: " + strings.Join(svc.Removed, ", ")
			}
			return undo, "", fmt.Errorf("%w: nothing removed from service %q matches%s (%s)", ErrNotFound, svc.Name, partText(r), removed)
		}
		old := svc.Removed
		svc.Removed = keep
		undo = func() { svc.Removed = old }
		what = append(what, "restored "+strings.Join(back, ", "))
	}
	return undo, strings.Join(what, "; "), nil
}

// restores says whether a Removed entry ("NODE" or "NODE/INST") is part of
// what a restore names: NODE one of nodes (the template node, group member
// "group[agent]" or agent given, and the template nodes of that agent) or a
// member of one, and INST component. Restoring a component of a node
// removed whole restores the node. nodes[""] stands for every node.
func restores(entry, component string, nodes map[string]bool) bool {
	node, inst, _ := strings.Cut(entry, "/")
	agent := strings.TrimSuffix(strings.TrimPrefix(node[len(baseNode(node)):], "["), "]")
	nodeOK := nodes[""] || nodes[node] || nodes[baseNode(node)] || nodes[agent]
	return nodeOK && (component == "" || inst == "" || inst == component)
}

// forcedSteps counts the create steps of p that f names.
func forcedSteps(p *plan.Plan, f *api.Part) int {
	n := 0
	if p == nil {
		return 0
	}
	for _, np := range p.Nodes {
		for _, st := range np.Steps {
			if onNode(np, f.Node) && forces(st, f) {
				n++
			}
		}
	}
	return n
}

// forces says whether f names step st: a create step, of the instance (or
// with the ID) f.Component if given.
func forces(st *plan.Step, f *api.Part) bool {
	return st.Action == "create" && (f.Component == "" || f.Component == st.Instance || f.Component == st.ID)
}

// markForce sets Force to idx on the create steps of a plan just compiled
// (so owned by this Apply) that f names.
func markForce(p *plan.Plan, idx uint64, f *api.Part) {
	if f == nil || p == nil {
		return
	}
	for _, np := range p.Nodes {
		if !onNode(np, f.Node) {
			continue
		}
		np.Steps = slices.Clone(np.Steps)
		for i, st := range np.Steps {
			if forces(st, f) {
				cp := *st
				cp.Force = idx
				np.Steps[i] = &cp
			}
		}
	}
}

// onNode says whether a node plan is on node: its template node, the
// group member "group[agent]", or the agent ("" is every node).
func onNode(np *plan.NodePlan, node string) bool {
	return node == "" || node == np.Name || node == np.Agent || node == baseNode(np.Name)
}

func partText(p *api.Part) string {
	return where(&api.OpRequest{Node: p.Node, Component: p.Component})
}

// checkParts checks a deploy request's force and restore parts.
func checkParts(req *api.DeployRequest, recursive bool) error {
	if recursive && (req.Force != nil || req.Restore != nil) {
		return badRequest("force and restore apply to one service: deploy it without recursive")
	}
	if r := req.Restore; r != nil && r.Node == "" && r.Component == "" {
		return badRequest("restore: name a node, a component or both, as given to the partial delete")
	}
	return nil
}
