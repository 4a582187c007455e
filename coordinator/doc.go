// Package coordinator is dtk's replicated control plane: Raft
// (hashicorp/raft with raft-boltdb/v2 stores and a file snapshot store),
// the FSM and its in-memory state, the content-addressed blob store for
// module archives, and the HTTP API under /v1/ behind one handler stack.
//
// Writes are FSM commands (a type byte plus JSON) applied
// deterministically: times and IDs travel inside commands, the Raft index
// is the version. The plan compiler (package plan) runs on the leader for
// deploys (planner.go), whose entries carry the plan, and inside Apply for
// recompiles, cascades and the older deploy entry.
// Reads and agents' blocking queries are answered from local state by any
// coordinator; writes are forwarded to the leader. See DESIGN.md for why
// the pieces are coupled as they are.
package coordinator
