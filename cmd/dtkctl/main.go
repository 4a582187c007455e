// Command dtkctl is dtk's operator CLI. It pushes modules, stages, deploys
// and deletes services and shows their status, all through a coordinator's
// HTTP API (internal/api). It holds no logic of its own: each command is a
// kong struct whose Run calls the client and prints the answer, and this
// file maps every error to an exit code in one place.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/dtkhq/dtk/internal/api"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// defaultAddr is where `dtk-agent dev` serves its API.
const defaultAddr = "127.0.0.1:7070"

// Exit codes: a contract scripts rely on.
const (
	exitOK     = 0 // success
	exitFailed = 1 // the operation ran and failed, or the coordinator could not be reached
	exitUsage  = 2 // bad usage or bad input (including the coordinator's 4xx answers)
	// exitInterrupted is the shell's code for a process ended by SIGINT;
	// dtkctl catches the signal to cancel cleanly and exits with it.
	exitInterrupted = 130
)

// CLI is the command tree.
type CLI struct {
	Addr string `help:"Coordinator address (host:port or URL). Defaults to $$DTK_ADDR, else ${default_addr}." default:"${addr}" placeholder:"HOST:PORT"`

	Module   ModuleCmd   `cmd:"" help:"Push and list modules."`
	Service  ServiceCmd  `cmd:"" help:"Stage, plan, deploy, inspect and delete services."`
	Node     NodeCmd     `cmd:"" help:"List the nodes running dtk-agent."`
	Operator OperatorCmd `cmd:"" help:"Cluster operations: members, raft peers, snapshots."`
	Bundle   BundleCmd   `cmd:"" help:"Move modules between clusters (and across an air gap) as one file."`
	Version  VersionCmd  `cmd:"" help:"Print dtkctl's version."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// kongExit carries an exit code out of kong (help, --version) by panic, so
// that run returns instead of the process exiting.
type kongExit int

// run parses args, runs the chosen command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) (code int) {
	addr := getenv("DTK_ADDR")
	if addr == "" {
		addr = defaultAddr
	}
	defer func() {
		if r := recover(); r != nil {
			if c, ok := r.(kongExit); ok {
				code = int(c)
				return
			}
			fmt.Fprintf(stderr, "error: internal error: %v\n", r)
			code = exitFailed
		}
	}()

	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("dtkctl"),
		kong.Description("Operate a dtk cluster: push modules, stage, deploy and delete services."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(c int) { panic(kongExit(c)) }),
		kong.Vars{"version": version, "addr": addr, "default_addr": defaultAddr},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "error: internal error: %v\n", err)
		return exitFailed
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		fmt.Fprintf(stderr, "run %q for usage\n", helpHint(err))
		return exitUsage
	}

	client := api.NewClient(cli.Addr)
	client.HTTP = api.DefaultHTTPClient()
	out := &Output{Out: stdout, Err: stderr, TTY: isTerminal(stdout) && getenv("TERM") != "dumb"}
	kctx.BindTo(ctx, (*context.Context)(nil))
	err = kctx.Run(client, out)
	return exitCode(ctx, stderr, err)
}

// helpHint names the help command for the command a parse error is about.
func helpHint(err error) string {
	words := []string{"dtkctl"}
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil {
		for _, p := range pe.Context.Path {
			if p.Command != nil {
				words = append(words, p.Command.Name)
			}
		}
	}
	return strings.Join(append(words, "--help"), " ")
}

// usageError is bad input the CLI itself detects.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// failedError is an operation that ran and failed: a deploy or delete that
// failed, a plan with violations. Details were printed already.
type failedError struct{ msg string }

func (e *failedError) Error() string { return e.msg }

func failf(format string, args ...any) error {
	return &failedError{msg: fmt.Sprintf(format, args...)}
}

// exitCode prints err and maps it to an exit code: the one place that does.
func exitCode(ctx context.Context, stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var (
		ue *usageError
		ae *api.APIError
		oe *net.OpError
	)
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "error: %s\n", ue.msg)
		return exitUsage
	case errors.As(err, &ae):
		fmt.Fprintf(stderr, "error: %s\n", strings.TrimRight(ae.Message, "\n"))
		if ae.Code >= 400 && ae.Code < 500 {
			return exitUsage
		}
		return exitFailed
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "interrupted")
		return exitInterrupted
	case errors.As(err, &oe) || errors.Is(err, api.ErrNoCoordinator):
		fmt.Fprintf(stderr, "error: %v\n", err)
		fmt.Fprintln(stderr, "is a coordinator running there? set --addr or $DTK_ADDR")
		return exitFailed
	default:
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailed
	}
}

// VersionCmd is `dtkctl version`.
type VersionCmd struct{}

// Run prints the version.
func (VersionCmd) Run(out *Output) error {
	out.Printf("dtkctl %s\n", version)
	return nil
}
