package actions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Exec runs a program with static arguments: a file shipped in the module
// (a path with a slash, relative to the module folder: "bin/tool",
// "./tool.py"), an absolute path, or a name looked up on PATH ("python3").
// Attributes reach it as for bash (environment and $DTK_ATTRIBUTES); it
// runs in the module folder, so arguments may name module files. Exit 0
// is Changed unless the program writes _changed=false to $DTK_OUTPUTS. A
// dry run does not run it: it reports Changed with CannotPredict.
type Exec struct{}

var _ Runner = (*Exec)(nil)

func init() { Register(Exec{}) }

// Kind is "exec".
func (Exec) Kind() string { return "exec" }

// Run runs the program.
func (Exec) Run(ctx context.Context, req Request) Result {
	s, err := newSession(ctx, req)
	if err != nil {
		return fail("exec: %w", err)
	}
	prog, err := resolveProgram(req)
	if err != nil {
		return s.failed(err)
	}
	if req.DryRun {
		fmt.Fprintf(s.out, "would run: %s\n", strings.Join(append([]string{req.Action.Program}, req.Action.Args...), " "))
		return s.finish(Result{State: Changed, CannotPredict: true})
	}
	return s.runAsset(command{name: prog, args: req.Action.Args})
}

// resolveProgram finds the program an exec action names.
func resolveProgram(req Request) (string, error) {
	p := req.Action.Program
	switch {
	case p == "":
		return "", errors.New("exec action has no program")
	case filepath.IsAbs(p):
		return p, nil
	case !strings.Contains(p, "/"):
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("program %q: %w", p, err)
		}
		return path, nil
	}
	path, err := moduleFile(req, "program", p)
	if err != nil {
		return "", err
	}
	if info, err := os.Stat(path); err == nil && info.Mode()&0o111 == 0 {
		return "", fmt.Errorf("program %q is not executable: make it so (chmod +x) or run it through its interpreter (program = \"python3\", args = [%q])", p, p)
	}
	return path, nil
}
