package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dtkhq/dtk/internal/limits"
)

func TestParse_Full(t *testing.T) {
	src := `
name               = "web-1"
data_dir           = "/srv/dtk"
coordinator        = true
no_agent           = false
bootstrap_expect   = 3
join               = ["10.0.0.1:7946", "10.0.0.2:7946"]
labels             = { role = "web", "env" = "prod" }
http_addr          = "10.0.0.5:7070"
serf_addr          = "10.0.0.5:7946"
raft_addr          = "10.0.0.5:7947"
poll_wait          = "2m"
reconcile_interval = "30s"
log_level          = "debug"
log_format         = "json"
metrics_addr       = "10.0.0.5:9100"
drop_binary_pages  = false
encrypt            = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="
keyring_file       = "/etc/dtk/keyring.key"
node_cert_ttl      = "720h"
node_gc_after      = "72h"
enroll_addr        = ["10.0.0.1:7070"]
tls {
  ca_file     = "/etc/dtk/tls/dtk-ca.pem"
  cert_file   = "/etc/dtk/tls/server-web-1.pem"
  key_file    = "/etc/dtk/tls/server-web-1-key.pem"
  ca_key_file = "/etc/dtk/tls/dtk-ca-key.pem"
}
http {
  write_timeout = "45s"
  idle_timeout  = "5m"
}
`
	c, err := Check([]byte(src), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Name: "web-1", DataDir: "/srv/dtk", Coordinator: true, BootstrapExpect: 3,
		Join: []string{"10.0.0.1:7946", "10.0.0.2:7946"}, Labels: map[string]string{"role": "web", "env": "prod"},
		HTTPAddr: "10.0.0.5:7070", SerfAddr: "10.0.0.5:7946", RaftAddr: "10.0.0.5:7947",
		PollWait: 2 * time.Minute, ReconcileInterval: 30 * time.Second, LogLevel: "debug", File: "agent.hcl",
		LogFormat: "json", MetricsAddr: "10.0.0.5:9100", DropBinaryPages: false,
		Encrypt: "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=", KeyringFile: "/etc/dtk/keyring.key", EnrollAddr: []string{"10.0.0.1:7070"},
		TLSCAFile: "/etc/dtk/tls/dtk-ca.pem", TLSCertFile: "/etc/dtk/tls/server-web-1.pem", TLSKeyFile: "/etc/dtk/tls/server-web-1-key.pem",
		TLSCAKeyFile: "/etc/dtk/tls/dtk-ca-key.pem", NodeCertTTL: 720 * time.Hour, NodeGCAfter: 72 * time.Hour, Limits: limits.Default(),
		HTTPReadHeaderTimeout: 10 * time.Second, HTTPReadTimeout: 30 * time.Second,
		HTTPWriteTimeout: 45 * time.Second, HTTPIdleTimeout: 5 * time.Minute,
	}
	got := c.Clone()
	got.origins, got.src = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if w := c.Where(FieldSerfAddr); w != "agent.hcl:10:22" {
		t.Errorf("Where(serf_addr) = %q", w)
	}
	if c.IsSet(FieldNoAgent) != true || Default().IsSet(FieldName) {
		t.Error("IsSet wrong")
	}
}

func TestParse_EmptyFileIsDefaults(t *testing.T) {
	c, err := Check([]byte("# nothing\n"), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if len(Diff(d, c)) != 0 {
		t.Errorf("empty file differs from defaults: %v", Diff(d, c))
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if !c.DropBinaryPages {
		t.Error("drop_binary_pages is off by default")
	}
}

// Every bad configuration gets its own error, naming the field and where
// it is (file:line:col of the value, the key or the element at fault).
func TestParse_BadConfigurations(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string // substrings of the one error expected, in order
	}{
		{"syntax", `name = "a`, []string{"agent.hcl:1:", "Unterminated template string"}},
		{"unknown field with suggestion", `nmae = "a"`, []string{"agent.hcl:1:1: ", `Unsupported argument`, `Did you mean "name"?`}},
		{"unknown field far from any", `colour = "blue"`, []string{"agent.hcl:1:1: ", `An argument named "colour" is not expected here`}},
		{"block instead of map", "labels {\n  role = \"web\"\n}", []string{"agent.hcl:1:1: ", `Unsupported block type`, `use the equals sign`}},
		{"duplicate field", "name = \"a\"\nname = \"b\"", []string{"agent.hcl:2:1: ", "Attribute redefined"}},
		{"reference", `name = hostname`, []string{"agent.hcl:1:8: ", "Variables not allowed"}},
		{"bad name", `name = "Web_1"`, []string{"agent.hcl:1:8: name: ", `"Web_1" is not a valid node name`}},
		{"empty name", `name = ""`, []string{"agent.hcl:1:8: name: ", "leave it out to use the hostname"}},
		{"name not string", `name = ["a"]`, []string{"agent.hcl:1:8: name: must be a string, got a list"}},
		{"relative data dir", `data_dir = "var/lib/dtk"`, []string{"agent.hcl:1:12: data_dir: ", "absolute path"}},
		{"coordinator not bool", `coordinator = "yes"`, []string{"agent.hcl:1:15: coordinator: must be true or false, got a string"}},
		{"bootstrap_expect zero", "coordinator = true\nbootstrap_expect = 0\ninsecure = true", []string{"agent.hcl:2:20: bootstrap_expect: must be at least 1"}},
		{"bootstrap_expect fraction", "coordinator = true\nbootstrap_expect = 2.5\ninsecure = true", []string{"agent.hcl:2:20: bootstrap_expect: must be a whole number, got 2.5"}},
		{"bootstrap_expect string", "coordinator = true\nbootstrap_expect = \"three\"\ninsecure = true", []string{"agent.hcl:2:20: bootstrap_expect: must be a whole number, got a string"}},
		{"bootstrap_expect without coordinator", `bootstrap_expect = 3`, []string{"agent.hcl:1:20: bootstrap_expect: only a coordinator uses this", "coordinator = true"}},
		{"no_agent without coordinator", `no_agent = true`, []string{"agent.hcl:1:12: no_agent: only a coordinator uses this"}},
		{"ui without coordinator", "ui {\n  enabled = true\n}", []string{"agent.hcl:2:13: ui.enabled: only a coordinator uses this"}},
		{"ui not bool", "coordinator = true\ninsecure = true\nui {\n  enabled = \"yes\"\n}", []string{"agent.hcl:4:13: enabled: must be true or false, got a string"}},
		{"http_addr without coordinator", `http_addr = "10.0.0.5:7070"`, []string{"agent.hcl:1:13: http_addr: only a coordinator uses this"}},
		{"raft_addr without coordinator", `raft_addr = "10.0.0.5:7947"`, []string{"agent.hcl:1:13: raft_addr: only a coordinator uses this"}},
		{"join not a list", `join = "10.0.0.1:7946"`, []string{"agent.hcl:1:8: join: must be a list"}},
		{"bad log format", `log_format = "logfmt"`, []string{"agent.hcl:1:14: log_format: ", `"logfmt" is not a log format: use text or json`}},
		{"bad metrics address", `metrics_addr = "9100"`, []string{"agent.hcl:1:16: metrics_addr: ", "metrics off"}},
		{"join element without port", `join = ["10.0.0.1:7946", "10.0.0.2"]`, []string{"agent.hcl:1:26: join: ", `"10.0.0.2" is not host:port (missing port in address)`}},
		{"join element port 0", `join = ["10.0.0.1:0"]`, []string{"agent.hcl:1:9: join: ", "needs a port"}},
		{"join element not string", `join = [true]`, []string{"agent.hcl:1:9: join: element 1 must be a \"host:port\" string, got a bool"}},
		{"labels not a map", `labels = ["role"]`, []string{"agent.hcl:1:10: labels: must be a map of strings"}},
		{"label key invalid", `labels = { role = "web", "9lives" = "x" }`, []string{"agent.hcl:1:26: labels: ", `label key "9lives" is not valid`}},
		{"label value not string", `labels = { role = ["web"] }`, []string{"agent.hcl:1:19: labels: ", `label "role" must be a string, got a list`}},
		{"label value control char", `labels = { role = "a\nb" }`, []string{"agent.hcl:1:12: labels: ", "control character"}},
		{"serf_addr host name", `serf_addr = "node1:7946"`, []string{"agent.hcl:1:13: serf_addr: ", "must be an IP address"}},
		{"serf_addr unspecified", `serf_addr = "0.0.0.0:7946"`, []string{"agent.hcl:1:13: serf_addr: ", "cannot use 0.0.0.0"}},
		{"serf_addr no port", `serf_addr = "10.0.0.5"`, []string{"agent.hcl:1:13: serf_addr: ", "is not host:port"}},
		{"serf_addr bad port", `serf_addr = "10.0.0.5:http"`, []string{"agent.hcl:1:13: serf_addr: ", `bad port "http"`}},
		{"http_addr no host", "coordinator = true\nhttp_addr = \":7070\"\ninsecure = true", []string{"agent.hcl:2:13: http_addr: ", "has no host"}},
		{"raft_addr bad", "coordinator = true\nraft_addr = \"10.0.0.5:99999\"\ninsecure = true", []string{"agent.hcl:2:13: raft_addr: ", "bad port"}},
		{"poll_wait not a duration", `poll_wait = "5 minutes"`, []string{"agent.hcl:1:13: poll_wait: ", `"5 minutes" is not a duration`}},
		{"poll_wait number", `poll_wait = 300`, []string{"agent.hcl:1:13: poll_wait: must be a duration in quotes"}},
		{"poll_wait too long", `poll_wait = "1h"`, []string{"agent.hcl:1:13: poll_wait: ", "use at most 10m0s"}},
		{"reconcile_interval too short", `reconcile_interval = "10ms"`, []string{"agent.hcl:1:22: reconcile_interval: ", "too short"}},
		{"coordinator without tls", "coordinator = true", []string{"agent.hcl:1:15: coordinator: a coordinator needs TLS", "--insecure"}},
		{"tls cert without key", "tls {\n ca_file = \"/ca.pem\"\n cert_file = \"/c.pem\"\n}", []string{"agent.hcl:3:14: tls.cert_file: ", "go together"}},
		{"tls unknown attribute", "tls {\n ca_flie = \"/ca.pem\"\n}", []string{"agent.hcl:2:2: ", "ca_flie"}},
		{"two tls blocks", "tls {}\ntls {}", []string{"agent.hcl:2:1: tls: only one tls block"}},
		{"insecure with tls", "insecure = true\ntls {\n ca_file = \"/ca.pem\"\n}", []string{"insecure: insecure turns TLS off"}},
		{"encrypt bad", `encrypt = "abc"`, []string{"agent.hcl:1:11: encrypt: is not a gossip key"}},
		{"ca key without keyring", "coordinator = true\ntls {\n ca_file = \"/ca.pem\"\n cert_file = \"/c.pem\"\n key_file = \"/k.pem\"\n ca_key_file = \"/cak.pem\"\n}", []string{"agent.hcl:6:16: tls.ca_key_file: the CA key", "set keyring_file"}},
		{"ca file and fingerprint", "tls {\n ca_file = \"/ca.pem\"\n ca_fingerprint = \"sha256:00\"\n}", []string{"tls.ca_fingerprint: give the CA either"}},
		{"log_level", `log_level = "verbose"`, []string{"agent.hcl:1:13: log_level: ", `"verbose" is not a log level`}},
	}
	seen := map[string]string{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check([]byte(tc.src), "agent.hcl")
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want Errors, got %v", err)
			}
			if len(errs) != 1 {
				t.Fatalf("want one error, got %d:\n%s", len(errs), errs)
			}
			msg := errs[0].Error()
			rest := msg
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q\ndoes not contain %q (in order)", msg, w)
				}
				rest = rest[i+len(w):]
			}
			if !strings.Contains(errs.Verbose(), "^") {
				t.Errorf("no source excerpt in\n%s", errs.Verbose())
			}
			if prev, dup := seen[msg]; dup {
				t.Errorf("same error as case %q: %s", prev, msg)
			}
			seen[msg] = tc.name
		})
	}
}

func TestParse_ReportsEveryError(t *testing.T) {
	src := "nmae = \"x\"\nserf_addr = \"nope\"\nlog_level = \"loud\"\nlabels = { \"-x\" = \"y\" }\n"
	_, err := Check([]byte(src), "agent.hcl")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	// The unknown field stops nothing: the known ones are still checked.
	var lines []string
	for _, e := range errs {
		lines = append(lines, strings.SplitN(e.Where, ":", 3)[1])
	}
	if got := strings.Join(lines, ","); got != "1,2,3,4" {
		t.Errorf("errors on lines %s, want 1,2,3,4:\n%s", got, errs)
	}
}

func TestLoad_MissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "agent.hcl"))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("got %v", err)
	}
}

func TestConfig_Apply_FlagsOverrideFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.hcl")
	os.WriteFile(p, []byte("name = \"a\"\njoin = [\"10.0.0.1:7946\"]\nlabels = { role = \"web\" }\n"), 0o644)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	name, labels := "b", map[string]string{"env": "prod"}
	c.Apply(Overrides{Name: &name, Labels: &labels})
	if c.Name != "b" || !reflect.DeepEqual(c.Labels, labels) || c.Join[0] != "10.0.0.1:7946" {
		t.Errorf("merge wrong: %+v", c)
	}
	if c.Where(FieldName) != "--name" || c.Where(FieldJoin) != p+":2:8" {
		t.Errorf("origins wrong: %s %s", c.Where(FieldName), c.Where(FieldJoin))
	}
	// A bad flag is named as the flag.
	bad := "10.0.0.1"
	c.Apply(Overrides{SerfAddr: &bad})
	err = c.Validate()
	if err == nil || !strings.HasPrefix(err.Error(), `--serf-addr: "10.0.0.1" is not host:port`) {
		t.Errorf("got %v", err)
	}
}

func TestOverrides_Args(t *testing.T) {
	yes, no := true, false
	n, d := 3, 90*time.Second
	j := []string{"10.0.0.1:7946", "10.0.0.2:7946"}
	l := map[string]string{"role": "web", "env": "prod"}
	got := Overrides{Coordinator: &yes, NoAgent: &no, BootstrapExpect: &n, Join: &j, Labels: &l, PollWait: &d}.Args()
	want := []string{"--coordinator", "--no-agent=false", "--bootstrap-expect", "3", "--join", "10.0.0.1:7946",
		"--join", "10.0.0.2:7946", "--label", "env=prod", "--label", "role=web", "--poll-wait", "1m30s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestDiff(t *testing.T) {
	a := Default()
	b := a.Clone()
	b.Labels = map[string]string{"role": "db"}
	b.SerfAddr = "10.0.0.9:7946"
	b.LogLevel = "debug"
	got := Diff(a, b)
	want := []Change{{FieldLabels, true}, {FieldSerfAddr, false}, {FieldLogLevel, true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// step_user and step_group: read from the file, overridden by their
// flags, checked as account names, and applied at the next start.
func TestStepUser(t *testing.T) {
	c, err := Check([]byte("step_user  = \"app\"\nstep_group = \"www-data\"\n"), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.StepUser != "app" || c.StepGroup != "www-data" || c.Where(FieldStepUser) != "agent.hcl:1:14" {
		t.Errorf("got user %q group %q at %s", c.StepUser, c.StepGroup, c.Where(FieldStepUser))
	}
	user := "deploy"
	c.Apply(Overrides{StepUser: &user})
	if c.StepUser != "deploy" || c.Where(FieldStepUser) != "--step-user" || c.StepGroup != "www-data" {
		t.Errorf("after --step-user: user %q (%s) group %q", c.StepUser, c.Where(FieldStepUser), c.StepGroup)
	}
	if got := Diff(Default(), c); !reflect.DeepEqual(got, []Change{{FieldStepUser, false}, {FieldStepGroup, false}}) {
		t.Errorf("Diff = %v, want both fields, needing a restart", got)
	}
	group := "adm"
	if got, want := (Overrides{StepUser: &user, StepGroup: &group}).Args(), []string{"--step-user", "deploy", "--step-group", "adm"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Args = %q, want %q", got, want)
	}
	for src, want := range map[string]string{
		`step_user = "9lives"`: `agent.hcl:1:13: step_user: "9lives" is not a user name`,
		`step_group = "a b"`:   `agent.hcl:1:14: step_group: "a b" is not a group name`,
		`step_user = ["app"]`:  `agent.hcl:1:13: step_user: must be a string, got a list`,
		`step_group = "-x"`:    `step_group: "-x" is not a group name`,
		`step_user = "svc$"`:   "",
		`step_user = "_apt"`:   "",
		`step_group = "wheel"`: "",
		`step_user = ""`:       "",
	} {
		_, err := Check([]byte(src), "agent.hcl")
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", src, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: got %v, want %q", src, err, want)
		}
	}
}

func TestParse_RefusesNestingBomb(t *testing.T) {
	const n = 100000
	for name, expr := range map[string]string{
		"parens":   strings.Repeat("(", n) + `"a"` + strings.Repeat(")", n),
		"brackets": strings.Repeat("[", n) + strings.Repeat("]", n),
		"braces":   strings.Repeat("{a=", n) + "1" + strings.Repeat("}", n),
		"calls":    strings.Repeat("upper(", n) + `"a"` + strings.Repeat(")", n),
	} {
		_, err := Parse([]byte("name = "+expr+"\n"), "agent.hcl")
		if err == nil || !strings.Contains(err.Error(), "agent.hcl:1:") || !strings.Contains(err.Error(), "expressions nest deeper than 64 levels") {
			t.Errorf("%s: Parse: %.300v, want the nesting limit at agent.hcl:1:", name, err)
		}
	}
}

func TestValidate_HTTPTimeouts(t *testing.T) {
	_, err := Check([]byte("http {\n  read_timeout = \"0s\"\n  write_timeout = \"2h\"\n}\n"), "agent.hcl")
	for _, want := range []string{"agent.hcl:2:18: http.read_timeout: 0s is out of range: use 1s to 1h", "http.write_timeout: 2h0m0s is out of range"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

func TestParse_UIBlock(t *testing.T) {
	c, err := Parse([]byte("coordinator = true\ninsecure = true\nui {\n  enabled = true\n}\n"), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || !c.UIEnabled || !c.IsSet(FieldUIEnabled) {
		t.Fatalf("ui.enabled: %v, %v", c.UIEnabled, err)
	}
	if args := (Overrides{UIEnabled: &c.UIEnabled}).Args(); len(args) != 1 || args[0] != "--ui" {
		t.Errorf("flag args %v", args)
	}
}

// The modules block: read from the file, replaced by the flags, changed at
// run time, and checked (the key files themselves are read when the
// coordinator starts).
func TestParse_ModulesBlock(t *testing.T) {
	src := "coordinator = true\ninsecure = true\nmodules {\n  trusted_keys      = [\"/etc/dtk/keys/team.pub\", \"/etc/dtk/keys/ci.pub\"]\n  require_signature = true\n}\n"
	c, err := Check([]byte(src), "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.ModulesTrustedKeys, []string{"/etc/dtk/keys/team.pub", "/etc/dtk/keys/ci.pub"}) || !c.ModulesRequireSignature ||
		c.Where(FieldModulesTrustedKeys) != "agent.hcl:4:23" {
		t.Fatalf("modules block: %q %v %s", c.ModulesTrustedKeys, c.ModulesRequireSignature, c.Where(FieldModulesTrustedKeys))
	}
	keys, yes := []string{"/k/a.pub"}, true
	c.Apply(Overrides{ModulesTrustedKeys: &keys, ModulesRequireSignature: &yes})
	if !reflect.DeepEqual(c.ModulesTrustedKeys, keys) || c.Where(FieldModulesTrustedKeys) != "--modules-trusted-key" {
		t.Errorf("flags: %q %s", c.ModulesTrustedKeys, c.Where(FieldModulesTrustedKeys))
	}
	if args := (Overrides{ModulesTrustedKeys: &[]string{"/a.pub", "/b.pub"}, ModulesRequireSignature: &yes}).Args(); !reflect.DeepEqual(args,
		[]string{"--modules-trusted-key", "/a.pub", "--modules-trusted-key", "/b.pub", "--modules-require-signature"}) {
		t.Errorf("flag args %q", args)
	}
	b := c.Clone()
	b.ModulesTrustedKeys = append(b.ModulesTrustedKeys, "/k/b.pub")
	b.ModulesRequireSignature = false
	if got := Diff(c, b); !reflect.DeepEqual(got, []Change{{FieldModulesTrustedKeys, true}, {FieldModulesRequireSignature, true}}) {
		t.Errorf("diff %v", got)
	}
	if len(c.ModulesTrustedKeys) != 1 {
		t.Error("Clone shares the key list")
	}

	for _, tc := range []struct{ name, src, want string }{
		{"require without keys", "coordinator = true\ninsecure = true\nmodules {\n  require_signature = true\n}\n",
			"agent.hcl:4:23: modules.require_signature: requiring signatures needs at least one trusted key: set modules.trusted_keys (--modules-trusted-key)"},
		{"on an agent", "modules {\n  trusted_keys = [\"/k.pub\"]\n}\n", "agent.hcl:2:18: modules.trusted_keys: only a coordinator uses this"},
		{"not a list", "coordinator = true\ninsecure = true\nmodules {\n  trusted_keys = \"/k.pub\"\n}\n",
			`agent.hcl:4:18: trusted_keys: must be a list of file paths, e.g. ["/etc/dtk/keys/team.pub"], got a string`},
		{"empty path", "coordinator = true\ninsecure = true\nmodules {\n  trusted_keys = [\"/k.pub\", \"\"]\n}\n",
			"agent.hcl:4:29: modules.trusted_keys: element 2 is empty"},
		{"unknown attribute", "coordinator = true\ninsecure = true\nmodules {\n  trusted_key = [\"/k.pub\"]\n}\n", `Did you mean "trusted_keys"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check([]byte(tc.src), "agent.hcl")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
		})
	}
}
