package dsl

import (
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/dtkhq/dtk/internal/lazyre"
	"github.com/dtkhq/dtk/internal/names"
	"github.com/dtkhq/dtk/plan"
)

// actionKind is what the language knows of one kind of action block: the
// settings it takes (besides kind and timeout) and how to decode them.
type actionKind struct {
	settings []string
	// predicts: its dry run tells whether a run would change anything,
	// so that a noop check (plan.CheckNoop) can run it.
	predicts bool
	// decode fills act from the block's attributes (all of them among
	// settings); it reports problems and says whether all went well.
	decode func(l *loader, b *hcl.Block, attrs map[string]*hcl.Attribute, act *plan.Action) bool
}

// actionKinds are the runners an action may name (see package actions and
// docs/actions.md), with their settings.
var actionKinds = map[string]actionKind{
	"bash":      {settings: []string{"script", "inline"}, decode: decodeBash},
	"exec":      {settings: []string{"program", "args"}, decode: decodeExec},
	"puppet":    {settings: []string{"manifest", "class", "modulepath", "params"}, decode: decodePuppet, predicts: true},
	"ansible":   {settings: []string{"playbook", "role", "params"}, decode: decodeAnsible, predicts: true},
	"container": {settings: []string{"engine"}, decode: decodeContainer, predicts: true},
}

// noopCheck is the kind of check { kind = "noop" }: the create action run
// as a dry run. It takes no settings of its own but timeout.
var noopCheck = actionKind{decode: func(*loader, *hcl.Block, map[string]*hcl.Attribute, *plan.Action) bool { return true }}

// defaultKind is the kind of an action block that names none.
const defaultKind = "bash"

// ActionKinds lists the kinds an action block may name, sorted.
func ActionKinds() []string { return keys(actionKinds) }

var (
	// puppetClassRE is the form of a Puppet class name.
	puppetClassRE = lazyre.New(`^(::)?[a-z][a-z0-9_]*(::[a-z][a-z0-9_]*)*$`)
	// ansibleRoleRE is the form of an Ansible role name.
	ansibleRoleRE = lazyre.New(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	// puppetParamRE is the form of a Puppet class parameter name;
	// ansibleVarRE that of an Ansible variable name.
	puppetParamRE = lazyre.New(`^[a-z_][a-z0-9_]*$`)
	ansibleVarRE  = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// actionSchema accepts every setting of every kind; which ones a block may
// use depends on its kind.
var actionSchema = func() *hcl.BodySchema {
	s := &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "kind"}, {Name: "timeout"}, {Name: "retries"}, {Name: "retry_delay"},
		{Name: "user"}, {Name: "group"}}}
	for _, k := range ActionKinds() {
		for _, name := range actionKinds[k].settings {
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: name})
		}
	}
	return s
}()

func (l *loader) decodeAction(b *hcl.Block) *plan.Action {
	act := &plan.Action{Kind: defaultKind, Pos: blockPos(b)}
	content, diags := b.Body.Content(actionSchema)
	l.add(diags)
	ok := !diags.HasErrors()

	if a := content.Attributes["kind"]; a != nil {
		s, good := l.stringValue(a)
		switch {
		case !good:
			return nil
		case s == plan.CheckNoop && b.Type == "check":
		case s == plan.CheckNoop:
			l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("kind %q is a kind of check only", s),
				"check { kind = \"noop\" } runs the create action as a dry run; create, delete and custom actions run one of %s", quoteList(ActionKinds()))
			return nil
		case actionKinds[s].decode == nil:
			l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("unknown action kind %q", s),
				"allowed kinds: %s", quoteList(ActionKinds()))
			return nil
		}
		act.Kind = s
	}
	kind := actionKinds[act.Kind]
	if act.Kind == plan.CheckNoop {
		kind = noopCheck
	}

	settings := map[string]*hcl.Attribute{}
	for _, a := range sortedAttrs(content.Attributes) {
		switch {
		case act.Kind == plan.CheckNoop && a.Name != "kind" && a.Name != "timeout":
			l.errorf(startRange(a.NameRange), fmt.Sprintf("a noop check takes no %s", a.Name),
				"a noop check runs the create action (its settings, user and group) as a dry run; it takes only timeout")
			ok = false
		case a.Name == "kind" || a.Name == "timeout" || a.Name == "retries" || a.Name == "retry_delay" ||
			a.Name == "user" || a.Name == "group":
		case contains(kind.settings, a.Name):
			settings[a.Name] = a
		default:
			l.errorf(startRange(a.NameRange), fmt.Sprintf("%s is not a setting of %s action", a.Name, withArticle(act.Kind)),
				"%s action takes %s%s", withArticle(act.Kind), quoteList(kind.settings), kindHint(a.Name))
			ok = false
		}
	}
	if !kind.decode(l, b, settings, act) {
		ok = false
	}

	if a := content.Attributes["timeout"]; a != nil {
		if s, good := l.stringValue(a); good {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("invalid timeout %q", s),
					`a timeout is a duration such as "90s", "2m" or "1h30m"`)
				ok = false
			case d <= 0:
				l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("invalid timeout %q", s),
					"a timeout must be positive")
				ok = false
			default:
				act.TimeoutSeconds = int(math.Ceil(d.Seconds()))
			}
		} else {
			ok = false
		}
	}
	if a := content.Attributes["retries"]; a != nil {
		v, good := l.constValue(a)
		n, err := wholeNumber(v)
		switch {
		case !good:
			ok = false
		case err != nil || n < 0 || n > 100:
			l.errorf(startRange(a.Expr.Range()), "invalid retries", "retries is a whole number from 0 to 100: how many times a failed run is tried again")
			ok = false
		default:
			act.Retries = n
		}
	}
	if a := content.Attributes["retry_delay"]; a != nil {
		if s, good := l.stringValue(a); good {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("invalid retry_delay %q", s),
					`a retry delay is a positive duration such as "5s" (it doubles after each retry)`)
				ok = false
			} else {
				act.RetryDelaySeconds = int(math.Ceil(d.Seconds()))
			}
		} else {
			ok = false
		}
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"user", &act.User}, {"group", &act.Group}} {
		if a := content.Attributes[f.name]; a != nil && !l.decodeAccount(act, a, f.dst) {
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return act
}

// decodeAccount reads the user or group setting a into dst.
func (l *loader) decodeAccount(act *plan.Action, a *hcl.Attribute, dst *string) bool {
	s, ok := l.stringValue(a)
	switch {
	case !ok:
		return false
	case act.Kind == "container":
		l.errorf(startRange(a.NameRange), fmt.Sprintf("a container action takes no %s", a.Name),
			"the engine runs containers as the agent does; the user inside the container is the image's (USER) or its command's")
		return false
	case s == "":
		l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("empty %s name", a.Name),
			"leave %s out to run as the agent's step_%s (root unless its configuration names another)", a.Name, a.Name)
		return false
	case !names.ValidAccount(s):
		l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("invalid %s name %q", a.Name, s),
			"%s names an account of the node, e.g. \"www-data\": letters, digits, '_', '.' and '-', not starting with a digit or '-'", a.Name)
		return false
	}
	*dst = s
	return true
}

// wholeNumber reads a known number value as an int.
func wholeNumber(v cty.Value) (int, error) {
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		return 0, fmt.Errorf("not a number")
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return 0, fmt.Errorf("not a whole number")
	}
	n, _ := bf.Int64()
	return int(n), nil
}

// kindHint names the kinds that take setting name, as the end of a
// sentence.
func kindHint(name string) string {
	var kinds []string
	for _, k := range ActionKinds() {
		if contains(actionKinds[k].settings, name) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return ""
	}
	return fmt.Sprintf("; %s belongs to kind %s", name, strings.Join(kinds, ", "))
}

// withArticle is "a bash", "an exec".
func withArticle(kind string) string {
	if strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

// exactlyOne checks that exactly one of the two settings is set and
// returns the one that is (nil if not exactly one).
func (l *loader) exactlyOne(b *hcl.Block, attrs map[string]*hcl.Attribute, a, b2, detail string) *hcl.Attribute {
	x, y := attrs[a], attrs[b2]
	switch {
	case x != nil && y != nil:
		l.errorf(startRange(b.DefRange), fmt.Sprintf("%s block sets both %s and %s", b.Type, a, b2), "%s", detail)
		return nil
	case x == nil && y == nil:
		l.errorf(startRange(b.DefRange), fmt.Sprintf("%s block sets neither %s nor %s", b.Type, a, b2), "%s", detail)
		return nil
	case x != nil:
		return x
	}
	return y
}

func decodeBash(l *loader, b *hcl.Block, attrs map[string]*hcl.Attribute, act *plan.Action) bool {
	a := l.exactlyOne(b, attrs, "script", "inline",
		"set exactly one of script (a file in the module folder) or inline (script text)")
	if a == nil {
		return false
	}
	s, ok := l.stringValue(a)
	if !ok {
		return false
	}
	if a.Name == "inline" {
		if strings.TrimSpace(s) == "" {
			l.errorf(startRange(a.Expr.Range()), "empty inline script", "inline holds the script text to run")
			return false
		}
		act.Inline = s
		return true
	}
	act.Script, ok = l.checkModuleFile(a, s, "script", `"scripts/create.sh"`)
	return ok
}

func decodeExec(l *loader, b *hcl.Block, attrs map[string]*hcl.Attribute, act *plan.Action) bool {
	ok := true
	a := attrs["program"]
	if a == nil {
		l.errorf(startRange(b.DefRange), fmt.Sprintf("%s block sets no program", b.Type),
			`an exec action runs program: a file in the module ("bin/tool", "./tool.py"), an absolute path or a command on PATH ("python3")`)
		ok = false
	} else if s, good := l.stringValue(a); !good {
		ok = false
	} else {
		act.Program, good = l.checkProgram(a, s)
		ok = ok && good
	}
	if a := attrs["args"]; a != nil {
		v, good := l.constValue(a)
		if !good {
			return false
		}
		lv, err := convert.Convert(v, cty.List(cty.String))
		if err != nil {
			l.errorf(startRange(a.Expr.Range()), "invalid args",
				`args is a list of strings, e.g. ["--port", "8080"]: %s`, err)
			return false
		}
		if !lv.IsNull() {
			for _, e := range lv.AsValueSlice() {
				if e.IsNull() {
					l.errorf(startRange(a.Expr.Range()), "invalid args", "args holds a null")
					return false
				}
				act.Args = append(act.Args, e.AsString())
			}
		}
	}
	return ok
}

// checkProgram checks an exec program: a command name (no slash) is left
// to PATH at run time, an absolute path is taken as is, anything else is
// an executable file inside the module, kept with a slash ("./tool.py")
// so that the runner tells it from a command name.
func (l *loader) checkProgram(a *hcl.Attribute, s string) (string, bool) {
	rng := startRange(a.Expr.Range())
	switch {
	case s == "":
		l.errorf(rng, "empty program", `program is a file in the module ("bin/tool"), an absolute path or a command on PATH ("python3")`)
		return s, false
	case path.IsAbs(s):
		return s, true
	case !strings.Contains(s, "/"):
		if _, inModule := l.files[s]; inModule {
			l.errorf(rng, fmt.Sprintf("program %q is looked up on PATH", s),
				"the module has a file of that name: to run it, write \"./%s\"", s)
			return s, false
		}
		return s, true
	}
	clean, ok := l.checkModuleFile(a, s, "program", `"bin/tool"`)
	if !ok {
		return s, false
	}
	if info, err := os.Stat(filepath.Join(l.dir, filepath.FromSlash(clean))); err == nil && info.Mode()&0o111 == 0 {
		l.errorf(rng, fmt.Sprintf("program %q is not executable", s),
			"make it executable (chmod +x) or run it through its interpreter: program = \"python3\", args = [%q]", clean)
		return s, false
	}
	if !strings.Contains(clean, "/") {
		clean = "./" + clean
	}
	return clean, true
}

func decodePuppet(l *loader, b *hcl.Block, attrs map[string]*hcl.Attribute, act *plan.Action) bool {
	ok := true
	if a := attrs["modulepath"]; a != nil {
		if s, good := l.stringValue(a); good {
			act.ModulePath, good = l.checkModuleDir(a, s, "modulepath", `"modules"`)
			ok = ok && good
		} else {
			ok = false
		}
	} else if l.hasDir("modules") {
		act.ModulePath = "modules"
	}
	a := l.exactlyOne(b, attrs, "manifest", "class",
		`set exactly one of manifest (a .pp file in the module folder) or class (a class of a module in modulepath, e.g. "mymod::web")`)
	if a == nil {
		return false
	}
	s, good := l.stringValue(a)
	if !good {
		return false
	}
	if a.Name == "manifest" {
		if p := attrs["params"]; p != nil {
			l.errorf(startRange(p.NameRange), "params needs a class",
				"a manifest reads the attributes as $facts['dtk_attributes']; params maps the parameters of a class (class = \"mymod::web\")")
			return false
		}
		act.Manifest, good = l.checkModuleFile(a, s, "manifest", `"manifests/site.pp"`)
		return ok && good
	}
	if p := attrs["params"]; p != nil && !l.decodeParams(p, act) {
		ok = false
	}
	act.Class = s
	if !puppetClassRE.MatchString(s) {
		l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("invalid puppet class name %q", s),
			`a class name is lowercase words joined by ::, e.g. "web" or "mymod::web"`)
		return false
	}
	// No modulepath and no modules/ folder: the class comes from the
	// Puppet modules installed on the node ($basemodulepath).
	return ok
}

func decodeAnsible(l *loader, b *hcl.Block, attrs map[string]*hcl.Attribute, act *plan.Action) bool {
	if p := attrs["params"]; p != nil && !l.decodeParams(p, act) {
		return false
	}
	a := l.exactlyOne(b, attrs, "playbook", "role",
		`set exactly one of playbook (a playbook file in the module folder) or role (a role under roles/, e.g. "web")`)
	if a == nil {
		return false
	}
	s, ok := l.stringValue(a)
	if !ok {
		return false
	}
	if a.Name == "playbook" {
		act.Playbook, ok = l.checkModuleFile(a, s, "playbook", `"site.yml"`)
		return ok
	}
	if !ansibleRoleRE.MatchString(s) {
		l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("invalid role name %q", s),
			`role names a folder under roles/ in the module folder, e.g. "web"`)
		return false
	}
	if !l.hasDir("roles/" + s) {
		var roles []string
		for f := range l.files {
			if rest, ok := strings.CutPrefix(f, "roles/"); ok {
				if name, _, ok := strings.Cut(rest, "/"); ok && !contains(roles, name) {
					roles = append(roles, name)
				}
			}
		}
		sort.Strings(roles)
		l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("role %q not found", s), "%s",
			hint(s, roles, "the module has no roles/ folder with roles in it", "roles/ holds %s"))
		return false
	}
	act.Role = s
	return true
}

// decodeParams reads params = { NAME = EXPRESSION, ... }: the class
// parameters (puppet) or role variables (ansible) to pass, each an
// expression over the component's attributes, which checkParams checks
// once the component's attributes are all known.
func (l *loader) decodeParams(a *hcl.Attribute, act *plan.Action) bool {
	pairs, diags := hcl.ExprMap(a.Expr)
	if diags.HasErrors() {
		l.errorf(startRange(a.Expr.Range()), "invalid params",
			`params is an object of NAME = EXPRESSION over the attributes, e.g. { servers = servers, config = "${dir}/ntp.conf" }`)
		return false
	}
	what, re, example := "puppet class parameter", puppetParamRE, `lowercase letters, digits and '_', e.g. "servers"`
	if act.Kind == "ansible" {
		what, re, example = "ansible variable", ansibleVarRE, `letters, digits and '_', not starting with a digit, e.g. "http_port"`
	}
	ok := true
	act.Params = map[string]plan.Expr{}
	for _, p := range pairs {
		rng := startRange(p.Key.Range())
		k, kd := p.Key.Value(nil)
		if kd.HasErrors() || k.IsNull() || !k.IsKnown() || k.Type() != cty.String {
			l.errorf(rng, "invalid params name", "a params name is a constant: the %s to set", what)
			ok = false
			continue
		}
		name := k.AsString()
		switch {
		case !re.MatchString(name):
			l.errorf(rng, fmt.Sprintf("invalid %s name %q", what, name), "%s", example)
			ok = false
		case act.Kind == "puppet" && (name == "name" || name == "title"):
			l.errorf(rng, fmt.Sprintf("%q cannot be a puppet class parameter", name), "a class has no parameter of that name")
			ok = false
		case act.Kind == "ansible" && strings.HasPrefix(name, "dtk_"):
			l.errorf(rng, fmt.Sprintf("ansible variable %q is reserved", name), "dtk sets the variables dtk_* itself; pick another name")
			ok = false
		case act.Params[name].Source != "":
			l.errorf(rng, fmt.Sprintf("duplicate params name %q", name), "set each %s once", what)
			ok = false
		default:
			act.Params[name] = l.exprSource(p.Value)
		}
	}
	return ok
}

// checkParams checks that the params of c's actions refer to c's
// attributes only (they are the variables there).
func (l *loader) checkParams(c *plan.Component) {
	names := make([]string, len(c.Attributes))
	for i, a := range c.Attributes {
		names[i] = a.Name
	}
	acts := []*plan.Action{c.Check}
	for _, name := range keys(c.Actions) {
		acts = append(acts, c.Actions[name])
	}
	for _, act := range acts {
		if act == nil {
			continue
		}
		for _, name := range keys(act.Params) {
			e := act.Params[name]
			x, diags := hclsyntax.ParseExpression([]byte(e.Source), e.Pos.File, l.posRange(e.Pos).Start)
			if diags.HasErrors() {
				continue // reported when the block was read
			}
			l.checkExpr(x, &scope{where: fmt.Sprintf("params of component %q", c.Name), roots: names})
		}
	}
}

func decodeContainer(l *loader, b *hcl.Block, attrs map[string]*hcl.Attribute, act *plan.Action) bool {
	a := attrs["engine"]
	if a == nil {
		return true
	}
	s, ok := l.stringValue(a)
	if !ok {
		return false
	}
	if s != "podman" && s != "docker" {
		l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("unknown container engine %q", s),
			`engine is "podman" or "docker"; leave it out to use whichever is installed, podman first`)
		return false
	}
	act.Engine = s
	return true
}

// containerSettings are the component attributes a container action
// reads, with the type each is read as.
var containerSettings = map[string]string{
	"image": "string", "image_archive": "string", "name": "string", "restart": "string", "network": "string",
	"stop_timeout": "number", "command": "list(string)", "ports": "list(string)", "volumes": "list(string)",
	"env": "map(string)",
}

// checkContainerAttributes checks, for a component with a container
// action, that it declares the image attribute and that the container
// settings it declares have types the runner reads.
func (l *loader) checkContainerAttributes(c *plan.Component) {
	var act *plan.Action
	for _, name := range keys(c.Actions) {
		if a := c.Actions[name]; a.Kind == "container" {
			act = a
			break
		}
	}
	if act == nil {
		return
	}
	if c.Attribute("image") == nil {
		l.errorf(l.posRange(act.Pos), fmt.Sprintf("component %q has a container action but no image attribute", c.Name),
			`a container's settings are the component's attributes: declare attribute "image" { type = string }`)
	}
	for _, a := range c.Attributes {
		want, ok := containerSettings[a.Name]
		if !ok || a.Type == "" || a.Type == want || a.Type == "any" ||
			(a.Name == "env" && strings.HasPrefix(a.Type, "map(")) {
			continue
		}
		l.errorf(l.posRange(a.Pos), fmt.Sprintf("container setting %q has type %s", a.Name, a.Type),
			"the container action reads %s as %s", a.Name, want)
	}
}

// checkNoopCheck checks that a component's noop check has a create
// action that can predict what it would change.
func (l *loader) checkNoopCheck(c *plan.Component) {
	create := c.Actions["create"]
	if c.Check == nil || c.Check.Kind != plan.CheckNoop || create == nil || actionKinds[create.Kind].predicts {
		return
	}
	l.errorf(l.posRange(c.Check.Pos), fmt.Sprintf("a noop check needs a create action that can predict, not %s", create.Kind),
		"a noop check runs create as a dry run, and %s action cannot say what it would change (its dry run only says it would run); "+
			"write a check that tests the state instead: check { inline = \"...\" } (exit 0: in its desired state)", withArticle(create.Kind))
}

// posRange is the empty range at p.
func (l *loader) posRange(p plan.Pos) hcl.Range {
	src := l.srcs[p.File]
	off, line, col := 0, 1, 1
	for off < len(src) && (line < p.Line || (line == p.Line && col < p.Column)) {
		if src[off] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		off++
	}
	pos := hcl.Pos{Line: p.Line, Column: p.Column, Byte: off}
	return hcl.Range{Filename: p.File, Start: pos, End: pos}
}

// checkModuleFile checks that path s (the value of a, a setting called
// what) names a regular file inside the module folder, and returns it
// cleaned (as a key of Module.Files).
func (l *loader) checkModuleFile(a *hcl.Attribute, s, what, example string) (string, bool) {
	clean, ok := l.checkRelPath(a, s, what, example)
	if !ok {
		return s, false
	}
	if _, ok := l.files[clean]; ok {
		return clean, true
	}
	rng := startRange(a.Expr.Range())
	if l.hiddenPath(a, path.Dir(clean), s, what) {
		return s, false
	}
	if _, err := os.Lstat(filepath.Join(l.dir, filepath.FromSlash(clean))); err != nil {
		l.errorf(rng, fmt.Sprintf("%s file %q not found", what, s),
			"no such file in the module folder")
	} else {
		l.errorf(rng, fmt.Sprintf("%s %q is not a regular file", what, s),
			"%s must name a regular file (not a directory or symlink) in the module folder", what)
	}
	return s, false
}

// checkModuleDir checks that path s names a folder inside the module
// folder that holds files, and returns it cleaned.
func (l *loader) checkModuleDir(a *hcl.Attribute, s, what, example string) (string, bool) {
	clean, ok := l.checkRelPath(a, s, what, example)
	if !ok {
		return s, false
	}
	if clean == "." || l.hasDir(clean) {
		return clean, true
	}
	if l.hiddenPath(a, clean, s, what) {
		return s, false
	}
	l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("%s folder %q not found", what, s),
		"no folder of that name, holding files, in the module folder")
	return s, false
}

// checkRelPath checks that s is a relative path that stays inside the
// module folder, and returns it cleaned.
func (l *loader) checkRelPath(a *hcl.Attribute, s, what, example string) (string, bool) {
	rng := startRange(a.Expr.Range())
	if s == "" {
		l.errorf(rng, fmt.Sprintf("empty %s path", what), "%s is a path relative to the module folder, e.g. %s", what, example)
		return s, false
	}
	if path.IsAbs(s) || filepath.IsAbs(s) {
		l.errorf(rng, fmt.Sprintf("%s path %q is absolute", what, s),
			"%s is a path relative to the module folder, e.g. %s", what, example)
		return s, false
	}
	clean := path.Clean(s)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		l.errorf(rng, fmt.Sprintf("%s path %q escapes the module folder", what, s),
			"%s is a path relative to the module folder and must stay inside it", what)
		return s, false
	}
	return clean, true
}

// hiddenPath reports a path s whose folder dir is or is inside a
// dot-directory, which is not part of a module.
func (l *loader) hiddenPath(a *hcl.Attribute, dir, s, what string) bool {
	for _, part := range strings.Split(dir, "/") {
		if strings.HasPrefix(part, ".") && part != "." {
			l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("%s %q is in a hidden directory", what, s),
				"dot-directories are not part of a module")
			return true
		}
	}
	return false
}

// hasDir says whether the module holds a file under folder dir.
func (l *loader) hasDir(dir string) bool {
	prefix := dir + "/"
	for f := range l.files {
		if strings.HasPrefix(f, prefix) {
			return true
		}
	}
	return false
}
