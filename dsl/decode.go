package dsl

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/dtkhq/dtk/internal/lazyre"
	"github.com/dtkhq/dtk/plan"
)

var (
	// nameRE is the form of module, component, template, node and instance
	// names.
	nameRE = lazyre.New(`^[a-z][a-z0-9_-]*$`)
	// attrNameRE is the form of component attribute and template input
	// names: no dash, so that they can be referenced (input.NAME) and passed
	// to scripts as environment variables.
	attrNameRE = lazyre.New(`^[a-z][a-z0-9_]*$`)
)

// actionNames are the action blocks of a component.
var actionNames = []string{"create", "delete"}

var (
	rootSchema = &hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "module"},
			{Type: "component", LabelNames: []string{"name"}},
			{Type: "template", LabelNames: []string{"name"}},
		},
	}
	moduleSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "name", Required: true},
			{Name: "version", Required: true},
			{Name: "description"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "requires", LabelNames: []string{"module"}},
		},
	}
	componentSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "description"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "attribute", LabelNames: []string{"name"}},
			{Type: "output", LabelNames: []string{"name"}},
			{Type: "create"},
			{Type: "delete"},
			{Type: "check"},
			{Type: "action", LabelNames: []string{"name"}},
		},
	}
	attributeSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "type", Required: true},
			{Name: "default"},
			{Name: "required"},
			{Name: "description"},
			{Name: "sensitive"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "validation"},
		},
	}
	inputSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "type", Required: true},
			{Name: "default"},
			{Name: "description"},
			{Name: "sensitive"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "validation"},
		},
	}
	templateSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "description"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "input", LabelNames: []string{"name"}},
			{Type: "node", LabelNames: []string{"name"}},
			{Type: "node_group", LabelNames: []string{"name"}},
			{Type: "export", LabelNames: []string{"name"}},
			{Type: "inject", LabelNames: []string{"type", "name"}},
			{Type: "rollout"},
		},
	}
	nodeSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "labels"},
			{Name: "facts"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "component", LabelNames: []string{"type", "name"}},
		},
	}
	nodeGroupSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "labels"},
			{Name: "facts"},
			{Name: "count"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "component", LabelNames: []string{"type", "name"}},
		},
	}
	requireSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "version", Required: true},
		},
	}
	outputSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "description"},
			{Name: "sensitive"},
		},
	}
	validationSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "condition", Required: true},
			{Name: "error_message", Required: true},
		},
	}
	exportSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "value", Required: true},
			{Name: "description"},
			{Name: "sensitive"},
		},
	}
)

// loader accumulates the state and diagnostics of one Load.
type loader struct {
	dir   string
	lim   Limits
	srcs  map[string][]byte // .hcl file name → content
	files map[string]string // Module.Files
	diags hcl.Diagnostics

	components map[string]*plan.Component
	// mod is the module being decoded (its name and requires are known
	// before any template is decoded).
	mod *plan.Module
	// texts holds the files under templates/ (Module.Texts), and
	// templates those of them parsed as templates (nil: with errors).
	texts     map[string]string
	templates map[string]hclsyntax.Expression
}

func (l *loader) errorf(rng hcl.Range, summary, detail string, args ...any) {
	if len(args) > 0 {
		detail = fmt.Sprintf(detail, args...)
	}
	l.diags = append(l.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  rng.Ptr(),
	})
}

func (l *loader) add(diags hcl.Diagnostics) {
	l.diags = append(l.diags, diags...)
}

func posOf(p hcl.Pos, file string) plan.Pos {
	return plan.Pos{File: file, Line: p.Line, Column: p.Column}
}

func startPos(rng hcl.Range) plan.Pos { return posOf(rng.Start, rng.Filename) }

// blockPos is where a block is reported: the start of its type keyword.
func blockPos(b *hcl.Block) plan.Pos { return startPos(b.DefRange) }

// startRange is the empty range at the start of rng.
func startRange(rng hcl.Range) hcl.Range {
	return hcl.Range{Filename: rng.Filename, Start: rng.Start, End: rng.Start}
}

// decode decodes and checks all files' bodies into a Module.
func (l *loader) decode(bodies []*hclsyntax.Body) *plan.Module {
	m := &plan.Module{
		Components: map[string]*plan.Component{},
		Templates:  map[string]*plan.Template{},
	}
	l.mod = m
	var modules, components, templates []*hcl.Block
	for _, body := range bodies {
		content, diags := body.Content(rootSchema)
		l.add(diags)
		for _, b := range content.Blocks {
			switch b.Type {
			case "module":
				modules = append(modules, b)
			case "component":
				components = append(components, b)
			case "template":
				templates = append(templates, b)
			}
		}
	}

	switch len(modules) {
	case 0:
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "missing module block",
			Detail:   `a module needs exactly one module block, e.g. module { name = "hello" version = "1.0.0" }`,
		})
	default:
		for _, b := range modules[1:] {
			l.errorf(startRange(b.DefRange), "duplicate module block",
				"first declared at %s; a module has exactly one module block", blockPos(modules[0]))
		}
		l.decodeModule(modules[0], m)
	}

	// Components first: templates may use components declared in any file.
	first := map[string]*hcl.Block{}
	for _, b := range components {
		name := b.Labels[0]
		if prev, ok := first[name]; ok {
			l.errorf(startRange(b.DefRange), fmt.Sprintf("duplicate component %q", name),
				"first declared at %s", blockPos(prev))
			continue
		}
		first[name] = b
		l.checkName(b.LabelRanges[0], "component", name, nameRE)
		c := l.decodeComponent(b)
		m.Components[name] = c
		l.components[name] = c
	}

	first = map[string]*hcl.Block{}
	for _, b := range templates {
		name := b.Labels[0]
		if prev, ok := first[name]; ok {
			l.errorf(startRange(b.DefRange), fmt.Sprintf("duplicate template %q", name),
				"first declared at %s", blockPos(prev))
			continue
		}
		first[name] = b
		l.checkName(b.LabelRanges[0], "template", name, nameRE)
		m.Templates[name] = l.decodeTemplate(b)
	}
	return m
}

// checkName reports a name that does not match re.
func (l *loader) checkName(rng hcl.Range, what, name string, re *lazyre.Regexp) {
	if !l.checkNameSize(rng, what, name) {
		return
	}
	if re.MatchString(name) {
		return
	}
	l.errorf(startRange(rng), fmt.Sprintf("invalid %s name %q", what, name),
		"%s names start with a lowercase letter followed by lowercase letters, digits%s",
		what, map[bool]string{true: ", underscores and dashes", false: " and underscores"}[re == nameRE])
}

// checkNameSize reports a name longer than the loader's limit.
func (l *loader) checkNameSize(rng hcl.Range, what, name string) bool {
	max := l.lim.NameBytes
	if max <= 0 || len(name) <= max {
		return true
	}
	summary := fmt.Sprintf("%s name %.40q… is longer than %d bytes", what, name, max)
	detail := fmt.Sprintf("it is %d bytes long; use a shorter name", len(name))
	if l.lim.NameSetting != "" {
		summary += " (" + l.lim.NameSetting + ")"
		detail += ", or raise " + l.lim.NameSetting + " in the coordinator config"
	}
	l.errorf(startRange(rng), summary, "%s", detail)
	return false
}

func (l *loader) decodeModule(b *hcl.Block, m *plan.Module) {
	content, diags := b.Body.Content(moduleSchema)
	l.add(diags)
	if a := content.Attributes["name"]; a != nil {
		if s, ok := l.stringValue(a); ok {
			m.Name = s
			if l.checkNameSize(a.Expr.Range(), "module", s) && !nameRE.MatchString(s) {
				l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("invalid module name %q", s),
					"module names start with a lowercase letter followed by lowercase letters, digits, underscores and dashes")
			}
		}
	}
	if a := content.Attributes["version"]; a != nil {
		if s, ok := l.stringValue(a); ok {
			m.Version = s
			if err := plan.CheckVersion(s); err != nil {
				l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("invalid module version %q", s),
					`%s; a version is MAJOR.MINOR.PATCH with an optional -prerelease and +build, e.g. "1.0.0", "1.1.0-rc.1" or "1.1.0+build.5"`, err)
			}
		}
	}
	if a := content.Attributes["description"]; a != nil {
		m.Description, _ = l.stringValue(a)
	}
	l.decodeRequires(content.Blocks, m)
}

// constValue evaluates a's expression with no variables nor functions.
func (l *loader) constValue(a *hcl.Attribute) (cty.Value, bool) {
	v, diags := a.Expr.Value(nil)
	l.add(diags)
	if diags.HasErrors() {
		return cty.NilVal, false
	}
	return v, true
}

// stringValue evaluates a's expression as a constant string (null is "").
func (l *loader) stringValue(a *hcl.Attribute) (string, bool) {
	v, ok := l.constValue(a)
	if !ok {
		return "", false
	}
	v, err := convert.Convert(v, cty.String)
	if err != nil {
		l.errorf(a.Expr.Range(), "Incorrect attribute value type",
			"Inappropriate value for attribute %q: %s.", a.Name, err)
		return "", false
	}
	if v.IsNull() {
		return "", true
	}
	return v.AsString(), true
}

// boolValue evaluates a's expression as a constant bool (null is false).
func (l *loader) boolValue(a *hcl.Attribute) (bool, bool) {
	v, ok := l.constValue(a)
	if !ok {
		return false, false
	}
	v, err := convert.Convert(v, cty.Bool)
	if err != nil {
		l.errorf(a.Expr.Range(), "Incorrect attribute value type",
			"Inappropriate value for attribute %q: %s.", a.Name, err)
		return false, false
	}
	if v.IsNull() {
		return false, true
	}
	return v.True(), true
}

func (l *loader) decodeComponent(b *hcl.Block) *plan.Component {
	c := &plan.Component{
		Name:       b.Labels[0],
		Attributes: []*plan.Attribute{},
		Actions:    map[string]*plan.Action{},
		Pos:        blockPos(b),
	}
	content, diags := b.Body.Content(componentSchema)
	l.add(diags)
	if a := content.Attributes["description"]; a != nil {
		c.Description, _ = l.stringValue(a)
	}
	actions := map[string]*hcl.Block{}
	for _, ab := range content.Blocks {
		switch ab.Type {
		case "attribute":
			name := ab.Labels[0]
			if prev := c.Attribute(name); prev != nil {
				l.errorf(startRange(ab.DefRange), fmt.Sprintf("duplicate attribute %q", name),
					"first declared at %s", prev.Pos)
				continue
			}
			c.Attributes = append(c.Attributes, l.decodeAttribute(ab, "attribute", attributeSchema))
		case "create", "delete":
			if prev, ok := actions[ab.Type]; ok {
				l.errorf(startRange(ab.DefRange), fmt.Sprintf("duplicate %s block", ab.Type),
					"first declared at %s; a component has at most one %s action", blockPos(prev), ab.Type)
				continue
			}
			actions[ab.Type] = ab
			if act := l.decodeAction(ab); act != nil {
				c.Actions[ab.Type] = act
			}
		case "output":
			l.decodeOutput(ab, c)
		case "check":
			if prev, ok := actions["check"]; ok {
				l.errorf(startRange(ab.DefRange), "duplicate check block",
					"first declared at %s; a component has at most one check", blockPos(prev))
				continue
			}
			actions["check"] = ab
			c.Check = l.decodeAction(ab)
		case "action":
			l.decodeCustomAction(ab, c, actions)
		}
	}
	l.checkContainerAttributes(c)
	l.checkNoopCheck(c)
	l.checkParams(c)
	if actions["create"] == nil {
		l.errorf(startRange(b.DefRange), fmt.Sprintf("component %q has no create block", c.Name),
			"a component needs a create action: create { script = \"...\" } or create { inline = \"...\" }")
	}
	return c
}

// decodeAttribute decodes a component's attribute block or a template's
// input block (what is "attribute" or "input").
func (l *loader) decodeAttribute(b *hcl.Block, what string, schema *hcl.BodySchema) *plan.Attribute {
	name := b.Labels[0]
	attr := &plan.Attribute{Name: name, Pos: blockPos(b)}
	l.checkName(b.LabelRanges[0], what, name, attrNameRE)
	if what == "attribute" && contains(reservedAttributes, name) {
		l.errorf(startRange(b.LabelRanges[0]), fmt.Sprintf("attribute name %q is reserved", name),
			"an instance block uses %s for itself; choose another name", name)
	}
	content, diags := b.Body.Content(schema)
	l.add(diags)
	if a := content.Attributes["description"]; a != nil {
		attr.Description, _ = l.stringValue(a)
	}
	ty := cty.NilType
	if a := content.Attributes["type"]; a != nil {
		t, diags := typeexpr.TypeConstraint(a.Expr)
		l.add(diags)
		if !diags.HasErrors() {
			ty = t
			attr.Type = typeexpr.TypeString(t)
		}
	}
	if a := content.Attributes["required"]; a != nil {
		attr.Required, _ = l.boolValue(a)
	}
	if a := content.Attributes["default"]; a != nil {
		if attr.Required {
			l.errorf(startRange(a.NameRange), fmt.Sprintf("%s %q is both required and has a default", what, name),
				"remove either required = true or the default")
		}
		v, ok := l.constValue(a)
		if ok && v.IsNull() {
			// default = null: optional, null when not set (an input
			// without a default must be given).
			attr.Default = []byte("null")
		}
		if ok && ty != cty.NilType && !v.IsNull() {
			cv, err := convert.Convert(v, ty)
			if err != nil {
				l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("invalid default for %s %q", what, name),
					"the default is not a valid %s: %s", attr.Type, err)
			} else if js, err := ctyjson.Marshal(cv, ty); err != nil {
				l.errorf(startRange(a.Expr.Range()), fmt.Sprintf("invalid default for %s %q", what, name),
					"cannot encode the default: %s", err)
			} else {
				attr.Default = js
			}
		}
	}
	if a := content.Attributes["sensitive"]; a != nil {
		attr.Sensitive, _ = l.boolValue(a)
	}
	var vals []*validation
	for _, vb := range content.Blocks {
		if v := l.decodeValidation(vb); v != nil {
			vals = append(vals, v)
			attr.Validations = append(attr.Validations, v.Validation)
		}
	}
	l.checkDefaultValid(attr, what, vals)
	return attr
}

// exprSource returns the source text of expr, exactly as written, and where
// it starts.
//
// An expression that ends with a heredoc's closing marker does not include
// the newline that terminates the marker, without which the text does not
// parse on its own: that newline is kept.
func (l *loader) exprSource(expr hcl.Expression) plan.Expr {
	rng := expr.Range()
	src := l.srcs[rng.Filename]
	text := src[rng.Start.Byte:rng.End.Byte]
	if _, diags := hclsyntax.ParseExpression(text, rng.Filename, rng.Start); diags.HasErrors() {
		rest := src[rng.End.Byte:]
		switch {
		case bytes.HasPrefix(rest, []byte("\n")):
			text = src[rng.Start.Byte : rng.End.Byte+1]
		case bytes.HasPrefix(rest, []byte("\r\n")):
			text = src[rng.Start.Byte : rng.End.Byte+2]
		}
	}
	return plan.Expr{Source: string(text), Pos: startPos(rng)}
}
