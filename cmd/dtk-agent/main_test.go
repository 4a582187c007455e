package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/config"
)

// agentBin is dtk-agent built once for the tests that need a process.
var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dtk-agent-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "dtk-agent")
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version=test", "-o", agentBin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build dtk-agent: %v\n%s", err, b)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runMain(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheck_OK(t *testing.T) {
	p := writeFile(t, "agent.hcl", "name = \"web-1\"\nlabels = { role = \"web\" }\n")
	code, out, errOut := runMain("config", "check", p)
	if code != 0 || out != "ok\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestConfigCheck_PrintsEveryErrorAndExits2(t *testing.T) {
	p := writeFile(t, "agent.hcl", "nmae = \"web-1\"\nserf_addr = \"10.0.0.5\"\nlog_level = \"loud\"\n")
	code, out, _ := runMain("config", "check", p)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{
		p + `:1:1: Unsupported argument`, `Did you mean "name"?`,
		p + `:2:13: serf_addr: "10.0.0.5" is not host:port`,
		p + `:3:13: log_level: "loud" is not a log level`,
		"3 error(s) in " + p,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestConfigCheck_PackagedDefaultIsValid(t *testing.T) {
	code, out, errOut := runMain("config", "check", "../../packaging/agent.hcl")
	if code != 0 || out != "ok\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestRun_InvalidConfigurationExits2WithPositions(t *testing.T) {
	p := writeFile(t, "agent.hcl", "bootstrap_expect = 3\npoll_wait = \"soon\"\n")
	// --serf-addr is bad too, and named as the flag.
	code, _, errOut := runMain("run", "--config", p, "--serf-addr", "localhost:7946")
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	for _, want := range []string{
		p + ":1:20: bootstrap_expect: only a coordinator uses this",
		p + `:2:13: poll_wait: "soon" is not a duration`,
		`--serf-addr: "localhost:7946" must be an IP address`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestRun_FlagFixesFile(t *testing.T) {
	// The file's coordinator-only field is fine once --coordinator is
	// given: flags are merged before validation. The coordinator is a
	// secure one: TLS files given as flags, the gossip key in the file.
	pki := newPKI(t, "c1")
	p := writePrivate(t, "agent.hcl", "bootstrap_expect = 3\nserf_addr = \"127.0.0.1:7946\"\nencrypt = \""+pki.GossipKey+"\"\n")
	cfg, err := config.Resolve(p, parseOverrides(t, append([]string{"run", "--coordinator"}, pki.flags()...)...))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Coordinator || cfg.BootstrapExpect != 3 || cfg.Where(config.FieldCoordinator) != "--coordinator" {
		t.Errorf("got %+v", cfg)
	}
	if cfg.TLSCertFile != pki.CertFile || cfg.Where(config.FieldTLSCertFile) != "--tls-cert" ||
		cfg.Encrypt != pki.GossipKey || cfg.Where(config.FieldEncrypt) != p+":3:11" || cfg.Insecure {
		t.Errorf("security fields: %+v (encrypt from %s)", cfg, cfg.Where(config.FieldEncrypt))
	}

	// Without the TLS flags the same command is refused: secure is the
	// default.
	if _, err := config.Resolve(p, parseOverrides(t, "run", "--coordinator")); err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Errorf("a coordinator without TLS: %v", err)
	}
}

// parseOverrides parses a command line as main does and returns the
// overrides of its run flags.
func parseOverrides(t *testing.T, args ...string) config.Overrides {
	t.Helper()
	var c cli
	p, err := newParser(&c, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := p.Parse(args)
	if err != nil {
		t.Fatal(err)
	}
	f := &c.Run.runFlags
	if strings.HasPrefix(kctx.Command(), "service install") {
		f = &c.Service.Install.runFlags
	}
	return f.overrides(flagsSet(kctx), globals{LogLevel: c.LogLevel})
}

// What `service install` writes into the unit parses back to the same
// flags.
func TestOverrides_ArgsRoundTrip(t *testing.T) {
	args := []string{
		"service", "install", "--coordinator", "--no-agent", "--bootstrap-expect", "3", "--join", "10.0.0.1:7946",
		"--join", "10.0.0.2:7946", "--label", "role=web", "--label", "env=prod", "--name", "c1",
		"--data-dir", "/srv/dtk", "--http-addr", "10.0.0.5:7070", "--serf-addr", "10.0.0.5:7946",
		"--raft-addr", "10.0.0.5:7947", "--poll-wait", "90s", "--reconcile", "2m", "--log-level", "debug",
		"--tls-ca", "/etc/dtk/tls/dtk-ca.pem", "--tls-cert", "/etc/dtk/tls/c1.pem", "--tls-key", "/etc/dtk/tls/c1-key.pem",
		"--tls-ca-key", "/etc/dtk/tls/dtk-ca-key.pem", "--ca-fingerprint", "sha256:00ff", "--keyring-file", "/etc/dtk/kek",
		"--enroll-addr", "10.0.0.1:7070", "--enroll-addr", "10.0.0.2:7070", "--insecure",
		"--step-user", "app", "--step-group", "adm",
	}
	o := parseOverrides(t, args...)
	back := parseOverrides(t, append([]string{"run"}, o.Args()...)...)
	if !reflect.DeepEqual(o, back) {
		t.Errorf("round trip changed the flags:\n%q\n%+v\n%+v", o.Args(), o, back)
	}
	if len(o.Args()) != len(args)-2 {
		t.Errorf("Args() = %q", o.Args())
	}
	// Nothing given, nothing written: defaults stay defaults.
	if a := parseOverrides(t, "run").Args(); len(a) != 0 {
		t.Errorf("no flags gave %q", a)
	}
	if a := parseOverrides(t, "run", "--no-coordinator").Args(); !reflect.DeepEqual(a, []string{"--coordinator=false"}) {
		t.Errorf("--no-coordinator gave %q", a)
	}
	// drop_binary_pages is on by default: only turning it off is written,
	// and it parses back.
	o = parseOverrides(t, "run", "--no-drop-binary-pages")
	if a := o.Args(); !reflect.DeepEqual(a, []string{"--drop-binary-pages=false"}) {
		t.Errorf("--no-drop-binary-pages gave %q", a)
	}
	if back := parseOverrides(t, append([]string{"run"}, o.Args()...)...); !reflect.DeepEqual(o, back) {
		t.Errorf("--no-drop-binary-pages did not round-trip: %+v", back)
	}
}

// --step-user and --step-group reach the daemon, and from it the agent.
func TestRun_StepUserFlags(t *testing.T) {
	c := config.Default()
	c.Apply(parseOverrides(t, "run", "--step-user", "app", "--step-group", "adm"))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := daemonConfig(c, nil); d.StepUser != "app" || d.StepGroup != "adm" {
		t.Errorf("daemon config: step user %q group %q", d.StepUser, d.StepGroup)
	}
}

// Args never renders the secrets: a gossip key or join token given as a
// flag is left out (service install refuses them before it gets here), the
// paths to key files are kept.
func TestOverrides_ArgsLeaveOutSecrets(t *testing.T) {
	const key, token = "c2VjcmV0LWdvc3NpcC1rZXktZm9yLXRoZS10ZXN0cyE=", "dtkjoin-0123456789abcdef"
	o := parseOverrides(t, "run", "--encrypt", key, "--join-token", token, "--tls-key", "/etc/dtk/tls/node-key.pem")
	if o.Encrypt == nil || *o.Encrypt != key || o.JoinToken == nil || *o.JoinToken != token {
		t.Fatalf("the flags were not parsed: %+v", o)
	}
	args := o.Args()
	if want := []string{"--tls-key", "/etc/dtk/tls/node-key.pem"}; !reflect.DeepEqual(args, want) {
		t.Errorf("Args() = %q, want %q", args, want)
	}
	for _, a := range args {
		if strings.Contains(a, key) || strings.Contains(a, token) || a == "--encrypt" || a == "--join-token" {
			t.Errorf("Args() = %q renders a secret", args)
		}
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(agentBin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "dtk-agent test (") {
		t.Fatalf("%v: %s", err, out)
	}
}
