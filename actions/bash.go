package actions

import (
	"context"
	"errors"
	"fmt"
)

// Bash runs a script from the module folder, or inline text, with
// `bash -euo pipefail`: an unset variable, a failing command or a failing
// pipeline stage fails the step. Exit 0 is Changed unless the script
// writes _changed=false to $DTK_OUTPUTS. A dry run does not run the
// script: it reports Changed with CannotPredict.
type Bash struct{}

var _ Runner = (*Bash)(nil)

func init() { Register(Bash{}) }

// Kind is "bash".
func (Bash) Kind() string { return "bash" }

// Run runs the script.
func (Bash) Run(ctx context.Context, req Request) Result {
	s, err := newSession(ctx, req)
	if err != nil {
		return fail("bash: %w", err)
	}
	args := []string{"-euo", "pipefail"}
	shown := "inline script"
	switch {
	case req.Action.Script != "":
		p, err := moduleFile(req, "script", req.Action.Script)
		if err != nil {
			return s.failed(err)
		}
		args = append(args, p)
		shown = req.Action.Script
	case req.Action.Inline != "":
		args = append(args, "-c", req.Action.Inline, "dtk-inline")
	default:
		return s.failed(errors.New("bash action has neither script nor inline text"))
	}
	if req.DryRun {
		fmt.Fprintf(s.out, "would run: bash -euo pipefail %s\n", shown)
		return s.finish(Result{State: Changed, CannotPredict: true})
	}
	return s.runAsset(command{name: "bash", args: args})
}
