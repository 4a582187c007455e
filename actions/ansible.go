package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dtkhq/dtk/internal/lazyre"
)

// Ansible runs a playbook shipped in the module, or a role from the
// module's roles/ folder, against the local machine:
// `ansible-playbook -c local -i localhost, --extra-vars @FILE`, with
// --check on a dry run. Attributes are extra vars, beside dtk_outputs,
// dtk_module_dir, dtk_data_dir, dtk_service, dtk_node, dtk_step and
// dtk_scratch. Any changed task makes the step Changed; a non-zero exit
// is Failed.
//
// The counts come from a small callback plugin (dtk_stats, written into
// the scratch folder) that records the play stats as JSON, so that the
// human-readable default output stays in Output; the PLAY RECAP is read if
// the plugin wrote nothing. Ansible's own state (ANSIBLE_HOME, temporary
// files) is in the scratch folder; roles/ and collections/ of the module
// come first on their search paths. Outputs are the data of set_stats tasks
// (which change nothing) merged over the file $dtk_outputs.
type Ansible struct{}

var _ Runner = (*Ansible)(nil)

func init() { Register(Ansible{}) }

// Kind is "ansible".
func (Ansible) Kind() string { return "ansible" }

// AnsibleRoleRE is the form of a role name an action may run.
var AnsibleRoleRE = lazyre.New(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// ansibleStatsPlugin is the callback that writes the stats file.
const ansibleStatsPlugin = `# Written by dtk: records the play stats as JSON for the dtk agent.
from __future__ import annotations
import json, os
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
    name: dtk_stats
    type: aggregate
    short_description: write play stats as JSON to $DTK_ANSIBLE_STATS
    description: per-host counts and set_stats data, for the dtk agent
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'dtk_stats'
    # Loaded because it is on the callback plugin path: no need to
    # enable it (and so override callbacks_enabled of an ansible.cfg).
    CALLBACK_NEEDS_ENABLED = False

    def v2_playbook_on_stats(self, stats):
        out = {'hosts': {h: stats.summarize(h) for h in stats.processed},
               'custom': stats.custom}
        with open(os.environ['DTK_ANSIBLE_STATS'], 'w') as f:
            json.dump(out, f, default=str)
`

// ansibleStats is what the plugin writes.
type ansibleStats struct {
	Hosts map[string]struct {
		OK          int `json:"ok"`
		Changed     int `json:"changed"`
		Failures    int `json:"failures"`
		Unreachable int `json:"unreachable"`
	} `json:"hosts"`
	Custom map[string]map[string]json.RawMessage `json:"custom"`
}

// Run runs the playbook or role.
func (Ansible) Run(ctx context.Context, req Request) Result {
	s, err := newSession(ctx, req)
	if err != nil {
		return fail("ansible: %w", err)
	}
	act := req.Action
	state := filepath.Join(req.ScratchDir, "ansible")
	for _, d := range []string{"plugins", "tmp", "home"} {
		if err := os.MkdirAll(filepath.Join(state, d), 0o700); err != nil {
			return s.failed(fmt.Errorf("ansible state folder: %w", err))
		}
	}
	if err := os.WriteFile(filepath.Join(state, "plugins", "dtk_stats.py"), []byte(ansibleStatsPlugin), 0o600); err != nil {
		return s.failed(fmt.Errorf("ansible callback: %w", err))
	}
	attrFile, err := writeAttributes(req)
	if err != nil {
		return s.failed(fmt.Errorf("attributes file: %w", err))
	}
	varsFile := filepath.Join(state, "extra-vars.json")
	if err := writeAnsibleVars(req, varsFile); err != nil {
		return s.failed(err)
	}

	var playbook string
	rolesDir := filepath.Join(req.ModuleDir, "roles")
	switch {
	case act.Playbook != "" && act.Role != "":
		return s.failed(errors.New("ansible action sets both playbook and role"))
	case act.Playbook != "":
		if playbook, err = moduleFile(req, "playbook", act.Playbook); err != nil {
			return s.failed(err)
		}
	case act.Role != "":
		if !AnsibleRoleRE.MatchString(act.Role) {
			return s.failed(fmt.Errorf("invalid ansible role name %q", act.Role))
		}
		if _, err := moduleFile(req, "role", "roles/"+act.Role); err != nil {
			return s.failed(err)
		}
		playbook = filepath.Join(state, "dtk_role.yml")
		// Facts as usual, except those of facter and ohai: running
		// facter (installed with puppet) triples the time of a run. The
		// role name is quoted as JSON, which is YAML.
		play := fmt.Sprintf("# Written by dtk: applies role %s to this machine.\n"+
			"- hosts: all\n  gather_subset: [all, '!facter', '!ohai']\n  roles:\n    - role: %q\n", act.Role, act.Role)
		if err := os.WriteFile(playbook, []byte(play), 0o600); err != nil {
			return s.failed(fmt.Errorf("role playbook: %w", err))
		}
	default:
		return s.failed(errors.New("ansible action has neither playbook nor role"))
	}

	statsFile := filepath.Join(state, "stats.json")
	_ = os.Remove(statsFile)
	env := append(Env(req, attrFile),
		"ANSIBLE_HOME="+filepath.Join(state, "home"),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(state, "tmp"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(state, "tmp"),
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_PYTHON_INTERPRETER=auto_silent",
		"ANSIBLE_CALLBACK_PLUGINS="+filepath.Join(state, "plugins")+":"+envOr("ANSIBLE_CALLBACK_PLUGINS", "/usr/share/ansible/plugins/callback"),
		"DTK_ANSIBLE_STATS="+statsFile,
	)
	// Roles and collections shipped in the module, then the system's
	// (ANSIBLE_HOME, where per-user ones would be, is the scratch folder).
	if isDir(rolesDir) {
		env = append(env, "ANSIBLE_ROLES_PATH="+rolesDir+":"+envOr("ANSIBLE_ROLES_PATH", "/usr/share/ansible/roles:/etc/ansible/roles"))
	}
	if dir := filepath.Join(req.ModuleDir, "collections"); isDir(dir) {
		env = append(env, "ANSIBLE_COLLECTIONS_PATH="+dir+":"+envOr("ANSIBLE_COLLECTIONS_PATH", "/usr/share/ansible/collections"))
	}
	args := []string{"-c", "local", "-i", "localhost,", "--extra-vars", "@" + varsFile}
	if req.DryRun {
		args = append(args, "--check", "--diff") // --diff: what would change
	}
	args = append(args, playbook)
	// The recap is read from the output if the plugin wrote nothing.
	var recap recapScanner
	code, err := s.run(command{name: "ansible-playbook", args: args, env: env, tee: &recap})
	if err != nil {
		return s.failed(err)
	}
	res := Result{ExitCode: code}
	if code != 0 {
		res.State = Failed
		return s.finish(res)
	}
	changed, custom, err := readAnsibleStats(statsFile)
	if errors.Is(err, os.ErrNotExist) {
		changed, err = recap.changed()
	}
	if err != nil {
		return s.failed(fmt.Errorf("ansible stats: %w", err))
	}
	res.State = OK
	if changed > 0 {
		res.State = Changed
	}
	if req.DryRun {
		return s.finish(res)
	}
	if res.Outputs, _, err = s.readOutputs(); err != nil {
		return s.failed(err)
	}
	for k, raw := range custom {
		if res.Outputs == nil {
			res.Outputs = map[string]string{}
		}
		res.Outputs[k] = EnvValue(raw)
	}
	return s.finish(res)
}

// envOr is the agent's own value of an environment variable, or def.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

// writeAnsibleVars writes the extra vars: the attributes (or the
// action's params, see passedParams) that are not null (extra vars win over a role's defaults, so a null one would hide
// its default) and the dtk_* context (which wins over an attribute of the
// same name).
func writeAnsibleVars(req Request, path string) error {
	params, err := passedParams(req)
	if err != nil {
		return err
	}
	vars := map[string]any{}
	for k, v := range params {
		if !isNull(v) {
			vars[k] = v
		}
	}
	for k, v := range map[string]string{
		"dtk_outputs":    outputsPath(req),
		"dtk_module_dir": req.ModuleDir,
		"dtk_data_dir":   req.DataDir,
		"dtk_service":    req.Service,
		"dtk_node":       req.Node,
		"dtk_step":       req.StepID,
		"dtk_scratch":    req.ScratchDir,
	} {
		vars[k] = v
	}
	b, err := json.MarshalIndent(vars, "", "  ")
	if err != nil {
		return fmt.Errorf("extra vars: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("extra vars: %w", err)
	}
	return nil
}

// readAnsibleStats sums the changed and failed counts over hosts and
// returns the aggregate set_stats data.
func readAnsibleStats(path string) (int, map[string]json.RawMessage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	var st ansibleStats
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, nil, err
	}
	changed := 0
	for _, h := range st.Hosts {
		changed += h.Changed
	}
	return changed, st.Custom["_run"], nil
}

// recapScanner remembers the changed= counts of PLAY RECAP lines.
type recapScanner struct {
	lines   lineWriter
	counts  []int
	inRecap bool
}

var recapChanged = lazyre.New(`\bchanged=(\d+)`)

func (r *recapScanner) Write(p []byte) (int, error) {
	if r.lines.fn == nil {
		r.lines.fn = r.line
	}
	return r.lines.Write(p)
}

func (r *recapScanner) line(line string) {
	switch {
	case strings.HasPrefix(line, "PLAY RECAP"):
		r.inRecap = true
	case r.inRecap:
		if m := recapChanged.Get().FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			r.counts = append(r.counts, n)
		}
	}
}

func (r *recapScanner) changed() (int, error) {
	if len(r.counts) == 0 {
		return 0, errors.New("no stats file and no PLAY RECAP in the output")
	}
	total := 0
	for _, n := range r.counts {
		total += n
	}
	return total, nil
}
