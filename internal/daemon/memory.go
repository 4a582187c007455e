package daemon

import (
	"os"
	"runtime/debug"
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
// coordinator.
func tuneMemory(cfg Config) {
	if cfg.Coordinator || os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(agentGCPercent)
}
