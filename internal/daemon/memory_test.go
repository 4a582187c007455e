package daemon

import (
	"runtime/debug"
	"testing"
)

// A process that is only an agent collects at GOGC=50; a coordinator, or a
// GOGC set in the environment, keeps what it has.
func TestTuneMemory_AgentOnlyUnlessGOGCSet(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)

	tuneMemory(Config{Coordinator: true})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("a coordinator's GOGC became %d", got)
	}
	tuneMemory(Config{})
	if got := debug.SetGCPercent(100); got != agentGCPercent {
		t.Fatalf("an agent's GOGC is %d, want %d", got, agentGCPercent)
	}
	t.Setenv("GOGC", "100")
	tuneMemory(Config{})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC=100 in the environment, but the agent's became %d", got)
	}
}
