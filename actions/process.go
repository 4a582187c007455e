package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// TailBytes is how much of a run's output a report carries.
const TailBytes = 4096

// DefaultTimeout bounds a run when neither the action nor the agent says.
const DefaultTimeout = 30 * time.Minute

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Env builds the environment of an asset: the agent's own, every
// attribute under its own name (strings as is, other values as JSON), and
// DTK_* variables naming the module folder, service, node, step, scratch
// folder and the attributes file.
func Env(req Request, attrFile string) []string {
	env := os.Environ()
	for k, raw := range req.Attributes {
		if !envName.MatchString(k) {
			continue
		}
		env = append(env, k+"="+EnvValue(raw))
	}
	return append(env,
		"DTK_MODULE_DIR="+req.ModuleDir,
		"DTK_DATA_DIR="+req.DataDir,
		"DTK_SERVICE="+req.Service,
		"DTK_NODE="+req.Node,
		"DTK_STEP="+req.StepID,
		"DTK_SCRATCH="+req.ScratchDir,
		"DTK_ATTRIBUTES="+attrFile,
	)
}

// EnvValue renders a JSON attribute for the environment: a string
// unquoted, null as empty, anything else as its JSON text.
func EnvValue(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if string(raw) == "null" {
		return ""
	}
	return string(raw)
}

// writeAttributes writes the attributes JSON file into the scratch folder.
func writeAttributes(req Request) (string, error) {
	if err := os.MkdirAll(req.ScratchDir, 0o700); err != nil {
		return "", err
	}
	p := filepath.Join(req.ScratchDir, "attributes.json")
	b, err := json.MarshalIndent(req.Attributes, "", "  ")
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p, b, 0o600)
}

// runProcess runs cmd in its own process group with a timeout, keeping the
// whole output in ScratchDir/output.log and its tail in the result. On
// timeout or cancellation the whole group is killed.
func runProcess(ctx context.Context, req Request, env []string, name string, args ...string) Result {
	timeout := req.DefaultTimeout
	if req.Action.TimeoutSeconds > 0 {
		timeout = time.Duration(req.Action.TimeoutSeconds) * time.Second
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	logf, err := os.Create(filepath.Join(req.ScratchDir, "output.log"))
	if err != nil {
		return Result{State: Failed, ExitCode: -1, Err: fmt.Errorf("output log: %w", err)}
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	tail := &tailBuffer{max: TailBytes}
	out := io.MultiWriter(logf, tail)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = req.ModuleDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// Kill the whole group: scripts start children.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	res := Result{Duration: time.Since(start), Output: tail.String()}
	switch {
	case err == nil:
		res.State = Changed
	case ctx.Err() == context.DeadlineExceeded:
		res.State, res.ExitCode, res.Err = Failed, -1, fmt.Errorf("timed out after %s", timeout)
	case ctx.Err() != nil:
		res.State, res.ExitCode, res.Err = Failed, -1, errors.New("cancelled")
	default:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			res.State, res.ExitCode = Failed, ee.ExitCode()
		} else {
			res.State, res.ExitCode, res.Err = Failed, -1, err
		}
	}
	return res
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return n, nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
