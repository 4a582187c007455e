// Package coordinator is dtk's replicated control plane: Raft
// (hashicorp/raft with raft-boltdb/v2 stores and a file snapshot store),
// the FSM and its in-memory state, the content-addressed blob store for
// module archives, and the HTTP API under /v1/ behind one handler stack.
//
// Writes are FSM commands (a type byte plus JSON) applied
// deterministically: times and IDs travel inside commands, the Raft index
// is the version, and the plan compiler (package plan) runs inside Apply.
// Reads and agents' blocking queries are answered from local state by any
// coordinator; writes are forwarded to the leader. See DESIGN.md for why
// the pieces are coupled as they are.
package coordinator
