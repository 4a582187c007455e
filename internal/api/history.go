package api

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/dtkhq/dtk/plan"
)

// History record kinds (HistoryRecord.Kind).
const (
	HistoryDeploy     = "deploy"
	HistoryDelete     = "delete"
	HistoryDeletePart = "delete-part"
	HistoryExec       = "exec"
	HistoryDryRun     = "dry-run"
	HistoryCancel     = "cancel"
	HistoryUpgrade    = "upgrade"
	HistoryInputs     = "inputs"
	// HistoryDeployRecursive is a recursive deploy started from the
	// service (each service it deploys has its own deploy record).
	HistoryDeployRecursive = "deploy-recursive"
)

// History record results (HistoryRecord.Result).
const (
	ResultRunning   = "running"
	ResultConverged = "converged"
	ResultFailed    = "failed"
	ResultDeleted   = "deleted"
	ResultDone      = "done"
)

// HistoryRecord is one change made to a service: a deploy, a delete (of the
// whole service or of a part), an operation (exec, dry run, cancel), an
// upgrade or a change of inputs (GET /v1/services/NAME/history). A record
// is written by the replicated state machine; times are the leader's clock
// (ms since the epoch).
type HistoryRecord struct {
	ID         string `json:"id"`
	Service    string `json:"service"`
	Kind       string `json:"kind"`
	Generation uint64 `json:"generation"`
	// By is the caller that asked for it, as the audit trail names it;
	// Token the ACL token's name when ACLs are enabled.
	By        string `json:"by"`
	Token     string `json:"token,omitempty"`
	StartedMS int64  `json:"started_ms"`
	// EndedMS is 0 while the record is running.
	EndedMS int64  `json:"ended_ms"`
	Result  string `json:"result"`
	// Step counts: ran and changed something, ran without a change, failed,
	// skipped (unchanged since the last run). Operations count their
	// agents' results.
	Changed   int `json:"changed"`
	Unchanged int `json:"unchanged"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
	// Diff is the plan diff the record applied (deploys and deletes), with
	// sensitive values redacted. Unchanged steps are listed without their
	// attributes; a changed step lists only the attributes that changed.
	// DiffTruncated says the attribute values were left out because the
	// diff was too large to keep; DiffNodesOmitted counts the nodes left
	// out when even that was too large (those with changes are kept
	// first).
	Diff             []plan.NodeDiff `json:"diff"`
	DiffTruncated    bool            `json:"diff_truncated,omitempty"`
	DiffNodesOmitted int             `json:"diff_nodes_omitted,omitempty"`
	// Op is the operation's ID (exec, dry-run, cancel) and Action the
	// custom action an exec ran.
	Op     string `json:"op,omitempty"`
	Action string `json:"action,omitempty"`
	// Message says more, in words: the module versions of an upgrade, the
	// inputs set, what a partial delete removed, why a record ended.
	Message string `json:"message,omitempty"`
	// Index is the Raft index of the entry that last changed the record.
	Index uint64 `json:"index"`
}

// Event types (Event.Type).
const (
	EventDeployStarted  = "deploy-started"
	EventDeployFinished = "deploy-finished"
	EventDeleteStarted  = "delete-started"
	EventDeleteFinished = "delete-finished"
	EventStepFailed     = "step-failed"
	EventDriftRepaired  = "drift-repaired"
	EventNodeUp         = "node-up"
	EventNodeDown       = "node-down"
	EventNodeRemoved    = "node-removed"
	EventLeaderChanged  = "leader-changed"
	EventExecStarted    = "exec-started"
	// A service was marked stale: an ancestor's export it consumes changed.
	EventServiceStale = "service-stale"
	// A recursive deploy started, and finished (converged or failed).
	EventRecursiveStarted  = "recursive-deploy-started"
	EventRecursiveFinished = "recursive-deploy-finished"
)

// Event is one entry of the cluster's event stream (GET /v1/events). Index
// numbers events in order, one by one, across the cluster; the stream keeps
// the most recent ones.
type Event struct {
	Index      uint64 `json:"index"`
	TimeMS     int64  `json:"time_ms"`
	Type       string `json:"type"`
	Service    string `json:"service,omitempty"`
	Node       string `json:"node,omitempty"`
	Generation uint64 `json:"generation,omitempty"`
	Step       string `json:"step,omitempty"`
	Message    string `json:"message,omitempty"`
	// Coordinator names the coordinator of a leader-changed event.
	Coordinator string `json:"coordinator,omitempty"`
	// RaftIndex is the index of the log entry that made the event.
	RaftIndex uint64 `json:"raft_index"`
}

// EventList is an answer of GET /v1/events: the events after the index
// asked for, oldest first, and the index to ask from next.
type EventList struct {
	Index  uint64  `json:"index"`
	Events []Event `json:"events"`
}

// ServiceHistory lists a service's records, newest first.
func (c *Client) ServiceHistory(ctx context.Context, name string) ([]HistoryRecord, error) {
	var out []HistoryRecord
	_, err := c.Do(ctx, "GET", "/v1/services/"+url.PathEscape(name)+"/history", nil, &out)
	return out, err
}

// Events reads the events after index (at most 500, oldest first); with
// wait > 0 it blocks until there is one the caller may see, or wait passes.
// With index 0 and no wait it reads the newest events.
func (c *Client) Events(ctx context.Context, index uint64, wait time.Duration) (*EventList, error) {
	path := "/v1/events"
	if index > 0 || wait > 0 {
		path += "?index=" + strconv.FormatUint(index, 10) + "&wait=" + wait.String()
	}
	var out EventList
	if _, err := c.Do(ctx, "GET", path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rollout events and records (docs/rollouts.md).
const (
	EventRolloutStarted  = "rollout-started"
	EventRolloutBatch    = "rollout-batch"
	EventRolloutCanaries = "rollout-canaries"
	EventRolloutPaused   = "rollout-paused"
	EventRolloutFailed   = "rollout-failed"
	EventRolloutReverted = "rollout-reverted"
	EventRolloutDone     = "rollout-done"
	// HistoryRollout records an operator's pause, resume, promote or
	// abort.
	HistoryRollout = "rollout"
)
