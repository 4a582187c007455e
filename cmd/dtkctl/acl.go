package main

import (
	"context"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dtkhq/dtk/internal/api"
)

// ACLCmd is `dtkctl acl`.
type ACLCmd struct {
	Bootstrap ACLBootstrapCmd `cmd:"" help:"Make the first management token (once per cluster); it is printed once."`
	Policy    ACLPolicyCmd    `cmd:"" help:"Create, list, show and delete policies."`
	Token     ACLTokenCmd     `cmd:"" help:"Create, list, show and delete tokens."`
}

// ACLBootstrapCmd is `dtkctl acl bootstrap`.
type ACLBootstrapCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run bootstraps.
func (c *ACLBootstrapCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	t, err := cl.ACLBootstrap(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(t)
	}
	out.Printf("%s\n", t.SecretID)
	out.Notef("management token %s: shown once, keep it secret (export DTK_TOKEN=...)\n", t.AccessorID)
	return nil
}

// ACLPolicyCmd is `dtkctl acl policy`.
type ACLPolicyCmd struct {
	Create ACLPolicyCreateCmd `cmd:"" help:"Create or replace a policy from an HCL rules file."`
	List   ACLPolicyListCmd   `cmd:"" help:"List policies."`
	Show   ACLPolicyShowCmd   `cmd:"" help:"Show a policy's rules."`
	Delete ACLPolicyDeleteCmd `cmd:"" help:"Delete a policy (no token may use it)."`
}

// ACLPolicyCreateCmd is `dtkctl acl policy create NAME --rules FILE`.
type ACLPolicyCreateCmd struct {
	Name        string `arg:"" help:"Policy name."`
	Rules       string `help:"HCL rules file (- for standard input)." required:"" type:"path"`
	Description string `help:"What the policy is for."`
	JSON        bool   `help:"Print the saved policy as JSON."`
}

// Run creates the policy.
func (c *ACLPolicyCreateCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	var b []byte
	var err error
	if c.Rules == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	} else {
		b, err = readValueFile(c.Rules)
	}
	if err != nil {
		return usagef("--rules: %v", err)
	}
	p, err := cl.PutACLPolicy(ctx, api.ACLPolicy{Name: c.Name, Description: c.Description, Rules: string(b)})
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(p)
	}
	out.Printf("policy %s saved\n", p.Name)
	return nil
}

// ACLPolicyListCmd is `dtkctl acl policy list`.
type ACLPolicyListCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run lists policies.
func (c *ACLPolicyListCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	ps, err := cl.ACLPolicies(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		if ps == nil {
			ps = []api.ACLPolicy{}
		}
		return out.JSON(ps)
	}
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		rows = append(rows, []string{p.Name, orDash(p.Description)})
	}
	out.Table([]string{"NAME", "DESCRIPTION"}, rows)
	return nil
}

// ACLPolicyShowCmd is `dtkctl acl policy show NAME`.
type ACLPolicyShowCmd struct {
	Name string `arg:"" help:"Policy name."`
	JSON bool   `help:"Print JSON."`
}

// Run shows a policy.
func (c *ACLPolicyShowCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	p, err := cl.ACLPolicy(ctx, c.Name)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(p)
	}
	if p.Description != "" {
		out.Printf("# %s\n", p.Description)
	}
	out.Printf("%s\n", strings.TrimRight(p.Rules, "\n"))
	return nil
}

// ACLPolicyDeleteCmd is `dtkctl acl policy delete NAME`.
type ACLPolicyDeleteCmd struct {
	Name string `arg:"" help:"Policy name."`
	JSON bool   `help:"Print JSON."`
}

// Run deletes a policy.
func (c *ACLPolicyDeleteCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if err := cl.DeleteACLPolicy(ctx, c.Name); err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(map[string]any{"policy": c.Name, "deleted": true})
	}
	out.Printf("policy %s deleted\n", c.Name)
	return nil
}

// ACLTokenCmd is `dtkctl acl token`.
type ACLTokenCmd struct {
	Create ACLTokenCreateCmd `cmd:"" help:"Create a token (its secret is printed once)."`
	List   ACLTokenListCmd   `cmd:"" help:"List tokens (without secrets)."`
	Show   ACLTokenShowCmd   `cmd:"" help:"Show a token (self: the one in use)."`
	Delete ACLTokenDeleteCmd `cmd:"" help:"Delete a token: it stops working at once."`
}

// ACLTokenCreateCmd is `dtkctl acl token create`.
type ACLTokenCreateCmd struct {
	Policy      []string      `help:"Policy the token carries; repeatable." placeholder:"NAME"`
	Management  bool          `help:"A management token: may do everything (only a management token may make one)."`
	TTL         time.Duration `help:"How long the token works (0: until deleted)." default:"0"`
	Description string        `help:"Who or what the token is for."`
	JSON        bool          `help:"Print JSON."`
}

// Run creates a token.
func (c *ACLTokenCreateCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if c.TTL < 0 {
		return usagef("--ttl must not be negative")
	}
	if len(c.Policy) == 0 && !c.Management {
		return usagef("give at least one --policy NAME, or --management")
	}
	ttl := ""
	if c.TTL > 0 {
		ttl = c.TTL.String()
	}
	t, err := cl.CreateACLToken(ctx, api.ACLTokenRequest{Policies: c.Policy, Management: c.Management, TTL: ttl, Description: c.Description})
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(t)
	}
	out.Printf("%s\n", t.SecretID)
	out.Notef("token %s: %s; shown once, keep it secret\n", t.AccessorID, expiryText(t.ExpiresMS))
	return nil
}

// ACLTokenListCmd is `dtkctl acl token list`.
type ACLTokenListCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run lists tokens.
func (c *ACLTokenListCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	ts, err := cl.ACLTokens(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		if ts == nil {
			ts = []api.ACLToken{}
		}
		return out.JSON(ts)
	}
	rows := make([][]string, 0, len(ts))
	for _, t := range ts {
		pols := strings.Join(t.Policies, ",")
		if t.Management {
			pols = "(management)"
		}
		rows = append(rows, []string{t.AccessorID, orDash(pols), expiryText(t.ExpiresMS), orDash(t.Description)})
	}
	out.Table([]string{"ACCESSOR", "POLICIES", "EXPIRY", "DESCRIPTION"}, rows)
	return nil
}

// ACLTokenShowCmd is `dtkctl acl token show ACCESSOR|self`.
type ACLTokenShowCmd struct {
	Accessor string `arg:"" help:"Token accessor ID, or self."`
	JSON     bool   `help:"Print JSON."`
}

// Run shows a token.
func (c *ACLTokenShowCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	t, err := cl.ACLToken(ctx, c.Accessor)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(t)
	}
	pols := strings.Join(t.Policies, ", ")
	if t.Management {
		pols = "(management: everything)"
	}
	out.Printf("accessor:    %s\npolicies:    %s\nexpiry:      %s\ndescription: %s\n", t.AccessorID, orDash(pols), expiryText(t.ExpiresMS), orDash(t.Description))
	return nil
}

// ACLTokenDeleteCmd is `dtkctl acl token delete ACCESSOR`.
type ACLTokenDeleteCmd struct {
	Accessor string `arg:"" help:"Token accessor ID."`
	JSON     bool   `help:"Print JSON."`
}

// Run deletes a token.
func (c *ACLTokenDeleteCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if err := cl.DeleteACLToken(ctx, c.Accessor); err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(map[string]any{"accessor_id": c.Accessor, "deleted": true})
	}
	out.Printf("token %s deleted\n", c.Accessor)
	return nil
}
