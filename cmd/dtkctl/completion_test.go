package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
)

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	r := runCLIEnv(t, noCoordinator, "completion", shell)
	r.check(t, exitOK)
	if strings.Contains(r.stdout, "__man") {
		t.Errorf("%s script completes the hidden __man command", shell)
	}
	return r.stdout
}

// runShell runs script in shell (skipping the test when the shell is not
// installed) and returns what it prints.
func runShell(t *testing.T, shell, script string) string {
	t.Helper()
	if _, err := exec.LookPath(shell); err != nil {
		if os.Getenv("DTK_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s not installed and DTK_REQUIRE_TOOLS is set", shell)
		}
		t.Skipf("%s not installed", shell)
	}
	out, err := exec.Command(shell, "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", shell, err, out)
	}
	return string(out)
}

func writeScript(t *testing.T, name, content string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Completes commands, subcommands, flags (a command's and the global
// ones), a flag's fixed values and folder arguments, skipping the value
// of a flag when finding the command.
func TestCompletion_Bash(t *testing.T) {
	s := completionScript(t, "bash")
	if !strings.Contains(s, "complete -o filenames -o bashdefault -F _dtkctl dtkctl\n") {
		t.Fatalf("no complete line:\n%s", s)
	}
	p := writeScript(t, "dtkctl.bash", s)
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "webmod"), 0o755)
	out := runShell(t, "bash", `set -e; source `+p+`; cd `+dir+`
t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _dtkctl; echo "${COMPREPLY[*]}"; }
t dtkctl mod
t dtkctl module ""
t dtkctl --addr x:1 service graph web --format ""
t dtkctl service deploy web --w
t dtkctl --addr service service de
t dtkctl module validate web
t dtkctl service graph web --format=m
`)
	want := "module\npush publish list delete validate fmt sign verify\ndot mermaid json\n--wait\ndeploy delete\nwebmod\nmermaid\n"
	if out != want {
		t.Errorf("completions:\n%s\nwant:\n%s", out, want)
	}
}

func TestCompletion_Zsh(t *testing.T) {
	s := completionScript(t, "zsh")
	if !strings.HasPrefix(s, "#compdef dtkctl\n") || !strings.Contains(s, "compdef _dtkctl dtkctl") {
		t.Fatalf("not a zsh completion:\n%s", s)
	}
	p := writeScript(t, "_dtkctl", s)
	out := runShell(t, "zsh", `zsh -n `+p+` || exit 1
compdef() { :; }; source `+p+`
_dtkctl_path --addr x:1 service deploy web
_dtkctl_subs operator/raft
_dtkctl_values service/graph --format
_dtkctl_args module/fmt
`)
	if out != "service/deploy\npeers remove-peer\ndot mermaid json\n__dir\n" {
		t.Errorf("zsh:\n%s", out)
	}
}

func TestCompletion_Fish(t *testing.T) {
	s := completionScript(t, "fish")
	if !strings.Contains(s, "complete -c dtkctl -l no-color") {
		t.Fatalf("not a fish completion:\n%s", s)
	}
	p := writeScript(t, "dtkctl.fish", s)
	out := runShell(t, "fish", `source `+p+`
complete -C "dtkctl mod"
complete -C "dtkctl --addr x:1 service graph web --format "
`)
	for _, want := range []string{"module\tPush and list modules.", "mermaid\t"} {
		if !strings.Contains(out, want) {
			t.Errorf("fish completions lack %q:\n%s", want, out)
		}
	}
}

func TestCompletion_UnknownShell_Exit2(t *testing.T) {
	r := runCLIEnv(t, noCoordinator, "completion", "powershell")
	r.check(t, exitUsage)
}

// Man pages: one for dtkctl, one per command, with the flags and the
// examples from --help.
func TestManPages(t *testing.T) {
	var cli CLI
	parser, err := kong.New(&cli, kong.Name("dtkctl"), kong.Description("Operate a dtk cluster."),
		kong.Vars{"version": "dev", "addr": "", "default_addr": "", "ca_file": "", "client_cert": "", "client_key": ""})
	if err != nil {
		t.Fatal(err)
	}
	pages := manPages(parser.Model, time.Unix(1700000000, 0))
	if len(pages) != len(parser.Model.Leaves(true))+1 {
		t.Errorf("%d pages for %d commands", len(pages), len(parser.Model.Leaves(true)))
	}
	top := pages["dtkctl.1"]
	for _, want := range []string{`.TH DTKCTL 1 "2023-11-14"`, `.B \-\-no\-color`, ".BR dtkctl\\-service\\-deploy (1)", ".B NO_COLOR"} {
		if !strings.Contains(top, want) {
			t.Errorf("dtkctl.1 lacks %q", want)
		}
	}
	deploy := pages["dtkctl-service-deploy.1"]
	for _, want := range []string{".SH FLAGS", `.B \-\-timeout=\fI10m\fR`, ".SH EXAMPLES", `dtkctl service deploy web \-\-wait`} {
		if !strings.Contains(deploy, want) {
			t.Errorf("dtkctl-service-deploy.1 lacks %q:\n%s", want, deploy)
		}
	}
	if _, ok := pages["dtkctl-__man.1"]; ok {
		t.Error("a page for the hidden __man command")
	}

	dir := t.TempDir()
	r := runCLIEnv(t, noCoordinator, "__man", dir)
	r.check(t, exitOK)
	if _, err := os.Stat(filepath.Join(dir, "dtkctl-module-validate.1")); err != nil {
		t.Error(err)
	}
	if man, err := exec.LookPath("man"); err == nil {
		out, err := exec.Command(man, "-l", filepath.Join(dir, "dtkctl-service-deploy.1")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "dtkctl service deploy web --wait") {
			t.Errorf("man -l: %v\n%s", err, out)
		}
	}
}

// The main commands' --help shows usage examples.
func TestHelp_MainCommandsShowExamples(t *testing.T) {
	for _, cmd := range [][]string{
		{}, {"module", "push"}, {"module", "validate"}, {"module", "fmt"}, {"service", "stage"}, {"service", "plan"},
		{"service", "deploy"}, {"service", "status"}, {"service", "delete"}, {"service", "logs"}, {"service", "exec"},
		{"version"}, {"completion"},
	} {
		r := runCLIEnv(t, noCoordinator, append(cmd, "--help")...)
		r.check(t, exitOK)
		if !strings.Contains(r.stdout, "Examples:\n\n    dtkctl ") && !strings.Contains(r.stdout, "Examples:\n\n    DTK_") {
			t.Errorf("dtkctl %s --help has no examples:\n%s", strings.Join(cmd, " "), r.stdout)
		}
	}
}
