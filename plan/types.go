package plan

import (
	"encoding/json"
	"fmt"
)

// Pos is a position in a module's source: file (relative to the module
// folder), 1-based line and column.
type Pos struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

func (p Pos) String() string {
	if p.File == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// Module is a parsed, checked module: what a pushed module folder declares.
// The folder's bytes live in the coordinator's blob store under Digest; the
// Module itself travels through the Raft log.
type Module struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	// Digest is "sha256:<hex>" of the module archive (see internal/archive).
	Digest string `json:"digest,omitempty"`
	// Size is the archive's length in bytes.
	Size int64 `json:"size,omitempty"`
	// KeyID and SignedBy say who signed the module (its dtk.sig, see
	// internal/signing): the id of the key and the signer the signature
	// names. A coordinator records them only for a signature it verified
	// against one of its trusted keys when the module was pushed or
	// imported; both are empty otherwise.
	KeyID    string `json:"key_id,omitempty"`
	SignedBy string `json:"signed_by,omitempty"`
	// Files maps every file in the module folder (slash-separated path
	// relative to the folder) to "sha256:<hex>" of its content, so that a
	// step's digest changes only when the asset it runs changes.
	Files map[string]string `json:"files,omitempty"`
	// Texts holds the content of every file under the module's
	// templates/ folder (key: slash-separated path relative to the module
	// folder, "templates/nginx.conf"), for templatefile() to render at
	// compile time without reading the archive.
	Texts map[string]string `json:"texts,omitempty"`
	// Requires lists the other modules whose components this module's
	// templates use ("component \"base.file\" \"x\"").
	Requires   []*Require            `json:"requires,omitempty"`
	Components map[string]*Component `json:"components"`
	Templates  map[string]*Template  `json:"templates"`
}

// Require is a dependency on another module by name and version
// constraint ("~> 1.2", ">= 1.0.0, < 2.0.0", "1.4.2").
type Require struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Pos     Pos    `json:"pos"`
}

// Ref is "name@version".
func (m *Module) Ref() string { return m.Name + "@" + m.Version }

// Component is a reusable unit: typed attributes and the actions that
// converge (create) and undo (delete) it.
type Component struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Attributes  []*Attribute `json:"attributes"`
	// Outputs are values the create action sets at run time.
	Outputs []*Output `json:"outputs,omitempty"`
	// Actions by name: "create", "delete", and custom ones ("restart").
	Actions map[string]*Action `json:"actions"`
	// Check, when set, says whether the component is still in its desired
	// state (exit 0: yes).
	Check *Action `json:"check,omitempty"`
	Pos   Pos     `json:"pos"`
}

// Output is a value a component's create action sets at run time, which
// other components (on any node) may consume.
type Output struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Sensitive   bool   `json:"sensitive,omitempty"`
	Pos         Pos    `json:"pos"`
}

// Attribute looks an attribute up by name.
func (c *Component) Attribute(name string) *Attribute {
	for _, a := range c.Attributes {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Attribute is a typed input of a component, or an input of a template.
type Attribute struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Type is an HCL type expression in canonical form: "string",
	// "number", "bool", "list(string)", "map(number)", "any", ...
	Type string `json:"type"`
	// Default is the default value as JSON (cty JSON encoding of Type);
	// nil when the attribute has no default.
	Default  json.RawMessage `json:"default,omitempty"`
	Required bool            `json:"required,omitempty"`
	// Sensitive values reach the asset but are never printed, logged or
	// shown in plans and reports.
	Sensitive   bool          `json:"sensitive,omitempty"`
	Validations []*Validation `json:"validations,omitempty"`
	Pos         Pos           `json:"pos"`
}

// Validation is a condition an attribute's or input's value must meet. The
// condition sees the value as `value`.
type Validation struct {
	Condition    Expr   `json:"condition"`
	ErrorMessage string `json:"error_message"`
	Pos          Pos    `json:"pos"`
}

// CheckNoop is the kind of a check that runs the component's create
// action in its own dry-run mode (Puppet --noop, Ansible --check, the
// container comparison): a change it predicts is drift. It is the default
// check of a container create action. It is in no step's digest (Check is
// not). An older agent has no runner of that kind: it takes every such
// check for drift and runs create again on each reconcile interval, which
// changes nothing but is reported as drift repaired; upgrade agents first.
const CheckNoop = "noop"

// Action is one wrapped asset run. Which fields are set depends on Kind
// (see docs/actions.md); paths "inside the module" are slash-separated,
// relative to the module folder and cleaned (keys of Module.Files, or of
// folders holding such keys).
type Action struct {
	// Kind names the runner: "bash", "exec", "puppet", "ansible" or
	// "container"; a check may also be CheckNoop.
	Kind string `json:"kind"`
	// bash: Script is a path inside the module folder; Inline is script
	// text. Exactly one is set.
	Script string `json:"script,omitempty"`
	Inline string `json:"inline,omitempty"`
	// exec: Program is a file inside the module (written with a slash:
	// "bin/tool", "./tool.py"), an absolute path, or a command name looked
	// up on PATH; Args are its static arguments.
	Program string   `json:"program,omitempty"`
	Args    []string `json:"args,omitempty"`
	// puppet: Manifest is a .pp file inside the module, or Class a class
	// name ("web" or "mymod::web"); exactly one is set. ModulePath is a
	// folder inside the module holding Puppet modules ("modules" when that
	// folder exists and the action names none).
	Manifest   string `json:"manifest,omitempty"`
	Class      string `json:"class,omitempty"`
	ModulePath string `json:"modulepath,omitempty"`
	// ansible: Playbook is a playbook file inside the module, or Role the
	// name of a role under the module's roles/ folder; exactly one is set.
	Playbook string `json:"playbook,omitempty"`
	Role     string `json:"role,omitempty"`
	// puppet (class) and ansible: Params maps each class parameter or
	// role variable to pass to an expression over the component's
	// attributes (each a variable of its own name). When set, only these
	// are passed (a null value is left out); nil: every attribute is. See
	// ResolveParams.
	Params map[string]Expr `json:"params,omitempty"`
	// container: Engine is "podman" or "docker"; empty means whichever is
	// installed, podman first. The container's settings are attributes.
	Engine string `json:"engine,omitempty"`
	// TimeoutSeconds bounds one run; 0 means the agent's default.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// Retries is how many times a failed run is tried again, waiting
	// RetryDelaySeconds (default 5) before the first retry and twice as long
	// before each next one.
	Retries           int `json:"retries,omitempty"`
	RetryDelaySeconds int `json:"retry_delay_seconds,omitempty"`
	// User and Group name the account the run's processes take on the
	// node (uid, gid and supplementary groups); empty means the agent's
	// step_user and step_group, else the agent's own (root). Group alone
	// changes only the primary group. Container actions take neither.
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	Pos   Pos    `json:"pos"`
}

// Template is a deployable arrangement of component instances on nodes.
type Template struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Inputs      []*Attribute    `json:"inputs,omitempty"`
	Nodes       []*TemplateNode `json:"nodes"`
	// Exports are values offered to services staged with respect to this
	// one: a child's unset input takes the nearest ancestor's export of the
	// same name.
	Exports []*Export `json:"exports,omitempty"`
	// Injects are component instances added to every node of every service
	// staged (at any depth) with respect to this one. Their expressions see
	// `export` (this template's exports) and `self` (the child's node).
	Injects []*Instance `json:"injects,omitempty"`
	// Rollout is how a deploy walks through the service's nodes by
	// default (a deploy's flags override it); nil: all nodes at once.
	Rollout *Rollout `json:"rollout,omitempty"`
	Pos     Pos      `json:"pos"`
}

// Rollout is a rollout strategy: a template's rollout block, or a deploy's
// flags over it. Counts are written "2" or "10%" (of the nodes the deploy
// changes); see docs/rollouts.md.
type Rollout struct {
	// MaxParallel bounds how many nodes converge at once ("" or "0":
	// all).
	MaxParallel string `json:"max_parallel,omitempty"`
	// Canary nodes go first; the rest wait until they are healthy.
	Canary string `json:"canary,omitempty"`
	// MinHealthySeconds is how long a node must stay healthy before it
	// counts as done.
	MinHealthySeconds int `json:"min_healthy_seconds,omitempty"`
	// Health is "steps" (the node's steps ok) or "check" (and each
	// component's check passing for MinHealthySeconds, verified by the
	// agent).
	Health string `json:"health,omitempty"`
	// MaxFailures is how many nodes may fail before the rollout stops.
	MaxFailures string `json:"max_failures,omitempty"`
	// AutoRevert: a stopped rollout deploys the last converged
	// generation's plan to the nodes it changed.
	AutoRevert bool `json:"auto_revert,omitempty"`
	// ManualPromote: after the canaries are healthy, wait for
	// `dtkctl service promote`.
	ManualPromote bool `json:"manual_promote,omitempty"`
	Pos           Pos  `json:"pos"`
}

// Export is a named value offered to child services.
type Export struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Value       Expr   `json:"value"`
	Sensitive   bool   `json:"sensitive,omitempty"`
	Pos         Pos    `json:"pos"`
}

// Input looks a template input up by name.
func (t *Template) Input(name string) *Attribute {
	for _, a := range t.Inputs {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// TemplateNode is a `node` block (exactly one agent) or a `node_group`
// block (Group: Count agents, or every matching agent when Count is 0),
// selecting by labels and facts, with the component instances placed on
// each selected agent.
type TemplateNode struct {
	Name  string `json:"name"`
	Group bool   `json:"group,omitempty"`
	Count int    `json:"count,omitempty"`
	// Labels an agent must all carry to be chosen for this node.
	Labels map[string]string `json:"labels,omitempty"`
	// Facts an agent's facts must equal (os, arch, hostname, ...).
	Facts map[string]string `json:"facts,omitempty"`
	// LabelsExpr, FactsExpr and CountExpr are a selector written as an
	// expression over the template's inputs (labels = { env = input.env
	// }), which the compiler evaluates; Labels, Facts and Count are then
	// unset. A count expression may be 0: the group takes no agent.
	LabelsExpr *Expr       `json:"labels_expr,omitempty"`
	FactsExpr  *Expr       `json:"facts_expr,omitempty"`
	CountExpr  *Expr       `json:"count_expr,omitempty"`
	Components []*Instance `json:"components"`
	Pos        Pos         `json:"pos"`
}

// Instance is a component placed on a template node. Attribute values are
// HCL expressions kept as source text; the compiler evaluates them against
// the service's inputs and the chosen nodes' facts.
type Instance struct {
	Name      string `json:"name"`
	Component string `json:"component"`
	// Module names the required module the component comes from ("" for
	// this module): `component "base.file" "x"`.
	Module     string          `json:"module,omitempty"`
	Attributes map[string]Expr `json:"attributes,omitempty"`
	// DependsOn names instances that must converge first: "INST" on the
	// same node, "NODE/INST" on another node.
	DependsOn []string `json:"depends_on,omitempty"`
	// Once: in a node_group, the instance runs on the group's first
	// member only, before the other members' later instances.
	Once bool `json:"once,omitempty"`
	// Subscribe names instances on the same node whose change (a run that
	// reported changed) makes this one run again in the same converge:
	// its Refresh action, else create. Subscribed instances are also in
	// DependsOn.
	Subscribe []string `json:"subscribe,omitempty"`
	Refresh   string   `json:"refresh,omitempty"`
	Pos       Pos      `json:"pos"`
}

// Expr is an HCL expression's source text and where it starts.
type Expr struct {
	Source string `json:"source"`
	Pos    Pos    `json:"pos"`
}

// Service states.
const (
	StateStaged    = "staged"
	StateDeploying = "deploying"
	StateConverged = "converged"
	StateFailed    = "failed"
	StateDeleting  = "deleting"
)

// Service is a staged template: a name, input values and (once deployed) its
// compiled plan.
type Service struct {
	Name     string `json:"name"`
	Module   string `json:"module"`
	Version  string `json:"version"`
	Template string `json:"template"`
	Parent   string `json:"parent,omitempty"`
	// Inputs are the operator's values as typed on the command line; the
	// compiler converts them to each input's declared type.
	Inputs map[string]string `json:"inputs,omitempty"`
	// Lock pins the version of every required module (name → version),
	// resolved when the service is staged or upgraded.
	Lock map[string]string `json:"lock,omitempty"`
	// Removed lists what a partial delete took away and later deploys
	// leave out: "NODE" (a whole node) or "NODE/INST".
	Removed []string `json:"removed,omitempty"`
	// DeleteRecursive: delete this service once its children are gone.
	DeleteRecursive bool `json:"delete_recursive,omitempty"`
	// Stale names the ancestors' exports that changed since this service
	// was last deployed ("export NAME of SERVICE").
	Stale []string `json:"stale,omitempty"`
	// Rollout is the running (or last) rollout of the current generation.
	Rollout *RolloutState `json:"rollout,omitempty"`
	// State is staged, deploying, deleting; converged and failed are
	// derived from reports (see Status).
	State      string `json:"state"`
	Generation uint64 `json:"generation"`
	// Plan is the desired state of the current generation; nil until the
	// first deploy.
	Plan        *Plan  `json:"plan,omitempty"`
	CreatedAt   int64  `json:"created_at_ms"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// Plan is a service's compiled desired state for one generation.
type Plan struct {
	Service    string      `json:"service"`
	Generation uint64      `json:"generation"`
	Nodes      []*NodePlan `json:"nodes"`
	// Inputs are the resolved template inputs with their provenance.
	Inputs []*Value `json:"inputs,omitempty"`
	// Exports are the values this service offers to its children.
	Exports []*Value `json:"exports,omitempty"`
}

// Value is a resolved value and where it came from: "operator", "default",
// "export of SERVICE", "output of NODE/INST", "template".
type Value struct {
	Name      string          `json:"name"`
	Value     json.RawMessage `json:"value,omitempty"`
	Source    string          `json:"source"`
	Sensitive bool            `json:"sensitive,omitempty"`
	// Old (in a plan diff) is a changed attribute's value in the current
	// plan ("null" when it had none); redacted when sensitive.
	Old json.RawMessage `json:"old,omitempty"`
}

// NodePlan is the part of a plan that one agent runs.
type NodePlan struct {
	// Name is the template node's name; Agent is the chosen agent's name.
	Name  string  `json:"name"`
	Agent string  `json:"agent"`
	Steps []*Step `json:"steps"`
	// Selector holds the template node's labels, facts and count that
	// were written as expressions, as evaluated, with where each came
	// from ("input env (operator)").
	Selector []*Value `json:"selector,omitempty"`
}

// Step is one action of one component instance on one node, with everything
// resolved: the unit the agent converges and reports on.
type Step struct {
	// ID is "service/node/instance/action": stable across generations.
	ID         string `json:"id"`
	Service    string `json:"service"`
	Node       string `json:"node"`
	Instance   string `json:"instance"`
	Component  string `json:"component"`
	Action     string `json:"action"`
	Generation uint64 `json:"generation"`
	// Module and its archive digest, fetched by the agent to run Run.
	Module       string `json:"module"`
	ModuleDigest string `json:"module_digest"`
	Run          Action `json:"run"`
	// Undo is the component's delete action, kept by the agent so that a
	// step that disappears from a later plan can be undone.
	Undo       *Action                    `json:"undo,omitempty"`
	Attributes map[string]json.RawMessage `json:"attributes,omitempty"`
	// Sources says where each attribute's value came from.
	Sources map[string]string `json:"sources,omitempty"`
	// Sensitive names attributes never to show.
	Sensitive []string `json:"sensitive,omitempty"`
	// Outputs the action must set; Check tells drift.
	Outputs []string `json:"outputs,omitempty"`
	Check   *Action  `json:"check,omitempty"`
	// DependsOn lists steps (any node) that converge before this one.
	DependsOn []string `json:"depends_on,omitempty"`
	// Waiting says why the step cannot run yet (an output of another node
	// not yet reported, a dependency not yet converged); the agent leaves
	// a waiting step, and those after it in its service, pending. The
	// coordinator recompiles when what it waits for arrives.
	Waiting []string `json:"waiting,omitempty"`
	// Digest covers the action, the digest of the asset it runs and the
	// resolved attributes: an unchanged digest means nothing to do.
	Digest string `json:"digest"`
	// Once: the instance is marked once = true (it runs on the first
	// member of its node group only).
	Once bool `json:"once,omitempty"`
	// Origin is where the instance is written and Origins where each
	// attribute the instance sets is, as "MODULE/FILE:LINE:COL (component
	// "TYPE" "NAME", attribute "ATTR")": a failed Puppet run names the one
	// that set the parameter Puppet complains about. Set only for
	// components with a puppet action; not part of Digest.
	Origin  string            `json:"origin,omitempty"`
	Origins map[string]string `json:"origins,omitempty"`
	// HealthSeconds (set during a rollout with health = "check"): after a
	// successful run, the agent runs the step's check again every few
	// seconds for this long, and reports the step ok only if it kept
	// passing. Not part of Digest.
	HealthSeconds int `json:"health_seconds,omitempty"`
	// Subscribe lists the step IDs (same node) whose changed run makes
	// this step run again in the same converge although its digest is
	// unchanged: RefreshRun (the custom action named RefreshAction) when
	// set, else Run. Not part of Digest: it says when to run, not what.
	Subscribe     []string `json:"subscribe,omitempty"`
	RefreshAction string   `json:"refresh_action,omitempty"`
	RefreshRun    *Action  `json:"refresh_run,omitempty"`
	// Force is the Raft index of the last `deploy --force` that named
	// this step: an agent runs the step again, once, when Force is above
	// the one it recorded at the step's last run. Kept across recompiles
	// and generations; not part of Digest.
	Force uint64 `json:"force,omitempty"`
}

// Slice is one agent's part of every service's plan, as the agent pulls it.
type Slice struct {
	Node  string  `json:"node"`
	Index uint64  `json:"index"`
	Steps []*Step `json:"steps"`
}

// Step states, as reported by agents and shown in status.
const (
	StepPending = "pending"
	StepRunning = "running"
	StepOK      = "ok"
	StepSkipped = "skipped"
	StepFailed  = "failed"
)

// Report is an agent's account of one step run (or skip).
type Report struct {
	// ID is unique per run so that a resend is recognized and applied
	// once: "node:incarnation:seq" (older agents: "node:seq"); the
	// sequence grows within an incarnation of the agent.
	ID         string `json:"id"`
	Node       string `json:"node"`
	Service    string `json:"service"`
	StepID     string `json:"step_id"`
	Action     string `json:"action"`
	Generation uint64 `json:"generation"`
	Digest     string `json:"digest"`
	State      string `json:"state"`
	ExitCode   int    `json:"exit_code"`
	DurationMs int64  `json:"duration_ms"`
	// Output is the tail of the run's combined stdout and stderr.
	Output string `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
	// Changed says the run changed something (runners that can tell:
	// puppet, ansible, container; bash and exec always change unless the
	// asset says otherwise). Drift says the run repaired drift: the step's
	// check failed although its plan had not changed.
	Changed bool `json:"changed,omitempty"`
	Drift   bool `json:"drift,omitempty"`
	// Reason says why a step whose digest had not changed ran:
	// "refreshed: component.config changed" (subscribe), "forced"
	// (deploy --force).
	Reason string `json:"reason,omitempty"`
	// Prediction is a dry run's answer for the step.
	Prediction string `json:"prediction,omitempty"`
	// Outputs are the values the action set (create steps).
	Outputs    map[string]json.RawMessage `json:"outputs,omitempty"`
	StartedAt  int64                      `json:"started_at_ms,omitempty"`
	FinishedAt int64                      `json:"finished_at_ms,omitempty"`
}

// Node is a registered agent.
type Node struct {
	Name string `json:"name"`
	// Labels are what selectors match: the node's own labels
	// (AgentLabels, from its configuration) with the labels an operator
	// set (OperatorLabels, which the node cannot change) winning.
	Labels         map[string]string `json:"labels,omitempty"`
	AgentLabels    map[string]string `json:"agent_labels,omitempty"`
	OperatorLabels map[string]string `json:"operator_labels,omitempty"`
	Facts          Facts             `json:"facts"`
	// Incarnation is a random ID the agent made when its data dir was
	// created: a node whose disk was wiped comes back as a new incarnation,
	// whose report sequence starts again at 1. Empty from older agents.
	Incarnation string `json:"incarnation,omitempty"`
	// Status is NodeUp or NodeDown.
	Status       string `json:"status"`
	RegisteredAt int64  `json:"registered_at_ms"`
	LastSeen     int64  `json:"last_seen_ms"`
	CreateIndex  uint64 `json:"create_index"`
	ModifyIndex  uint64 `json:"modify_index"`
}

// Node statuses.
const (
	NodeUp   = "up"
	NodeDown = "down"
)

// Facts are what an agent discovers about its machine.
type Facts struct {
	Hostname     string   `json:"hostname"`
	OS           string   `json:"os"`
	Arch         string   `json:"arch"`
	Address      string   `json:"address"`
	Addresses    []string `json:"addresses,omitempty"`
	CPUs         int      `json:"cpus"`
	MemoryBytes  uint64   `json:"memory_bytes"`
	AgentVersion string   `json:"agent_version"`
}

// Operation kinds.
const (
	OpDryRun = "dry-run"
	OpExec   = "exec"
	OpCancel = "cancel"
	// OpLogs fetches the full output logs the agents keep of their steps
	// (reports carry only a tail).
	OpLogs = "logs"
)

// Op is a one-off request to a service's nodes, outside the plan: predict
// what a deploy would do (dry-run), run a custom action (exec), stop the
// steps running now (cancel), or fetch step logs (logs).
type Op struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	Service string `json:"service"`
	Action  string `json:"action,omitempty"`
	// LogBytes (logs) is how much of each step log's end to fetch.
	LogBytes int   `json:"log_bytes,omitempty"`
	Created  int64 `json:"created_ms"`
	// Steps per agent: what that agent runs (or predicts) for the op.
	Steps map[string][]*Step `json:"steps"`
	// Results are the agents' reports, in arrival order.
	Results []Report `json:"results,omitempty"`
	// Done lists the agents that finished the op; Skipped those left out
	// because they were down when the op was created.
	Done    []string `json:"done,omitempty"`
	Skipped []string `json:"skipped,omitempty"`
	Index   uint64   `json:"index"`
}

// Predictions a dry run reports per step (Report.Prediction).
const (
	PredictNoChange      = "no change"
	PredictChange        = "would change"
	PredictCannot        = "cannot predict (would run)"
	PredictUnchangedPlan = "unchanged (not run)"
)

// Rollout statuses (RolloutState.Status).
const (
	RolloutRunning  = "running"
	RolloutPromote  = "awaiting promotion"
	RolloutFailed   = "failed"
	RolloutReverted = "reverted"
	RolloutAborted  = "aborted"
	RolloutDone     = "done"
)

// RolloutState is a deploy walking through a service's nodes: the nodes in
// Order[:Admitted] get the new generation's plan, the others keep From's.
// It lives in the replicated state, so a new leader continues it.
type RolloutState struct {
	Generation uint64  `json:"generation"`
	Strategy   Rollout `json:"strategy"`
	// Resolved counts, against the nodes the deploy changes.
	MaxParallel int `json:"max_parallel"`
	Canaries    int `json:"canaries"`
	MaxFailures int `json:"max_failures"`
	// From is the plan the nodes not yet admitted keep; RevertTo the last
	// converged generation's plan, which auto-revert deploys (nil: none).
	From     *Plan `json:"from,omitempty"`
	RevertTo *Plan `json:"revert_to,omitempty"`
	// Order lists the agents the deploy changes, canaries first; the
	// first Admitted of them have the new plan.
	Order    []string `json:"order"`
	Admitted int      `json:"admitted"`
	// Unchanged lists agents whose plan the deploy does not change: they
	// get it at once.
	Unchanged []string `json:"unchanged,omitempty"`
	Status    string   `json:"status"`
	// Paused by an operator (dtkctl service pause): nothing new is
	// admitted until resume.
	Paused bool `json:"paused,omitempty"`
	// Promoted: the canaries were healthy and the rest may follow.
	Promoted bool `json:"promoted,omitempty"`
	// HealthyAt is when each admitted agent's steps were all ok (ms).
	HealthyAt map[string]int64 `json:"healthy_at,omitempty"`
	// Failed lists the admitted agents whose steps failed.
	Failed    []string `json:"failed,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	StartedAt int64    `json:"started_at_ms"`
	UpdatedAt int64    `json:"updated_at_ms"`
	// CheckedAt is the leader's time the last tick looked at it: a node
	// whose min_healthy_time ran out after it is due a tick.
	CheckedAt int64 `json:"checked_at_ms,omitempty"`
}
