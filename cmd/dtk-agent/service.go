package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/dtkhq/dtk/internal/config"
	"github.com/dtkhq/dtk/internal/svcinstall"
)

type serviceCmd struct {
	Init string `help:"Service manager to use instead of the detected one (e.g. linux-systemd when building an image in a chroot)." placeholder:"MANAGER"`

	Install   serviceInstallCmd `cmd:"" help:"Register 'dtk-agent run FLAGS...' as a service that starts at boot (does not start it now). Secrets (encrypt, join_token) go in the configuration file, not on the command line."`
	Uninstall serviceActionCmd  `cmd:"" help:"Stop and disable the service and remove its definition."`
	Start     serviceActionCmd  `cmd:"" help:"Start the service."`
	Stop      serviceActionCmd  `cmd:"" help:"Stop the service (the agent leaves the gossip pool and cancels its running step)."`
	Restart   serviceActionCmd  `cmd:"" help:"Restart the service."`
	Status    serviceStatusCmd  `cmd:"" help:"Print running or stopped (exit 0 running, 3 stopped, 4 not installed)."`
}

type serviceInstallCmd struct {
	runFlags `embed:""`
	User     string `help:"Run the service as this user (default: root, which an agent needs to converge its machine)."`
}

// secretFlags are the run flags whose values are secrets. The unit file is
// readable by every user and so is a process's command line (ps), so
// `service install` refuses them: they belong in the configuration file,
// which only the service reads.
var secretFlags = []struct{ flag, field string }{
	{"encrypt", config.FieldEncrypt},
	{"join-token", config.FieldJoinToken},
}

func (c *serviceInstallCmd) Run(sc *serviceCmd, kctx *kong.Context, out io.Writer, s set, g globals) error {
	file := c.Config
	if file == "" {
		file = config.DefaultPath
	}
	for _, f := range secretFlags {
		if s[f.flag] {
			return usageError{fmt.Errorf("--%s is a secret: the service's command line is readable by every user (the unit file, ps). "+
				"Put %s = \"...\" in the configuration file instead (%s, mode 0600: chmod 0600 %s) and run service install without --%s",
				f.flag, f.field, file, file, f.flag)}
		}
	}
	o := c.overrides(s, g)
	if c.User != "" {
		if _, err := user.Lookup(c.User); err != nil {
			return usageError{fmt.Errorf("--user %s: %w (create it first, e.g. the dtk user the packages create)", c.User, err)}
		}
	}
	// Refuse now what `run` would refuse at every start.
	cfg, err := config.Resolve(c.Config, o)
	if err != nil {
		return err
	}
	warnReadableSecrets(kctx.Stderr, cfg)
	args := []string{"run"}
	if c.Config != "" {
		args = append(args, "--config", c.Config)
	}
	args = append(args, o.Args()...)
	spec := svcinstall.Spec{Args: args, UserName: c.User, System: sc.Init}
	if err := svcinstall.Install(spec); err != nil {
		return err
	}
	where := svcinstall.UnitPath(spec)
	if where == "" {
		where = manager(sc)
	}
	fmt.Fprintf(out, "installed the %s service (%s), enabled at boot, not started:\n  dtk-agent %s\n",
		svcinstall.Name, where, strings.Join(args, " "))
	fmt.Fprintln(out, "start it with: dtk-agent service start   (systemd: systemctl start dtk-agent)")
	return nil
}

// serviceActionCmd is uninstall, start, stop or restart: the action is the
// command's name.
type serviceActionCmd struct{}

func (serviceActionCmd) Run(sc *serviceCmd, kctx *kong.Context, out io.Writer) error {
	action := kctx.Command()
	action = action[strings.LastIndex(action, " ")+1:]
	spec := svcinstall.Spec{System: sc.Init}
	var err error
	if action == "uninstall" {
		err = svcinstall.Uninstall(spec)
	} else {
		err = svcinstall.Control(spec, action)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %s done\n", svcinstall.Name, action)
	return nil
}

type serviceStatusCmd struct{}

func (serviceStatusCmd) Run(sc *serviceCmd, out io.Writer) error {
	st, err := svcinstall.Status(svcinstall.Spec{System: sc.Init})
	switch {
	case errors.Is(err, svcinstall.ErrNotInstalled):
		fmt.Fprintln(out, "not installed")
		return exitError(4)
	case err != nil:
		return err
	}
	fmt.Fprintln(out, st)
	if st != "running" {
		return exitError(3)
	}
	return nil
}

func manager(sc *serviceCmd) string {
	if sc.Init != "" {
		return sc.Init
	}
	return svcinstall.Detected()
}

// warnReadableSecrets warns when the configuration file holds a secret
// (encrypt, join_token) and every user may read it.
func warnReadableSecrets(w io.Writer, cfg *config.Config) {
	if cfg.File == "" {
		return
	}
	var held []string
	if cfg.Encrypt != "" {
		held = append(held, config.FieldEncrypt)
	}
	if cfg.JoinToken != "" {
		held = append(held, config.FieldJoinToken)
	}
	fi, err := os.Stat(cfg.File)
	if len(held) == 0 || err != nil || fi.Mode().Perm()&0o004 == 0 {
		return
	}
	fmt.Fprintf(w, "dtk-agent: warning: %s holds %s and every user can read it (mode %04o): chmod 0600 %s\n",
		cfg.File, strings.Join(held, " and "), fi.Mode().Perm(), cfg.File)
}
