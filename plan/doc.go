// Package plan holds dtk's plain data types (modules, components, templates,
// services, plans, steps and reports) and the compiler that turns a staged
// service, its module and the registered nodes into per-node slices.
//
// Nothing in this package does I/O: it is shared by the DSL (which produces
// Modules), the coordinator (which stores them in its replicated state and
// compiles plans inside the deterministic FSM) and the agent (which converges
// Steps).
package plan
