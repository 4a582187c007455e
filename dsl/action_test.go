package dsl

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/actions"
)

// The language and the agent must agree on the kinds and their names.
func TestActionKinds_MatchRunners(t *testing.T) {
	if got, want := ActionKinds(), actions.Kinds(); !slices.Equal(got, want) {
		t.Errorf("dsl kinds %v, registered runners %v", got, want)
	}
	if puppetClassRE.String() != actions.PuppetClassRE.String() {
		t.Errorf("puppet class forms differ: %s, %s", puppetClassRE, actions.PuppetClassRE)
	}
	if ansibleRoleRE.String() != actions.AnsibleRoleRE.String() {
		t.Errorf("ansible role forms differ: %s, %s", ansibleRoleRE, actions.AnsibleRoleRE)
	}
}

// TestActionsDoc loads the module that the examples of docs/actions.md
// form: every fenced block whose first line is "# file: PATH".
func TestActionsDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/actions.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	blocks := strings.Split(string(doc), "```")
	n := 0
	for i := 1; i < len(blocks); i += 2 {
		_, body, _ := strings.Cut(blocks[i], "\n") // the info string
		first, rest, _ := strings.Cut(body, "\n")
		name, ok := strings.CutPrefix(first, "# file: ")
		if !ok {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(rest, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(rest), mode); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("found %d file blocks in docs/actions.md", n)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatalf("the examples of docs/actions.md do not load:\n%v", err)
	}
	kinds := map[string]bool{}
	for _, c := range m.Components {
		for _, a := range c.Actions {
			kinds[a.Kind] = true
		}
	}
	for _, k := range ActionKinds() {
		if !kinds[k] {
			t.Errorf("docs/actions.md has no example of kind %s", k)
		}
	}
}
