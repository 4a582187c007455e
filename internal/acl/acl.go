// Package acl is dtk's access control: policies written in HCL that grant
// rights on services, modules, nodes, cluster operations and the ACL system
// itself, and an Authorizer, built once per request from the caller's
// token, that handlers ask ("may this caller deploy prod-api?").
//
//	service "app-" { policy = "deploy" }   # write + deploy, exec, cancel
//	service ""     { policy = "read" }     # plan, status, logs of the rest
//	module  "app-" { policy = "write" }
//	node           { policy = "read" }
//	operator       { policy = "read" }
//	acl = "read"
//
// Service and module rules match name prefixes: for a name, the rule with
// the longest matching prefix wins, and among rules with that same prefix
// (from several policies) deny wins over any grant, then the highest grant.
// What no rule matches is denied.
package acl

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/dtkhq/dtk/internal/hclguard"
	"github.com/dtkhq/dtk/plan"
)

// Level is a right's strength. Deny is an explicit refusal.
type Level int

// Levels, weakest first. Deploy is only for services.
const (
	None Level = iota
	Read
	Write
	Deploy
	Deny Level = -1
)

var levelNames = map[string]Level{"deny": Deny, "read": Read, "write": Write, "deploy": Deploy}

func (l Level) String() string {
	for n, v := range levelNames {
		if v == l {
			return n
		}
	}
	return "none"
}

// Resource kinds a right is about.
const (
	KindService  = "service"
	KindModule   = "module"
	KindNode     = "node"
	KindOperator = "operator"
	KindACL      = "acl"
)

// Need is one right a request needs: a level on a resource (Name is the
// service or module name; empty for node, operator and acl).
type Need struct {
	Kind  string
	Name  string
	Level Level
}

func (n Need) String() string {
	if n.Kind == KindService || n.Kind == KindModule {
		return fmt.Sprintf("%s %q %s", n.Kind, n.Name, n.Level)
	}
	return n.Kind + " " + n.Level.String()
}

// Rule is one prefix rule of a policy.
type Rule struct {
	Prefix string `json:"prefix"`
	Level  Level  `json:"level"`
}

// Policy is a parsed set of rules.
type Policy struct {
	Services []Rule `json:"services,omitempty"`
	Modules  []Rule `json:"modules,omitempty"`
	Node     Level  `json:"node,omitempty"`
	Operator Level  `json:"operator,omitempty"`
	ACL      Level  `json:"acl,omitempty"`
}

// Limits on rules text.
const (
	MaxRulesBytes = 64 << 10
	maxRules      = 512
)

var (
	blockSchema = &hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{
			{Type: KindService, LabelNames: []string{"prefix"}},
			{Type: KindModule, LabelNames: []string{"prefix"}},
			{Type: KindNode}, {Type: KindOperator},
		},
		Attributes: []hcl.AttributeSchema{{Name: KindACL}},
	}
	ruleSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "policy", Required: true}}}
)

// Parse reads rules text (named filename in errors). Errors carry
// file:line:col.
func Parse(src []byte, filename string) (*Policy, error) {
	if len(src) > MaxRulesBytes {
		return nil, fmt.Errorf("%s: rules are larger than %d bytes", filename, MaxRulesBytes)
	}
	if diags := hclguard.Config(src, filename, hcl.InitialPos); diags.HasErrors() {
		return nil, plan.PositionedError(diags)
	}
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, plan.PositionedError(diags)
	}
	content, diags := f.Body.Content(blockSchema)
	if diags.HasErrors() {
		return nil, plan.PositionedError(diags)
	}
	p := &Policy{}
	if len(content.Blocks) > maxRules {
		return nil, fmt.Errorf("%s: %d rules; at most %d", filename, len(content.Blocks), maxRules)
	}
	seen := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		key := b.Type + "/" + strings.Join(b.Labels, "")
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s: %s rule given twice (first at line %d)", pos(b.DefRange), b.Type, prev.Start.Line)
		}
		seen[key] = b.DefRange
		rc, diags := b.Body.Content(ruleSchema)
		if diags.HasErrors() {
			return nil, plan.PositionedError(diags)
		}
		lvl, err := levelOf(rc.Attributes["policy"], b.Type)
		if err != nil {
			return nil, err
		}
		switch b.Type {
		case KindService:
			p.Services = append(p.Services, Rule{Prefix: b.Labels[0], Level: lvl})
		case KindModule:
			p.Modules = append(p.Modules, Rule{Prefix: b.Labels[0], Level: lvl})
		case KindNode:
			p.Node = lvl
		case KindOperator:
			p.Operator = lvl
		}
	}
	if a := content.Attributes[KindACL]; a != nil {
		lvl, err := levelOf(a, KindACL)
		if err != nil {
			return nil, err
		}
		p.ACL = lvl
	}
	return p, nil
}

func levelOf(a *hcl.Attribute, kind string) (Level, error) {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return None, plan.PositionedError(diags)
	}
	if v.IsNull() || v.Type() != cty.String {
		return None, fmt.Errorf("%s: %s: policy must be a string", pos(a.Expr.Range()), kind)
	}
	s := v.AsString()
	lvl, ok := levelNames[s]
	if !ok || (lvl == Deploy && kind != KindService) {
		allowed := `"read", "write" or "deny"`
		if kind == KindService {
			allowed = `"read", "write", "deploy" or "deny"`
		}
		return None, fmt.Errorf("%s: %s: policy %q is not one of %s", pos(a.Expr.Range()), kind, s, allowed)
	}
	return lvl, nil
}

func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

// Authorizer answers what one caller may do.
type Authorizer struct {
	// Management callers (the bootstrap token, coordinators themselves)
	// may do everything.
	Management bool
	services   []Rule
	modules    []Rule
	node       Level
	operator   Level
	acl        Level
	// Name describes the caller in refusals.
	Name string
}

// NewAuthorizer merges policies: the union of their rules.
func NewAuthorizer(name string, policies ...*Policy) *Authorizer {
	a := &Authorizer{Name: name}
	for _, p := range policies {
		a.services = append(a.services, p.Services...)
		a.modules = append(a.modules, p.Modules...)
		a.node = merge(a.node, p.Node)
		a.operator = merge(a.operator, p.Operator)
		a.acl = merge(a.acl, p.ACL)
	}
	// Longest prefix first; within one prefix, deny first.
	for _, rs := range [][]Rule{a.services, a.modules} {
		sort.SliceStable(rs, func(i, j int) bool {
			if len(rs[i].Prefix) != len(rs[j].Prefix) {
				return len(rs[i].Prefix) > len(rs[j].Prefix)
			}
			return rs[i].Level < rs[j].Level
		})
	}
	return a
}

// Manager is an Authorizer that may do everything.
func Manager(name string) *Authorizer { return &Authorizer{Management: true, Name: name} }

// merge combines two policies' levels for one kind: deny wins.
func merge(a, b Level) Level {
	if a == Deny || b == Deny {
		return Deny
	}
	return max(a, b)
}

// prefixLevel is the level the most specific matching prefix grants.
func prefixLevel(rules []Rule, name string) Level {
	best := -1
	lvl := None
	for _, r := range rules {
		if !strings.HasPrefix(name, r.Prefix) {
			continue
		}
		if best >= 0 && len(r.Prefix) < best {
			break
		}
		best = len(r.Prefix)
		lvl = merge(lvl, r.Level)
	}
	return lvl
}

// Level is what the caller has on a resource.
func (a *Authorizer) Level(kind, name string) Level {
	if a.Management {
		return Deploy
	}
	switch kind {
	case KindService:
		return prefixLevel(a.services, name)
	case KindModule:
		return prefixLevel(a.modules, name)
	case KindNode:
		return a.node
	case KindOperator:
		return a.operator
	case KindACL:
		return a.acl
	}
	return None
}

// MayWriteSomeModule reports whether any rule lets the caller write a
// module (checked before a push is even stored; the module's own name is
// checked once it is parsed).
func (a *Authorizer) MayWriteSomeModule() bool {
	if a.Management {
		return true
	}
	for _, r := range a.modules {
		if r.Level >= Write {
			return true
		}
	}
	return false
}

// Allowed reports whether the caller has need.
func (a *Authorizer) Allowed(n Need) bool {
	l := a.Level(n.Kind, n.Name)
	return l != Deny && l >= n.Level
}

// Check is nil when allowed, else an error naming the missing right.
func (a *Authorizer) Check(n Need) error {
	if a.Allowed(n) {
		return nil
	}
	return &DeniedError{Caller: a.Name, Need: n}
}

// DeniedError names the right a caller lacks.
type DeniedError struct {
	Caller string
	Need   Need
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("permission denied: %s lacks %s", e.Caller, e.Need)
}
