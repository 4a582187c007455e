package api

import "github.com/dtkhq/dtk/plan"

// RolloutStatus is a service's running (or last) rollout, as status shows
// it (docs/rollouts.md).
type RolloutStatus struct {
	Generation uint64       `json:"generation"`
	Status     string       `json:"status"`
	Paused     bool         `json:"paused,omitempty"`
	Strategy   plan.Rollout `json:"strategy"`
	// Resolved counts.
	MaxParallel int `json:"max_parallel"`
	Canaries    int `json:"canaries"`
	MaxFailures int `json:"max_failures"`
	// Nodes is how many nodes the deploy changes; Canary, Admitted (have
	// the new plan), Healthy, Failed and Waiting (keep the old one) name
	// them.
	Nodes    int      `json:"nodes"`
	Canary   []string `json:"canary,omitempty"`
	Admitted []string `json:"admitted"`
	Healthy  []string `json:"healthy,omitempty"`
	Failed   []string `json:"failed,omitempty"`
	Waiting  []string `json:"waiting"`
	// RevertTo is the generation auto-revert would deploy (0: none).
	RevertTo  uint64 `json:"revert_to,omitempty"`
	Reason    string `json:"reason,omitempty"`
	StartedAt int64  `json:"started_at_ms"`
	UpdatedAt int64  `json:"updated_at_ms"`
}

// DeployRequest is the optional body of POST /v1/services/NAME/deploy.
type DeployRequest struct {
	// Rollout overrides the template's rollout block for this deploy.
	Rollout *plan.RolloutOverride `json:"rollout,omitempty"`
	// Force runs create steps again although their digest is unchanged,
	// once: every one of the service, or those on Node, or the one of
	// instance (or step ID) Component.
	Force *Part `json:"force,omitempty"`
	// Restore brings back what a partial delete removed (Node, Component
	// or both, as given to the delete): this deploy creates it again.
	Restore *Part `json:"restore,omitempty"`
}

// Part names part of a service: a template node (or a node group's
// member, or an agent) and/or a component instance.
type Part struct {
	Node      string `json:"node,omitempty"`
	Component string `json:"component,omitempty"`
}

// RevertRequest is the body of POST /v1/services/NAME/revert.
type RevertRequest struct {
	// To is the generation to revert to; 0: the newest converged one
	// before the current.
	To      uint64                `json:"to,omitempty"`
	Rollout *plan.RolloutOverride `json:"rollout,omitempty"`
}

// Generation is a kept generation of a service
// (GET /v1/services/NAME/generations).
type Generation struct {
	Generation uint64 `json:"generation"`
	Module     string `json:"module"`
	Version    string `json:"version"`
	Converged  bool   `json:"converged"`
}

// DeployAnswer is what a deploy or a revert answers: the service without
// its plan's steps (a plan of thousands of nodes is megabytes), and their
// counts. `dtkctl service status` and GET /v1/nodes/NAME/plan show them.
type DeployAnswer struct {
	plan.Service
	PlanNodes int `json:"plan_nodes"`
	PlanSteps int `json:"plan_steps"`
}
