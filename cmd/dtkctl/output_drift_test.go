package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dtkhq/dtk/internal/api"
)

// A step that repaired drift shows as such, followed by what its check
// found (the agent's "dtk: drift: " lines), for any kind of check.
func TestStepTable_DriftRepairedShowsWhatTheCheckFound(t *testing.T) {
	var buf bytes.Buffer
	out := &Output{Out: &buf}
	st := &api.ServiceStatus{Name: "ntp", Generation: 1, Nodes: []api.NodeStatus{{Name: "n1", TemplateNode: "web", Steps: []api.StepStatus{
		{Instance: "ntp", Component: "ntp", Action: "create", State: "ok", Generation: 1, Drift: true, Changed: true,
			Output: "dtk: drift: /Stage[main]/Ntp::Config/File[/tmp/ntp.conf]/content: current_value '{sha256}a', should be '{sha256}b' (noop)\nNotice: Applied catalog\n"},
		{Instance: "other", Component: "other", Action: "create", State: "ok", Generation: 1, Output: "dtk: drift: not shown\n"},
	}}}}
	out.stepTable(st, 1)
	got := buf.String()
	for _, want := range []string{
		"drift repaired",
		"n1 web/ntp create drift repaired: the check found:\n    /Stage[main]/Ntp::Config/File[/tmp/ntp.conf]/content: current_value '{sha256}a', should be '{sha256}b' (noop)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "not shown") || strings.Contains(got, "Applied catalog") {
		t.Errorf("status shows more than what the check found:\n%s", got)
	}
}
