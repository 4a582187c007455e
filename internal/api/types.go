// Package api holds the coordinator's HTTP API types and a client for
// them, shared by dtkctl, the agent and the coordinator. Every call the
// client makes has a deadline, and a coordinator that does not answer in
// time is left for the next one (deadline.go says which deadline and why).
package api

import "github.com/dtkhq/dtk/plan"

func (e *APIError) Error() string { return e.Message }

// APIError is the body of every error response.
type APIError struct {
	Code    int    `json:"code"`
	Message string `json:"error"`
	// Details holds structured context: DSL diagnostics, plan violations.
	Details any `json:"details,omitempty"`
}

// StatusResponse is GET /v1/status.
type StatusResponse struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Leader   string `json:"leader"`
	IsLeader bool   `json:"is_leader"`
	Index    uint64 `json:"index"`
	RaftAddr string `json:"raft_addr"`
	// RaftConfigured says this coordinator is part of a formed cluster.
	RaftConfigured bool `json:"raft_configured"`
	// PlanPolls is the number of agents' plan long-polls this
	// coordinator is serving now.
	PlanPolls int64 `json:"plan_polls"`
}

// StageRequest is POST /v1/services.
type StageRequest struct {
	Name string `json:"name"`
	// Template is MODULE/TEMPLATE or MODULE@VERSION/TEMPLATE.
	Template string            `json:"template"`
	Parent   string            `json:"parent,omitempty"`
	Inputs   map[string]string `json:"inputs,omitempty"`
}

// ServiceSummary is one row of GET /v1/services.
type ServiceSummary struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	Generation uint64 `json:"generation"`
	Module     string `json:"module"`
	Version    string `json:"version"`
	Template   string `json:"template"`
	Parent     string `json:"parent,omitempty"`
	// Stale names the ancestors' exports that changed since the service
	// was last deployed ("export NAME of SERVICE").
	Stale []string `json:"stale,omitempty"`
}

// PlanPreview is GET /v1/services/{name}/plan: what the next deploy would
// do, per node, with every value's source; or every violation.
type PlanPreview struct {
	Service    string           `json:"service"`
	Generation uint64           `json:"generation"`
	Nodes      []plan.NodeDiff  `json:"nodes"`
	Inputs     []*plan.Value    `json:"inputs"`
	Exports    []*plan.Value    `json:"exports,omitempty"`
	Violations []plan.Violation `json:"violations"`
	// Pending names the ancestors' exports that their staged, undeployed
	// changes would change ("export NAME of SERVICE"): the plan assumes
	// those changes deployed first (deploy --recursive from the ancestor
	// does that), and the values they reach say "(pending change)".
	Pending []string `json:"pending,omitempty"`
	// Notes say more about how the plan was made (an ancestor whose staged
	// change does not compile is taken as deployed).
	Notes []string `json:"notes,omitempty"`
}

// UpgradeRequest is POST /v1/services/{name}/upgrade.
type UpgradeRequest struct {
	Version string `json:"version"`
}

// InputsRequest is POST /v1/services/{name}/inputs.
type InputsRequest struct {
	Inputs map[string]string `json:"inputs"`
}

// ReportsRequest is POST /v1/nodes/{name}/reports.
type ReportsRequest struct {
	Reports []plan.Report `json:"reports"`
}

// ReportsResponse acknowledges committed reports.
type ReportsResponse struct {
	Applied int    `json:"applied"`
	Index   uint64 `json:"index"`
}

// ServiceStatus is what `dtkctl service status --json` prints.
type ServiceStatus struct {
	Name       string            `json:"name"`
	State      string            `json:"state"`
	Generation uint64            `json:"generation"`
	Module     string            `json:"module"`
	Version    string            `json:"version"`
	Template   string            `json:"template"`
	Parent     string            `json:"parent,omitempty"`
	Inputs     map[string]string `json:"inputs,omitempty"`
	Index      uint64            `json:"index"`
	Nodes      []NodeStatus      `json:"nodes"`
	// Stale names the ancestors' exports that changed since the service
	// was last deployed ("export NAME of SERVICE"): what it runs was
	// resolved against their old values.
	Stale []string `json:"stale,omitempty"`
	// Recursive is the last recursive deploy started from this service.
	Recursive *RecursiveDeploy `json:"recursive_deploy,omitempty"`
	// Rollout is the service's running (or last) rollout.
	Rollout *RolloutStatus `json:"rollout,omitempty"`
}

// NodeStatus is one agent's part of a service status.
type NodeStatus struct {
	// Name is the agent's name; TemplateNode the template's node block.
	Name         string       `json:"name"`
	TemplateNode string       `json:"template_node"`
	Status       string       `json:"status"`
	Steps        []StepStatus `json:"steps"`
	// Rollout is where the node is in a running rollout: canary,
	// admitted, healthy, failed or waiting (it keeps its old plan).
	Rollout string `json:"rollout,omitempty"`
}

// StepStatus is one step's state in the current generation.
type StepStatus struct {
	ID         string `json:"id"`
	Component  string `json:"component"`
	Instance   string `json:"instance"`
	Action     string `json:"action"`
	State      string `json:"state"`
	ExitCode   int    `json:"exit_code"`
	DurationMs int64  `json:"duration_ms"`
	Generation uint64 `json:"generation,omitempty"`
	Output     string `json:"output,omitempty"`
	Error      string `json:"error,omitempty"`
	// Changed: the last run changed something; Drift: it repaired drift
	// (the step's check had failed). StartedAt and FinishedAt are when
	// the last run started and ended (ms since epoch, the agent's clock);
	// a running step has no FinishedAt.
	Changed    bool  `json:"changed,omitempty"`
	Drift      bool  `json:"drift_repaired,omitempty"`
	StartedAt  int64 `json:"started_at_ms,omitempty"`
	FinishedAt int64 `json:"finished_at_ms,omitempty"`
	// Reason says why the last run ran although the step's digest had not
	// changed: "refreshed: component.config changed", "forced".
	Reason string `json:"reason,omitempty"`
	// DependsOn and Waiting come from the plan (graph, progress).
	DependsOn []string `json:"depends_on,omitempty"`
	Waiting   []string `json:"waiting,omitempty"`
}

// Member is one gossip pool member (GET /v1/operator/members).
type Member struct {
	Name     string `json:"name"`
	Addr     string `json:"addr"`
	Role     string `json:"role"`
	Status   string `json:"status"`
	HTTPAddr string `json:"http_addr,omitempty"`
	RaftAddr string `json:"raft_addr,omitempty"`
	Version  string `json:"version,omitempty"`
	DC       string `json:"dc,omitempty"`
}

// RaftPeers is GET /v1/operator/raft.
type RaftPeers struct {
	Leader       string       `json:"leader"`
	LastIndex    uint64       `json:"last_index"`
	AppliedIndex uint64       `json:"applied_index"`
	Servers      []RaftServer `json:"servers"`
}

// RaftServer is one member of the Raft configuration.
type RaftServer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
}

// OpRequest is the body of POST /v1/services/{name}/exec (dry-run and
// cancel take none).
type OpRequest struct {
	Action    string            `json:"action,omitempty"`
	Node      string            `json:"node,omitempty"`
	Component string            `json:"component,omitempty"`
	Params    map[string]string `json:"params,omitempty"`
	// LogBytes (logs) is how much of each step log's end to fetch:
	// default 64 KiB, at most 1 MiB.
	LogBytes int `json:"log_bytes,omitempty"`
}

// NodeOps is GET /v1/nodes/{name}/ops: the operations an agent has to do.
type NodeOps struct {
	Index uint64     `json:"index"`
	Ops   []*plan.Op `json:"ops"`
}

// OpResultsRequest is POST /v1/nodes/{name}/ops/{id}/results.
type OpResultsRequest struct {
	Reports []plan.Report `json:"reports"`
	// Final says the agent is done with the op.
	Final bool `json:"final"`
}
