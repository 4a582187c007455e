package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `dtk-agent service install` writes /etc/systemd/system/dtk-agent.service
// (kardianos/service fixes that path). To exercise exactly that without
// touching the machine, the commands run inside a private mount namespace
// (unshare --mount --propagation private) where a tmpfs covers
// /etc/systemd/system: whatever happens there vanishes with the namespace.
// No systemd runs as PID 1 on these machines, so start/stop cannot really
// happen: a fake systemctl on PATH records the calls instead, and the unit
// is checked with `systemd-analyze verify`, which needs no running systemd.
func TestService_InstallVerifyUninstall_SystemPath(t *testing.T) {
	requireTool(t, "unshare", "util-linux")
	requireTool(t, "systemd-analyze", "systemd")
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace")
	}
	if err := exec.Command("unshare", "--mount", "--propagation", "private", "true").Run(); err != nil {
		// A missing capability (a container without CAP_SYS_ADMIN), not a
		// missing tool: internal/svcinstall's tests still cover the unit.
		t.Skipf("no mount namespace here (%v): the system-path test needs one", err)
	}
	const unit = "/etc/systemd/system/dtk-agent.service"
	if _, err := os.Stat(unit); err == nil {
		t.Skip(unit + " exists on this machine: not testing beside a real install")
	}

	dir := t.TempDir()
	fake := filepath.Join(dir, "fakebin")
	os.MkdirAll(fake, 0o755)
	calls := filepath.Join(dir, "calls")
	os.WriteFile(filepath.Join(fake, "systemctl"), []byte("#!/bin/sh\necho \"$@\" >> "+calls+"\n"), 0o755)
	// A secure coordinator: the TLS files as flags (paths, not secrets),
	// the gossip key in the configuration file.
	pki := newPKI(t, "c1", net.IPv4(10, 0, 0, 5))
	cfg := writePrivate(t, "agent.hcl", "serf_addr = \"10.0.0.5:7946\"\nlabels = { env = \"prod\" }\nencrypt = \""+pki.GossipKey+"\"\n")
	out := filepath.Join(dir, "unit")

	script := `set -e
mount -t tmpfs tmpfs /etc/systemd/system
export PATH="$FAKE:$PATH"
svc() { "$BIN" service --init linux-systemd "$@"; }
svc install --config "$CFG" --coordinator --bootstrap-expect 3 --join 10.0.0.1:7946 --name c1 $TLSFLAGS
cp ` + unit + ` "$OUT"
if svc install --config "$CFG" 2>"$OUT.again"; then echo "second install succeeded"; exit 1; fi
svc start
svc stop
svc uninstall
test ! -e ` + unit + `
echo uninstalled
`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "BIN="+agentBin, "FAKE="+fake, "CFG="+cfg, "OUT="+out, "TLSFLAGS="+strings.Join(pki.flags(), " "))
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "uninstalled") {
		t.Fatalf("%v\n%s", err, b)
	}
	if !strings.Contains(string(b), "installed the dtk-agent service (/etc/systemd/system/dtk-agent.service)") {
		t.Errorf("install output:\n%s", b)
	}
	if _, err := os.Stat(unit); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s appeared outside the namespace", unit)
	}

	text, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	wantExec := "ExecStart=" + agentBin + " run --config " + cfg +
		" --name c1 --coordinator --bootstrap-expect 3 --join 10.0.0.1:7946 " + strings.Join(pki.flags(), " ") + "\n"
	for _, want := range []string{wantExec, "Restart=on-failure\n", "KillSignal=SIGTERM\n", "ExecReload=/bin/kill -HUP $MAINPID\n"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("unit lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(string(text), pki.GossipKey) || strings.Contains(string(text), "--encrypt") {
		t.Errorf("the gossip key is in the unit:\n%s", text)
	}
	// verify wants the unit under its own name.
	named := filepath.Join(dir, "dtk-agent.service")
	os.Rename(out, named)
	if v, err := exec.Command("systemd-analyze", "verify", "--man=no", named).CombinedOutput(); err != nil || len(strings.TrimSpace(string(v))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, v)
	}

	again, _ := os.ReadFile(out + ".again")
	if !strings.Contains(string(again), "already installed") {
		t.Errorf("second install said: %s", again)
	}
	c, _ := os.ReadFile(calls)
	want := "enable dtk-agent.service\ndaemon-reload\nstart dtk-agent.service\nstop dtk-agent.service\nstop dtk-agent.service\ndisable dtk-agent.service\ndaemon-reload\n"
	if string(c) != want {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", c, want)
	}
}

func TestService_InstallRefusesInvalidConfiguration(t *testing.T) {
	cfg := writeFile(t, "agent.hcl", "bootstrap_expect = 3\n")
	code, _, errOut := runMain("service", "--init", "linux-systemd", "install", "--config", cfg)
	if code != 2 || !strings.Contains(errOut, cfg+":1:20: bootstrap_expect: only a coordinator uses this") {
		t.Errorf("exit %d:\n%s", code, errOut)
	}
}

func requireTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("DTK_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s not found (apt-get install %s) and DTK_REQUIRE_TOOLS is set", name, pkg)
		}
		t.Skipf("%s not found (apt-get install %s)", name, pkg)
	}
}

// A gossip key or a join token on the command line of `service install`
// would end up in the unit (readable by every user) and in ps: it is
// refused, naming the configuration file to put it in. --init names a
// manager that does not exist, so that nothing could be installed on this
// machine even if the refusal were missing; without the secret the same
// command gets as far as the manager.
func TestService_InstallRefusesSecretFlags(t *testing.T) {
	key := "c2VjcmV0LWdvc3NpcC1rZXktZm9yLXRoZS10ZXN0cyE="
	token := "dtkjoin-0123456789abcdef"
	pki := newPKI(t, "c1")
	cfg := writePrivate(t, "agent.hcl", "serf_addr = \"10.0.0.5:7946\"\n")
	coordinator := append([]string{"--coordinator", "--name", "c1"}, pki.flags()...)
	agent := []string{"--join", "10.0.0.1:7946", "--tls-ca", pki.CAFile}
	for _, tc := range []struct {
		args       []string
		flag, file string
		want       []string
	}{
		{append([]string{"--config", cfg, "--encrypt", key}, coordinator...), "encrypt", cfg,
			[]string{"--encrypt is a secret", `put encrypt = "..." in the configuration file instead (` + cfg + ", mode 0600: chmod 0600 " + cfg + ")", "without --encrypt"}},
		{append([]string{"--config", cfg, "--join-token", token}, agent...), "join-token", cfg,
			[]string{"--join-token is a secret", `put join_token = "..." in the configuration file instead (` + cfg + ", mode 0600"}},
		{[]string{"--join-token", token, "--join", "10.0.0.1:7946"}, "join-token", "/etc/dtk/agent.hcl",
			[]string{"--join-token is a secret", "(/etc/dtk/agent.hcl, mode 0600"}},
	} {
		code, out, errOut := runMain(append([]string{"service", "--init", "no-such-manager", "install"}, tc.args...)...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(strings.ToLower(errOut), strings.ToLower(w)) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, errOut)
			}
		}
		if strings.Contains(out+errOut, key) || strings.Contains(out+errOut, token) {
			t.Errorf("%v: the secret is echoed:\n%s%s", tc.args, out, errOut)
		}
		if strings.Contains(errOut, "unknown service manager") {
			t.Errorf("%v: went on to the service manager", tc.args)
		}
	}
	// The same without the secret reaches the (missing) service manager.
	code, _, errOut := runMain(append([]string{"service", "--init", "no-such-manager", "install", "--config", cfg}, coordinator...)...)
	if code != 1 || !strings.Contains(errOut, `unknown service manager "no-such-manager"`) {
		t.Errorf("without a secret: exit %d\n%s", code, errOut)
	}
}

// The secret then lives in the configuration file: service install warns
// when every user can read that file, and is quiet when it is private.
func TestService_InstallWarnsOfReadableSecrets(t *testing.T) {
	pki := newPKI(t, "c1")
	text := "serf_addr = \"10.0.0.5:7946\"\nencrypt = \"" + pki.GossipKey + "\"\n"
	args := append([]string{"--coordinator", "--name", "c1"}, pki.flags()...)
	install := func(cfg string) string {
		t.Helper()
		code, _, errOut := runMain(append([]string{"service", "--init", "no-such-manager", "install", "--config", cfg}, args...)...)
		if code != 1 || !strings.Contains(errOut, "unknown service manager") {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		return errOut
	}
	readable := writeFile(t, "agent.hcl", text)
	if err := os.Chmod(readable, 0o644); err != nil {
		t.Fatal(err)
	}
	errOut := install(readable)
	if want := "warning: " + readable + " holds encrypt and every user can read it (mode 0644): chmod 0600 " + readable; !strings.Contains(errOut, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
	if strings.Contains(errOut, pki.GossipKey) {
		t.Errorf("the key is echoed:\n%s", errOut)
	}
	for _, m := range []os.FileMode{0o600, 0o640} {
		private := writePrivate(t, "agent.hcl", text)
		os.Chmod(private, m)
		if errOut := install(private); strings.Contains(errOut, "warning") {
			t.Errorf("mode %04o: %s", m, errOut)
		}
	}
	// Nothing secret in a readable file: nothing to say.
	if errOut := install(writeFile(t, "plain.hcl", "serf_addr = \"10.0.0.5:7946\"\n")); strings.Contains(errOut, "warning") {
		t.Errorf("no secret: %s", errOut)
	}
}
