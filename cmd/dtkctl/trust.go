package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/dtkhq/dtk/internal/api"
)

// Node enrollment, revocation and operator labels; gossip keys.

// NodeTokenCmd is `dtkctl node token`.
type NodeTokenCmd struct {
	Create NodeTokenCreateCmd `cmd:"" help:"Create a join token that lets new agents enroll (the secret is printed once)."`
	List   NodeTokenListCmd   `cmd:"" help:"List join tokens (without their secrets)."`
	Delete NodeTokenDeleteCmd `cmd:"" help:"Revoke a join token."`
}

// NodeTokenCreateCmd is `dtkctl node token create`.
type NodeTokenCreateCmd struct {
	TTL         time.Duration `help:"How long the token works (0: until deleted)." default:"24h"`
	Uses        int           `help:"How many agents may enroll with it (0: unlimited until it expires)." default:"1"`
	Label       []string      `placeholder:"KEY=VALUE" sep:"none" help:"Operator label the enrolled nodes get (they cannot change it); repeatable."`
	Description string        `help:"What the token is for."`
	JSON        bool          `help:"Print JSON."`
}

// Run creates a token.
func (c *NodeTokenCreateCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if c.Uses < 0 || c.TTL < 0 {
		return usagef("--uses and --ttl must not be negative")
	}
	labels, err := parseInputs("--label", c.Label)
	if err != nil {
		return err
	}
	ttl := c.TTL.String()
	if c.TTL == 0 {
		ttl = "0"
	}
	t, err := cl.CreateToken(ctx, api.TokenRequest{TTL: ttl, MaxUses: c.Uses, Labels: labels, Description: c.Description})
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(t)
	}
	out.Printf("%s\n", t.Secret)
	out.Notef("token %s: %s, %s; shown once, keep it secret\n", t.ID, usesText(t.MaxUses), expiryText(t.ExpiresMS))
	return nil
}

func usesText(max int) string {
	if max == 0 {
		return "unlimited uses"
	}
	if max == 1 {
		return "1 use"
	}
	return strconv.Itoa(max) + " uses"
}

func expiryText(ms int64) string {
	if ms == 0 {
		return "never expires"
	}
	return "expires " + time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// NodeTokenListCmd is `dtkctl node token list`.
type NodeTokenListCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run lists tokens.
func (c *NodeTokenListCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	ts, err := cl.Tokens(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		if ts == nil {
			ts = []api.JoinToken{}
		}
		return out.JSON(ts)
	}
	rows := make([][]string, 0, len(ts))
	for _, t := range ts {
		uses := fmt.Sprintf("%d/unlimited", t.Uses)
		if t.MaxUses > 0 {
			uses = fmt.Sprintf("%d/%d", t.Uses, t.MaxUses)
		}
		rows = append(rows, []string{t.ID, uses, expiryText(t.ExpiresMS), orDash(labelText(t.Labels)), orDash(t.Description)})
	}
	out.Table([]string{"ID", "USES", "EXPIRY", "LABELS", "DESCRIPTION"}, rows)
	return nil
}

func labelText(l map[string]string) string {
	parts := make([]string, 0, len(l))
	for _, k := range sortedKeys(l) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

// NodeTokenDeleteCmd is `dtkctl node token delete`.
type NodeTokenDeleteCmd struct {
	ID   string `arg:"" help:"Token ID (dtkctl node token list)."`
	JSON bool   `help:"Print JSON."`
}

// Run revokes a token.
func (c *NodeTokenDeleteCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if err := cl.DeleteToken(ctx, c.ID); err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(map[string]any{"id": c.ID, "deleted": true})
	}
	out.Printf("join token %s deleted\n", c.ID)
	return nil
}

// NodePendingCmd is `dtkctl node pending`.
type NodePendingCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run lists enrollment requests waiting for an operator.
func (c *NodePendingCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	ps, err := cl.PendingNodes(ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		if ps == nil {
			ps = []api.PendingNode{}
		}
		return out.JSON(ps)
	}
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		rows = append(rows, []string{p.Name, p.State, p.Addr, p.PublicKey, time.UnixMilli(p.Time).UTC().Format(time.RFC3339)})
	}
	out.Table([]string{"NAME", "STATE", "FROM", "PUBLIC KEY", "SINCE"}, rows)
	if len(ps) == 0 {
		out.Notef("no enrollment requests\n")
	}
	return nil
}

// NodeApproveCmd is `dtkctl node approve`.
type NodeApproveCmd struct {
	Name string `arg:"" help:"Node name (dtkctl node pending)."`
	JSON bool   `help:"Print JSON."`
}

// Run approves a request: the node gets its certificate.
func (c *NodeApproveCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if err := cl.ApproveNode(ctx, c.Name); err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(map[string]any{"node": c.Name, "approved": true})
	}
	out.Printf("node %s approved: it receives its certificate at its next request\n", c.Name)
	return nil
}

// NodeRejectCmd is `dtkctl node reject`.
type NodeRejectCmd struct {
	Name string `arg:"" help:"Node name (dtkctl node pending)."`
	JSON bool   `help:"Print JSON."`
}

// Run rejects a request.
func (c *NodeRejectCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if err := cl.RejectNode(ctx, c.Name); err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(map[string]any{"node": c.Name, "rejected": true})
	}
	out.Printf("node %s rejected\n", c.Name)
	return nil
}

// NodeRemoveCmd is `dtkctl node remove`.
type NodeRemoveCmd struct {
	Name string `arg:"" help:"Node name."`
	JSON bool   `help:"Print JSON."`
}

// Run revokes a node's certificates and forgets it.
func (c *NodeRemoveCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	if err := cl.RemoveNode(ctx, c.Name); err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(map[string]any{"node": c.Name, "removed": true})
	}
	out.Printf("node %s removed: its certificates no longer work\n", c.Name)
	out.Notef("if the machine may be compromised, also rotate the gossip key (dtkctl operator keyring)\n")
	return nil
}

// NodeLabelCmd is `dtkctl node label`.
type NodeLabelCmd struct {
	Name   string   `arg:"" help:"Node name."`
	Labels []string `arg:"" placeholder:"KEY=VALUE" help:"Labels to set (KEY= removes one). The node cannot change or remove them."`
	JSON   bool     `help:"Print JSON."`
}

// Run sets operator labels.
func (c *NodeLabelCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	labels, err := parseInputs("label", c.Labels)
	if err != nil {
		return err
	}
	if err := cl.SetNodeLabels(ctx, c.Name, labels); err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(map[string]any{"node": c.Name, "labels": labels})
	}
	out.Printf("node %s labels updated\n", c.Name)
	return nil
}

// OperatorKeyringCmd is `dtkctl operator keyring`.
type OperatorKeyringCmd struct {
	List    KeyringListCmd `cmd:"" help:"List the gossip keys and how many members hold each."`
	Install KeyringOpCmd   `cmd:"" help:"Install a new key on every member (step 1 of a rotation)."`
	Use     KeyringOpCmd   `cmd:"" help:"Make a key the one members encrypt with (step 2)."`
	Remove  KeyringOpCmd   `cmd:"" help:"Remove an old key from every member (step 3)."`
}

// KeyringListCmd is `dtkctl operator keyring list`.
type KeyringListCmd struct {
	JSON bool `help:"Print JSON."`
}

// Run lists keys.
func (c *KeyringListCmd) Run(ctx context.Context, cl *api.Client, out *Output) error {
	st, err := cl.Keyring(ctx)
	if err != nil {
		return err
	}
	return printKeyring(out, st, c.JSON)
}

func printKeyring(out *Output, st *api.KeyringStatus, asJSON bool) error {
	if asJSON {
		return out.JSON(st)
	}
	rows := make([][]string, 0, len(st.Keys))
	for _, k := range sortedKeys(st.Keys) {
		primary := ""
		if n := st.PrimaryKeys[k]; n > 0 {
			primary = fmt.Sprintf("primary on %d", n)
		}
		rows = append(rows, []string{k, fmt.Sprintf("%d/%d", st.Keys[k], st.NumNodes), orDash(primary)})
	}
	out.Table([]string{"KEY", "MEMBERS", "PRIMARY"}, rows)
	for _, m := range sortedKeys(st.Messages) {
		out.Notef("%s: %s\n", m, st.Messages[m])
	}
	return nil
}

// KeyringOpCmd is `dtkctl operator keyring install|use|remove KEY`.
type KeyringOpCmd struct {
	Key  string `arg:"" help:"Base64 key (dtk-agent keygen)."`
	JSON bool   `help:"Print JSON."`
}

// Run applies the operation named by the command.
func (c *KeyringOpCmd) Run(ctx context.Context, kctx *kong.Context, cl *api.Client, out *Output) error {
	op := kctx.Selected().Name
	st, err := cl.KeyringOp(ctx, op, c.Key)
	if err != nil {
		return err
	}
	if c.JSON {
		return out.JSON(st)
	}
	out.Printf("%s %s: done on %d members\n", op, c.Key[:min(8, len(c.Key))]+"…", st.NumNodes)
	return nil
}
