package api

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"time"

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

// DryRunClusters is GET /v1/ops/{id}/clusters: a dry run's clusters alone,
// as of the op's Index (what dtkctl prints once it has followed the dry
// run with brief answers).
type DryRunClusters struct {
	Op             string         `json:"op"`
	Service        string         `json:"service"`
	Index          uint64         `json:"index"`
	BaseGeneration uint64         `json:"base_generation"`
	Clusters       []plan.Cluster `json:"clusters"`
	// Runs are the steps the agents predicted unchanged (as the plan
	// stands) that the deploy runs all the same, by step ID, with why:
	// "reads output pg of node db, which changes".
	Runs map[string]string `json:"runs,omitempty"`
}

// DryRunClusters reads a dry run's clusters; with index > 0, as of index
// or later (a blocking query, for a coordinator that has not applied what
// the caller saw elsewhere yet).
func (c *Client) DryRunClusters(ctx context.Context, id string, index uint64) (*DryRunClusters, error) {
	var out DryRunClusters
	err := c.getOpAt(ctx, "/v1/ops/"+url.PathEscape(id)+"/clusters", index, &out)
	return &out, err
}

// BriefParam, in the query of an operation's start or read (?brief=1),
// leaves the agents' steps (each agent's name stays, with no steps) and a
// dry run's clusters out of the answer: what following an operation to
// its end needs, a few hundred bytes per agent rather than every step.
const BriefParam = "brief"

// StartOpBrief is StartOp with a brief answer (BriefParam).
func (c *Client) StartOpBrief(ctx context.Context, service, kind string, req *OpRequest) (*plan.Op, error) {
	var body io.Reader
	if req != nil {
		body = jsonBody(req)
	}
	var out plan.Op
	_, err := c.Do(ctx, "POST", "/v1/services/"+url.PathEscape(service)+"/"+kind+"?"+BriefParam+"=1", body, &out)
	return &out, err
}

// OpBrief is Op with a brief answer (BriefParam): to follow an operation
// whose steps the caller does not need.
func (c *Client) OpBrief(ctx context.Context, id string, index uint64, wait time.Duration) (*plan.Op, error) {
	path := "/v1/ops/" + url.PathEscape(id) + "?" + BriefParam + "=1"
	if wait > 0 {
		path += fmt.Sprintf("&index=%d&wait=%s", index, wait)
	}
	var out plan.Op
	_, err := c.do(ctx, "GET", path, nil, &out, shape{wait: effectiveWait(wait)})
	return &out, err
}

// OpStatus reads an operation with a dry run's clusters; with index > 0,
// as of index or later (a blocking query, for a coordinator that has not
// applied what the caller saw elsewhere yet).
func (c *Client) OpStatus(ctx context.Context, id string, index uint64) (*OpStatus, error) {
	var out OpStatus
	err := c.getOpAt(ctx, "/v1/ops/"+url.PathEscape(id), index, &out)
	return &out, err
}

// getOpAt reads path at once or, with index > 0, once the op is at index
// or later.
func (c *Client) getOpAt(ctx context.Context, path string, index uint64, out any) error {
	wait := time.Duration(0)
	if index > 0 {
		wait = 30 * time.Second
		path += fmt.Sprintf("?index=%d&wait=%s", index-1, wait)
	}
	_, err := c.do(ctx, "GET", path, nil, out, shape{wait: effectiveWait(wait)})
	return err
}
