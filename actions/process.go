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
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dtkhq/dtk/plan"
)

// TailBytes is how much of a run's output a report carries.
const TailBytes = 4096

// DefaultTimeout bounds a run when neither the action nor the agent says.
const DefaultTimeout = 30 * time.Minute

// Files in a step's scratch folder.
const (
	// AttributesFile holds the attributes as one JSON object.
	AttributesFile = "attributes.json"
	// OutputsFile is where an asset writes its outputs ($DTK_OUTPUTS).
	OutputsFile = "outputs"
	// LogFile holds the whole (redacted) output of the last run;
	// DryRunLogFile that of the last dry run.
	LogFile       = "output.log"
	DryRunLogFile = "dry-run.log"
)

// Errors a Result may carry in Err, checked with errors.Is.
var (
	// ErrTimeout: the run took longer than its timeout; its whole process
	// group was killed.
	ErrTimeout = errors.New("timed out")
	// ErrCancelled: the run's context was cancelled; its whole process
	// group was killed.
	ErrCancelled = errors.New("cancelled")
)

// validEnvName reports whether k can be an environment variable's name:
// letters, digits and '_', not starting with a digit (the rule
// `^[A-Za-z_][A-Za-z0-9_]*$`). Checked by hand: every step with
// attributes checks their names, and a compiled expression would stay in
// the agent's heap for good (internal/lazyre).
func validEnvName(k string) bool { return validIdent(k, "_") }

// validIdent reports whether k is a letter or '_' followed by letters,
// digits, '_' and the bytes of more.
func validIdent(k, more string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || strings.IndexByte(more, c) >= 0):
		default:
			return false
		}
	}
	return true
}

// Env builds the environment of an asset: the agent's own, every
// attribute under its own name (strings as is, other values as JSON), and
// DTK_* variables naming the module folder, data folder, service, node,
// step, scratch folder, the attributes file and the outputs file. A null
// attribute (an optional one left unset) is left out: its variable is
// unset, also when the agent's own environment has one of that name.
func Env(req Request, attrFile string) []string {
	env := os.Environ()
	unset := map[string]bool{}
	for k, raw := range req.Attributes {
		if isNull(raw) {
			unset[k] = true
		}
	}
	if len(unset) > 0 {
		env = slices.DeleteFunc(env, func(kv string) bool {
			k, _, _ := strings.Cut(kv, "=")
			return unset[k]
		})
	}
	for k, raw := range req.Attributes {
		if !validEnvName(k) || unset[k] {
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
		"DTK_OUTPUTS="+outputsPath(req),
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

// isNull says whether a JSON value is null (an optional attribute left
// unset, or a parameter that maps to nothing): runners leave it out, so that
// the asset's own default applies.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// passedParams are what a Puppet class gets as parameters and Ansible as
// variables: the action's params resolved against the attributes when it
// has a params mapping, else every attribute. Null values are still in it
// (the runners leave them out).
func passedParams(req Request) (map[string]json.RawMessage, error) {
	if req.Action.Params == nil {
		return req.Attributes, nil
	}
	return plan.ResolveParams(&req.Action, req.Attributes)
}

// writeAttributes writes the attributes JSON file into the scratch folder.
func writeAttributes(req Request) (string, error) {
	if err := privateDir(req.ScratchDir); err != nil {
		return "", err
	}
	p := filepath.Join(req.ScratchDir, AttributesFile)
	attrs := req.Attributes
	if attrs == nil {
		attrs = map[string]json.RawMessage{}
	}
	b, err := json.MarshalIndent(attrs, "", "  ")
	if err != nil {
		return "", err
	}
	return p, writePrivate(p, b)
}

// privateDir makes a folder that only the agent's user may enter (0700),
// also when it exists already with a wider mode.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// writePrivate writes a file only the agent's user may read (0600), also
// over an existing one with a wider mode (os.WriteFile keeps its mode).
func writePrivate(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

func outputsPath(req Request) string { return filepath.Join(req.ScratchDir, OutputsFile) }

// timeoutOf is the action's timeout, else the request's default, else
// DefaultTimeout.
func timeoutOf(req Request) time.Duration {
	switch {
	case req.Action.TimeoutSeconds > 0:
		return time.Duration(req.Action.TimeoutSeconds) * time.Second
	case req.DefaultTimeout > 0:
		return req.DefaultTimeout
	}
	return DefaultTimeout
}

// session is one Run: a deadline shared by every process the runner
// starts, and their combined output, redacted, kept whole in the scratch
// folder and as a tail for the report.
type session struct {
	req     Request
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration
	start   time.Time
	log     *os.File
	tail    *tailBuffer
	out     *redactor
	secrets []string
	// ident is the account the run's processes take on; nil: the agent's.
	ident *identity
	// tailLines, when set, filters what reaches tail (see keepOutOfTail);
	// leftOut counts the lines it left out.
	tailLines *lineWriter
	leftOut   int
}

// newSession starts a run: it looks up the account the run takes on,
// creates (or takes back) the scratch folder and the log and starts the
// timeout clock.
func newSession(ctx context.Context, req Request) (*session, error) {
	s := &session{req: req, timeout: timeoutOf(req), start: time.Now(), tail: &tailBuffer{max: TailBytes}}
	if req.ScratchDir == "" {
		return nil, errors.New("no scratch folder")
	}
	ident, err := resolveIdentity(req)
	if err != nil {
		return nil, err
	}
	s.ident = ident
	if err := privateDir(req.ScratchDir); err != nil {
		return nil, fmt.Errorf("scratch folder: %w", err)
	}
	if err := reclaim(req.ScratchDir); err != nil {
		return nil, fmt.Errorf("scratch folder: %w", err)
	}
	name := LogFile
	if req.DryRun {
		name = DryRunLogFile
	}
	rotateLogs(filepath.Join(req.ScratchDir, name), keptLogs)
	logf, err := os.OpenFile(filepath.Join(req.ScratchDir, name), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err == nil {
		err = logf.Chmod(0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("output log: %w", err)
	}
	s.log = logf
	s.secrets = sensitiveValues(req)
	s.out = newRedactor(io.MultiWriter(logf, s.tail), s.secrets)
	s.ctx, s.cancel = context.WithTimeout(ctx, s.timeout)
	return s, nil
}

// keptLogs is how many past runs' logs a step keeps beside the current one
// (output.log.1 is the previous run).
const keptLogs = 3

// rotateLogs shifts path to path.1, path.1 to path.2, ..., dropping the
// oldest.
func rotateLogs(path string, keep int) {
	for i := keep; i >= 1; i-- {
		from := path
		if i > 1 {
			from = fmt.Sprintf("%s.%d", path, i-1)
		}
		to := fmt.Sprintf("%s.%d", path, i)
		if os.Rename(from, to) == nil {
			_ = os.Chmod(to, 0o600) // an older agent's log may be wider
		}
	}
}

// fail is the result of a run that could not start a session.
func fail(format string, args ...any) Result {
	return Result{State: Failed, ExitCode: -1, Err: fmt.Errorf(format, args...)}
}

// notef writes a line of the runner's own into the output, prefixed with
// "dtk: ".
func (s *session) notef(format string, args ...any) {
	fmt.Fprintf(s.out, "dtk: "+format+"\n", args...)
}

// finish completes res: the duration, the output tail and a redacted Err.
// It releases the session.
func (s *session) finish(res Result) Result {
	s.cancel()
	_ = s.out.Flush()
	_ = s.log.Close()
	if s.tailLines != nil {
		s.tailLines.flush()
		if s.leftOut > 0 {
			if t := s.tail.String(); t != "" && !strings.HasSuffix(t, "\n") {
				_, _ = s.tail.Write([]byte("\n"))
			}
			fmt.Fprintf(s.tail, "dtk: %d lines of known noise (facter, deprecation warnings) left out of this tail; %s has them\n",
				s.leftOut, filepath.Base(s.log.Name()))
		}
	}
	if s.req.DryRun {
		res.Outputs = nil // nothing ran to set them
	}
	res.Duration = time.Since(s.start)
	res.Output = s.tail.String()
	if s.req.DryRun && res.State == Changed && !res.CannotPredict {
		res.Changes = dryRunChanges(s.req.Action.Kind, s.log.Name())
	}
	if res.Err != nil {
		if msg := redact(res.Err.Error(), s.secrets); msg != res.Err.Error() {
			res.Err = errors.New(msg)
		}
		if res.State == "" {
			res.State = Failed
		}
	}
	if res.State == Failed && res.ExitCode == 0 {
		res.ExitCode = -1
	}
	return res
}

// failed finishes the session as a failure with err.
func (s *session) failed(err error) Result {
	return s.finish(Result{State: Failed, ExitCode: -1, Err: err})
}

// command is one process to run.
type command struct {
	name string
	args []string
	// env is the whole environment; nil means the agent's own.
	env []string
	// dir is the working folder; empty means the module folder.
	dir string
	// stdout, when set, receives stdout instead of the output log.
	stdout io.Writer
	// stderr, when set, receives stderr instead of the output log.
	stderr io.Writer
	// tee, when set, also receives the (unredacted) output.
	tee io.Writer
}

// run runs c in its own process group, its output going to the session's
// output. It returns the exit code; err is set only when c did not run to
// an exit of its own: it could not start, timed out or was cancelled (in
// the last two cases its whole process group has been killed).
func (s *session) run(c command) (code int, err error) {
	if err := s.ctx.Err(); err != nil {
		return -1, s.ctxErr()
	}
	cmd := exec.CommandContext(s.ctx, c.name, c.args...)
	cmd.Env = c.env
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Dir = c.dir
	if cmd.Dir == "" {
		cmd.Dir = s.req.ModuleDir
	}
	var out io.Writer = s.out
	if c.tee != nil {
		out = io.MultiWriter(s.out, c.tee)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if c.stdout != nil {
		cmd.Stdout = c.stdout
	}
	if c.stderr != nil {
		cmd.Stderr = c.stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.ident != nil && cmd.Err == nil {
		cmd.SysProcAttr.Credential = s.ident.credential()
		cmd.Env = s.ident.env(cmd.Env)
		cmd.Args = append([]string{"sh", "-c", umaskShell, "sh", cmd.Path}, cmd.Args[1:]...)
		cmd.Path = "/bin/sh"
		if s.ident.foreign() {
			if err := grantAccess(s.req, s.ident); err != nil {
				return -1, err
			}
			if err := handOver(s.req.ScratchDir, s.ident.uid, s.ident.gid); err != nil {
				return -1, fmt.Errorf("hand the scratch folder to %s: %w", s.ident, err)
			}
			// Take it back before the runner reads what the run wrote.
			defer func() {
				if rerr := reclaim(s.req.ScratchDir); rerr != nil && err == nil {
					code, err = -1, fmt.Errorf("take the scratch folder back from %s: %w", s.ident, rerr)
				}
			}()
		}
	}
	cmd.Cancel = func() error {
		// Kill the whole group: scripts start children.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A child left running in the background may hold the output pipe
	// open: stop waiting for it this long after the process exits.
	cmd.WaitDelay = 5 * time.Second
	if err = cmd.Start(); err == nil {
		if rec := s.req.Processes; rec != nil {
			pid := cmd.Process.Pid
			if rerr := rec.Started(pid); rerr != nil {
				s.notef("could not record process group %d (a restarted agent will not find it): %v", pid, rerr)
			}
			defer rec.Ended(pid)
		}
		err = cmd.Wait()
	}
	switch {
	case err == nil:
		return 0, nil
	case s.ctx.Err() != nil:
		return -1, s.ctxErr()
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), nil
	case errors.Is(err, exec.ErrWaitDelay):
		s.notef("a background process of %s kept its output open; not waiting for it", c.name)
		return cmd.ProcessState.ExitCode(), nil
	}
	return -1, fmt.Errorf("run %s: %w", c.name, err)
}

// output runs c and returns its stdout, which does not go to the log.
func (s *session) output(c command) ([]byte, int, error) {
	var buf bytes.Buffer
	c.stdout = &buf
	code, err := s.run(c)
	return buf.Bytes(), code, err
}

func (s *session) ctxErr() error {
	if errors.Is(s.ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w after %s: killed its process group", ErrTimeout, s.timeout)
	}
	return fmt.Errorf("%w: killed its process group", ErrCancelled)
}

// resetOutputs empties the outputs file so that an asset can append to it
// and stale outputs of an earlier run do not linger.
func (s *session) resetOutputs() error {
	if err := writePrivate(outputsPath(s.req), nil); err != nil {
		return fmt.Errorf("outputs file: %w", err)
	}
	return nil
}

// readOutputs parses the outputs file (absent is empty). changed is the
// asset's reserved _changed key, nil when it did not set it.
func (s *session) readOutputs() (outputs map[string]string, changed *bool, err error) {
	b, err := os.ReadFile(outputsPath(s.req))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("outputs file: %w", err)
	}
	outputs, changed, err = parseOutputs(b)
	if err != nil {
		return nil, nil, fmt.Errorf("outputs file %s: %w", outputsPath(s.req), err)
	}
	return outputs, changed, nil
}

// runAsset runs a bash or exec asset: attributes in, outputs back, exit 0
// is Changed unless the asset wrote _changed=false.
func (s *session) runAsset(c command) Result {
	attrFile, err := writeAttributes(s.req)
	if err != nil {
		return s.failed(fmt.Errorf("attributes file: %w", err))
	}
	if err := s.resetOutputs(); err != nil {
		return s.failed(err)
	}
	c.env = Env(s.req, attrFile)
	code, err := s.run(c)
	if err != nil {
		return s.finish(Result{State: Failed, ExitCode: -1, Err: err})
	}
	if code != 0 {
		return s.finish(Result{State: Failed, ExitCode: code})
	}
	outputs, changed, err := s.readOutputs()
	if err != nil {
		return s.failed(err)
	}
	state := Changed
	if changed != nil && !*changed {
		state = OK
	}
	return s.finish(Result{State: state, Outputs: outputs})
}

// moduleFile resolves rel, a slash-separated path inside the module
// folder, and checks that it exists.
func moduleFile(req Request, what, rel string) (string, error) {
	clean := filepath.Clean(filepath.FromSlash(rel))
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%s %q is outside the module", what, rel)
	}
	p := filepath.Join(req.ModuleDir, clean)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s %q: %w", what, rel, err)
	}
	return p, nil
}

// lineWriter calls fn with each line written to it, with its "\n"; flush
// hands on a last line that has none.
type lineWriter struct {
	buf []byte
	fn  func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.buf[:i+1])
		w.buf = w.buf[i+1:]
		w.fn(line)
	}
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		line := string(w.buf)
		w.buf = nil
		w.fn(line)
	}
}

// keepOutOfTail leaves the lines noise says are noise (and the indented
// lines that continue them) out of the report's tail, so that a runner's
// known chatter does not push the real error out of it; the output log
// keeps every line. Call it before anything runs.
func (s *session) keepOutOfTail(noise func(line string) bool) {
	inNoise := false
	s.tailLines = &lineWriter{fn: func(line string) {
		cont := inNoise && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t"))
		if inNoise = cont || noise(line); inNoise {
			s.leftOut++
			return
		}
		_, _ = s.tail.Write([]byte(line))
	}}
	s.out = newRedactor(io.MultiWriter(s.log, s.tailLines), s.secrets)
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
