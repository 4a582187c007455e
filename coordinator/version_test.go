package coordinator

import (
	"testing"
)

// TestState_LatestModule_SemverPrecedence: the default upgrade target is
// the highest version by semver precedence, so 1.0.0-rc.10 beats
// 1.0.0-rc.2 (numeric identifiers compare as numbers) and 1.0.0 beats both.
func TestState_LatestModule_SemverPrecedence(t *testing.T) {
	h := newHarness(t)
	push := func(version string) {
		m := testModule()
		m.Version = version
		h.mustApply(PutModuleType, PutModuleCmd{Module: m})
	}
	for _, v := range []string{"1.0.0-rc.2", "1.0.0-rc.10", "1.0.0-rc.9", "0.9.0"} {
		push(v)
	}
	if got := h.fsm.State().LatestModule("m"); got == nil || got.Version != "1.0.0-rc.10" {
		t.Fatalf("LatestModule = %+v, want version 1.0.0-rc.10", got)
	}
	var order []string
	for _, m := range h.fsm.State().Modules() {
		order = append(order, m.Version)
	}
	if want := []string{"0.9.0", "1.0.0-rc.2", "1.0.0-rc.9", "1.0.0-rc.10"}; !equalStrings(order, want) {
		t.Errorf("Modules() order = %v, want %v", order, want)
	}
	push("1.0.0")
	if got := h.fsm.State().LatestModule("m"); got == nil || got.Version != "1.0.0" {
		t.Fatalf("LatestModule = %+v, want version 1.0.0", got)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
