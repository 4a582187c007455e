package main

import (
	"context"
	"strings"

	"github.com/dtkhq/dtk/internal/api"
	"github.com/dtkhq/dtk/plan"
)

// NodeCmd is `dtkctl node`.
type NodeCmd struct {
	List    NodeListCmd    `cmd:"" help:"List registered nodes."`
	Token   NodeTokenCmd   `cmd:"" help:"Join tokens that let new agents enroll."`
	Pending NodePendingCmd `cmd:"" help:"List enrollment requests waiting for an operator."`
	Approve NodeApproveCmd `cmd:"" help:"Approve a pending node: it gets its certificate."`
	Reject  NodeRejectCmd  `cmd:"" help:"Reject a pending node."`
	Remove  NodeRemoveCmd  `cmd:"" help:"Revoke a node's certificates and forget it."`
	Label   NodeLabelCmd   `cmd:"" help:"Set operator labels on a node (the node cannot override them)."`
}

// NodeListCmd is `dtkctl node list`.
type NodeListCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run lists nodes.
func (c *NodeListCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	nodes, err := cl.Nodes(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		if nodes == nil {
			nodes = []*plan.Node{}
		}
		return out.JSON(nodes)
	}
	rows := make([][]string, 0, len(nodes))
	for _, n := range nodes {
		labels := make([]string, 0, len(n.Labels))
		for _, k := range sortedKeys(n.Labels) {
			labels = append(labels, k+"="+n.Labels[k])
		}
		osArch := "-"
		if n.Facts.OS != "" || n.Facts.Arch != "" {
			osArch = n.Facts.OS + "/" + n.Facts.Arch
		}
		rows = append(rows, []string{n.Name, out.paint(orDash(n.Status)), orDash(n.Facts.Address),
			orDash(strings.Join(labels, ",")), osArch, orDash(n.Facts.AgentVersion)})
	}
	out.Table([]string{"NAME", "STATUS", "ADDRESS", "LABELS", "OS/ARCH", "VERSION"}, rows)
	if len(nodes) == 0 {
		out.Notef("no nodes yet: start dtk-agent on a machine, or run \"dtk-agent dev\"\n")
	}
	return nil
}
