package api

import (
	"context"
	"net/url"

	"github.com/dtkhq/dtk/plan"
)

// OpStatus is an operation as the API answers it (POST
// /v1/services/{name}/{dry-run,exec,cancel,logs}, GET /v1/ops/{id}): the
// operation's own fields and, for a dry run, its agents grouped by the
// change the deploy would make on each.
type OpStatus struct {
	plan.Op
	// Clusters (dry runs) group the service's agents by the change from
	// the plan of BaseGeneration to the dry run's plan and by what they
	// predicted (plan.Clusters), the largest group first. Agents that have
	// not answered (yet), or were down when the dry run started, are in
	// the plan.ClusterCannotPredict cluster.
	Clusters []plan.Cluster `json:"clusters,omitempty"`
	// BaseGeneration (dry runs) is the generation the clusters compare
	// the dry run's plan with: the service's current one when asked (0:
	// never deployed).
	BaseGeneration uint64 `json:"base_generation,omitempty"`
}

// OpStatus reads an operation at once, with a dry run's clusters.
func (c *Client) OpStatus(ctx context.Context, id string) (*OpStatus, error) {
	var out OpStatus
	_, err := c.Do(ctx, "GET", "/v1/ops/"+url.PathEscape(id), nil, &out)
	return &out, err
}
