// Command dtk-agent is dtk's one daemon: an agent on every node, a
// coordinator where asked (`run --coordinator`), or a whole dev cluster in
// one process (`dev`).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/dtkhq/dtk/internal/daemon"
)

var version = "dev"

type cli struct {
	LogLevel string `help:"Log level: debug, info, warn, error." default:"info" enum:"debug,info,warn,error"`

	Run     runCmd     `cmd:"" help:"Run the agent (and a coordinator with --coordinator)."`
	Dev     devCmd     `cmd:"" help:"Run a dev cluster: one coordinator and N agents on loopback, state in a temporary folder."`
	Version versionCmd `cmd:"" help:"Print the version."`
}

type runCmd struct {
	Coordinator     bool              `help:"Also run a coordinator (Raft member, HTTP API)."`
	NoAgent         bool              `help:"With --coordinator: do not act as a node."`
	BootstrapExpect int               `help:"Number of coordinators that form the cluster." default:"1"`
	Join            []string          `help:"Gossip address (host:port) of any member to join; repeatable."`
	Name            string            `help:"Node name (default: hostname)."`
	DataDir         string            `help:"State folder." default:"/var/lib/dtk" type:"path"`
	Label           map[string]string `help:"Node label k=v; repeatable."`
	HTTPAddr        string            `help:"Coordinator API address (default: serf host, port 7070)."`
	SerfAddr        string            `help:"Gossip address." default:"127.0.0.1:7946"`
	RaftAddr        string            `help:"Coordinator Raft address (default: serf host, port 7947)."`
	Config          string            `help:"Configuration file (HCL)." type:"path"`
	PollWait        time.Duration     `help:"Longest plan long-poll." default:"5m"`
	Reconcile       time.Duration     `help:"How often the cached plan is converged again (retrying failures)." default:"10m"`
}

func (r *runCmd) Run(ctx context.Context, log *slog.Logger, out io.Writer) error {
	if r.Config != "" {
		return usageError{errors.New("--config is not supported yet: pass flags")}
	}
	d, err := daemon.Start(ctx, daemon.Config{
		Name: r.Name, DataDir: r.DataDir, Coordinator: r.Coordinator, NoAgent: r.NoAgent,
		BootstrapExpect: r.BootstrapExpect, Join: r.Join, Labels: r.Label, HTTPAddr: r.HTTPAddr,
		SerfAddr: r.SerfAddr, RaftAddr: r.RaftAddr, Version: version, Logger: log,
		PollWait: r.PollWait, ReconcileInterval: r.Reconcile,
	})
	if err != nil {
		return err
	}
	log.Info("dtk-agent running", "version", version, "coordinator", r.Coordinator)
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d.Shutdown(sctx)
	return nil
}

type devCmd struct {
	Agents   int    `help:"Number of agents." default:"2"`
	HTTPAddr string `help:"Coordinator API address." default:"127.0.0.1:7070"`
	DataDir  string `help:"State folder (default: a temporary folder removed on exit)." type:"path"`
}

func (c *devCmd) Run(ctx context.Context, log *slog.Logger, out io.Writer) error {
	dev, err := daemon.StartDev(ctx, daemon.DevConfig{
		Agents: c.Agents, DataDir: c.DataDir, HTTPAddr: c.HTTPAddr, Version: version, Logger: log,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "dtk dev cluster is up (state in %s)\n", dev.DataDir)
	fmt.Fprintf(out, "  coordinator  http://%s\n", dev.HTTPAddr)
	for _, a := range dev.Agents {
		fmt.Fprintf(out, "  %-12s %s  %s\n", a.Name, a.Address, labels(a.Labels))
	}
	fmt.Fprintf(out, "\nReach it with dtkctl (default address), e.g.:\n  export DTK_ADDR=%s\n  dtkctl node list\nPress Ctrl-C to stop.\n", dev.HTTPAddr)
	<-ctx.Done()
	fmt.Fprintln(out, "stopping dev cluster")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dev.Shutdown(sctx)
	return nil
}

func labels(l map[string]string) string {
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

type versionCmd struct{}

func (versionCmd) Run(out io.Writer) error {
	fmt.Fprintf(out, "dtk-agent %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

type usageError struct{ error }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var c cli
	parser, err := kong.New(&c, kong.Name("dtk-agent"),
		kong.Description("dtk's daemon: an agent on every node, a coordinator where asked."),
		kong.Writers(stdout, stderr), kong.UsageOnError(),
		kong.Exit(func(code int) { panic(exitCode(code)) }))
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
		level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[c.LogLevel]
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
		kctx.BindTo(ctx, (*context.Context)(nil))
		kctx.Bind(log)
		kctx.BindTo(stdout, (*io.Writer)(nil))
		if err := kctx.Run(); err != nil {
			fmt.Fprintln(stderr, "dtk-agent:", err)
			var ue usageError
			if errors.As(err, &ue) {
				code = 2
			} else {
				code = 1
			}
		}
	}()
	return code
}

type exitCode int
