package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/dtkhq/dtk/internal/names"
)

// Limits on durations.
const (
	minPollWait = time.Second
	// maxPollWait is the longest wait coordinators honour.
	maxPollWait       = 10 * time.Minute
	minReconcile      = time.Second
	maxLabelValueSize = 255
)

// Validate checks every field and every combination, and returns all the
// problems (an Errors) or nil.
func (c *Config) Validate() error {
	var errs Errors
	add := func(e *Error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	if c.IsSet(FieldName) {
		switch {
		case c.Name == "":
			add(c.fieldError(FieldName, nil, "must not be empty: leave it out to use the hostname"))
		case !names.Valid(c.Name):
			add(c.fieldError(FieldName, nil, "%q is not a valid node name: use at most 63 lowercase letters, digits, '.', '_' and '-', starting with a letter or digit", c.Name))
		}
	}
	switch {
	case c.DataDir == "":
		add(c.fieldError(FieldDataDir, nil, "must not be empty"))
	case !filepath.IsAbs(c.DataDir):
		add(c.fieldError(FieldDataDir, nil, "must be an absolute path, got %q", c.DataDir))
	}
	if c.BootstrapExpect < 1 {
		add(c.fieldError(FieldBootstrapExpect, nil, "must be at least 1, got %d (the number of coordinators that form the cluster: 1, 3 or 5)", c.BootstrapExpect))
	}
	if !c.Coordinator {
		for _, f := range fields {
			if f.coordinatorOnly && c.IsSet(f.name) && (f.name != FieldNoAgent || c.NoAgent) {
				add(c.fieldError(f.name, nil, "only a coordinator uses this: set coordinator = true (--coordinator) or remove it"))
			}
		}
	}
	o := c.origins[FieldJoin]
	for i, j := range c.Join {
		if msg := checkHostPort(j, false, true); msg != "" {
			r := o.elem(i)
			add(c.fieldError(FieldJoin, &r, "%q %s", j, msg))
		}
	}
	o = c.origins[FieldLabels]
	keys := make([]string, 0, len(c.Labels))
	for k := range c.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.Labels[k]
		r := o.key(k)
		switch {
		case !names.ValidLabelKey(k):
			add(c.fieldError(FieldLabels, &r, "label key %q is not valid: use at most 63 letters, digits, '.', '_' and '-', starting with a letter", k))
		case len(v) > maxLabelValueSize:
			add(c.fieldError(FieldLabels, &r, "label %q: the value is longer than %d bytes", k, maxLabelValueSize))
		case strings.ContainsFunc(v, unicode.IsControl):
			add(c.fieldError(FieldLabels, &r, "label %q: the value contains a control character", k))
		}
	}
	if msg := checkHostPort(c.SerfAddr, true, false); msg != "" {
		add(c.fieldError(FieldSerfAddr, nil, "%q %s", c.SerfAddr, msg))
	}
	for _, f := range []struct {
		name string
		v    string
	}{{FieldHTTPAddr, c.HTTPAddr}, {FieldRaftAddr, c.RaftAddr}} {
		if f.v == "" && !c.IsSet(f.name) {
			continue // derived from serf_addr
		}
		if msg := checkHostPort(f.v, false, false); msg != "" {
			add(c.fieldError(f.name, nil, "%q %s", f.v, msg))
		}
	}
	switch {
	case c.PollWait < minPollWait:
		add(c.fieldError(FieldPollWait, nil, "%s is too short: use at least %s", c.PollWait, minPollWait))
	case c.PollWait > maxPollWait:
		add(c.fieldError(FieldPollWait, nil, "%s is longer than coordinators wait (%s): use at most %s", c.PollWait, maxPollWait, maxPollWait))
	}
	if c.ReconcileInterval < minReconcile {
		add(c.fieldError(FieldReconcileInterval, nil, "%s is too short: use at least %s", c.ReconcileInterval, minReconcile))
	}
	for _, f := range []struct{ name, v, what string }{{FieldStepUser, c.StepUser, "user"}, {FieldStepGroup, c.StepGroup, "group"}} {
		if f.v != "" && !names.ValidAccount(f.v) {
			add(c.fieldError(f.name, nil, "%q is not a %s name: letters, digits, '_', '.' and '-', not starting with a digit or '-' (leave it out to run steps as the agent's own user)", f.v, f.what))
		}
	}
	errs = append(errs, c.validateSecurity()...)
	errs = append(errs, c.validateModules()...)
	errs = append(errs, c.validateLimits()...)
	if _, ok := logLevels[c.LogLevel]; !ok {
		add(c.fieldError(FieldLogLevel, nil, "%q is not a log level: use debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		add(c.fieldError(FieldLogFormat, nil, "%q is not a log format: use text or json", c.LogFormat))
	}
	if c.MetricsAddr != "" {
		if msg := checkHostPort(c.MetricsAddr, false, false); msg != "" {
			add(c.fieldError(FieldMetricsAddr, nil, "%q %s (or leave it out: metrics off)", c.MetricsAddr, msg))
		} else if c.Coordinator && c.NoAgent {
			add(c.fieldError(FieldMetricsAddr, nil, "a coordinator without an agent (no_agent) has no agent metrics; its own are at GET /v1/metrics"))
		}
	}
	sortErrors(errs)
	return errs.orNil()
}

// checkHostPort says what is wrong with a host:port address, or "". ipOnly
// requires an IP address (gossip binds to it); portNeeded rejects port 0.
// An unspecified host (0.0.0.0, ::) is rejected everywhere because the
// address is also what peers are told to use.
func checkHostPort(addr string, ipOnly, portNeeded bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		msg := err.Error()
		if ae, ok := err.(*net.AddrError); ok {
			msg = ae.Err
		}
		return fmt.Sprintf("is not host:port (%s), e.g. \"10.0.0.5:7946\"", msg)
	}
	if host == "" {
		return "has no host: give this node's address, e.g. \"10.0.0.5" + ":" + port + "\""
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Sprintf("has a bad port %q: use a number from 1 to 65535", port)
	}
	if portNeeded && p == 0 {
		return "needs a port: use a number from 1 to 65535"
	}
	ip := net.ParseIP(host)
	if ipOnly && ip == nil {
		return "must be an IP address, not a host name (gossip binds to it and tells peers to use it)"
	}
	if ip != nil && ip.IsUnspecified() {
		return fmt.Sprintf("cannot use %s: peers are told this address, so give one they can reach, e.g. \"10.0.0.5:%s\"", host, port)
	}
	return ""
}

// validateSecurity checks the TLS, gossip and enrollment fields. Secure is
// the default: a coordinator without TLS refuses to start unless told
// --insecure.
func (c *Config) validateSecurity() Errors {
	var errs Errors
	add := func(e *Error) { errs = append(errs, e) }
	hasTLS := c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSCAKeyFile != "" || c.CAFingerprint != ""
	if c.Insecure {
		if c.ACLEnabled {
			add(c.fieldError(FieldACLEnabled, nil, "ACLs need TLS: without it anyone can act as a node and tokens travel in clear; remove insecure or acl.enabled"))
		}
		if hasTLS {
			add(c.fieldError(FieldInsecure, nil, "insecure turns TLS off, but TLS files are configured: remove one or the other"))
		}
		if c.Encrypt != "" || c.JoinToken != "" {
			add(c.fieldError(FieldInsecure, nil, "insecure turns gossip encryption and enrollment off: remove encrypt and join_token, or insecure"))
		}
		return errs
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		f := FieldTLSCertFile // the one that is set
		if c.TLSCertFile == "" {
			f = FieldTLSKeyFile
		}
		add(c.fieldError(f, nil, "tls.cert_file and tls.key_file go together: set both (--tls-cert and --tls-key)"))
	}
	if c.TLSCAFile != "" && c.CAFingerprint != "" {
		add(c.fieldError(FieldCAFingerprint, nil, "give the CA either as a file (tls.ca_file) or by fingerprint, not both"))
	}
	if c.TLSCertFile != "" && c.TLSCAFile == "" {
		add(c.fieldError(FieldTLSCAFile, nil, "a certificate needs the cluster CA to check its peers: set tls.ca_file (--tls-ca)"))
	}
	if c.Coordinator {
		if c.TLSCAFile == "" || c.TLSCertFile == "" || c.TLSKeyFile == "" {
			add(c.fieldError(FieldCoordinator, nil, "a coordinator needs TLS: set tls { ca_file cert_file key_file } (--tls-ca --tls-cert --tls-key; `dtk-agent tls` makes them), "+
				"or pass --insecure to run without it (then anyone who reaches this coordinator can run code as root on every node)"))
		}
		for _, f := range []struct{ name, v string }{{FieldJoinToken, c.JoinToken}, {FieldCAFingerprint, c.CAFingerprint}} {
			if f.v != "" {
				add(c.fieldError(f.name, nil, "a coordinator does not enroll: give it a server certificate (dtk-agent tls cert create --server)"))
			}
		}
	}
	if c.TLSCAKeyFile != "" && c.KeyringFile == "" && c.Coordinator {
		add(c.fieldError(FieldTLSCAKeyFile, nil, "the CA key is kept in the replicated state sealed with a key-encryption key: set keyring_file (--keyring-file; dtk-agent keygen makes one)"))
	}
	if c.Encrypt != "" {
		if msg := checkKey(c.Encrypt); msg != "" {
			add(c.fieldError(FieldEncrypt, nil, "%s", msg))
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{FieldHTTPReadHeaderTimeout, c.HTTPReadHeaderTimeout}, {FieldHTTPReadTimeout, c.HTTPReadTimeout},
		{FieldHTTPWriteTimeout, c.HTTPWriteTimeout}, {FieldHTTPIdleTimeout, c.HTTPIdleTimeout},
	} {
		if f.v < time.Second || f.v > time.Hour {
			add(c.fieldError(f.name, nil, "%s is out of range: use 1s to 1h (long-polls and module transfers extend their own deadlines)", f.v))
		}
	}
	if c.NodeCertTTL < 10*time.Second || c.NodeCertTTL > 10*365*24*time.Hour {
		add(c.fieldError(FieldNodeCertTTL, nil, "%s is out of range: use 10s to 87600h (agents renew at two thirds of it)", c.NodeCertTTL))
	}
	if c.NodeGCAfter < time.Minute {
		add(c.fieldError(FieldNodeGCAfter, nil, "%s is too short: use 1m or more (a node down this long is forgotten)", c.NodeGCAfter))
	}
	o := c.origins[FieldEnrollAddr]
	for i, a := range c.EnrollAddr {
		if msg := checkHostPort(a, false, true); msg != "" {
			r := o.elem(i)
			add(c.fieldError(FieldEnrollAddr, &r, "%q %s", a, msg))
		}
	}
	return errs
}

// validateModules checks the modules block. The key files themselves are
// read when the coordinator starts (and on SIGHUP), which refuses one that
// is missing or not a public key.
func (c *Config) validateModules() Errors {
	var errs Errors
	o := c.origins[FieldModulesTrustedKeys]
	for i, p := range c.ModulesTrustedKeys {
		if strings.TrimSpace(p) == "" {
			r := o.elem(i)
			errs = append(errs, c.fieldError(FieldModulesTrustedKeys, &r, "element %d is empty: give the path of a public key file (dtkctl key create makes NAME.pub)", i+1))
		}
	}
	if c.ModulesRequireSignature && len(c.ModulesTrustedKeys) == 0 {
		errs = append(errs, c.fieldError(FieldModulesRequireSignature, nil,
			"requiring signatures needs at least one trusted key: set modules.trusted_keys (--modules-trusted-key) to the public key files of the signers (dtkctl key create)"))
	}
	return errs
}

// checkKey says what is wrong with a base64 gossip key, or "".
func checkKey(k string) string {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
	if err != nil || len(b) != 32 {
		return "is not a gossip key: use 32 random bytes in base64, as `dtk-agent keygen` prints"
	}
	return ""
}
