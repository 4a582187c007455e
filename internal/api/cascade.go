package api

import (
	"context"
	"io"
	"net/url"
)

// Recursive deploys (dtkctl service deploy NAME --recursive).

// Recursive deploy statuses (RecursiveDeploy.Status).
const (
	RecursiveRunning   = "running"
	RecursiveConverged = "converged"
	RecursiveFailed    = "failed"
)

// Results of one service in a recursive deploy (RecursiveService.Result).
const (
	// RecursivePending: not reached yet.
	RecursivePending = "pending"
	// RecursiveDeploying: deployed, its generation not converged yet.
	RecursiveDeploying = "deploying"
	// RecursiveDone: deployed and converged.
	RecursiveDone = "converged"
	// RecursiveUnchanged: its plan would not change (and it is converged):
	// not deployed again.
	RecursiveUnchanged = "unchanged"
	// RecursiveSkipped: staged but never deployed, or being deleted: a
	// recursive deploy changes only what runs.
	RecursiveSkipped = "skipped"
	// RecursiveFailedOne: its deploy failed, or could not start; the
	// recursive deploy stopped there.
	RecursiveFailedOne = "failed"
	// RecursiveNotReached: after the failure, left as it was.
	RecursiveNotReached = "not reached"
)

// RecursiveDeploy is a deploy of a service and then of every service below
// it, parents before children and by name among siblings, each with its own
// deploy (and rollout), stopping at the first failure. It lives in the
// replicated state: it carries on when the CLI that started it goes away
// and across leader changes. A service's status shows the last one started
// from it.
type RecursiveDeploy struct {
	// ID is the ID of the service's history record of it.
	ID      string `json:"id"`
	Service string `json:"service"`
	Status  string `json:"status"`
	// Services lists every service in deploy order, the root first.
	Services []RecursiveService `json:"services"`
	// Current indexes the service being deployed (len(Services) once
	// finished).
	Current int `json:"current"`
	// Reason says why a failed one stopped.
	Reason    string `json:"reason,omitempty"`
	By        string `json:"by,omitempty"`
	Token     string `json:"token,omitempty"`
	StartedMS int64  `json:"started_ms"`
	EndedMS   int64  `json:"ended_ms"`
	// Index is the Raft index of the entry that last changed it.
	Index uint64 `json:"index"`
}

// RecursiveService is one service of a recursive deploy.
type RecursiveService struct {
	Name   string `json:"name"`
	Parent string `json:"parent,omitempty"`
	Result string `json:"result"`
	// Generation is the one deployed (or found unchanged).
	Generation uint64 `json:"generation,omitempty"`
	Message    string `json:"message,omitempty"`
}

// CurrentService is the service being deployed, or nil once finished.
func (r *RecursiveDeploy) CurrentService() *RecursiveService {
	if r == nil || r.Current < 0 || r.Current >= len(r.Services) {
		return nil
	}
	return &r.Services[r.Current]
}

// DeployRecursive deploys a service (with req's rollout override) and then,
// one by one, the services below it (each with its template's rollout):
// POST /v1/services/NAME/deploy?recursive=true. The answer is the service
// as its own deploy left it; its status follows the rest
// (ServiceStatus.Recursive).
func (c *Client) DeployRecursive(ctx context.Context, name string, req DeployRequest) (*DeployAnswer, error) {
	var out DeployAnswer
	var body io.Reader
	if req.Rollout != nil {
		body = jsonBody(req)
	}
	_, err := c.Do(ctx, "POST", "/v1/services/"+url.PathEscape(name)+"/deploy?recursive=true", body, &out)
	return &out, err
}

// PlanDeployedAncestors previews a service's next plan against its
// ancestors as deployed, leaving out their staged changes
// (GET /v1/services/NAME/plan?pending=false): what deploying the service
// alone would do now.
func (c *Client) PlanDeployedAncestors(ctx context.Context, name string) (*PlanPreview, error) {
	var out PlanPreview
	_, err := c.Do(ctx, "GET", "/v1/services/"+url.PathEscape(name)+"/plan?pending=false", nil, &out)
	return &out, err
}
