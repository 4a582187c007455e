package daemon

import (
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// agentGCPercent is the garbage collector's target (GOGC) in a process
// that is only an agent. An idle agent's live heap is about 1.5 MB, under
// the runtime's 4 MB minimum heap goal at the default GOGC=100, so the
// heap grows to 4 MB between collections; at 50 the goal is 2 MB and an
// idle agent's resident anonymous memory falls by about 2 MiB
// (docs/performance.md). The extra collections cost what gossip
// compression did (memberlist.go): idle CPU stays where it was. A GOGC
// environment variable wins.
const agentGCPercent = 50

// tuneMemory applies agentGCPercent to a process that runs no
// coordinator, and turns off its heap profiling.
//
// Heap profiling (runtime.MemProfileRate, one sample every 512 KiB
// allocated by default) is on in every Go program that links a profile
// writer, and this binary does: coordinators serve /debug/pprof/. An
// agent serves no profile, so its samples are never read, yet each one
// walks the allocating goroutine's stack (reading the binary's function
// tables, pages the agent has dropped; see agent.Config.DropPages) and
// keeps a bucket for each new stack in a hash table of its own. An idle
// agent allocates a 64 KiB buffer per gossip packet, so it samples every
// few seconds: turned off, its RSS is about 0.2–0.3 MiB lower
// (docs/performance.md). GODEBUG's memprofilerate still wins, for whoever
// wants a profile from an agent.
func tuneMemory(cfg Config) {
	if cfg.Coordinator {
		return
	}
	if !godebugSets("memprofilerate") {
		runtime.MemProfileRate = 0
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(agentGCPercent)
	}
}

// godebugSets reports whether the GODEBUG environment variable sets key.
func godebugSets(key string) bool {
	for _, kv := range strings.Split(os.Getenv("GODEBUG"), ",") {
		if k, _, ok := strings.Cut(kv, "="); ok && strings.TrimSpace(k) == key {
			return true
		}
	}
	return false
}
