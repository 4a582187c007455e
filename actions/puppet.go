package actions

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dtkhq/dtk/internal/lazyre"
)

// Puppet applies a manifest, or a class from Puppet modules shipped in the
// module folder, with `puppet apply --detailed-exitcodes`: exit 0 is OK,
// 2 is Changed, anything else Failed. A dry run adds --noop and reads the
// run summary: resources out of sync are Changed (would change).
//
// Attributes reach Puppet as typed facts: $facts['dtk_attributes'] is a
// hash of them all; dtk_outputs, dtk_module_dir, dtk_data_dir,
// dtk_service, dtk_node, dtk_step and dtk_scratch are strings. For a
// class they are its parameters too. Puppet's own state (vardir, confdir,
// codedir, ...) lives in the step's scratch folder, never /etc/puppetlabs.
type Puppet struct{}

var _ Runner = (*Puppet)(nil)

func init() { Register(Puppet{}) }

// Kind is "puppet".
func (Puppet) Kind() string { return "puppet" }

// PuppetClassRE is the form of a class name an action may apply.
var PuppetClassRE = lazyre.New(`^(::)?[a-z][a-z0-9_]*(::[a-z][a-z0-9_]*)*$`)

// Run applies the manifest or class.
func (Puppet) Run(ctx context.Context, req Request) Result {
	s, err := newSession(ctx, req)
	if err != nil {
		return fail("puppet: %w", err)
	}
	s.keepOutOfTail(puppetNoise)
	act := req.Action
	state := filepath.Join(req.ScratchDir, "puppet")
	dirs := map[string]string{}
	for _, d := range []string{"vardir", "confdir", "codedir", "logdir", "rundir", "publicdir"} {
		dirs[d] = filepath.Join(state, strings.TrimSuffix(d, "dir"))
	}
	factsDir := filepath.Join(dirs["vardir"], "facts.d")
	if err := os.MkdirAll(factsDir, 0o700); err != nil {
		return s.failed(fmt.Errorf("puppet state folder: %w", err))
	}
	attrFile, err := writeAttributes(req)
	if err != nil {
		return s.failed(fmt.Errorf("attributes file: %w", err))
	}
	if err := writePuppetFacts(req, filepath.Join(factsDir, "dtk.json")); err != nil {
		return s.failed(err)
	}

	args := []string{"apply", "--detailed-exitcodes", "--color=false",
		// No report, no catalog summary: faster, and nothing leaves the node.
		"--no-report", "--no-write_catalog_summary"}
	for _, d := range []string{"vardir", "confdir", "codedir", "logdir", "rundir", "publicdir"} {
		args = append(args, "--"+d, dirs[d])
	}
	modulePath := act.ModulePath
	if modulePath == "" {
		if info, err := os.Stat(filepath.Join(req.ModuleDir, "modules")); err == nil && info.IsDir() {
			modulePath = "modules"
		}
	}
	if modulePath != "" {
		p, err := moduleFile(req, "modulepath", modulePath)
		if err != nil {
			return s.failed(err)
		}
		// Then Puppet's own module folders ($basemodulepath: the codedir's,
		// which is the step's own, and the system's, e.g. Debian's
		// /usr/share/puppet/modules), as a plain `puppet apply` searches.
		args = append(args, "--modulepath", p+":$basemodulepath")
	}
	if req.DryRun {
		args = append(args, "--noop")
	}
	switch {
	case act.Manifest != "" && act.Class != "":
		return s.failed(errors.New("puppet action sets both manifest and class"))
	case act.Manifest != "":
		p, err := moduleFile(req, "manifest", act.Manifest)
		if err != nil {
			return s.failed(err)
		}
		args = append(args, p)
	case act.Class != "":
		p := filepath.Join(state, "dtk_class.pp")
		params, err := passedParams(req)
		if err != nil {
			return s.failed(err)
		}
		if err := writeClassManifest(p, act.Class, params); err != nil {
			return s.failed(err)
		}
		args = append(args, p)
	default:
		return s.failed(errors.New("puppet action has neither manifest nor class"))
	}

	summary := filepath.Join(dirs["publicdir"], "last_run_summary.yaml")
	_ = os.Remove(summary)
	named := &paramScanner{}
	named.lines.fn = named.line
	code, err := s.run(command{name: "puppet", args: args, env: Env(req, attrFile), tee: &named.lines})
	if err != nil {
		return s.failed(err)
	}
	res := Result{ExitCode: code}
	switch code {
	case 0:
		res.State = OK
	case 2:
		res.State = Changed
	default:
		// 1: compilation failed; 4 or 6: resources failed.
		res.State = Failed
		named.lines.flush()
		for _, where := range setAt(req, named.params) {
			s.notef("set at %s", where)
		}
		return s.finish(res)
	}
	if req.DryRun {
		// --noop exits 0 even when resources are out of sync.
		counts, err := readPuppetSummary(summary)
		if err != nil {
			return s.failed(fmt.Errorf("puppet run summary: %w", err))
		}
		switch {
		case counts["resources.failed"] > 0 || counts["events.failure"] > 0:
			res.State = Failed
		case counts["resources.out_of_sync"] > 0 || counts["events.noop"] > 0:
			res.State = Changed
		}
		return s.finish(res)
	}
	if res.Outputs, _, err = s.readOutputs(); err != nil {
		return s.failed(err)
	}
	return s.finish(res)
}

// puppetNoise says whether a line is one Puppet and Facter print on many
// runs that is not about the manifest: facter's complaints about the
// machine (not about a module's custom fact), the fact counts, and
// deprecation warnings. Such lines stay in the output log and are left
// out of the report's tail (see keepOutOfTail).
func puppetNoise(line string) bool {
	return puppetNoiseRE.MatchString(line) && !strings.Contains(line, "custom fact")
}

var puppetNoiseRE = lazyre.New(`^(Warning|Error): Facter: |^Warning: The current (total number|size) of facts|^Warning: .*\bdeprecated\b`)

// puppetParam finds the class parameter a Puppet error names:
// "Class[Ntp]: parameter 'servers' expects an Array value, got String",
// "expects a value for parameter 'path'", "has no parameter named 'x'".
var puppetParam = lazyre.New(`\bparameter (?:named )?'([a-z_][a-z0-9_]*)'`)

// paramScanner collects the parameters Error lines name, in order.
type paramScanner struct {
	lines  lineWriter
	params []string
}

func (p *paramScanner) line(line string) {
	if !strings.HasPrefix(line, "Error: ") {
		return
	}
	for _, m := range puppetParam.Get().FindAllStringSubmatch(line, -1) {
		if !slices.Contains(p.params, m[1]) {
			p.params = append(p.params, m[1])
		}
	}
}

// setAt says where in the HCL the parameters a failed run names were set:
// for each, the first attribute its value reads that the instance sets;
// the instance itself when none is known.
func setAt(req Request, params []string) []string {
	var out []string
	for _, name := range params {
		for _, attr := range req.Action.ParamAttributes(name) {
			if where, ok := req.Origins[attr]; ok {
				if !slices.Contains(out, where) {
					out = append(out, where)
				}
				break
			}
		}
	}
	if len(out) == 0 && req.Origin != "" {
		out = append(out, req.Origin)
	}
	return out
}

// writePuppetFacts writes the external facts file that carries the
// attributes and the dtk context.
func writePuppetFacts(req Request, path string) error {
	attrs := req.Attributes
	if attrs == nil {
		attrs = map[string]json.RawMessage{}
	}
	facts := map[string]any{
		"dtk_attributes": attrs,
		"dtk_outputs":    outputsPath(req),
		"dtk_module_dir": req.ModuleDir,
		"dtk_data_dir":   req.DataDir,
		"dtk_service":    req.Service,
		"dtk_node":       req.Node,
		"dtk_step":       req.StepID,
		"dtk_scratch":    req.ScratchDir,
	}
	b, err := json.MarshalIndent(facts, "", "  ")
	if err != nil {
		return fmt.Errorf("puppet facts: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("puppet facts: %w", err)
	}
	return nil
}

// writeClassManifest writes `class { 'NAME': param => value, ... }` with
// every parameter that is not null (see passedParams).
func writeClassManifest(path, class string, attrs map[string]json.RawMessage) error {
	if !PuppetClassRE.MatchString(class) {
		return fmt.Errorf("invalid puppet class name %q", class)
	}
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by dtk: applies class %s with the step's attributes.\nclass { %s:\n", class, puppetString(class))
	for _, k := range names {
		v, err := puppetValue(attrs[k])
		if err != nil {
			return fmt.Errorf("attribute %q: %w", k, err)
		}
		if v == "undef" {
			continue // the class's default applies
		}
		if !validEnvName(k) {
			return fmt.Errorf("attribute %q cannot be a puppet class parameter", k)
		}
		fmt.Fprintf(&b, "  %s => %s,\n", k, v)
	}
	b.WriteString("}\n")
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// puppetValue renders a JSON value as a Puppet literal.
func puppetValue(raw json.RawMessage) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	return puppetLiteral(v), nil
}

func puppetLiteral(v any) string {
	switch v := v.(type) {
	case nil:
		return "undef"
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return v.String()
		}
		f, err := v.Float64()
		if err != nil {
			return puppetString(v.String())
		}
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	case string:
		return puppetString(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = puppetLiteral(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = puppetString(k) + " => " + puppetLiteral(v[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return "undef"
}

// puppetString is a single-quoted Puppet string: only \\ and \' are
// escapes there, so nothing in s is interpolated.
func puppetString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// readPuppetSummary reads the counts of last_run_summary.yaml as
// "section.key" → value (the file is two levels of "key: number").
func readPuppetSummary(path string) (map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]float64{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			section = k
			continue
		}
		if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			out[section+"."+k] = n
		}
	}
	return out, sc.Err()
}
