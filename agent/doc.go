// Package agent is what runs on every node: it registers the node (labels
// and discovered facts), long-polls its slice of the plan from any
// coordinator, converges it in order with the action runners, and reports
// every step through a durable queue. It keeps its last slice and the
// digest of every step's last success in its data dir, so it keeps working
// while coordinators are unreachable and never re-runs an unchanged step.
// See DESIGN.md.
package agent
