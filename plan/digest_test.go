package plan_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/plan"
)

// The account a step runs as is part of its digest: changing user or group
// runs the step again; moving the block in its file does not.
func TestStepDigest_UserAndGroup(t *testing.T) {
	step := func(user, group string, line int) *plan.Step {
		return &plan.Step{
			ID: "s/n/i/create", Action: "create",
			Run:  plan.Action{Kind: "bash", Inline: "id -u", User: user, Group: group, Pos: plan.Pos{File: "main.hcl", Line: line}},
			Undo: &plan.Action{Kind: "bash", Inline: "true", User: user},
		}
	}
	root := plan.StepDigest(step("", "", 1), nil)
	if got := plan.StepDigest(step("", "", 9), nil); got != root {
		t.Errorf("moving the block changed the digest: %s vs %s", got, root)
	}
	seen := map[string]string{root: "default"}
	for _, c := range []struct{ user, group string }{{"app", ""}, {"web", ""}, {"app", "adm"}, {"", "adm"}, {"root", ""}} {
		d := plan.StepDigest(step(c.user, c.group, 1), nil)
		name := c.user + ":" + c.group
		if prev, dup := seen[d]; dup {
			t.Errorf("user/group %q has the digest of %q", name, prev)
		}
		seen[d] = name
	}
	// The delete step undoes as the delete block's account.
	a := plan.UndoStep(step("app", "", 1), 2)
	b := plan.UndoStep(step("web", "", 1), 2)
	if a.Run.User != "app" || a.Digest == b.Digest {
		t.Errorf("undo steps: user %q, digests %s and %s", a.Run.User, a.Digest, b.Digest)
	}
	// Left out, they are not in the plan's JSON: digests of steps that
	// name no account are what they were before user and group existed.
	j, err := json.Marshal(step("", "", 1).Run)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(j), `"user"`) || strings.Contains(string(j), `"group"`) {
		t.Errorf("action JSON = %s", j)
	}
}

// What a params mapping passes is part of the digest: another mapping, or
// another value of an attribute it reads, runs the step again; moving the
// expression in its file does not. A step without params keeps the digest
// it had before params existed.
func TestStepDigest_Params(t *testing.T) {
	step := func(params map[string]plan.Expr, dir string) *plan.Step {
		return &plan.Step{
			ID: "s/n/i/create", Action: "create",
			Run:        plan.Action{Kind: "puppet", Class: "ntp", Params: params},
			Attributes: map[string]json.RawMessage{"dir": json.RawMessage(`"` + dir + `"`)},
		}
	}
	at := func(src string, line int) map[string]plan.Expr {
		return map[string]plan.Expr{"config": {Source: src, Pos: plan.Pos{File: "main.hcl", Line: line, Column: 7}}}
	}
	// Computed with the code before params existed (commit 30d0414).
	const before = "sha256:a9cc1b8a4981852d4ca3f04b16e9c26905af123e0eb4149ef69a90330ed8f737"
	if got := plan.StepDigest(step(nil, "/etc"), nil); got != before {
		t.Errorf("digest without params = %s, want the old %s", got, before)
	}
	base := plan.StepDigest(step(at(`"${dir}/ntp.conf"`, 3), "/etc"), nil)
	if got := plan.StepDigest(step(at(`"${dir}/ntp.conf"`, 30), "/etc"), nil); got != base {
		t.Errorf("moving the expression changed the digest")
	}
	for name, st := range map[string]*plan.Step{
		"no params":       step(nil, "/etc"),
		"empty params":    step(map[string]plan.Expr{}, "/etc"),
		"another mapping": step(at(`"${dir}/chrony.conf"`, 3), "/etc"),
		"another value":   step(at(`"${dir}/ntp.conf"`, 3), "/srv"),
	} {
		if plan.StepDigest(st, nil) == base {
			t.Errorf("%s: same digest", name)
		}
	}
	r, err := plan.ResolveParams(&step(at(`"${dir}/ntp.conf"`, 3), "/etc").Run, step(nil, "/etc").Attributes)
	if err != nil || string(r["config"]) != `"/etc/ntp.conf"` {
		t.Errorf("resolved %s, %v", r, err)
	}
}
