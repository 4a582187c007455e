// Command dtkctl is dtk's operator CLI. It pushes modules, stages, deploys
// and deletes services and shows their status, all through a coordinator's
// HTTP API (internal/api). It holds no logic of its own: each command is a
// kong struct whose Run calls the client and prints the answer, and this
// file maps every error to an exit code in one place.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"github.com/dtkhq/dtk/internal/term"
	"github.com/dtkhq/dtk/internal/tlsutil"
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
	Addr       string `help:"Coordinator address (host:port or URL). Defaults to $$DTK_ADDR, else ${default_addr}." default:"${addr}" placeholder:"HOST:PORT"`
	CAFile     string `help:"Cluster CA certificate (PEM) to verify coordinators with; turns on https. Defaults to $$DTK_CACERT." default:"${ca_file}" type:"path"`
	ClientCert string `help:"Operator certificate (PEM; dtk-agent tls cert create --client). Defaults to $$DTK_CLIENT_CERT." default:"${client_cert}" type:"path"`
	ClientKey  string `help:"The operator certificate's key. Defaults to $$DTK_CLIENT_KEY." default:"${client_key}" type:"path"`
	Token      string `help:"ACL token (when the cluster has ACLs on). Defaults to $$DTK_TOKEN (never shown here)." placeholder:"SECRET"`
	NoColor    bool   `name:"no-color" help:"Do not colour states (colour is on only on a terminal, and off when $$NO_COLOR is set)."`

	Module     ModuleCmd     `cmd:"" help:"Push and list modules."`
	Service    ServiceCmd    `cmd:"" help:"Stage, plan, deploy, inspect and delete services."`
	Node       NodeCmd       `cmd:"" help:"List the nodes running dtk-agent."`
	Operator   OperatorCmd   `cmd:"" help:"Cluster operations: members, raft peers, snapshots."`
	Bundle     BundleCmd     `cmd:"" help:"Move modules between clusters (and across an air gap) as one file."`
	Key        KeyCmd        `cmd:"" help:"Signing keys for modules and bundles, made and used offline."`
	ACL        ACLCmd        `cmd:"" name:"acl" help:"Access control: bootstrap, policies and tokens."`
	Audit      AuditCmd      `cmd:"" help:"The audit trail of accepted writes."`
	Events     EventsCmd     `cmd:"" help:"The cluster's events: deploys, failed steps, drift repairs, nodes, leader changes."`
	Version    VersionCmd    `cmd:"" help:"Print dtkctl's version and the coordinators'."`
	Completion CompletionCmd `cmd:"" help:"Print a shell completion script (bash, zsh or fish)."`
	Man        ManCmd        `cmd:"" name:"__man" hidden:"" help:"Write the man pages to DIR (make man)."`
}

// Help is the detail of `dtkctl --help`.
func (CLI) Help() string {
	return `Output: tables and messages for people, --json for scripts; live progress and colour only on a terminal (colour off with --no-color or $NO_COLOR). Shell completion: dtkctl completion bash|zsh|fish.

Examples:
  dtkctl module validate ./web && dtkctl module push ./web
  dtkctl service stage web --template web/site --set greeting=Bonjour
  dtkctl service plan web
  dtkctl service deploy web --wait
  dtkctl service status web --json
  DTK_ADDR=https://coord-1:7070 DTK_CACERT=ca.pem dtkctl node list`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// isTerminal says whether stdout is a terminal (a variable for tests).
var isTerminal = term.IsTerminal

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
		kong.Vars{"version": version, "addr": addr, "default_addr": defaultAddr,
			"ca_file": getenv("DTK_CACERT"), "client_cert": getenv("DTK_CLIENT_CERT"), "client_key": getenv("DTK_CLIENT_KEY")},
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

	if cli.Token == "" {
		cli.Token = getenv("DTK_TOKEN")
	}
	// The client is built when a command first needs it, so that the
	// commands that need no coordinator (module validate, completion)
	// never look at the address or the TLS flags.
	var (
		client    *api.Client
		clientErr error
	)
	clients := clientFunc(func() (*api.Client, error) {
		if client == nil && clientErr == nil {
			if client, clientErr = newClient(&cli); client != nil {
				client.Token = strings.TrimSpace(cli.Token)
			}
		}
		return client, clientErr
	})
	tty := isTerminal(stdout) && getenv("TERM") != "dumb"
	out := &Output{Out: stdout, Err: stderr, TTY: tty, Color: term.ColorWanted(tty, cli.NoColor, getenv),
		Size: func() (int, int) { return term.Size(stdout) }}
	kctx.BindTo(ctx, (*context.Context)(nil))
	kctx.Bind(clients)
	if err := kctx.BindToProvider(func() (*api.Client, error) { return clients() }); err != nil {
		fmt.Fprintf(stderr, "error: internal error: %v\n", err)
		return exitFailed
	}
	err = kctx.Run(out)
	return exitCode(ctx, stderr, err)
}

// clientFunc gives the API client, built on first use from the global
// flags; a command that can do without a coordinator takes it instead of
// *api.Client and handles the error itself.
type clientFunc func() (*api.Client, error)

// newClient builds the API client: https with the cluster CA and the
// operator's certificate when they are given (or the address says https).
func newClient(cli *CLI) (*api.Client, error) {
	client := api.NewClient(cli.Addr)
	client.HTTP = api.DefaultHTTPClient()
	secure := strings.HasPrefix(cli.Addr, "https://")
	if cli.CAFile == "" {
		if secure {
			return nil, usagef("%s is https: give the cluster CA with --ca-file or $DTK_CACERT", cli.Addr)
		}
		if cli.ClientCert != "" || cli.ClientKey != "" {
			return nil, usagef("a client certificate needs the cluster CA too: give --ca-file or $DTK_CACERT")
		}
		return client, nil
	}
	if strings.HasPrefix(cli.Addr, "http://") {
		return nil, usagef("%s is plain http but a CA is given: use https://", cli.Addr)
	}
	if (cli.ClientCert == "") != (cli.ClientKey == "") {
		return nil, usagef("--client-cert and --client-key go together ($DTK_CLIENT_CERT and $DTK_CLIENT_KEY)")
	}
	var certPEM, keyPEM []byte
	caPEM, err := os.ReadFile(cli.CAFile)
	if err == nil && cli.ClientCert != "" {
		if certPEM, err = os.ReadFile(cli.ClientCert); err == nil {
			keyPEM, err = os.ReadFile(cli.ClientKey)
		}
	}
	if err != nil {
		return nil, usagef("%v", err)
	}
	store, err := tlsutil.NewStoreFromPEM(caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, usagef("TLS files: %v", err)
	}
	client.Secure = true
	client.HTTP = api.TLSHTTPClient(store.ClientConfig())
	return client, nil
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
	case isTLSError(err):
		fmt.Fprintf(stderr, "error: %v\n", err)
		fmt.Fprintln(stderr, "the TLS handshake failed: check --ca-file/$DTK_CACERT is this cluster's CA and the client certificate is valid")
		return exitFailed
	case errors.As(err, &oe) || errors.Is(err, api.ErrNoCoordinator):
		fmt.Fprintf(stderr, "error: %v\n", err)
		fmt.Fprintln(stderr, "is a coordinator running there? set --addr or $DTK_ADDR")
		return exitFailed
	default:
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailed
	}
}

// isTLSError reports a failed TLS handshake (unknown authority, a
// certificate the coordinator refused).
func isTLSError(err error) bool {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var ae *tls.AlertError
	var re tls.RecordHeaderError
	return errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &ae) || errors.As(err, &re) ||
		errors.Is(err, tlsutil.ErrUnknownAuthority) || errors.Is(err, tlsutil.ErrExpired) || errors.Is(err, tlsutil.ErrWrongRole) ||
		errors.Is(err, tlsutil.ErrWrongUsage) || errors.Is(err, tlsutil.ErrNoIdentity) || strings.Contains(err.Error(), "tls: ")
}
