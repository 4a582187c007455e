package actions

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Bash runs a script from the module folder, or inline text, with
// `bash -euo pipefail`: an unset variable, a failing command or a failing
// pipeline stage fails the step.
type Bash struct{}

var _ Runner = Bash{}

func init() { Register(Bash{}) }

// Kind is "bash".
func (Bash) Kind() string { return "bash" }

// Run runs the script.
func (Bash) Run(ctx context.Context, req Request) Result {
	attrFile, err := writeAttributes(req)
	if err != nil {
		return Result{State: Failed, ExitCode: -1, Err: fmt.Errorf("attributes file: %w", err)}
	}
	args := []string{"-euo", "pipefail"}
	switch {
	case req.Action.Script != "":
		p := filepath.Join(req.ModuleDir, filepath.FromSlash(req.Action.Script))
		if rel, err := filepath.Rel(req.ModuleDir, p); err != nil || strings.HasPrefix(rel, "..") {
			return Result{State: Failed, ExitCode: -1, Err: fmt.Errorf("script %q is outside the module", req.Action.Script)}
		}
		if _, err := os.Stat(p); err != nil {
			return Result{State: Failed, ExitCode: -1, Err: fmt.Errorf("script %q: %w", req.Action.Script, err)}
		}
		args = append(args, p)
	case req.Action.Inline != "":
		args = append(args, "-c", req.Action.Inline, "dtk-inline")
	default:
		return Result{State: Failed, ExitCode: -1, Err: fmt.Errorf("bash action has neither script nor inline text")}
	}
	return runProcess(ctx, req, Env(req, attrFile), "bash", args...)
}
