package daemon

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// A process that is only an agent collects at GOGC=50; a coordinator, or a
// GOGC set in the environment, keeps what it has.
func TestTuneMemory_AgentOnlyUnlessGOGCSet(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	restoreMemProfileRate(t)

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

// A process that is only an agent does not profile its heap; a
// coordinator (which serves /debug/pprof/heap) does, and so does an agent
// started with GODEBUG=memprofilerate=N.
func TestTuneMemory_AgentOnlyStopsHeapProfiling(t *testing.T) {
	restoreMemProfileRate(t)
	const rate = 512 * 1024

	runtime.MemProfileRate = rate
	tuneMemory(Config{Coordinator: true})
	if runtime.MemProfileRate != rate {
		t.Fatalf("a coordinator's MemProfileRate became %d", runtime.MemProfileRate)
	}
	tuneMemory(Config{})
	if runtime.MemProfileRate != 0 {
		t.Fatalf("an agent's MemProfileRate is %d, want 0", runtime.MemProfileRate)
	}
	runtime.MemProfileRate = rate
	t.Setenv("GODEBUG", "x509sha1=1, memprofilerate=524288")
	tuneMemory(Config{})
	if runtime.MemProfileRate != rate {
		t.Fatalf("GODEBUG sets memprofilerate, but the agent's became %d", runtime.MemProfileRate)
	}
}

func restoreMemProfileRate(t *testing.T) {
	prev := runtime.MemProfileRate
	t.Cleanup(func() { runtime.MemProfileRate = prev })
}
