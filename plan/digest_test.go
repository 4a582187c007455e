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
