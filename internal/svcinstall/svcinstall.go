// Package svcinstall registers dtk-agent with the machine's service manager
// through github.com/kardianos/service: a systemd unit on Linux (the
// library's other managers where systemd is absent), and starts, stops and
// queries it.
//
// The unit runs `dtk-agent run ARGS...`, restarts it when it fails, reloads
// it with SIGHUP and stops it with SIGTERM, on which the daemon cancels its
// running step, leaves the gossip pool and stops its coordinator. It is the
// same unit that the packages install (packaging/dtk-agent.service); a test
// keeps the two equal.
package svcinstall

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kardianos/service"
)

// Name is the service's name (dtk-agent.service under systemd).
const Name = "dtk-agent"

// SystemdName is the kardianos name of the systemd manager.
const SystemdName = "linux-systemd"

// ErrNotInstalled is returned when a command needs the service installed.
var ErrNotInstalled = errors.New("dtk-agent is not installed as a service: run `dtk-agent service install` first")

// Spec says how the service runs.
type Spec struct {
	// Executable is the dtk-agent binary (default: the running one).
	Executable string
	// Args follow the executable, e.g. run --config /etc/dtk/agent.hcl.
	Args []string
	// UserName runs the service as that user (default: root, which the
	// agent needs to converge the machine; a coordinator with no_agent can
	// run as the dtk user).
	UserName string
	// System names the service manager (see Systems); empty: the one
	// detected on this machine.
	System string
	// UserService installs a per-user systemd unit under
	// $HOME/.config/systemd/user instead of /etc/systemd/system (tests).
	UserService bool
}

// Systems lists the service managers this build knows, by name.
func Systems() []string {
	var out []string
	for _, s := range service.AvailableSystems() {
		out = append(out, s.String())
	}
	sort.Strings(out)
	return out
}

// Detected is the service manager of this machine, or "".
func Detected() string {
	if s := service.ChosenSystem(); s != nil {
		return s.String()
	}
	return ""
}

// systemdUnit is the unit template (kardianos/service's template language:
// {{Key}}, {{Key | fn}}, {{if}}, {{range}}). Keep packaging/dtk-agent.service
// equal to what it renders for /usr/bin/dtk-agent run --config
// /etc/dtk/agent.hcl.
const systemdUnit = `[Unit]
Description={{Description}}
Documentation=https://github.com/dtkhq/dtk/blob/main/docs/install.md
ConditionFileIsExecutable={{Path | cmdEscape}}
{{range Dependencies}}{{.}}
{{end}}StartLimitIntervalSec=300
StartLimitBurst=10

[Service]
Type=simple
ExecStart={{Path | cmdEscape}}{{range Arguments}} {{.}}{{end}}
# SIGHUP re-reads the configuration file (labels, log level, reconcile
# interval change without a restart).
ExecReload=/bin/kill -HUP $MAINPID
{{if UserName}}User={{UserName}}
{{end}}Restart={{Restart}}
RestartSec=5
# On SIGTERM the agent cancels its running step, leaves the gossip pool and
# stops its coordinator; it allows itself 30 seconds for that.
KillSignal=SIGTERM
TimeoutStopSec=45
# Stop only the agent: servers and containers that deployed steps started
# keep running across agent restarts and upgrades.
KillMode=process
LimitNOFILE=65536
{{range EnvVars}}{{.}}
{{end}}
[Install]
WantedBy=multi-user.target
`

// Description is the unit's description.
const Description = "dtk agent (and coordinator where configured)"

// dependencies go into [Unit]: start once the network is up.
var dependencies = []string{"Wants=network-online.target", "After=network-online.target"}

// program satisfies service.Interface. The unit runs `dtk-agent run`, which
// handles its own signals, so kardianos never calls these.
type program struct{}

func (program) Start(service.Service) error { return nil }
func (program) Stop(service.Service) error  { return nil }

// New returns the service for spec.
func New(spec Spec) (service.Service, error) {
	sys, err := pick(spec.System)
	if err != nil {
		return nil, err
	}
	c := &service.Config{
		Name:         Name,
		DisplayName:  Name,
		Description:  Description,
		Executable:   spec.Executable,
		UserName:     spec.UserName,
		Arguments:    spec.Args,
		Dependencies: dependencies,
		Option:       service.KeyValue{},
	}
	if sys.String() == SystemdName {
		// The template writes arguments as they are: quote them for
		// systemd here.
		c.Arguments = make([]string, len(spec.Args))
		for i, a := range spec.Args {
			c.Arguments[i] = SystemdQuote(a)
		}
		c.Option["SystemdScript"] = systemdUnit
		c.Option["Restart"] = "on-failure"
		c.Option["UserService"] = spec.UserService
	}
	return sys.New(program{}, c)
}

func pick(name string) (service.System, error) {
	if name == "" {
		if s := service.ChosenSystem(); s != nil {
			return s, nil
		}
		return nil, fmt.Errorf("no service manager found on this machine: use --init with one of %s", strings.Join(Systems(), ", "))
	}
	for _, s := range service.AvailableSystems() {
		if s.String() == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("unknown service manager %q: use one of %s", name, strings.Join(Systems(), ", "))
}

// UnitPath is where the systemd unit of spec lives ("" for other
// managers).
func UnitPath(spec Spec) string {
	sys, err := pick(spec.System)
	if err != nil || sys.String() != SystemdName {
		return ""
	}
	if spec.UserService {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		return filepath.Join(home, ".config/systemd/user", Name+".service")
	}
	return "/etc/systemd/system/" + Name + ".service"
}

// Install writes the service definition and enables it (it starts at
// boot); it does not start it.
func Install(spec Spec) error {
	if p := UnitPath(spec); p != "" {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s is already installed (%s): run `dtk-agent service uninstall` first to change how it runs", Name, p)
		}
	}
	s, err := New(spec)
	if err != nil {
		return err
	}
	if err := s.Install(); err != nil {
		return fmt.Errorf("install service: %w", err)
	}
	return nil
}

// Uninstall stops the service (a unit without its file would keep
// running, out of the operator's sight), disables it and removes its
// definition.
func Uninstall(spec Spec) error {
	if p := UnitPath(spec); p != "" {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return ErrNotInstalled
		}
	}
	s, err := New(spec)
	if err != nil {
		return err
	}
	// An error here means it was not running, or no service manager runs:
	// removal goes on either way.
	_ = s.Stop()
	if err := s.Uninstall(); err != nil {
		return fmt.Errorf("uninstall service: %w", err)
	}
	return nil
}

// Control runs start, stop or restart.
func Control(spec Spec, action string) error {
	s, err := New(spec)
	if err != nil {
		return err
	}
	switch action {
	case "start":
		err = s.Start()
	case "stop":
		err = s.Stop()
	case "restart":
		err = s.Restart()
	default:
		return fmt.Errorf("unknown action %q", action)
	}
	if err != nil {
		return fmt.Errorf("%s service: %w", action, err)
	}
	return nil
}

// Status is "running" or "stopped", or an error (ErrNotInstalled when the
// service manager does not know the service).
func Status(spec Spec) (string, error) {
	s, err := New(spec)
	if err != nil {
		return "", err
	}
	st, err := s.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return "", ErrNotInstalled
	case err != nil:
		return "", fmt.Errorf("service status: %w", err)
	case st == service.StatusRunning:
		return "running", nil
	case st == service.StatusStopped:
		return "stopped", nil
	}
	return "", errors.New("service status: unknown")
}

// SystemdQuote quotes one command-line argument for a unit's ExecStart:
// '%' and '$' are doubled (no specifier or variable expansion) and an
// argument with blanks, quotes or backslashes is double-quoted.
func SystemdQuote(a string) string {
	a = strings.NewReplacer("%", "%%", "$", "$$").Replace(a)
	if a != "" && !strings.ContainsAny(a, " \t\n\"'\\;") {
		return a
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`).Replace(a) + `"`
}
