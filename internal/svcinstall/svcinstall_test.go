package svcinstall

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// These tests drive the real kardianos/service systemd code, with two
// substitutions that keep them off the machine's service manager:
//
//   - the unit is a per-user unit, so kardianos writes it under $HOME
//     (a temporary folder) instead of /etc/systemd/system, whose path the
//     library fixes; cmd/dtk-agent's test covers the system path inside a
//     private mount namespace;
//   - `systemctl` is a fake on $PATH that records its arguments: there is
//     no systemd running as PID 1 on these machines, so enable, start and
//     stop cannot really happen here.
//
// The unit itself is checked with `systemd-analyze verify`, which needs no
// running systemd.

// fakeSystemctl puts a recording systemctl first on PATH and returns the
// file it appends its arguments to, one call per line.
func fakeSystemctl(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$@\" >> " + log + "\n"
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

func calls(t *testing.T, log string) string {
	b, err := os.ReadFile(log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func userSpec(t *testing.T, exe string, args ...string) Spec {
	t.Setenv("HOME", t.TempDir())
	return Spec{System: SystemdName, UserService: true, Executable: exe, Args: args}
}

// verifyUnit runs systemd-analyze verify on a unit file and fails on any
// complaint. It skips when the tool is missing, unless DTK_REQUIRE_TOOLS is
// set (CI installs the systemd package for it).
func verifyUnit(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("DTK_REQUIRE_TOOLS") != "" {
			t.Fatal("systemd-analyze not found (apt-get install systemd) and DTK_REQUIRE_TOOLS is set")
		}
		t.Skip("systemd-analyze not found (apt-get install systemd)")
	}
	// verify loads the unit offline: no running systemd is needed (and
	// none runs here).
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", path, err, out)
	}
}

func TestInstall_UnitEqualsPackagedUnit(t *testing.T) {
	log := fakeSystemctl(t)
	spec := userSpec(t, "/usr/bin/dtk-agent", "run", "--config", "/etc/dtk/agent.hcl")
	if err := Install(spec); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(UnitPath(spec))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../packaging/dtk-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("service install and packaging/dtk-agent.service differ:\n--- install\n%s\n--- packaging\n%s", got, want)
	}
	if c := calls(t, log); c != "enable --user dtk-agent.service\ndaemon-reload --user\n" {
		t.Errorf("systemctl calls:\n%s", c)
	}
}

func TestInstall_UnitVerifiesAndUninstallRemovesIt(t *testing.T) {
	log := fakeSystemctl(t)
	exe, err := os.Executable() // any executable file will do for verify
	if err != nil {
		t.Fatal(err)
	}
	spec := userSpec(t, exe, "run", "--config", "/etc/dtk/my agent.hcl", "--label", "team=100%", "--name", "web-1")
	spec.UserName = "dtk"
	if err := Install(spec); err != nil {
		t.Fatal(err)
	}
	path := UnitPath(spec)
	unit, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart=" + exe + ` run --config "/etc/dtk/my agent.hcl" --label team=100%% --name web-1` + "\n",
		"Restart=on-failure\n", "KillSignal=SIGTERM\n", "ExecReload=/bin/kill -HUP $MAINPID\n", "User=dtk\n",
		"WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	verifyUnit(t, path)

	if err := Install(spec); err == nil || !strings.Contains(err.Error(), "already installed") {
		t.Errorf("second install: %v", err)
	}
	if err := Control(spec, "start"); err != nil {
		t.Fatal(err)
	}
	if err := Control(spec, "stop"); err != nil {
		t.Fatal(err)
	}
	if err := Uninstall(spec); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unit still there after uninstall: %v", err)
	}
	if err := Uninstall(spec); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("uninstall twice: %v", err)
	}
	want := "enable --user dtk-agent.service\ndaemon-reload --user\nstart --user dtk-agent.service\n" +
		"stop --user dtk-agent.service\nstop --user dtk-agent.service\ndisable --user dtk-agent.service\ndaemon-reload --user\n"
	if c := calls(t, log); c != want {
		t.Errorf("systemctl calls:\n%s\nwant:\n%s", c, want)
	}
}

func TestNew_UnknownManager(t *testing.T) {
	_, err := New(Spec{System: "launchd-on-linux"})
	if err == nil || !strings.Contains(err.Error(), SystemdName) {
		t.Errorf("got %v", err)
	}
}

func TestSystemdQuote(t *testing.T) {
	for in, want := range map[string]string{
		"run":              "run",
		"/etc/dtk/a.hcl":   "/etc/dtk/a.hcl",
		"a b":              `"a b"`,
		"":                 `""`,
		`say "hi"`:         `"say \"hi\""`,
		"50%":              "50%%",
		"$HOME":            "$$HOME",
		`c:\x`:             `"c:\\x"`,
		"role=web;env=dev": `"role=web;env=dev"`,
	} {
		if got := SystemdQuote(in); got != want {
			t.Errorf("SystemdQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
