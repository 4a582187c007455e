package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dtkhq/dtk/coordinator"
	"github.com/dtkhq/dtk/internal/config"
	"github.com/dtkhq/dtk/internal/daemon"
	"github.com/dtkhq/dtk/internal/logging"
)

// runFlags are the flags of `run`, shared with `service install`. Every one
// is also a field of the configuration file (internal/config); a flag given
// on the command line wins over the file.
type runFlags struct {
	Config            string            `help:"Configuration file (HCL); default: ${config_path} when it exists." type:"path"`
	Coordinator       bool              `help:"Also run a coordinator (Raft member, HTTP API)." negatable:""`
	NoAgent           bool              `help:"With --coordinator: do not act as a node."`
	ReadReplica       bool              `name:"read-replica" help:"With --coordinator: join Raft as a non-voter that serves agents' plan polls, blobs and reads, and forwards writes (never promoted, never the leader)."`
	BootstrapExpect   int               `help:"Number of coordinators that form the cluster." default:"${bootstrap_expect}"`
	Join              []string          `help:"Gossip address (host:port) of any member to join; repeatable."`
	Name              string            `help:"Node name (default: hostname)."`
	DataDir           string            `help:"State folder." default:"${data_dir}" type:"path"`
	Label             map[string]string `help:"Node label k=v; repeatable."`
	HTTPAddr          string            `help:"Coordinator API address (default: serf host, port 7070)."`
	SerfAddr          string            `help:"Gossip address." default:"${serf_addr}"`
	RaftAddr          string            `help:"Coordinator Raft address (default: serf host, port 7947)."`
	PollWait          time.Duration     `help:"Longest plan long-poll." default:"${poll_wait}"`
	ReconcileInterval time.Duration     `help:"How often the cached plan is converged again, running checks to repair drift." default:"${reconcile_interval}" aliases:"reconcile"`
	StepUser          string            `help:"User that steps run as when their action names none (default: the agent's own, root)."`
	StepGroup         string            `help:"Group that steps run as when their action names none (default: the step user's)."`
	MetricsAddr       string            `help:"Agent: serve Prometheus metrics at http://ADDR/metrics (host:port; default: off). Coordinators serve theirs at GET /v1/metrics."`
	DropBinaryPages   bool              `help:"Agent: once idle, drop this process's mappings of its own binary's read-only pages (they stay in the page cache and come back when used), so that its RSS holds only what it still uses. Linux only." default:"true" negatable:""`

	TLSCA         string        `name:"tls-ca" help:"Cluster CA certificate(s) (PEM)." type:"path" group:"Security"`
	TLSCert       string        `name:"tls-cert" help:"This process's certificate (PEM): a server certificate for a coordinator, a node certificate for an agent." type:"path" group:"Security"`
	TLSKey        string        `name:"tls-key" help:"The certificate's key (PEM)." type:"path" group:"Security"`
	TLSCAKey      string        `name:"tls-ca-key" help:"Coordinator: the CA's key, stored sealed in the replicated state so that agents can enroll." type:"path" group:"Security"`
	CAFingerprint string        `help:"Agent enrollment: fetch the CA from the coordinator and accept it only with this fingerprint (sha256:...)." group:"Security"`
	Encrypt       string        `help:"Gossip encryption key (base64, from dtk-agent keygen)." group:"Security"`
	KeyringFile   string        `help:"Coordinator: file holding the key-encryption key that seals the cluster's secrets (dtk-agent keygen)." type:"path" group:"Security"`
	JoinToken     string        `help:"Agent enrollment: a join token (dtkctl node token create). Without one, the agent waits for dtkctl node approve." group:"Security"`
	EnrollAddr    []string      `help:"Agent enrollment: coordinator API address(es) to enroll through (default: the --join hosts, port 7070)." group:"Security"`
	ACLEnabled    bool          `name:"acl-enabled" help:"Coordinator: turn on access control; every operator request then needs an ACL token (dtkctl acl bootstrap makes the first)." group:"Security"`
	UIEnabled     bool          `name:"ui" help:"Coordinator: serve the read-only web dashboard at /ui/ (with ACLs on, a browser signs in with a token; docs/dashboard.md)."`
	NodeCertTTL   time.Duration `help:"Coordinator: lifetime of node certificates issued by enrollment; agents renew at two thirds." default:"${node_cert_ttl}" group:"Security"`
	NodeGCAfter   time.Duration `help:"Coordinator: forget a node down for this long (it registers again if it comes back)." default:"${node_gc_after}"`
	Insecure      bool          `help:"Run without TLS, authentication and gossip encryption. Anyone who reaches a coordinator can then run code as root on every node." group:"Security"`

	ModulesTrustedKey       []string `name:"modules-trusted-key" help:"Coordinator: a public key file (dtkctl key create) whose module and bundle signatures this coordinator trusts; repeatable. Read again on SIGHUP." type:"path" group:"Module signatures"`
	ModulesRequireSignature bool     `name:"modules-require-signature" help:"Coordinator: accept only modules and bundles signed by a trusted key (docs/modules.md)." group:"Module signatures"`

	HTTPReadHeaderTimeout time.Duration `name:"http-read-header-timeout" help:"Coordinator: how long the API waits for a request's headers." default:"${http_read_header_timeout}" group:"HTTP server"`
	HTTPReadTimeout       time.Duration `name:"http-read-timeout" help:"Coordinator: how long the API waits for a whole request (module uploads get more, by size)." default:"${http_read_timeout}" group:"HTTP server"`
	HTTPWriteTimeout      time.Duration `name:"http-write-timeout" help:"Coordinator: how long the API may take to answer (long-polls get their wait on top; blob downloads more, by size)." default:"${http_write_timeout}" group:"HTTP server"`
	HTTPIdleTimeout       time.Duration `name:"http-idle-timeout" help:"Coordinator: how long an idle keep-alive connection stays open." default:"${http_idle_timeout}" group:"HTTP server"`
	// The limits block (docs/install.md lists the defaults). Sizes take a
	// unit: 512MiB, 64KiB, 1GiB.
	LimitsNestingDepth        int64       `help:"Coordinator: how deep expressions in module source may nest (default 64)." group:"Limits"`
	LimitsModulePackedBytes   config.Size `help:"Coordinator: largest module push, the tar.gz archive (default 256MiB)." group:"Limits"`
	LimitsModuleUnpackedBytes config.Size `help:"Coordinator: most a module archive may unpack to (default 256MiB)." group:"Limits"`
	LimitsModuleFiles         int64       `help:"Coordinator: most files and folders in a module (default 10000)." group:"Limits"`
	LimitsHCLFileBytes        config.Size `name:"limits-hcl-file-bytes" help:"Coordinator: largest .hcl file in a module (default 256KiB)." group:"Limits"`
	LimitsLabelKeyBytes       config.Size `help:"Coordinator: longest node label key (default 255)." group:"Limits"`
	LimitsLabelValueBytes     config.Size `help:"Coordinator: longest node label value (default 255)." group:"Limits"`
	LimitsLabels              int64       `help:"Coordinator: most labels on a node (default 64)." group:"Limits"`
	LimitsNameBytes           config.Size `help:"Coordinator: longest name a module declares (default 63)." group:"Limits"`
	LimitsJSONBodyBytes       config.Size `name:"limits-json-body-bytes" help:"Coordinator: largest JSON API request body (default 4MiB)." group:"Limits"`
	LimitsReportBodyBytes     config.Size `help:"Coordinator: largest report batch an agent sends (default 4MiB)." group:"Limits"`
	LimitsReportOutputBytes   config.Size `help:"Coordinator: how much of a step's output tail is kept per report (default 4KiB)." group:"Limits"`
}

// limitFlags maps each --limits-* flag to its value.
func (f *runFlags) limitFlags() map[string]int64 {
	return map[string]int64{
		"limits-nesting-depth": f.LimitsNestingDepth, "limits-module-packed-bytes": int64(f.LimitsModulePackedBytes),
		"limits-module-unpacked-bytes": int64(f.LimitsModuleUnpackedBytes), "limits-module-files": f.LimitsModuleFiles,
		"limits-hcl-file-bytes":  int64(f.LimitsHCLFileBytes),
		"limits-label-key-bytes": int64(f.LimitsLabelKeyBytes), "limits-label-value-bytes": int64(f.LimitsLabelValueBytes),
		"limits-labels": f.LimitsLabels, "limits-name-bytes": int64(f.LimitsNameBytes),
		"limits-json-body-bytes": int64(f.LimitsJSONBodyBytes), "limits-report-body-bytes": int64(f.LimitsReportBodyBytes),
		"limits-report-output-bytes": int64(f.LimitsReportOutputBytes),
	}
}

// overrides are the flags given on the command line.
func (f *runFlags) overrides(s set, g globals) config.Overrides {
	var o config.Overrides
	if s["name"] {
		o.Name = &f.Name
	}
	if s["data-dir"] {
		o.DataDir = &f.DataDir
	}
	if s["coordinator"] {
		o.Coordinator = &f.Coordinator
	}
	if s["no-agent"] {
		o.NoAgent = &f.NoAgent
	}
	if s["read-replica"] {
		o.ReadReplica = &f.ReadReplica
	}
	if s["bootstrap-expect"] {
		o.BootstrapExpect = &f.BootstrapExpect
	}
	if s["join"] {
		o.Join = &f.Join
	}
	if s["label"] {
		o.Labels = &f.Label
	}
	if s["http-addr"] {
		o.HTTPAddr = &f.HTTPAddr
	}
	if s["serf-addr"] {
		o.SerfAddr = &f.SerfAddr
	}
	if s["raft-addr"] {
		o.RaftAddr = &f.RaftAddr
	}
	if s["poll-wait"] {
		o.PollWait = &f.PollWait
	}
	if s["reconcile-interval"] {
		o.ReconcileInterval = &f.ReconcileInterval
	}
	if s["log-level"] {
		o.LogLevel = &g.LogLevel
	}
	if s["log-format"] {
		o.LogFormat = &g.LogFormat
	}
	str := func(flag string, v *string, dst **string) {
		if s[flag] {
			*dst = v
		}
	}
	str("step-user", &f.StepUser, &o.StepUser)
	str("step-group", &f.StepGroup, &o.StepGroup)
	str("metrics-addr", &f.MetricsAddr, &o.MetricsAddr)
	if s["drop-binary-pages"] {
		o.DropBinaryPages = &f.DropBinaryPages
	}
	str("tls-ca", &f.TLSCA, &o.TLSCAFile)
	str("tls-cert", &f.TLSCert, &o.TLSCertFile)
	str("tls-key", &f.TLSKey, &o.TLSKeyFile)
	str("tls-ca-key", &f.TLSCAKey, &o.TLSCAKeyFile)
	str("ca-fingerprint", &f.CAFingerprint, &o.CAFingerprint)
	str("encrypt", &f.Encrypt, &o.Encrypt)
	str("keyring-file", &f.KeyringFile, &o.KeyringFile)
	str("join-token", &f.JoinToken, &o.JoinToken)
	if s["enroll-addr"] {
		o.EnrollAddr = &f.EnrollAddr
	}
	if s["insecure"] {
		o.Insecure = &f.Insecure
	}
	if s["node-cert-ttl"] {
		o.NodeCertTTL = &f.NodeCertTTL
	}
	if s["node-gc-after"] {
		o.NodeGCAfter = &f.NodeGCAfter
	}
	if s["acl-enabled"] {
		o.ACLEnabled = &f.ACLEnabled
	}
	if s["ui"] {
		o.UIEnabled = &f.UIEnabled
	}
	if s["modules-trusted-key"] {
		o.ModulesTrustedKeys = &f.ModulesTrustedKey
	}
	if s["modules-require-signature"] {
		o.ModulesRequireSignature = &f.ModulesRequireSignature
	}
	values := f.limitFlags()
	for flag, field := range config.LimitFlags() {
		if s[flag] {
			if o.Limits == nil {
				o.Limits = map[string]int64{}
			}
			o.Limits[field] = values[flag]
		}
	}
	if s["http-read-header-timeout"] {
		o.HTTPReadHeaderTimeout = &f.HTTPReadHeaderTimeout
	}
	if s["http-read-timeout"] {
		o.HTTPReadTimeout = &f.HTTPReadTimeout
	}
	if s["http-write-timeout"] {
		o.HTTPWriteTimeout = &f.HTTPWriteTimeout
	}
	if s["http-idle-timeout"] {
		o.HTTPIdleTimeout = &f.HTTPIdleTimeout
	}
	return o
}

type runCmd struct {
	runFlags `embed:""`
}

// Run leaves the daemon's whole life to later (runLater), to be run once
// the command-line parser is gone.
func (r *runCmd) Run(ctx context.Context, log *slog.Logger, level *slog.LevelVar, lh *logging.Handler, s set, g globals, later *runLater) error {
	later.fn = func() error { return r.run(ctx, log, level, lh, s, g) }
	return nil
}

func (r *runCmd) run(ctx context.Context, log *slog.Logger, level *slog.LevelVar, lh *logging.Handler, s set, g globals) error {
	o := r.overrides(s, g)
	cfg, err := config.Resolve(r.Config, o)
	if err != nil {
		return err
	}
	level.Set(cfg.Level())
	if err := lh.SetFormat(cfg.LogFormat); err != nil {
		return err
	}
	// From here on SIGHUP reloads (a reload asked for during start-up waits
	// for it) instead of killing the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	d, err := daemon.Start(ctx, daemonConfig(cfg, log))
	if err != nil {
		if errors.Is(err, daemon.ErrSetup) {
			return usageError{err}
		}
		return err
	}
	log.Info("dtk-agent running", "version", version, "coordinator", cfg.Coordinator, "config", cfg.File)
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-d.Done():
			running = false
		case <-hup:
			cfg = reload(cfg, r.Config, o, d, level, lh, log)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	d.Shutdown(sctx)
	return nil
}

func daemonConfig(c *config.Config, log *slog.Logger) daemon.Config {
	return daemon.Config{
		Name: c.Name, DataDir: c.DataDir, Coordinator: c.Coordinator, NoAgent: c.NoAgent, ReadReplica: c.ReadReplica,
		BootstrapExpect: c.BootstrapExpect, Join: c.Join, Labels: c.Labels, HTTPAddr: c.HTTPAddr,
		SerfAddr: c.SerfAddr, RaftAddr: c.RaftAddr, Version: version, Logger: log,
		PollWait: c.PollWait, ReconcileInterval: c.ReconcileInterval, StepUser: c.StepUser, StepGroup: c.StepGroup,
		TLS:           daemon.TLSFiles{CA: c.TLSCAFile, Cert: c.TLSCertFile, Key: c.TLSKeyFile, CAKey: c.TLSCAKeyFile},
		CAFingerprint: c.CAFingerprint, Encrypt: c.Encrypt, KeyringFile: c.KeyringFile,
		JoinToken: c.JoinToken, EnrollAddrs: c.EnrollAddr, Insecure: c.Insecure, NodeCertTTL: c.NodeCertTTL,
		ACLEnabled: c.ACLEnabled, UIEnabled: c.UIEnabled, NodeGCAfter: c.NodeGCAfter, Limits: c.Limits, MetricsAddr: c.MetricsAddr,
		ModulesTrustedKeys: c.ModulesTrustedKeys, ModulesRequireSignature: c.ModulesRequireSignature,
		KeepBinaryPages: !c.DropBinaryPages, DropPagesAfter: dropPagesAfter(),
		HTTPTimeouts: coordinator.HTTPTimeouts{
			ReadHeader: c.HTTPReadHeaderTimeout, Read: c.HTTPReadTimeout, Write: c.HTTPWriteTimeout, Idle: c.HTTPIdleTimeout,
		},
	}
}

// reload re-reads the configuration file on SIGHUP, flags still winning,
// and applies what can change at run time. An invalid file changes
// nothing. It returns the configuration now in effect.
func reload(cur *config.Config, path string, o config.Overrides, d *daemon.Daemon, level *slog.LevelVar, lh *logging.Handler, log *slog.Logger) *config.Config {
	log = log.With("component", "reload")
	// Certificates and CAs are re-read from their files on every SIGHUP,
	// whatever the configuration file says: rotating them is writing new
	// files and signalling.
	if err := d.ReloadTLS(); err != nil {
		log.Error("TLS material not reloaded: keeping the running one", "err", err)
	} else if d.TLSEnabled() {
		log.Info("TLS material reloaded")
	}
	next, err := config.Resolve(path, o)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				log.Error("invalid configuration", "err", e.Error())
			}
		} else {
			log.Error("invalid configuration", "err", err)
		}
		log.Error("configuration not reloaded: keeping the running one", "errors", len(errs))
		return cur
	}
	// Trusted module keys are read again from their files on every SIGHUP,
	// as certificates are: replacing a key is writing its file and
	// signalling.
	trustErr := d.ReloadModuleTrust(next.ModulesTrustedKeys, next.ModulesRequireSignature)
	if trustErr != nil {
		log.Error("module signing keys not reloaded: keeping the running ones", "err", trustErr)
	}
	changes := config.Diff(cur, next)
	if len(changes) == 0 {
		log.Info("configuration unchanged", "config", next.File)
		return cur
	}
	applied := cur.Clone()
	applied.File = next.File
	for _, ch := range changes {
		if !ch.Runtime {
			log.Warn("changed, takes effect after a restart", "field", ch.Field, "where", next.Where(ch.Field))
		}
	}
	if cur.LogLevel != next.LogLevel {
		// Say so at whichever of the two levels is more verbose.
		if next.Level() < cur.Level() {
			level.Set(next.Level())
			log.Info("log level changed", "level", next.LogLevel)
		} else {
			log.Info("log level changed", "level", next.LogLevel)
			level.Set(next.Level())
		}
		applied.LogLevel = next.LogLevel
	}
	if cur.LogFormat != next.LogFormat && lh.SetFormat(next.LogFormat) == nil {
		log.Info("log format changed", "format", next.LogFormat)
		applied.LogFormat = next.LogFormat
	}
	// Record only what the daemon took, so that a later SIGHUP tries the
	// rest again.
	if err := d.SetLabels(next.Labels); err != nil {
		log.Warn("not applied", "field", config.FieldLabels, "err", err)
	} else {
		applied.Labels = next.Labels
	}
	if err := d.SetReconcileInterval(next.ReconcileInterval); err != nil {
		log.Warn("not applied", "field", config.FieldReconcileInterval, "err", err)
	} else {
		applied.ReconcileInterval = next.ReconcileInterval
	}
	if trustErr == nil {
		applied.ModulesTrustedKeys, applied.ModulesRequireSignature = next.ModulesTrustedKeys, next.ModulesRequireSignature
	}
	log.Info("configuration reloaded", "config", next.File, "changes", len(changes))
	return applied
}
