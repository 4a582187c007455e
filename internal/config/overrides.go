package config

import (
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Overrides are the fields given on the command line; nil means "not
// given". A flag replaces the file's value as a whole: --join replaces the
// file's join list and --label its labels map.
type Overrides struct {
	Name              *string
	DataDir           *string
	Coordinator       *bool
	NoAgent           *bool
	ReadReplica       *bool
	BootstrapExpect   *int
	Join              *[]string
	Labels            *map[string]string
	HTTPAddr          *string
	SerfAddr          *string
	RaftAddr          *string
	PollWait          *time.Duration
	ReconcileInterval *time.Duration
	LogLevel          *string
	LogFormat         *string
	MetricsAddr       *string
	DropBinaryPages   *bool
	StepUser          *string
	StepGroup         *string
	TLSCAFile         *string
	TLSCertFile       *string
	TLSKeyFile        *string
	TLSCAKeyFile      *string
	CAFingerprint     *string
	Encrypt           *string
	KeyringFile       *string
	JoinToken         *string
	EnrollAddr        *[]string
	Insecure          *bool
	NodeCertTTL       *time.Duration
	NodeGCAfter       *time.Duration
	ACLEnabled        *bool
	UIEnabled         *bool
	// ModulesTrustedKeys (--modules-trusted-key, repeatable) replaces the
	// file's list as a whole.
	ModulesTrustedKeys      *[]string
	ModulesRequireSignature *bool
	// Limits holds the --limits-* flags given, by field name
	// ("limits.module_packed_bytes").
	Limits map[string]int64
	// HTTP server timeouts (coordinator).
	HTTPReadHeaderTimeout, HTTPReadTimeout, HTTPWriteTimeout, HTTPIdleTimeout *time.Duration
}

// Apply sets every given field on c and records that a flag set it.
func (c *Config) Apply(o Overrides) {
	set := func(name string) { c.origins[name] = origin{kind: fromFlag} }
	override(&c.Name, o.Name, FieldName, set)
	override(&c.DataDir, o.DataDir, FieldDataDir, set)
	override(&c.Coordinator, o.Coordinator, FieldCoordinator, set)
	override(&c.NoAgent, o.NoAgent, FieldNoAgent, set)
	override(&c.ReadReplica, o.ReadReplica, FieldReadReplica, set)
	override(&c.BootstrapExpect, o.BootstrapExpect, FieldBootstrapExpect, set)
	if o.Join != nil {
		join := slices.Clone(*o.Join)
		override(&c.Join, &join, FieldJoin, set)
	}
	if o.Labels != nil {
		labels := maps.Clone(*o.Labels)
		override(&c.Labels, &labels, FieldLabels, set)
	}
	override(&c.HTTPAddr, o.HTTPAddr, FieldHTTPAddr, set)
	override(&c.SerfAddr, o.SerfAddr, FieldSerfAddr, set)
	override(&c.RaftAddr, o.RaftAddr, FieldRaftAddr, set)
	override(&c.PollWait, o.PollWait, FieldPollWait, set)
	override(&c.ReconcileInterval, o.ReconcileInterval, FieldReconcileInterval, set)
	override(&c.LogLevel, o.LogLevel, FieldLogLevel, set)
	override(&c.LogFormat, o.LogFormat, FieldLogFormat, set)
	override(&c.MetricsAddr, o.MetricsAddr, FieldMetricsAddr, set)
	override(&c.DropBinaryPages, o.DropBinaryPages, FieldDropBinaryPages, set)
	override(&c.StepUser, o.StepUser, FieldStepUser, set)
	override(&c.StepGroup, o.StepGroup, FieldStepGroup, set)
	override(&c.TLSCAFile, o.TLSCAFile, FieldTLSCAFile, set)
	override(&c.TLSCertFile, o.TLSCertFile, FieldTLSCertFile, set)
	override(&c.TLSKeyFile, o.TLSKeyFile, FieldTLSKeyFile, set)
	override(&c.TLSCAKeyFile, o.TLSCAKeyFile, FieldTLSCAKeyFile, set)
	override(&c.CAFingerprint, o.CAFingerprint, FieldCAFingerprint, set)
	override(&c.Encrypt, o.Encrypt, FieldEncrypt, set)
	override(&c.KeyringFile, o.KeyringFile, FieldKeyringFile, set)
	override(&c.JoinToken, o.JoinToken, FieldJoinToken, set)
	if o.EnrollAddr != nil {
		addrs := slices.Clone(*o.EnrollAddr)
		override(&c.EnrollAddr, &addrs, FieldEnrollAddr, set)
	}
	override(&c.Insecure, o.Insecure, FieldInsecure, set)
	override(&c.NodeCertTTL, o.NodeCertTTL, FieldNodeCertTTL, set)
	override(&c.NodeGCAfter, o.NodeGCAfter, FieldNodeGCAfter, set)
	override(&c.ACLEnabled, o.ACLEnabled, FieldACLEnabled, set)
	override(&c.UIEnabled, o.UIEnabled, FieldUIEnabled, set)
	if o.ModulesTrustedKeys != nil {
		keys := slices.Clone(*o.ModulesTrustedKeys)
		override(&c.ModulesTrustedKeys, &keys, FieldModulesTrustedKeys, set)
	}
	override(&c.ModulesRequireSignature, o.ModulesRequireSignature, FieldModulesRequireSignature, set)
	for _, f := range limitFields {
		if v, ok := o.Limits[f.name]; ok {
			f.set(&c.Limits, v)
			set(f.name)
		}
	}
	override(&c.HTTPReadHeaderTimeout, o.HTTPReadHeaderTimeout, FieldHTTPReadHeaderTimeout, set)
	override(&c.HTTPReadTimeout, o.HTTPReadTimeout, FieldHTTPReadTimeout, set)
	override(&c.HTTPWriteTimeout, o.HTTPWriteTimeout, FieldHTTPWriteTimeout, set)
	override(&c.HTTPIdleTimeout, o.HTTPIdleTimeout, FieldHTTPIdleTimeout, set)
}

// override sets *dst from v when the flag was given, and records it.
func override[T any](dst *T, v *T, field string, set func(string)) {
	if v != nil {
		*dst = *v
		set(field)
	}
}

// Args renders the overrides as `dtk-agent run` flags, in documentation
// order, so that a service manager can run the same command later.
func (o Overrides) Args() []string {
	var out []string
	str := func(field string, v *string) {
		if v != nil {
			out = append(out, Flag(field), *v)
		}
	}
	boolean := func(field string, v *bool) {
		switch {
		case v == nil:
		case *v:
			out = append(out, Flag(field))
		default:
			out = append(out, Flag(field)+"=false")
		}
	}
	dur := func(field string, v *time.Duration) {
		if v != nil {
			out = append(out, Flag(field), v.String())
		}
	}
	str(FieldName, o.Name)
	str(FieldDataDir, o.DataDir)
	boolean(FieldCoordinator, o.Coordinator)
	boolean(FieldNoAgent, o.NoAgent)
	boolean(FieldReadReplica, o.ReadReplica)
	if o.BootstrapExpect != nil {
		out = append(out, Flag(FieldBootstrapExpect), strconv.Itoa(*o.BootstrapExpect))
	}
	if o.Join != nil {
		for _, j := range *o.Join {
			out = append(out, Flag(FieldJoin), j)
		}
	}
	if o.Labels != nil {
		keys := make([]string, 0, len(*o.Labels))
		for k := range *o.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, Flag(FieldLabels), k+"="+(*o.Labels)[k])
		}
	}
	str(FieldHTTPAddr, o.HTTPAddr)
	str(FieldSerfAddr, o.SerfAddr)
	str(FieldRaftAddr, o.RaftAddr)
	dur(FieldPollWait, o.PollWait)
	dur(FieldReconcileInterval, o.ReconcileInterval)
	str(FieldLogLevel, o.LogLevel)
	str(FieldLogFormat, o.LogFormat)
	str(FieldMetricsAddr, o.MetricsAddr)
	boolean(FieldDropBinaryPages, o.DropBinaryPages)
	str(FieldStepUser, o.StepUser)
	str(FieldStepGroup, o.StepGroup)
	str(FieldTLSCAFile, o.TLSCAFile)
	str(FieldTLSCertFile, o.TLSCertFile)
	str(FieldTLSKeyFile, o.TLSKeyFile)
	str(FieldTLSCAKeyFile, o.TLSCAKeyFile)
	str(FieldCAFingerprint, o.CAFingerprint)
	// A gossip key or join token on a service's command line would be
	// readable in the unit file and ps: service install refuses them (put
	// them in the configuration file, mode 0600).
	str(FieldKeyringFile, o.KeyringFile)
	if o.EnrollAddr != nil {
		for _, a := range *o.EnrollAddr {
			out = append(out, Flag(FieldEnrollAddr), a)
		}
	}
	boolean(FieldInsecure, o.Insecure)
	dur(FieldNodeCertTTL, o.NodeCertTTL)
	dur(FieldNodeGCAfter, o.NodeGCAfter)
	boolean(FieldACLEnabled, o.ACLEnabled)
	boolean(FieldUIEnabled, o.UIEnabled)
	if o.ModulesTrustedKeys != nil {
		for _, k := range *o.ModulesTrustedKeys {
			out = append(out, Flag(FieldModulesTrustedKeys), k)
		}
	}
	boolean(FieldModulesRequireSignature, o.ModulesRequireSignature)
	for _, f := range limitFields {
		if v, ok := o.Limits[f.name]; ok {
			out = append(out, f.flag, strconv.FormatInt(v, 10))
		}
	}
	dur(FieldHTTPReadHeaderTimeout, o.HTTPReadHeaderTimeout)
	dur(FieldHTTPReadTimeout, o.HTTPReadTimeout)
	dur(FieldHTTPWriteTimeout, o.HTTPWriteTimeout)
	dur(FieldHTTPIdleTimeout, o.HTTPIdleTimeout)
	return out
}

// Change is one field that differs between two configurations.
type Change struct {
	Field string
	// Runtime is true when the change applies without a restart.
	Runtime bool
}

// Diff lists the fields that differ from old to next, in documentation
// order.
func Diff(old, next *Config) []Change {
	var out []Change
	for _, f := range fields {
		if !reflect.DeepEqual(fieldValue(old, f.name), fieldValue(next, f.name)) {
			out = append(out, Change{Field: f.name, Runtime: f.runtime})
		}
	}
	return out
}

// fieldValue is a field's value, with nil and empty lists and maps equal.
func fieldValue(c *Config, name string) any {
	switch name {
	case FieldName:
		return c.Name
	case FieldDataDir:
		return c.DataDir
	case FieldCoordinator:
		return c.Coordinator
	case FieldNoAgent:
		return c.NoAgent
	case FieldReadReplica:
		return c.ReadReplica
	case FieldBootstrapExpect:
		return c.BootstrapExpect
	case FieldJoin:
		if len(c.Join) == 0 {
			return []string(nil)
		}
		return c.Join
	case FieldLabels:
		if len(c.Labels) == 0 {
			return map[string]string(nil)
		}
		return c.Labels
	case FieldHTTPAddr:
		return c.HTTPAddr
	case FieldSerfAddr:
		return c.SerfAddr
	case FieldRaftAddr:
		return c.RaftAddr
	case FieldPollWait:
		return c.PollWait
	case FieldReconcileInterval:
		return c.ReconcileInterval
	case FieldLogLevel:
		return c.LogLevel
	case FieldLogFormat:
		return c.LogFormat
	case FieldMetricsAddr:
		return c.MetricsAddr
	case FieldDropBinaryPages:
		return c.DropBinaryPages
	case FieldStepUser:
		return c.StepUser
	case FieldStepGroup:
		return c.StepGroup
	case FieldTLSCAFile:
		return c.TLSCAFile
	case FieldTLSCertFile:
		return c.TLSCertFile
	case FieldTLSKeyFile:
		return c.TLSKeyFile
	case FieldTLSCAKeyFile:
		return c.TLSCAKeyFile
	case FieldCAFingerprint:
		return c.CAFingerprint
	case FieldEncrypt:
		return c.Encrypt
	case FieldKeyringFile:
		return c.KeyringFile
	case FieldJoinToken:
		return c.JoinToken
	case FieldEnrollAddr:
		if len(c.EnrollAddr) == 0 {
			return []string(nil)
		}
		return c.EnrollAddr
	case FieldInsecure:
		return c.Insecure
	case FieldNodeCertTTL:
		return c.NodeCertTTL
	case FieldNodeGCAfter:
		return c.NodeGCAfter
	case FieldACLEnabled:
		return c.ACLEnabled
	case FieldHTTPReadHeaderTimeout:
		return c.HTTPReadHeaderTimeout
	case FieldHTTPReadTimeout:
		return c.HTTPReadTimeout
	case FieldHTTPWriteTimeout:
		return c.HTTPWriteTimeout
	case FieldHTTPIdleTimeout:
		return c.HTTPIdleTimeout
	case FieldUIEnabled:
		return c.UIEnabled
	case FieldModulesTrustedKeys:
		if len(c.ModulesTrustedKeys) == 0 {
			return []string(nil)
		}
		return c.ModulesTrustedKeys
	case FieldModulesRequireSignature:
		return c.ModulesRequireSignature
	}
	if f, ok := lookupLimit(name); ok {
		return f.get(&c.Limits)
	}
	panic("config: unknown field " + name)
}
