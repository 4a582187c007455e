// Package config reads, merges and validates the configuration of
// `dtk-agent run`: defaults, then an HCL file (/etc/dtk/agent.hcl unless
// --config names another), then the flags given on the command line, which
// win. Every value remembers where it was set, so that an error names the
// field and its position (file:line:col, or the flag).
//
// The file is flat, one attribute per `run` flag, but for the blocks tls,
// acl, ui, limits, http and modules, whose attributes are fields named
// "BLOCK.attribute".
//
//	name      = "web-1"
//	serf_addr = "10.0.0.5:7946"
//	join      = ["10.0.0.1:7946", "10.0.0.2:7946"]
//	labels    = { role = "web", env = "prod" }
//
// Only labels, log_level, log_format, reconcile_interval and the modules
// block change at run time (SIGHUP);
// Diff tells the caller which changes need a restart.
package config

import (
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/dtkhq/dtk/internal/limits"
)

// DefaultPath is read by `dtk-agent run` when --config is not given and
// the file exists.
const DefaultPath = "/etc/dtk/agent.hcl"

// Field names, as written in the file.
const (
	FieldName              = "name"
	FieldDataDir           = "data_dir"
	FieldCoordinator       = "coordinator"
	FieldNoAgent           = "no_agent"
	FieldReadReplica       = "read_replica"
	FieldBootstrapExpect   = "bootstrap_expect"
	FieldJoin              = "join"
	FieldLabels            = "labels"
	FieldHTTPAddr          = "http_addr"
	FieldSerfAddr          = "serf_addr"
	FieldRaftAddr          = "raft_addr"
	FieldPollWait          = "poll_wait"
	FieldReconcileInterval = "reconcile_interval"
	FieldLogLevel          = "log_level"
	// FieldLogFormat is text or json (every line, Raft's and gossip's
	// included, in that format).
	FieldLogFormat = "log_format"
	// FieldMetricsAddr is where an agent serves its Prometheus metrics
	// (empty: off). Coordinators serve theirs at GET /v1/metrics.
	FieldMetricsAddr = "metrics_addr"
	// FieldDropBinaryPages lets an idle agent drop its binary's resident
	// pages (on by default; agent.Config.DropPages).
	FieldDropBinaryPages = "drop_binary_pages"
	// FieldStepUser and FieldStepGroup name the account steps run as when
	// their action names none (docs/actions.md).
	FieldStepUser  = "step_user"
	FieldStepGroup = "step_group"
	// Security (docs/security.md). The tls.* fields are attributes of a
	// `tls { ... }` block in the file.
	FieldTLSCAFile     = "tls.ca_file"
	FieldTLSCertFile   = "tls.cert_file"
	FieldTLSKeyFile    = "tls.key_file"
	FieldTLSCAKeyFile  = "tls.ca_key_file"
	FieldCAFingerprint = "tls.ca_fingerprint"
	FieldEncrypt       = "encrypt"
	FieldKeyringFile   = "keyring_file"
	FieldJoinToken     = "join_token"
	FieldEnrollAddr    = "enroll_addr"
	FieldInsecure      = "insecure"
	FieldNodeCertTTL   = "node_cert_ttl"
	FieldNodeGCAfter   = "node_gc_after"
	// FieldACLEnabled is `acl { enabled = true }`.
	FieldACLEnabled = "acl.enabled"
	// The coordinator API server's timeouts (docs/cluster.md), in an
	// `http { ... }` block.
	FieldHTTPReadHeaderTimeout = "http.read_header_timeout"
	FieldHTTPReadTimeout       = "http.read_timeout"
	FieldHTTPWriteTimeout      = "http.write_timeout"
	FieldHTTPIdleTimeout       = "http.idle_timeout"
	// FieldUIEnabled is `ui { enabled = true }`: the web dashboard at /ui/.
	FieldUIEnabled = "ui.enabled"
	// The modules block (docs/modules.md): the public keys whose module
	// and bundle signatures a coordinator trusts, and whether it accepts
	// only signed ones.
	FieldModulesTrustedKeys      = "modules.trusted_keys"
	FieldModulesRequireSignature = "modules.require_signature"
)

// field describes one configuration field: its file name, the `run` flag
// that sets it, whether it can change at run time and whether it only
// means something on a coordinator.
type field struct {
	name            string
	flag            string
	runtime         bool
	coordinatorOnly bool
}

// fields lists every field in the order the documentation and `service
// install` use; the bounds of the `limits` block come last.
var fields = append([]field{
	{name: FieldName, flag: "--name"},
	{name: FieldDataDir, flag: "--data-dir"},
	{name: FieldCoordinator, flag: "--coordinator"},
	{name: FieldNoAgent, flag: "--no-agent", coordinatorOnly: true},
	{name: FieldReadReplica, flag: "--read-replica", coordinatorOnly: true},
	{name: FieldBootstrapExpect, flag: "--bootstrap-expect", coordinatorOnly: true},
	{name: FieldJoin, flag: "--join"},
	{name: FieldLabels, flag: "--label", runtime: true},
	{name: FieldHTTPAddr, flag: "--http-addr", coordinatorOnly: true},
	{name: FieldSerfAddr, flag: "--serf-addr"},
	{name: FieldRaftAddr, flag: "--raft-addr", coordinatorOnly: true},
	{name: FieldPollWait, flag: "--poll-wait"},
	{name: FieldReconcileInterval, flag: "--reconcile-interval", runtime: true},
	{name: FieldLogLevel, flag: "--log-level", runtime: true},
	{name: FieldLogFormat, flag: "--log-format", runtime: true},
	{name: FieldMetricsAddr, flag: "--metrics-addr"},
	{name: FieldDropBinaryPages, flag: "--drop-binary-pages"},
	{name: FieldStepUser, flag: "--step-user"},
	{name: FieldStepGroup, flag: "--step-group"},
	{name: FieldTLSCAFile, flag: "--tls-ca"},
	{name: FieldTLSCertFile, flag: "--tls-cert"},
	{name: FieldTLSKeyFile, flag: "--tls-key"},
	{name: FieldTLSCAKeyFile, flag: "--tls-ca-key", coordinatorOnly: true},
	{name: FieldCAFingerprint, flag: "--ca-fingerprint"},
	{name: FieldEncrypt, flag: "--encrypt"},
	{name: FieldKeyringFile, flag: "--keyring-file", coordinatorOnly: true},
	{name: FieldJoinToken, flag: "--join-token"},
	{name: FieldEnrollAddr, flag: "--enroll-addr"},
	{name: FieldInsecure, flag: "--insecure"},
	{name: FieldNodeCertTTL, flag: "--node-cert-ttl", coordinatorOnly: true},
	{name: FieldNodeGCAfter, flag: "--node-gc-after", coordinatorOnly: true},
	{name: FieldACLEnabled, flag: "--acl-enabled", coordinatorOnly: true},
	{name: FieldHTTPReadHeaderTimeout, flag: "--http-read-header-timeout", coordinatorOnly: true},
	{name: FieldHTTPReadTimeout, flag: "--http-read-timeout", coordinatorOnly: true},
	{name: FieldHTTPWriteTimeout, flag: "--http-write-timeout", coordinatorOnly: true},
	{name: FieldHTTPIdleTimeout, flag: "--http-idle-timeout", coordinatorOnly: true},
	{name: FieldUIEnabled, flag: "--ui", coordinatorOnly: true},
	{name: FieldModulesTrustedKeys, flag: "--modules-trusted-key", runtime: true, coordinatorOnly: true},
	{name: FieldModulesRequireSignature, flag: "--modules-require-signature", runtime: true, coordinatorOnly: true},
}, limitFieldList()...)

func lookupField(name string) field {
	for _, f := range fields {
		if f.name == name {
			return f
		}
	}
	panic("config: unknown field " + name)
}

// Fields lists the field names in documentation order.
func Fields() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.name
	}
	return out
}

// Flag is the `run` flag that sets field.
func Flag(fieldName string) string { return lookupField(fieldName).flag }

// Runtime reports whether field can change without a restart.
func Runtime(fieldName string) bool { return lookupField(fieldName).runtime }

// Log levels a configuration accepts.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// Config is the merged configuration of one `dtk-agent run`.
type Config struct {
	Name              string // empty: the hostname
	DataDir           string
	Coordinator       bool
	NoAgent           bool
	ReadReplica       bool
	BootstrapExpect   int
	Join              []string
	Labels            map[string]string
	HTTPAddr          string // empty: the serf host, port 7070
	SerfAddr          string
	RaftAddr          string // empty: the serf host, port 7947
	PollWait          time.Duration
	ReconcileInterval time.Duration
	LogLevel          string
	// LogFormat is "text" or "json".
	LogFormat string
	// MetricsAddr is host:port for the agent's metrics listener; empty:
	// none.
	MetricsAddr string
	// DropBinaryPages lets the agent, once idle, drop this process's
	// mappings of its own binary's read-only pages (they stay in the page
	// cache), so that its RSS holds only what it still uses.
	DropBinaryPages bool
	// StepUser and StepGroup: the account steps run as when their action
	// names none; empty: the agent's own (root).
	StepUser, StepGroup string

	// TLS material: the cluster CA bundle, this process's certificate and
	// key, and (one coordinator, once) the CA's key for enrollment.
	TLSCAFile, TLSCertFile, TLSKeyFile, TLSCAKeyFile string
	// CAFingerprint lets a new agent fetch the CA from a coordinator and
	// check it by fingerprint instead of being given the CA file.
	CAFingerprint string
	// Encrypt is the base64 gossip key.
	Encrypt string
	// KeyringFile holds the coordinators' key-encryption key.
	KeyringFile string
	// JoinToken enrolls a new agent; EnrollAddr lists coordinator API
	// addresses to enroll through (default: the join hosts, port 7070).
	JoinToken  string
	EnrollAddr []string
	// Insecure runs without TLS and gossip encryption, loudly.
	Insecure bool
	// NodeCertTTL is the lifetime of node certificates enrollment issues
	// (agents renew them at two thirds).
	NodeCertTTL time.Duration
	// NodeGCAfter is how long a node must be down before the coordinators
	// forget it (it registers again if it comes back).
	NodeGCAfter time.Duration
	// ACLEnabled turns on access control with tokens and policies.
	ACLEnabled bool
	// UIEnabled serves the read-only web dashboard at /ui/.
	UIEnabled bool
	// ModulesTrustedKeys are public key files (dtkctl key create): a
	// coordinator checks the signature of every module and bundle pushed
	// or imported against them. ModulesRequireSignature refuses unsigned
	// ones.
	ModulesTrustedKeys      []string
	ModulesRequireSignature bool
	// Limits bound what one request to a coordinator may carry (the
	// `limits { ... }` block; fields "limits.*").
	Limits limits.Limits
	// HTTP* bound the coordinator API server's waits for its clients;
	// long-polls and transfers extend theirs per request.
	HTTPReadHeaderTimeout, HTTPReadTimeout, HTTPWriteTimeout, HTTPIdleTimeout time.Duration

	// File is the configuration file the values were read from, if any.
	File string

	origins map[string]origin
	src     []byte // the file's text, for error excerpts
}

// Default is the configuration without file or flags.
func Default() *Config {
	return &Config{
		DataDir:           "/var/lib/dtk",
		BootstrapExpect:   1,
		SerfAddr:          "127.0.0.1:7946",
		PollWait:          5 * time.Minute,
		ReconcileInterval: 10 * time.Minute,
		LogLevel:          "info",
		LogFormat:         "text",
		DropBinaryPages:   true,
		NodeCertTTL:       365 * 24 * time.Hour,
		NodeGCAfter:       24 * time.Hour,
		Limits:            limits.Default(),
		// The coordinator's defaults (coordinator.DefaultHTTPTimeouts).
		HTTPReadHeaderTimeout: 10 * time.Second,
		HTTPReadTimeout:       30 * time.Second,
		HTTPWriteTimeout:      30 * time.Second,
		HTTPIdleTimeout:       2 * time.Minute,
		origins:               map[string]origin{},
	}
}

// Level is LogLevel as a slog level (info when it is not valid).
func (c *Config) Level() slog.Level { return ParseLevel(c.LogLevel) }

// ParseLevel maps debug, info, warn and error to slog levels (anything
// else to info).
func ParseLevel(s string) slog.Level {
	if l, ok := logLevels[s]; ok {
		return l
	}
	return slog.LevelInfo
}

// IsSet reports whether field was set by the file or a flag (not a default).
func (c *Config) IsSet(fieldName string) bool {
	return c.origins[fieldName].kind != fromDefault
}

// Where says where field was set: "FILE:LINE:COL", "--flag" or "default".
func (c *Config) Where(fieldName string) string {
	return c.origins[fieldName].where(fieldName)
}

// Clone is a deep copy.
func (c *Config) Clone() *Config {
	n := *c
	n.Join = slices.Clone(c.Join)
	n.EnrollAddr = slices.Clone(c.EnrollAddr)
	n.ModulesTrustedKeys = slices.Clone(c.ModulesTrustedKeys)
	n.Labels = maps.Clone(c.Labels)
	n.origins = maps.Clone(c.origins)
	return &n
}

type originKind int

const (
	fromDefault originKind = iota
	fromFile
	fromFlag
)

// origin is where a field got its value; for the file, also where each
// list element or map key is, so that errors point at the bad one.
type origin struct {
	kind  originKind
	rng   hcl.Range
	elems []hcl.Range
	keys  map[string]hcl.Range
}

func (o origin) where(fieldName string) string {
	switch o.kind {
	case fromFile:
		return pos(o.rng)
	case fromFlag:
		return lookupField(fieldName).flag
	}
	return "default"
}

// elem is the range of list element i (or of the whole value).
func (o origin) elem(i int) hcl.Range {
	if i < len(o.elems) {
		return o.elems[i]
	}
	return o.rng
}

// key is the range of map key k (or of the whole value).
func (o origin) key(k string) hcl.Range {
	if r, ok := o.keys[k]; ok {
		return r
	}
	return o.rng
}
