// Command dtk-agent is dtk's one daemon: an agent on every node, a
// coordinator where asked (`run --coordinator`), or a whole dev cluster in
// one process (`dev`). It also checks its configuration file (`config
// check`) and registers itself with the service manager (`service
// install`).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/dtkhq/dtk/internal/config"
	"github.com/dtkhq/dtk/internal/logging"
)

var version = "dev"

type cli struct {
	LogLevel  string `help:"Log level: debug, info, warn, error (overrides log_level of the configuration file)." default:"${log_level}" enum:"debug,info,warn,error"`
	LogFormat string `help:"Log format: text or json, one JSON object per line, Raft's and gossip's lines included (overrides log_format of the configuration file)." default:"${log_format}" enum:"text,json"`

	Run     runCmd     `cmd:"" help:"Run the agent (and a coordinator with --coordinator)."`
	Dev     devCmd     `cmd:"" help:"Run a dev cluster: one coordinator and N agents on loopback, state in a temporary folder."`
	Config  configCmd  `cmd:"" help:"Check a configuration file."`
	Service serviceCmd `cmd:"" help:"Register dtk-agent with the service manager (systemd) and control it."`
	Version versionCmd `cmd:"" help:"Print the version."`
	TLS     tlsCmd     `cmd:"" name:"tls" help:"Create the cluster CA and certificates."`
	Keygen  keygenCmd  `cmd:"" help:"Print a new gossip encryption key (also usable as a keyring_file key)."`
}

// usageError is bad input: exit code 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// exitError ends the command with its own code and nothing more printed.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// vars fills the flags' ${...} defaults from config.Default, the one
// place where defaults are written down.
func vars() kong.Vars {
	d := config.Default()
	return kong.Vars{
		"log_level":                d.LogLevel,
		"data_dir":                 d.DataDir,
		"serf_addr":                d.SerfAddr,
		"bootstrap_expect":         fmt.Sprint(d.BootstrapExpect),
		"poll_wait":                d.PollWait.String(),
		"reconcile_interval":       d.ReconcileInterval.String(),
		"config_path":              config.DefaultPath,
		"node_cert_ttl":            d.NodeCertTTL.String(),
		"http_read_header_timeout": d.HTTPReadHeaderTimeout.String(),
		"http_read_timeout":        d.HTTPReadTimeout.String(),
		"http_write_timeout":       d.HTTPWriteTimeout.String(),
		"http_idle_timeout":        d.HTTPIdleTimeout.String(),
		"node_gc_after":            d.NodeGCAfter.String(),
		"log_format":               d.LogFormat,
	}
}

func newParser(c *cli, stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(c, kong.Name("dtk-agent"),
		kong.Description("dtk's daemon: an agent on every node, a coordinator where asked."),
		kong.Writers(stdout, stderr), kong.UsageOnError(), vars(),
		kong.Exit(func(code int) { panic(exitCode(code)) }))
}

func run(args []string, stdout, stderr io.Writer) int {
	var c cli
	parser, err := newParser(&c, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return 2
	}
	code := 0
	func() {
		defer func() {
			if v := recover(); v != nil {
				if ec, ok := v.(exitCode); ok {
					code = int(ec)
					return
				}
				panic(v)
			}
		}()
		kctx, err := parser.Parse(args)
		if err != nil {
			fmt.Fprintln(stderr, "dtk-agent:", err)
			code = 2
			return
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		level := new(slog.LevelVar)
		level.Set(config.ParseLevel(c.LogLevel))
		// The format can change once run has read the configuration file.
		handler := logging.NewHandler(stderr, c.LogFormat, level)
		log := slog.New(handler)
		kctx.BindTo(ctx, (*context.Context)(nil))
		kctx.Bind(log, level, handler, flagsSet(kctx), globals{LogLevel: c.LogLevel, LogFormat: c.LogFormat})
		kctx.BindTo(stdout, (*io.Writer)(nil))
		var later runLater
		kctx.Bind(&later)
		if parsed != nil {
			parsed(parser)
		}
		err = kctx.Run()
		if err == nil && later.fn != nil {
			// The command tree that kong built from the cli struct's tags
			// (~200 KB of heap) has done its work: let it go before the
			// daemon runs for months with it in every agent's heap.
			parser, kctx = nil, nil
			err = later.fn()
		}
		code = exitFor(stderr, err)
	}()
	return code
}

// runLater is the long-running part of a command (run), which its Run
// method leaves here rather than doing itself, so that it runs once the
// parser is gone.
type runLater struct{ fn func() error }

// parsed, when set (tests), is given the parser once the arguments are
// parsed.
var parsed func(*kong.Kong)

// exitFor prints err and maps it to the exit code: 0 success, 1 the
// operation failed, 2 bad usage or bad input.
func exitFor(stderr io.Writer, err error) int {
	var ee exitError
	var ue usageError
	var ce config.Errors
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return int(ee)
	case errors.As(err, &ce):
		fmt.Fprint(stderr, "dtk-agent: invalid configuration:\n"+ce.Verbose())
		return 2
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "dtk-agent:", err)
		return 2
	}
	fmt.Fprintln(stderr, "dtk-agent:", err)
	return 1
}

// globals are the flags of the top-level command.
type globals struct{ LogLevel, LogFormat string }

// set holds the flags given on the command line (by name), as opposed to
// the ones left at their defaults.
type set map[string]bool

func flagsSet(kctx *kong.Context) set {
	s := set{}
	for _, p := range kctx.Path {
		if p.Flag != nil {
			s[p.Flag.Name] = true
		}
	}
	return s
}

type exitCode int

// shutdownTimeout bounds a graceful stop (the unit's TimeoutStopSec is
// longer).
const shutdownTimeout = 30 * time.Second
